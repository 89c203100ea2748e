"""Print the Markdown tables of docs/results.md §5 from `studies/paper_tables.sh`'s output.

Each raympl cell is "mean ± std (seeds)" from `table.parquet`, shown next to the paper's CIFAR-10
value for the same cell (Tables I-III of the MCE-PL paper, as listed in docs/results.md (the paper's tables)).
Usage: python studies/paper_tables_report.py [runs/paper-tables]
"""

import sys
from pathlib import Path

import pyarrow.parquet as pq

C345 = ("c=3", "c=4", "c=5")
PAPER_TABLE1 = {
    "dsgd": (0.6218, 0.5811, 0.5660),
    "fedavg": (0.6112, 0.6097, 0.6072),
    "dsgd-prox": (0.7550, 0.6863, 0.6143),
    "lottery-dsgd (0.3)": (0.6687, 0.6212, 0.5755),
    "lottery-dsgd (0.5)": (0.5612, 0.6686, 0.5217),
    "ind-mask (0.3)": (0.7092, 0.6520, 0.5876),
    "ind-mask (0.5)": (0.6934, 0.6740, 0.5922),
    "mce-pl (0.3)": (0.7498, 0.6951, 0.6048),
    "mce-pl (0.5)": (0.7603, 0.6943, 0.6244),
}
PAPER_TABLE2 = {
    "mce-pl": (0.7088, 0.6451, 0.5759),
    "ind-mask": (0.6808, 0.6140, 0.5413),
    "ind-weipru": (0.6239, 0.5484, 0.4813),
    "avr-weipru": (0.5515, 0.5187, 0.4564),
    "par-weipru": (0.6068, 0.5251, 0.4643),
    "dis-pfl": (0.5742, 0.5609, 0.5617),
}
TABLES = {  # output folder -> (paper values by method, the paper's column names)
    "table1": (PAPER_TABLE1, C345),
    "table2": (PAPER_TABLE2, C345),
    "table2-lr0.1": (PAPER_TABLE2, C345),  # the paper's values are at η = 0.001
    "table3": ({"mce-pl": (0.6394, 0.6489, 0.6451, 0.6476)}, ("ring", "er p=0.3", "er p=0.5", "er p=0.7")),
}


def markdown(table_path: Path, paper: dict[str, tuple[float, ...]], paper_columns: tuple[str, ...]) -> str:
    rows = pq.read_table(table_path).to_pylist()
    cell = {(r["method"], r["column"]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    columns = [c for c in paper_columns if any(r["column"] == c for r in rows)]
    lines = [
        "| method | " + " | ".join(f"{c} raympl | {c} paper" for c in columns) + " | Mbit/run | s/run |",
        "|---|" + "---|---|" * len(columns) + "---|---|",
    ]
    for method in methods:
        cells = []
        for column in columns:
            r = cell.get((method, column))
            cells.append(f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} ({r['seeds']})" if r else "–")
            cells.append(f"{paper[method][paper_columns.index(column)]:.3f}" if method in paper else "–")
        done = [cell[(method, c)] for c in columns if (method, c) in cell]
        mbit = sum(r["total_bits_mean"] for r in done) / len(done) / 1e6
        seconds = sum(r["wall_time_s_mean"] for r in done) / len(done)
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mbit:,.0f} | {seconds:.0f} |")
    return "\n".join(lines)


def main(base: Path) -> None:
    for name, (paper, columns) in TABLES.items():
        path = base / name / "table.parquet"
        if path.exists():
            print(f"### {name}\n\n{markdown(path, paper, columns)}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/paper-tables"))
