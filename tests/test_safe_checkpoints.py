"""Reading a run folder runs no code from it: checkpoints and agent states are JSON and safetensors, and a
pickle put where they go is refused by every command that reads a run folder (docs/security.md)."""

from __future__ import annotations

import hashlib
import io
import shutil

import numpy as np
import pytest
import torch
from conftest import configure
from test_reliability import same_results
from typer.testing import CliRunner

import raympl
from raympl.cli.main import app
from raympl.errors import CheckpointError
from raympl.runtime import checkpoint, safe_state
from raympl.runtime.driver import simulate


class CreatesFile:
    """Unpickling this creates the file at `path` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def pickled(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, pickle_protocol=4)
    return buffer.getvalue()


def checkpoint_file(magic: bytes, body: bytes) -> bytes:
    return magic + hashlib.sha256(body).digest() + body


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, fashion_dir):
    """A finished 3-round in-process run that kept its final checkpoint."""
    out = tmp_path_factory.mktemp("safe") / "run"
    simulate(configure({"model": "small-cnn", "agents": 4, "topology": "ring", "classes_per_agent": 3, "rounds": 3,
                        "eval_every": 3, "batch_size": 16, "data_dir": str(fashion_dir), "retention": "0.3",
                        "executor": "inprocess", "out": str(out)}))
    return out


def readers(run, tmp_path) -> dict[str, list[str] | None]:
    """Every command that reads a run folder (None: the Python API's raympl.load)."""
    return {"resume": ["simulate", "--resume", str(run)],
            "extend": ["simulate", "--resume", str(run), "--rounds", "5"],
            "report": ["report", str(run), "--out", str(tmp_path / "report.html")],
            "plot": ["plot", str(run), "--out", str(tmp_path / "plots")],
            "load": None}


@pytest.mark.parametrize("where", ["checkpoint", "agent-blob", "pickle-in-new-magic"])
def test_a_pickle_in_a_run_folder_never_runs(finished_run, tmp_path, where):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    evil = CreatesFile(marker)
    if where == "checkpoint":  # an older raympl's format: a pickle whose body would create the file
        data = checkpoint_file(checkpoint.MAGIC_PICKLED, pickled({"round": evil, "driver": {}, "agents": None}))
    elif where == "agent-blob":  # today's format, one agent's state a pickle
        saved = checkpoint.load(run)
        body = checkpoint.to_bytes({"round": saved.round, "driver": saved.driver, "run": saved.run,
                                    "agents": {**saved.agents, 0: pickled({"state": evil})}})
        data = checkpoint_file(checkpoint.MAGIC, body)
    else:  # today's magic in front of a pickle
        data = checkpoint_file(checkpoint.MAGIC, pickled({"round": evil}))
    (run / checkpoint.FILENAME).write_bytes(data)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "summary.json").unlink()  # a run stopped before its end: --resume continues it

    for name, args in readers(run, tmp_path).items():
        if name == "resume":
            args = ["simulate", "--resume", str(unfinished)]
        if args is None:
            loaded = raympl.load(run)
            assert loaded.summary["rounds"] == 3 and len(loaded.metrics) and loaded.config["agents"] == 4
            continue
        result = CliRunner().invoke(app, args)
        print(name, result.exit_code, result.output)
        if name in ("resume", "extend"):
            assert result.exit_code == 2, result.output
            errors = [line for line in result.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "Traceback" not in result.output, result.output
            assert errors[0].startswith("error: invalid checkpoint") and "pickle" in result.output, result.output
        else:
            assert result.exit_code == 0, result.output
        assert not marker.exists(), f"{name} ran code from the run folder"
    # refused before anything was written: the unfinished run is as it was
    assert not (unfinished / "summary.json").exists()


def test_trusted_old_checkpoint_resumes_to_the_same_results(finished_run, tmp_path, fashion_dir):
    """--trust-checkpoint reads an older raympl's pickled checkpoint (here: today's, written the old way) and
    continues to the same results; the next checkpoint is in the safe format."""
    overrides = {"model": "small-cnn", "agents": 4, "topology": "ring", "classes_per_agent": 3, "rounds": 6,
                 "eval_every": 2, "batch_size": 16, "data_dir": str(fashion_dir), "retention": "0.3",
                 "executor": "inprocess", "checkpoint_every": 2}
    simulate(configure({**overrides, "out": str(tmp_path / "whole")}))
    short = tmp_path / "short"
    simulate(configure({**overrides, "rounds": 4, "out": str(short)}))
    saved = checkpoint.load(short)
    old_agents = {a: pickled(checkpoint.from_bytes(blob)) for a, blob in saved.agents.items()}
    body = pickled({"round": saved.round, "driver": saved.driver, "agents": old_agents, "run": saved.run})
    (short / checkpoint.FILENAME).write_bytes(checkpoint_file(checkpoint.MAGIC_PICKLED, body))

    refused = CliRunner().invoke(app, ["simulate", "--resume", str(short), "--rounds", "6"])
    assert refused.exit_code == 2 and "--trust-checkpoint" in refused.output, refused.output
    result = CliRunner().invoke(app, ["simulate", "--resume", str(short), "--rounds", "6", "--trust-checkpoint"])
    assert result.exit_code == 0, result.output
    same_results(tmp_path / "whole", short)
    assert (short / checkpoint.FILENAME).read_bytes().startswith(checkpoint.MAGIC)


def test_trust_checkpoint_needs_resume(tmp_path):
    result = CliRunner().invoke(app, ["simulate", "--trust-checkpoint", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "applies to --resume only" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_state_round_trip_keeps_types_values_and_sharing():
    """Everything a state holds comes back equal, with its type, and objects shared stay shared."""
    from raympl.algorithms.base import AgentContext

    context = AgentContext(1, [0, 2], 10, {0: 0.5, 2: 0.5})
    weights = torch.arange(6.0).reshape(2, 3)
    generator, rng = torch.Generator().manual_seed(3), np.random.default_rng(5)
    state = {"ints": [1, -2**70, True, None, "x", float("inf"), float("nan")], (1, 2): (weights, weights.T, context),
             "again": context, "gen": generator, "rng": rng, "scalar": np.float32(2.5),
             "array": np.arange(4, dtype=np.uint16),
             "raw": b"\x00\x80abc", "empty": b"", "set": {3, 4}, "dtype": torch.bfloat16}
    back = safe_state.loads(safe_state.dumps(state))
    assert back["ints"][:6] == [1, -2**70, True, None, "x", float("inf")] and np.isnan(back["ints"][6])
    assert type(back["ints"][2]) is bool
    restored_weights, transposed, restored_context = back[(1, 2)]
    assert torch.equal(restored_weights, weights) and torch.equal(transposed, weights.T)
    assert restored_context == context and back["again"] is restored_context
    assert torch.equal(torch.rand(3, generator=back["gen"]), torch.rand(3, generator=generator))
    assert back["rng"].random() == rng.random()
    assert type(back["scalar"]) is np.float32 and back["scalar"] == np.float32(2.5)
    assert back["array"].dtype == np.uint16 and back["array"].tolist() == [0, 1, 2, 3]
    assert (back["raw"], back["empty"], back["set"], back["dtype"]) == (b"\x00\x80abc", b"", {3, 4}, torch.bfloat16)


def test_only_raympl_and_plugin_classes_are_built(tmp_path):
    """A state naming a class of another module (here: subprocess.Popen) is refused, not built."""
    data = safe_state.dumps({"x": 1})
    header_start = len(safe_state.MAGIC) + 8
    import json
    import struct

    (length,) = struct.unpack("<Q", data[len(safe_state.MAGIC):header_start])
    tree = {"$o": "subprocess:Popen", "v": {"args": {"$l": ["touch", str(tmp_path / "pwned")]}}}
    header = json.dumps(tree).encode()
    forged = safe_state.MAGIC + struct.pack("<Q", len(header)) + header + data[header_start + length:]
    with pytest.raises(CheckpointError, match="neither raympl's nor a loaded plug-in's"):
        safe_state.loads(forged)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(TypeError, match="does not store"):
        safe_state.dumps({"f": print})


def test_a_plugin_module_inside_the_run_folder_is_not_imported(finished_run, tmp_path, monkeypatch):
    """A run folder whose config.toml names a plug-in that would be imported from the folder itself (resumed
    from inside it, where the working folder is on the path) is refused before the module runs."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "pwned"
    (run / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Algo: pass\n")
    config = (run / "config.toml").read_text().replace('algorithm = "mce-pl"', 'algorithm = "evil:Algo"')
    (run / "config.toml").write_text(config)
    monkeypatch.chdir(run)
    result = CliRunner().invoke(app, ["simulate", "--resume", ".", "--rounds", "5"])
    assert result.exit_code == 2 and "invalid algorithm 'evil:Algo': its module would be imported from" in \
        result.output, result.output
    assert not marker.exists()


def test_a_cifar_pickle_naming_a_function_is_refused(tmp_path):
    """The CIFAR files are pickles of arrays: one that names anything else (here: open, creating a file) is
    refused in one line and never runs."""
    import pickle

    from raympl.data.datasets import DataError, load_cifar10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": CreatesFile(tmp_path / "pwned"), b"labels": [0]}))
    with pytest.raises(DataError, match="which a data file has no need of"):
        load_cifar10(str(tmp_path))
    assert not (tmp_path / "pwned").exists()
