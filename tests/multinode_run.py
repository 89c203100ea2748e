"""Run one simulation on a ray.cluster_utils.Cluster: a head with no CPU plus 2 worker nodes of 1 CPU.

Usage: python tests/multinode_run.py CONFIG.toml OUT_DIR [remove-node]   (a subprocess with its own Ray)
With remove-node, after round 3 one worker node is removed (its host actor dies with it) and a fresh
worker node joins, so the run must recreate the lost host there and replay from its last checkpoint.
"""

import json
import sys

import ray
from ray.cluster_utils import Cluster

from raympl.config import resolve
from raympl.runtime.driver import simulate

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address)
config = resolve({"out": sys.argv[2]}, sys.argv[1])
removed = []


def remove_a_node(round_, accuracy):
    if round_ == 3 and len(sys.argv) > 3 and not removed:
        cluster.remove_node(workers[0])
        removed.append(cluster.add_node(num_cpus=1))
        cluster.wait_for_nodes()


summary = simulate(config, progress=remove_a_node, log=lambda line: print(line, file=sys.stderr))
nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU", 0) > 0}
print(json.dumps({"summary": summary, "cpu_nodes": len(nodes)}))
ray.shutdown()
cluster.shutdown()
