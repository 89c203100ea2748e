"""`--tensorboard DIR`: the per-round numbers of a run as TensorBoard scalars, beside the Parquet files.

Tags: accuracy/{mean,min,max} and loss/mean at evaluated rounds (step = round), accuracy/mean_by_kbit
(step = kilobits sent by all agents so far, TensorBoard's x axis for accuracy against communication),
communication/{bits,bits_per_weight,busiest_agent_bits,flip_rate} and time/{local_s,merge_s,eval_s,
coding_s} every round. A resumed run purges the steps after its checkpoint, so curves do not double.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TensorBoardLog:
    def __init__(self, log_dir: str | Path, resume_round: int | None = None):
        from torch.utils.tensorboard import SummaryWriter  # optional: pip install 'raympl[tensorboard]'

        self.writer = SummaryWriter(str(log_dir), purge_step=resume_round + 1 if resume_round else None)
        self.total_bits = 0

    def round(self, row: dict, evaluation: list[dict] | None, total_bits: int) -> None:
        """One round's row of rounds.parquet, its evaluation rows (or None), all bits sent so far."""
        step = row["round"]
        for tag in ("bits", "bits_per_weight", "busiest_agent_bits", "flip_rate"):
            if row.get(tag) is not None:
                self.writer.add_scalar(f"communication/{tag}", row[tag], step)
        for tag in ("local_s", "merge_s", "eval_s", "coding_s", "sim_time_s", "sim_clock_s"):
            if row.get(tag) is not None:
                self.writer.add_scalar(f"time/{tag}", row[tag], step)
        for tag in ("online_agents", "late_messages", "missed_deadline"):
            if row.get(tag) is not None:
                self.writer.add_scalar(f"network/{tag}", row[tag], step)
        if evaluation:
            accuracy = np.array([r["accuracy"] for r in evaluation])
            self.writer.add_scalar("accuracy/mean", accuracy.mean(), step)
            self.writer.add_scalar("accuracy/min", accuracy.min(), step)
            self.writer.add_scalar("accuracy/max", accuracy.max(), step)
            self.writer.add_scalar("loss/mean", float(np.mean([r["loss"] for r in evaluation])), step)
            self.writer.add_scalar("accuracy/mean_by_kbit", accuracy.mean(), total_bits // 1000)

    def close(self) -> None:
        self.writer.close()
