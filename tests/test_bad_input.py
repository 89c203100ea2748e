"""Bad input ends in one line naming the bad value, exit status 2, and nothing already written changes:
run directories that a checkpoint of another run, a new run or a damaged file would have spoiled, and the
files, plug-ins and specs that used to end in a traceback (issue 27)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from raympl.models import zoo
from raympl.runtime import checkpoint

BASE = ["--model", "small-cnn", "--agents", "4", "--topology", "ring", "--rounds", "2", "--eval-every", "1",
        "--batch-size", "8", "--executor", "inprocess"]


def simulate(*args: str) -> object:
    return CliRunner().invoke(app, ["simulate", *BASE, *args])


def refused(result, message: str) -> None:
    """Exit 2 with one line holding `message`, no traceback."""
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.output, result.output


def contents(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def finished_runs(fashion_dir, tmp_path_factory):
    """Three finished 2-round runs: 4 agents (seed 0), 3 agents, and 4 agents with seed 5."""
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("four", []), ("three", ["--agents", "3"]), ("seed5", ["--seed", "5"])):
        result = simulate("--data-dir", str(fashion_dir), "--out", str(root / name), *extra)
        assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize(("other", "message"), [
    ("three", "written by another run (agents 3 in the checkpoint, 4 in config.toml)"),
    ("seed5", "written by another run (seed 5 in the checkpoint, 0 in config.toml)"),
])
def test_a_checkpoint_of_another_run_is_refused_and_nothing_changes(finished_runs, other, message, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_runs / "four", run)
    shutil.copy(finished_runs / other / "checkpoint.bin", run / "checkpoint.bin")
    before = contents(run)
    for args in (["--rounds", "3"], []):  # extending the finished run; continuing it as if unfinished
        if not args:
            (run / "summary.json").unlink()
            before = contents(run)
        result = CliRunner().invoke(app, ["simulate", "--resume", str(run), "--executor", "inprocess", *args])
        refused(result, message)
        assert contents(run) == before


def test_a_checkpoint_from_before_run_identities_is_checked_by_its_agents(finished_runs, tmp_path):
    """Checkpoints written before they carried the run's options (run=None) still name their agents."""
    run = tmp_path / "run"
    shutil.copytree(finished_runs / "four", run)
    other = checkpoint.load(finished_runs / "three")
    checkpoint.save(run, dataclasses.replace(other, run=None))
    before = contents(run)
    result = CliRunner().invoke(app, ["simulate", "--resume", str(run), "--executor", "inprocess", "--rounds", "3"])
    refused(result, "written by another run (it holds 3 agents, config.toml has 4)")
    assert contents(run) == before


def test_a_run_of_its_own_still_extends(finished_runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_runs / "four", run)
    result = CliRunner().invoke(app, ["simulate", "--resume", str(run), "--executor", "inprocess", "--rounds", "3"])
    assert result.exit_code == 0, result.output


def test_a_new_run_never_overwrites_an_unfinished_one(finished_runs, fashion_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_runs / "four", run)
    for name in ("summary.json", "metrics.parquet", "masks.parquet"):  # stopped before its first evaluation
        (run / name).unlink()
    before = contents(run)
    result = simulate("--data-dir", str(fashion_dir), "--out", str(run))
    refused(result, "already holds a run (unfinished: config.toml)")
    assert contents(run) == before


@pytest.mark.parametrize("damaged", ["metrics.parquet", "rounds.parquet"])
def test_resume_of_a_damaged_results_file_is_one_line(finished_runs, damaged, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_runs / "four", run)
    with open(run / damaged, "r+b") as fh:
        fh.truncate(100)
    before = contents(run)
    result = CliRunner().invoke(app, ["simulate", "--resume", str(run), "--executor", "inprocess", "--rounds", "3"])
    refused(result, f"{damaged} cannot be read")
    assert contents(run) == before


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def profile_files(root: Path) -> dict[str, Path]:
    rows = "agent,value\n0,10\n1,10\n2,10\n3,10\n"
    trace = "agent,start_round,end_round\n0,0,9\n1,0,9\n2,0,9\n3,0,9\n"
    return {
        "superscript": write(root / "sup.csv", "agent,value\n0,10\n1,10\n\u00b2,10\n3,10\n".encode()),
        "utf16": write(root / "u16.csv", rows.encode("utf-16")),
        "binary": write(root / "bin.csv", bytes(range(256)) * 4),
        "trace-superscript": write(root / "tsup.csv", trace.replace("\n2,", "\n\u00b2,").encode()),
        "trace-utf16": write(root / "tu16.csv", trace.encode("utf-16")),
        "list-utf16": write(root / "list.txt", "a.edgelist\n".encode("utf-16")),
        "trace-before": write(root / "before.csv", b"agent,start_round,end_round\n0,0,1\n1,0,1\n2,0,1\n3,0,1\n"),
        "trace-after": write(root / "after.csv", b"agent,start_round,end_round\n0,5,9\n1,5,9\n2,5,9\n3,5,9\n"),
        "trace-after-s": write(root / "after_s.csv", b"agent,start_s,end_s\n0,99,200\n1,99,200\n2,99,200\n3,99,200\n"),
    }


@pytest.mark.parametrize(("args", "message"), [
    (["--device-speed", "classes:phone=nan,laptop=0.5"], "with finite shares > 0, got 'phone=nan'"),
    (["--bandwidth", "classes:phone=inf,laptop=0.5"], "with finite shares > 0, got 'phone=inf'"),
    (["--device-speed", "classes:phone=0.5,laptop=0.9"], "the shares sum to 1.4, they must sum to 1"),
    (["--device-speed", "{superscript}"], "line 4 is not agent,value: ['\u00b2', '10']"),
    (["--device-speed", "{utf16}"], "UTF-16 text; save it as UTF-8"),
    (["--latency", "{binary}"], "a binary file, not UTF-8 text"),
    (["--availability", "trace:{trace-superscript}"], "line 4 is not agent,start,end"),
    (["--availability", "trace:{trace-utf16}"], "UTF-16 text; save it as UTF-8"),
    (["--availability", "trace:{binary}"], "a binary file, not UTF-8 text"),
    (["--topology-schedule", "peers:\u00b2"], "'\u00b2' must be an integer >= 1"),
    (["--topology-schedule", "file:{list-utf16}"], "UTF-16 text; save it as UTF-8"),
    (["--topology", "{binary}"], "a binary file, not UTF-8 text"),
    (["--availability", "diurnal:86400:0:0"], "no agent is ever online (HIGH is 0"),
    (["--availability", "trace:{trace-before}"], "no agent is ever online (no interval holds a round in 1..2)"),
    (["--availability", "trace:{trace-after}"], "no agent is ever online (no interval holds a round in 1..2)"),
    (["--availability", "trace:{trace-after-s}"], "no agent is ever online (no interval holds second 0"),
    # printed literally, not as rich markup or emoji codes (:100: would become an emoji)
    (["--device-speed", "lognormal:100:2000"], "invalid --device-speed 'lognormal:100:2000': agent"),
    (["--availability", "markov"], "markov:UP:DOWN, diurnal[:PERIOD[:LOW:HIGH]] or trace:FILE"),
])
def test_bad_files_and_specs_are_one_line(args, message, fashion_dir, tmp_path):
    files = profile_files(tmp_path)
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    refused(simulate("--data-dir", str(fashion_dir), "--out", str(tmp_path / "run"), *args), message)
    assert not (tmp_path / "run").exists()


def test_a_byte_order_mark_is_read_as_utf8(fashion_dir, tmp_path):
    """A CSV saved with a UTF-8 byte-order mark is read like one without: agent 0 is not 'missing'."""
    speeds = write(tmp_path / "bom.csv", b"\xef\xbb\xbf0,10\n1,20\n2,30\n3,40\n")
    trace = write(tmp_path / "trace.csv", b"\xef\xbb\xbfagent,start_round,end_round\n0,0,9\n1,0,9\n2,0,9\n3,0,9\n")
    result = simulate("--data-dir", str(fashion_dir), "--out", str(tmp_path / "run"), "--device-speed", str(speeds),
                      "--availability", f"trace:{trace}")
    assert result.exit_code == 0, result.output


def test_help_is_printed_literally():
    result = CliRunner().invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "markov:UP:DOWN" in result.output and "lognormal:MEDIAN:SIGMA" in result.output


def test_a_wrong_type_in_the_config_file_is_refused_when_a_flag_overrides_it(fashion_dir, tmp_path):
    config = write(tmp_path / "run.toml", b'rounds = "ten"\n')
    result = simulate("--data-dir", str(fashion_dir), "--out", str(tmp_path / "run"), "--config", str(config))
    refused(result, "invalid rounds 'ten': expected int (in config")


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken_model.py").write_text("def build(:\n    pass\n")
    (folder / "two_outputs.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        class TwoOutputs(nn.Module):  # logits and auxiliary logits in training mode, as GoogLeNet returns
            def __init__(self, features, classes):
                super().__init__()
                self.head, self.aux = nn.Linear(features, classes), nn.Linear(features, classes)

            def forward(self, x):
                x = x.flatten(1)
                return (self.head(x), self.aux(x)) if self.training else self.head(x)

        def build(input_shape, num_classes):
            return TwoOutputs(784, num_classes)
    """))
    (folder / "loaders.py").write_text(textwrap.dedent("""
        import numpy as np
        from raympl.data.sources import from_arrays

        def missing(folder):
            open("/no/such/folder/train.bin")

        def labels_255(folder):
            rng = np.random.default_rng(0)
            y = np.tile(np.arange(10), 20)
            y[0] = 255
            return rng.random((200, 8)), y, rng.random((100, 8)), np.tile(np.arange(10), 10)

        def unknown_keyword(folder):
            rng = np.random.default_rng(0)
            y = np.tile(np.arange(10), 20)
            return from_arrays("mine", rng.random((200, 8)), y, rng.random((100, 8)), y[:100], classes=10)

        def unknown_key(folder):
            rng = np.random.default_rng(0)
            y = np.tile(np.arange(10), 20)
            return {"train_x": rng.random((200, 8)), "train_y": y, "test_x": rng.random((100, 8)),
                    "test_y": y[:100], "classes": 10}
    """))
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in ("broken_model", "two_outputs", "loaders"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "broken_model:build"], "cannot import broken_model (SyntaxError: invalid syntax"),
    (["--model", "two_outputs:build"], "gives tuple for 2 inputs in training mode, expected logits of shape (2, 10)"),
    (["--dataset", "loaders:missing", "--model", "mlp"], "its loader failed (FileNotFoundError:"),
    (["--dataset", "loaders:labels_255", "--model", "mlp"],
     "gets no training samples from the label-skew partition of 200 samples; 245 of the data set's 256 classes"),
    (["--dataset", "loaders:unknown_keyword", "--model", "mlp"], "its loader failed (TypeError:"),
    (["--dataset", "loaders:unknown_key", "--model", "mlp"], "the loader's dict has the unknown key 'classes'"),
])
def test_bad_plugins_are_one_line(plugin_folder, args, message, fashion_dir, tmp_path):
    data = ["--data-dir", str(fashion_dir)] if "--dataset" not in args else []
    refused(simulate(*data, "--out", str(tmp_path / "run"), *args), message)
    assert not (tmp_path / "run").exists()


def parquet_folder(root: Path, train: int, test: int) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    for name, n in (("train", train), ("test", test)):
        table = pa.table({"x": pa.array([rng.random(8).tolist() for _ in range(n)], pa.list_(pa.float32())),
                          "label": pa.array(np.arange(n) % 2, pa.int64())})
        pq.write_table(table, root / f"{name}.parquet")
    return root


@pytest.mark.parametrize(("train", "test", "args", "message"), [
    (0, 0, [], "train.parquet' has no rows"),
    (3, 3, ["--partition", "iid", "--agents", "5"], "agent 3 (2 of 5) gets no training samples of the 3"),
])
def test_parquet_data_sets_without_samples_for_every_agent_are_one_line(train, test, args, message, tmp_path):
    folder = parquet_folder(tmp_path / "data", train, test)
    base = [a for a in BASE if a not in ("--agents", "4")]
    result = CliRunner().invoke(app, ["simulate", *base, "--agents", "4", "--model", "mlp", "--dataset",
                                      f"parquet:{folder}", "--out", str(tmp_path / "run"), *args])
    refused(result, message)
    assert not (tmp_path / "run").exists()


def test_torchvision_models_with_auxiliary_outputs_give_logits_in_training_mode():
    """googlenet and inception_v3 return (logits, auxiliary logits) in training mode unless built without."""
    module = zoo.torchvision_model("googlenet")((1, 28, 28), 10).train()
    out = module(torch.zeros(2, 1, 28, 28))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)


# ---- every refusal comes before the first write (issue 40) ----------------------------------------------
COMPARE = ["compare", "--algorithms", "mce-pl,dsgd", "--seeds", "0", "--classes", "3", "--model", "small-cnn",
           "--rounds", "2", "--agents", "4", "--topology", "ring", "--batch-size", "8", "--executor", "inprocess"]


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "nosuch=1"], "invalid config key 'nosuch': not an option of raympl"),
    (["--trial-resources", "cpus=1"], "invalid trial-resources 'cpus=1': it shapes the trials of --concurrent"),
    (["--concurrent", "2", "--trial-resources", "cpus=64"], "one trial asks 64 CPU and the cluster"),
    (["--grid", "lr=0.1,0.01", "--val-fraction", "0.2", "--concurrent", "2", "--trial-resources", "cpus=64"],
     "one trial asks 64 CPU and the cluster"),
])
def test_a_refused_comparison_leaves_no_folder(ray_session, args, message, fashion_dir, tmp_path):
    result = CliRunner().invoke(app, [*COMPARE, "--data-dir", str(fashion_dir), "--out", str(tmp_path / "c"), *args])
    refused(result, message)
    assert "TrialResources(" not in result.output and not (tmp_path / "c").exists()


@pytest.mark.parametrize("grid", [[], ["--grid", "lr=0.1,0.01", "--val-fraction", "0.2"]])
def test_a_comparison_out_that_is_a_file_is_one_line(grid, fashion_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "file", "a file of that name exists"),
                         (tmp_path / "file" / "sub", "is a file, not a folder")):
        result = CliRunner().invoke(app, [*COMPARE, "--data-dir", str(fashion_dir), "--out", str(out), *grid])
        refused(result, message)
    assert (tmp_path / "file").read_text() == "x"


def test_options_that_do_nothing_under_the_async_schedule_are_refused(fashion_dir, tmp_path):
    for option in (["--eval-every", "2"], ["--tensorboard", str(tmp_path / "tb")]):
        result = CliRunner().invoke(app, ["simulate", "--algorithm", "dsgd", "--schedule", "async", "--eval-every-s",
                                          "0.5", *option, "--data-dir", str(fashion_dir), "--out", str(tmp_path / "r")])
        refused(result, f"invalid {option[0][2:]} ")
        assert "does nothing for schedule async (only for sync)" in result.output
        assert not (tmp_path / "r").exists()


def test_a_validation_split_too_small_for_an_agent_is_refused_naming_it(fashion_dir, tmp_path):
    """One training sample per agent (one class, a tiny share of it): no validation sample can be held out and
    one kept to train on, so the promised val_accuracy could not exist; refused before anything is written."""
    result = simulate("--classes-per-agent", "1", "--train-fraction", "0.001", "--val-fraction", "0.1",
                      "--data-dir", str(fashion_dir), "--out", str(tmp_path / "run"))
    refused(result, "invalid val-fraction 0.1: agent 0 (4 of 4) has 1 training sample(s), and a validation split "
                    "needs at least 2")
    assert not (tmp_path / "run").exists()


def test_a_host_that_cannot_start_is_refused_before_the_run_files(fashion_dir, tmp_path, monkeypatch):
    """A check that only a host can make (here: its device) fails before config.toml and the rest are written,
    so the same command is not then refused as 'an unfinished run'."""
    from raympl.runtime import host

    def no_device(*args, **kwargs):
        raise host.DeviceError("invalid device 'cuda': this host was asked to compute on a GPU but none is here")

    monkeypatch.setattr(host, "pick_device", no_device)
    for _ in range(2):
        result = simulate("--data-dir", str(fashion_dir), "--out", str(tmp_path / "run"))
        refused(result, "invalid device 'cuda'")
        assert not (tmp_path / "run").exists()
