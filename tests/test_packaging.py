"""The repository's layout (cli/ and topologies/ at the top) installs as raympl.cli and raympl.topologies."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {"raympl." + folder: folder for folder in ("cli", "topologies")}
    assert setuptools["package-dir"] == mapped
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "raympl").rglob("__init__.py")}
    found |= set(mapped)
    assert sorted(setuptools["packages"]) == sorted(found)


def test_a_bare_checkout_imports_cli_and_topologies_without_an_install():
    """No site processing (so no editable-install hook): only the checkout and the dependencies on the path."""
    code = (f"import sys; sys.path[:0] = [{str(ROOT)!r}, {sysconfig.get_paths()['purelib']!r}]; "
            "import raympl.cli.main, raympl.topologies as t; print(t.PAPER20.is_file())")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True"
