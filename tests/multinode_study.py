"""A study on a ray.cluster_utils.Cluster: a head with no CPU plus 3 worker nodes of 1 CPU.

Usage: python tests/multinode_study.py STUDY.json OUT_DIR   (a subprocess with its own Ray)
Runs raympl.compare(**STUDY) with concurrent="auto", trial_resources="cpus=1" against the cluster. Once a
run has written a checkpoint and not finished (while it and at least one other trial run), every worker node
that holds a running trial is removed (their trials' processes die with the nodes) and as many fresh nodes
join: Tune starts those trials again, and the run with the checkpoint must continue from it. The trigger needs
no particular overlap of the trials, so it holds on a machine busy with other work, where trials start apart.
Prints {"removed_node": the first node id removed} as its last line.
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


def running_trials() -> list:
    return [a for a in list_actors(filters=[("state", "=", "ALIVE")]) if "ImplicitFunc" in a.class_name]


def remove_the_running_trials_nodes() -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        resumable = [c for c in out.glob("runs/*/*/*/checkpoint.bin") if not (c.parent / "summary.json").exists()]
        if resumable and len(running_trials()) >= 2:
            break
        time.sleep(0.05)
    hosts = {a.node_id for a in running_trials()}
    for victim in [w for w in workers if w.node_id in hosts]:
        cluster.remove_node(victim)
        removed.append(victim.node_id)
        cluster.add_node(num_cpus=1)


threading.Thread(target=remove_the_running_trials_nodes, daemon=True).start()
raympl.compare(**study, out=str(out), concurrent="auto", trial_resources="cpus=1", address=cluster.address)
print(json.dumps({"removed_node": removed[0] if removed else None}))
ray.shutdown()
cluster.shutdown()
