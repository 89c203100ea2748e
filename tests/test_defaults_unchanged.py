"""With every network feature off (the defaults), runs give the same masks and metrics, bit for bit, as the
code before the simulated network existed: fingerprints recorded by commit af4d29b on this machine kind
(tests/data/defaults_fingerprint.json; `python tests/test_defaults_unchanged.py` records the cases the file
lacks, and with --all rewrites every one, which is only right when a change of results is intended and said
in the commit).

Fingerprints are SHA-256 digests of every metrics row (accuracy, loss, bits, density...) and of every
round's traffic columns, and of the final masks; timings are left out.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import configure, learnable_images  # noqa: E402

from raympl.config import ALGORITHMS  # noqa: E402
from raympl.data.datasets import write_fashion_mnist  # noqa: E402
from raympl.runtime.driver import read_masks, simulate  # noqa: E402

FINGERPRINTS = Path(__file__).parent / "data" / "defaults_fingerprint.json"
METRIC_FIELDS = ("round", "agent", "accuracy", "loss", "density", "zero_filter_fraction", "bits_sent", "samples")
TRAFFIC_FIELDS = ("round", "bytes", "bits", "busiest_agent_bits", "bits_per_weight", "flip_rate", "dropped_messages")

# every algorithm with its defaults, and the communication options that change what travels
CASES = {algorithm: {"algorithm": algorithm} for algorithm in ALGORITHMS} | {
    "mce-pl-delta-drop": {"algorithm": "mce-pl", "codec": "delta", "link_drop": 0.3},
    "mce-pl-entropy-broadcast": {"algorithm": "mce-pl", "codec": "entropy", "comm_model": "broadcast"},
    "mce-pl-er": {"algorithm": "mce-pl", "topology": "er", "p": 0.5},
    "dsgd-drop": {"algorithm": "dsgd", "link_drop": 0.3},
    # recorded by the code before plug-in models (1680e59): the built-in AlexNet stays bit-identical
    "alexnet-mce-pl": {"algorithm": "mce-pl", "model": "alexnet"},
    "alexnet-dsgd": {"algorithm": "dsgd", "model": "alexnet"},
}


def data_dir(root: Path) -> Path:
    """The tests' generated Fashion-MNIST folder (conftest.fashion_dir), made the same way."""
    rng = np.random.default_rng(0)
    train_y, test_y = np.tile(np.arange(10), 100), np.tile(np.arange(10), 30)
    write_fashion_mnist(root, learnable_images(train_y, (28, 28), rng), train_y,
                        learnable_images(test_y, (28, 28), rng), test_y)
    return root


def digest(rows: list[dict], fields: tuple[str, ...]) -> str:
    text = json.dumps([[repr(row.get(f)) for f in fields] for row in rows])
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(case: dict, data: Path, out: Path) -> dict:
    config = configure({"model": "small-cnn", "agents": 6, "topology": "ring", "classes_per_agent": 3, "rounds": 4,
                        "eval_every": 2, "batch_size": 16, "data_dir": str(data), "retention": "0.3",
                        "executor": "inprocess", "out": str(out), **case})
    summary = simulate(config)
    masks = out / "masks.parquet"
    return {"metrics": digest(pq.read_table(out / "metrics.parquet").to_pylist(), METRIC_FIELDS),
            "traffic": digest(pq.read_table(out / "rounds.parquet").to_pylist(), TRAFFIC_FIELDS),
            "masks": digest([{"agent": a, "mask": m.hex()} for a, m in sorted(read_masks(masks).items())],
                            ("agent", "mask")) if masks.exists() else None,
            "final_mean_accuracy": summary["final_mean_accuracy"]}


@pytest.mark.parametrize("name", sorted(CASES))
def test_defaults_give_todays_results_bit_for_bit(name, fashion_dir, tmp_path):
    expected = json.loads(FINGERPRINTS.read_text())[name]
    assert fingerprint(CASES[name], fashion_dir, tmp_path / "run") == expected


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = data_dir(Path(tmp) / "data")
        kept = {} if "--all" in sys.argv or not FINGERPRINTS.exists() else json.loads(FINGERPRINTS.read_text())
        recorded = {name: kept.get(name) or fingerprint(case, folder, Path(tmp) / name)
                    for name, case in sorted(CASES.items())}
        FINGERPRINTS.parent.mkdir(exist_ok=True)
        FINGERPRINTS.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"wrote {FINGERPRINTS}")
