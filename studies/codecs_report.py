"""Tables and figures of docs/communication.md from `studies/codecs.sh`'s runs.

Reads every finished run (a folder with summary.json) under the study folder and prints a Markdown
table: accuracy, bits per weight, busiest agent's bits, flip rate and the share of round time spent
coding, per run; then, for each MCE-PL retention, whether the entropy and delta runs ended with
exactly the raw run's masks and accuracies. Writes two figures: bits per weight against the round
for each codec and retention, and mean accuracy against cumulative bits sent (log scale).
Usage: python studies/codecs_report.py runs/codecs [--figures docs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from raympl.api import Run  # noqa: E402
from raympl.runtime.run_dir import read_masks  # noqa: E402

CODEC_STYLE = {"raw": "-", "entropy": "--", "delta": ":"}


class CodecRun(Run):
    """A run of the study, with what its rows and labels need."""

    def __init__(self, folder: Path):
        super().__init__(folder)
        self.algorithm = self.config["algorithm"]
        retention = self.config.get("retention", [])  # config.toml lists only the options a run uses
        self.retention = "-" if not retention else retention[0] if len(retention) == 1 else "hetero"
        self.codec = self.config.get("codec", "raw") if self.algorithm == "mce-pl" else "-"
        self.lr = self.config["lr"]
        self.model = self.config["model"]

    @property
    def label(self) -> str:
        model = "" if self.model == "small-cnn" else f"{self.model} "
        if self.algorithm == "mce-pl":
            return f"{model}MCE-PL r={self.retention} {self.codec}"
        shown = f" r={self.retention}" if self.retention != "-" else ""
        return f"{self.algorithm}{shown} η={self.lr:g}"

    def accuracy_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean accuracy over agents at each evaluated round, against the network's cumulative bits."""
        means = self.metrics.groupby("round")["accuracy"].mean()
        cumulative = self.rounds["bits"].cumsum().to_numpy()
        return cumulative[means.index.to_numpy() - 1], means.to_numpy()

    def coding_share(self) -> float:
        return self.rounds["coding_s"].sum() / (self.rounds["local_s"].sum() + self.rounds["merge_s"].sum())

    def masks(self) -> dict[int, bytes]:
        return read_masks(self.directory / "masks.parquet")

    def final_accuracies(self) -> list[float]:
        metrics = self.metrics
        return metrics[metrics["round"] == metrics["round"].max()].sort_values("agent")["accuracy"].tolist()


def find_runs(study: Path) -> list[CodecRun]:
    runs = [CodecRun(summary.parent) for summary in sorted(study.rglob("summary.json"))]
    return sorted(runs, key=lambda r: (r.algorithm != "mce-pl", r.algorithm, str(r.retention),
                                       list(CODEC_STYLE).index(r.codec) if r.codec in CODEC_STYLE else 0))


def table(runs: list[CodecRun]) -> str:
    lines = ["| run | rounds | last-5 accuracy | bits/weight (mean) | bits/weight, last 10 rounds | "
             "total Mbit | busiest agent kbit/round | flip rate, last round | coding share |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        s, r = run.summary, run.rounds
        flip = r["flip_rate"].iloc[-1]
        lines.append(f"| {run.label} | {s['rounds']} | {s['mean_accuracy_last5']:.4f} | {s['bits_per_weight']:.4f} | "
                     f"{r['bits_per_weight'].iloc[-10:].mean():.4f} | {s['total_bits'] / 1e6:,.1f} | "
                     f"{s['busiest_agent_bits_per_round'] / 1e3:,.1f} | "
                     f"{'–' if pd.isna(flip) else f'{flip:.5f}'} | {100 * run.coding_share():.2f} % |")
    return "\n".join(lines)


def equality(runs: list[CodecRun]) -> str:
    """Lossless codecs: the same seed gives the same masks and accuracies whatever the codec."""
    lines = []
    for retention in sorted({r.retention for r in runs if r.algorithm == "mce-pl"}, key=str):
        by_codec = {r.codec: r for r in runs if r.algorithm == "mce-pl" and r.retention == retention}
        if "raw" not in by_codec:
            continue
        raw = by_codec["raw"]
        for codec, run in by_codec.items():
            if codec == "raw":
                continue
            a, b = raw.masks(), run.masks()
            differing = sum(int(np.unpackbits(np.bitwise_xor(np.frombuffer(a[k], np.uint8),
                                                             np.frombuffer(b[k], np.uint8))).sum()) for k in a)
            same_accuracy = raw.final_accuracies() == run.final_accuracies()
            lines.append(f"- r = {retention}, raw vs {codec}: {differing} final mask bits differ; per-agent "
                         f"final accuracies {'identical' if same_accuracy else 'DIFFERENT'}")
    return "\n".join(lines)


def plot_bits(runs: list[CodecRun], path: Path) -> None:
    masks = [r for r in runs if r.algorithm == "mce-pl"]
    retentions = sorted({r.retention for r in masks}, key=str)
    fig, axes = plt.subplots(1, len(retentions), figsize=(4.2 * len(retentions), 3.6), sharey=True, squeeze=False)
    for ax, retention in zip(axes[0], retentions, strict=True):
        for run in (r for r in masks if r.retention == retention):
            ax.plot(run.rounds["round"], run.rounds["bits_per_weight"], CODEC_STYLE[run.codec], label=run.codec)
        ax.set_yscale("log")
        ax.set_title(f"MCE-PL, r = {retention}")
        ax.set_xlabel("round")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("bits per weight per message")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy(runs: list[CodecRun], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    settings = list(dict.fromkeys((r.algorithm, str(r.retention)) for r in runs))  # one colour per setting
    for run in runs:
        bits, accuracy = run.accuracy_curve()
        style = CODEC_STYLE.get(run.codec, "-.")
        colour = plt.cm.tab10(settings.index((run.algorithm, str(run.retention))) % 10)
        ax.plot(bits, accuracy, style, color=colour, marker="." if run.algorithm == "mce-pl" else None,
                label=run.label)
    ax.set_xscale("log")
    ax.set_xlabel("bits sent by all agents (cumulative)")
    ax.set_ylabel("mean test accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--figures", type=Path, default=None, help="folder for the two PNG figures")
    args = parser.parse_args()
    runs = find_runs(args.study)
    if not runs:
        raise SystemExit(f"codecs_report: no finished run (summary.json) under {args.study}")
    print(table(runs), "", equality(runs), sep="\n")
    runs = [r for r in runs if r.model == "small-cnn"]  # the figures compare one model
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        plot_bits(runs, args.figures / "codecs-bits-per-weight.png")
        plot_accuracy(runs, args.figures / "codecs-accuracy-vs-bits.png")


if __name__ == "__main__":
    main()
