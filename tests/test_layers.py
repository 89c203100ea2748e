"""The layers of docs/architecture.md hold, and no modules import each other in a circle.

Both are checked on the package as it is installed (cli/ and topologies/ inside raympl/, as the wheel puts
them), with every import counted, those inside functions too: import-linter for the layers contract of
pyproject.toml, grimp's import graph for circles. A planted upward import shows the check can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def stage(folder: Path) -> Path:
    """A copy of the package laid out as installed."""
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "raympl", folder / "raympl", ignore=skip)
    for sub in ("cli", "topologies"):
        shutil.copytree(ROOT / sub, folder / "raympl" / sub, ignore=skip)
    return folder


def lint(folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run([sys.executable, "-c", LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    return stage(tmp_path_factory.mktemp("installed"))


def test_imports_keep_the_layers(staged):
    result = lint(staged)
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout + result.stderr


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path):
    folder = stage(tmp_path)
    with open(folder / "raympl" / "models" / "zoo.py", "a") as fh:
        fh.write("\n\ndef planted():\n    from raympl.runtime import driver\n\n    return driver\n")
    result = lint(folder)
    assert result.returncode != 0
    assert "raympl.models is not allowed to import raympl.runtime" in result.stdout, result.stdout


def test_no_modules_import_each_other(staged):
    code = ("import grimp, json; g = grimp.build_graph('raympl', cache_dir=None); "
            "print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))")
    env = {**os.environ, "PYTHONPATH": str(staged)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=staged, capture_output=True, text=True,
                          timeout=300, check=True)
    imports = json.loads(done.stdout)
    graph = nx.DiGraph([(m, t) for m, targets in imports.items() for t in targets])
    assert "raympl.cli.main" in graph and graph.number_of_edges() > 200  # the whole package was read
    assert [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1] == []
