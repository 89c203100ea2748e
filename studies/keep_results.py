"""Keep a long study's results in the repository between sittings on machines whose disk is not kept.

A study's run folders hold checkpoints (megabytes per run) beside small result files. `save` packs the small
files of every run (summary, metrics, rounds, configuration, graph) and the study's own files (runs, tables,
the selection, ASHA's early stops, the sittings) into one .tar.xz; `restore` unpacks it into the study's
folder without overwriting anything there. A run that had finished is then read, not rerun, by the next
`raympl compare`; a run that was interrupted starts again (its checkpoint was not kept), and so does the
extension of a finished run to a longer horizon (extending needs the checkpoint).

    python studies/keep_results.py save runs/converged-tables studies/results/converged-tables.tar.xz
    python studies/keep_results.py restore runs/converged-tables studies/results/converged-tables.tar.xz
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path

RUN_FILES = ("config.toml", "summary.json", "metrics.parquet", "rounds.parquet", "topology.edgelist")
STUDY_FILES = ("runs.parquet", "table.parquet", "table.md", "selection.parquet", "selection.md",
               "early-stops.json", "sittings.txt")


def kept_files(study: Path) -> list[Path]:
    """The files worth keeping, relative to the study's folder, in a fixed order (so equal studies pack equal)."""
    names = set(RUN_FILES + STUDY_FILES)
    return sorted(p.relative_to(study) for p in study.rglob("*")
                  if p.is_file() and p.name in names and ".tune" not in p.parts)


def save(study: Path, archive: Path) -> int:
    files = kept_files(study)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:xz") as tar:
        for name in files:
            data = (study / name).read_bytes()
            info = tarfile.TarInfo(str(name))
            info.size, info.mtime = len(data), 0  # no times: the archive changes only when results do
            tar.addfile(info, io.BytesIO(data))
    partial.replace(archive)
    return len(files)


def restore(study: Path, archive: Path) -> int:
    restored = 0
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar.getmembers():
            target = study / member.name
            if not member.isfile() or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            restored += 1
    return restored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("save", "restore"))
    parser.add_argument("study", type=Path, help="the study's folder, e.g. runs/converged-tables")
    parser.add_argument("archive", type=Path, help="the .tar.xz kept in the repository")
    args = parser.parse_args()
    if args.action == "save":
        if not args.study.is_dir():
            print(f"error: invalid study folder {str(args.study)!r}: not a folder", file=sys.stderr)
            return 2
        print(f"kept {save(args.study, args.archive)} files of {args.study} in {args.archive}")
    else:
        if not args.archive.is_file():
            print(f"nothing to restore: {args.archive} does not exist")
            return 0
        print(f"restored {restore(args.study, args.archive)} files from {args.archive} into {args.study}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
