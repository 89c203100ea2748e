"""Run one simulation on a ray.cluster_utils.Cluster: a head with no CPU plus 2 worker nodes of 1 CPU.

Usage: python tests/multinode_run.py CONFIG.toml OUT_DIR [remove-node]   (a subprocess with its own Ray)
With remove-node, one worker node gets a preemption notice (`ray drain-node`, the call autoscaler v2 makes
for a reclaimed spot instance) in the middle of round 3's local phase, after the driver has sent every host
its task and before it has the results, and is then removed (its host actor dies with its task in flight);
a fresh worker node joins, so the run must recreate the lost host there and replay from its last
checkpoint.
"""

import json
import subprocess
import sys

import ray
from ray.cluster_utils import Cluster

from raympl.options import resolve
from raympl.runtime import executors
from raympl.runtime.driver import simulate

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address)
config = resolve({"out": sys.argv[2]}, sys.argv[1])
removed = []
local, get = executors.RayExecutor.local, executors.RayExecutor.get
in_phase = []


def local_with_a_lost_node(self, round_, plans=None):
    in_phase[:] = [round_ == 3 and len(sys.argv) > 3 and not removed]
    return local(self, round_, plans)


def get_after_losing_a_node(self, refs):
    if in_phase and in_phase[0]:  # the hosts are working on round 3's local phase right now
        in_phase[0] = False
        notice = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "drain-node", "--address",
                                 cluster.address, "--node-id", workers[0].node_id, "--reason",
                                 "DRAIN_NODE_REASON_PREEMPTION", "--reason-message", "spot instance reclaimed",
                                 "--deadline-remaining-seconds", "1"], capture_output=True, text=True)
        print(f"drain-node exit {notice.returncode}: {notice.stdout.strip()} {notice.stderr.strip()[-300:]}",
              file=sys.stderr)
        cluster.remove_node(workers[0])
        removed.append(cluster.add_node(num_cpus=1))
    return get(self, refs)


executors.RayExecutor.local = local_with_a_lost_node
executors.RayExecutor.get = get_after_losing_a_node
summary = simulate(config, log=lambda line: print(line, file=sys.stderr))
nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"] and node["Resources"].get("CPU", 0) > 0}
print(json.dumps({"summary": summary, "cpu_nodes": len(nodes)}))
ray.shutdown()
cluster.shutdown()
