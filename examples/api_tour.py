# %% [markdown]
# # A tour of raympl's Python API
#
# Cells in the `# %%` format (VS Code, Jupyter with jupytext, or plain `python examples/api_tour.py`).
# One 20-agent MCE-PL run on Fashion-MNIST, the same with delta-coded masks and the ind-mask baseline
# as a comparison, then figures and a report. ROUNDS (environment) shortens it; OUT moves it.

# %%
import os
from pathlib import Path

import raympl

rounds = int(os.environ.get("ROUNDS", "100"))
out = Path(os.environ.get("OUT", "runs/api-tour"))
common = dict(model="small-cnn", agents=20, classes_per_agent=4, rounds=rounds, eval_every=max(1, rounds // 10),
              eval_samples=500)

# %% one run: the summary is a dict, the tables are pandas DataFrames
run = raympl.simulate(algorithm="mce-pl", retention=0.3, codec="delta", out=str(out / "mce-pl"), **common)
print(run)
print(run.summary["final_mean_accuracy"], run.summary["bits_per_weight"])
curve = run.metrics.groupby("round")["accuracy"].agg(["mean", "min", "max"])
print(curve.tail())
print(run.rounds[["round", "bits", "bits_per_weight", "flip_rate", "coding_s"]].tail())

# %% a comparison: finished runs are read, not rerun
table = raympl.compare("mce-pl:0.3,mce-pl:0.3+delta,ind-mask:0.3", seeds=[0], classes=[4],
                       out=str(out / "compare"), **{k: v for k, v in common.items() if k != "classes_per_agent"})
print(table[["method", "accuracy_mean", "total_bits_mean", "bits_per_weight_mean"]])

# %% figures and a report of the comparison's runs
from raympl.plots import plot  # noqa: E402
from raympl.report import report  # noqa: E402

run_dirs = sorted(p.parent for p in (out / "compare" / "runs").rglob("summary.json"))
print(plot(run_dirs, out / "figures"))
print(report(run_dirs, out / "report.html"))
