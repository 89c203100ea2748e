"""What a run counts per round: bits per agent and link, dropped messages, the simulated clock's columns,
and the network part of summary.json.
"""

from __future__ import annotations

import numpy as np

from raympl import algorithms
from raympl.metrics import time_to_accuracy
from raympl.network import rounds as network_rounds
from raympl.network.links import Sent, link_dropped
from raympl.runtime.host import SERVER
from raympl.runtime.run_state import Run


def with_finish_times(evaluation: list[dict], delivery: network_rounds.Delivery) -> list[dict]:
    """Each evaluated agent's simulated finish time in the evaluated round (None: offline)."""
    finish = delivery.timing.finish
    return [{**row, "online": row["agent"] in finish, "finish_s": finish.get(row["agent"])} for row in evaluation]


def clock_columns(run: Run, plan: network_rounds.Plan, delivery: network_rounds.Delivery) -> dict:
    timing = delivery.timing
    return {"sim_time_s": timing.duration, "sim_clock_s": run.network.clock_s,
            "online_agents": int(plan.online.sum()), "late_messages": timing.late,
            "missed_deadline": len(timing.missed)}


class Accounting:
    """Bits charged per round: unicast (each directed link carries its copy) or broadcast (one
    transmission reaches every neighbour); with a server, each agent's upload plus one download."""

    def __init__(self, run: Run):
        self.run, self.config = run, run.config
        self.server = algorithms.get(self.config.algorithm).server
        self.broadcast = self.config.comm_model == "broadcast"
        self.weights = run.prepared.model.num_maskable

    def charge(self, round_: int, sent: dict[int, Sent], download: int, decoding_s: float,
               plan: network_rounds.Plan, delivery: network_rounds.Delivery) -> dict:
        """Adds each sender's bits to run.bits_sent; returns the round's traffic columns (over this round's
        graph and the agents online in it)."""
        per_agent = {a: 8 * (out.broadcast_bytes if self.broadcast else out.link_bytes) for a, out in sent.items()}
        if download:  # the server's model to every agent that receives it (all senders, unless the network plans)
            receivers = ([a for a, got in delivery.receive_from.items() if got and a != SERVER]
                         if self.run.network.dynamic else list(sent))
            for agent in receivers:
                per_agent[agent] = per_agent.get(agent, 0) + 8 * download
        for agent, bits in per_agent.items():
            self.run.bits_sent[agent] += bits
        round_bits = sum(per_agent.values())
        # the average message: per link copy (unicast), per transmission (broadcast), per upload and
        # download (server)
        messages = sum(2 if self.server else out.transmissions if self.broadcast else len(out.sizes)
                       for out in sent.values())
        compared = sum(out.compared for out in sent.values())
        return {"bytes": round_bits // 8, "bits": round_bits,
                "busiest_agent_bits": max(per_agent.values(), default=0),
                "bits_per_weight": round_bits / (messages * self.weights) if messages else 0.0,
                "flip_rate": sum(out.flips for out in sent.values()) / compared if compared else None,
                "coding_s": sum(out.coding_s for out in sent.values()) + decoding_s,  # all hosts together
                "dropped_messages": self.dropped(round_, plan, delivery)}

    def dropped(self, round_: int, plan: network_rounds.Plan, delivery: network_rounds.Delivery) -> int:
        """Messages lost to --link-drop: a dropped message was still sent, its bits count; receivers reuse the
        last one they got."""
        if not self.config.link_drop or self.server:
            return 0
        if not self.run.network.dynamic:
            return sum(link_dropped(self.config, round_, i, j) + link_dropped(self.config, round_, j, i)
                       for i, j in self.run.prepared.graph.edges)
        return sum(link_dropped(self.config, round_, i, j) for j, senders in delivery.receive_from.items()
                   for i in senders)


def network_summary(run: Run) -> dict:
    """The simulated clock's totals and time-to-accuracy (docs/network.md)."""
    config, rows = run.config, run.recorder.rounds
    return {"sim_time_total_s": run.network.clock_s,
            "sim_time_per_round_s": run.network.clock_s / config.rounds,
            "network": {k: getattr(config, k) for k in ("device_speed", "bandwidth", "latency", "round_deadline",
                                                        "availability", "topology_schedule")},
            "mean_online_agents": float(np.mean([r["online_agents"] for r in rows])) if rows else None,
            "late_messages_total": int(sum(r["late_messages"] for r in rows)),
            "missed_deadline_total": int(sum(r["missed_deadline"] for r in rows)),
            "time_to_accuracy": time_to_accuracy(run.recorder.evaluation_means(),
                                                 {r["round"]: r["sim_clock_s"] for r in rows})}
