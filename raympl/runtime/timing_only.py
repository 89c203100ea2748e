"""--timing-only (with --schedule async): the schedule, bits and simulated time of a run without computing
its steps, for networks too large to train (10,000 agents and more).

Every message is taken to be the size of agent 0's first real message (one local step is computed to
measure it), so only methods whose message size does not depend on the content are accepted: dense models
(dsgd, dsgd-prox, deprl) and raw masks (mce-pl with --codec raw). The planner (network/gossip.py) then runs
alone: no hosts, no training, no evaluation. summary.json holds the simulated time, the bits, the steps per
agent, the ages of the messages merges would use, and the planner's speed in agent-steps per second.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from raympl import provenance, topologies
from raympl.config import RunConfig
from raympl.metrics import atomic_write_bytes
from raympl.network import rounds as network_rounds
from raympl.runtime.asynchronous import ended_by, planner, slot_s
from raympl.runtime.host import AgentHost
from raympl.runtime.prepare import Prepared, agent_data, prepare
from raympl.runtime.run_dir import check_out_dir, make_out_dir
from raympl.runtime.stopping import StopRequests


def message_bytes(config: RunConfig, prepared: Prepared) -> int:
    """The bytes of agent 0's message of its first step, computed for real on a host of that agent alone."""
    host = AgentHost(config, prepared.dataset, [agent_data(config, prepared)[0]], threads=1)
    _, sizes, _ = host.gossip_wave({0: 1}, {}, {0: ([], {0: 1.0}, [])}, {})
    return sizes[0]


def simulate(config: RunConfig, out: Path, stop: StopRequests | None = None) -> dict:
    """Plan the run and write its summary; a stop request before the files are written ends it at once."""
    start = time.perf_counter()
    check_out_dir(out)
    prepared = prepare(config)
    network = network_rounds.build(config, prepared.graph, prepared.model, prepared.partition.train)
    size = message_bytes(config, prepared)
    gossip = planner(prepared.graph, network.profile, config.rounds, config.sim_time, network.availability,
                     network.schedule, config.slot_s, config.mixing)
    broadcast = config.comm_model == "broadcast"
    planning = time.perf_counter()
    ages, waves, end_s, copies = [], 0, 0.0, 0
    while (wave := gossip.next_wave()) is not None:
        edges = gossip.out_edges(wave.agents)
        links = gossip.sent(np.full(len(edges), float(size)), np.ones(len(wave.agents)) if broadcast else None)
        copies += int(np.minimum(links, 1).sum() if broadcast else links.sum())
        ages.append(wave.used_age_s)
        end_s = max(end_s, float(wave.time_s.max()))
        waves += 1
    planner_s = time.perf_counter() - planning
    steps = gossip.done
    age = np.concatenate(ages) if ages else np.zeros(0)
    summary = {
        "schedule": "async", "timing_only": True, "algorithm": config.algorithm, "rounds": config.rounds,
        "agents": config.agents, "edges": prepared.graph.number_of_edges(), "message_bytes": size,
        "total_bits": 8 * size * copies, "sim_time_total_s": end_s,
        "sim_time_limit_s": config.sim_time,
        "ended_by": ended_by(gossip, config.rounds), "slot_s": slot_s(gossip),
        "steps_per_agent": {"min": int(steps.min()), "mean": float(steps.mean()), "max": int(steps.max())},
        "staleness": {"messages_used": int(age.size), "mean_age_s": float(age.mean()) if age.size else None,
                      "p90_age_s": float(np.quantile(age, 0.9)) if age.size else None,
                      "max_age_s": float(age.max()) if age.size else None},
        "waves": waves, "planner_s": planner_s, "agent_steps_per_s": float(steps.sum() / planner_s),
        "wall_time_s": time.perf_counter() - start,
        "network": {k: getattr(config, k) for k in ("device_speed", "bandwidth", "latency", "comm_model")},
        "driver_machine": provenance.machine(), "revision": provenance.revision(), "versions": provenance.versions(),
    }
    if stop is not None:
        stop.set_up()  # the plan is made: a request now lets the files be written whole
    make_out_dir(out)
    atomic_write_bytes(out / "config.toml", config.to_toml().encode())
    topologies.write_edgelist(prepared.graph, out / "topology.edgelist")
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    return summary
