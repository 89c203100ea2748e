"""A study on a ray.cluster_utils.Cluster: a head with no CPU plus 3 worker nodes of 1 CPU.

Usage: python tests/multinode_study.py STUDY.json OUT_DIR   (a subprocess with its own Ray)
Runs raympl.compare(**STUDY) with concurrent="auto", trial_resources="cpus=1" against the cluster. Once
three runs have written a checkpoint (three trials are running), the worker node of one running trial is
removed (its trial's process dies with the node) and a fresh node joins: Tune starts that trial again and
it must continue its run from the checkpoint. Prints {"removed_node": node id} as its last line.
"""

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

import raympl

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
workers = [cluster.add_node(num_cpus=1) for _ in range(3)]
cluster.wait_for_nodes()
ray.init(address=cluster.address)
study, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
removed = []


def remove_a_running_trials_node() -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        running = [c for c in out.glob("runs/*/*/*/checkpoint.bin") if not (c.parent / "summary.json").exists()]
        if len(running) >= 3:
            break
        time.sleep(0.05)
    trials = [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if "ImplicitFunc" in a.class_name]
    victim = next(w for w in workers if w.node_id in {a.node_id for a in trials})
    cluster.remove_node(victim)
    removed.append(victim.node_id)
    cluster.add_node(num_cpus=1)


threading.Thread(target=remove_a_running_trials_node, daemon=True).start()
raympl.compare(**study, out=str(out), concurrent="auto", trial_resources="cpus=1", address=cluster.address)
print(json.dumps({"removed_node": removed[0] if removed else None}))
ray.shutdown()
cluster.shutdown()
