"""Soak test: one run interrupted every way raympl claims to survive must equal the uninterrupted run.

A small-CNN run of ROUNDS rounds on Ray, started with EXTEND_FROM rounds and extended to ROUNDS once that
finishes, meets SIGKILLs of its driver (then `--resume`), SIGKILLs of a host actor's process (the driver
recovers by itself), and SIGTERMs of its driver (a polite stop, then `--resume`), at seeded random rounds.
Its metrics, masks and per-round traffic are then compared with an uninterrupted ROUNDS-round run. Writes
soak.md and soak.json in OUT. `studies/soak.sh` runs the full version; CI a short one (tests/test_soak.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

TRAFFIC = ("round", "bits", "bytes", "sim_time_s", "sim_clock_s", "online_agents")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "raympl.cli.main", "simulate", *args]


def rounds_done(run: Path) -> int:
    try:
        return max(pq.read_table(run / "rounds.parquet").column("round").to_pylist())
    except (OSError, ValueError):
        return 0


OTHERS: set[int] = set()  # host processes of other Ray instances on this machine, found before the soak


def finished(run: Path) -> int | None:
    """The rounds of the finished run in `run`, if it has finished."""
    summary = run / "summary.json"
    return json.loads(summary.read_text())["rounds"] if summary.exists() else None


def host_processes() -> list[int]:
    """This soak's host actor processes, newest first."""
    found = subprocess.run(["pgrep", "-f", "ray::AgentHost"], capture_output=True, text=True).stdout.split()
    return sorted((int(p) for p in found if int(p) not in OTHERS), reverse=True)


def wait_for_no_hosts(timeout: float = 60) -> None:
    """After the driver is SIGKILLed its local Ray cluster goes with it; wait, then make sure."""
    deadline = time.monotonic() + timeout
    while host_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in host_processes():
        subprocess.run(["kill", "-9", str(pid)])


def schedule(args: argparse.Namespace) -> list[tuple[int, str]]:
    """(round, event) in round order: distinct random rounds from 2 on, none within two rounds before the end
    of either length (an event is seen once the round's rows are written, every --eval-every rounds, and a
    SIGTERM in a segment's last round lets it finish)."""
    rng = np.random.default_rng(args.seed)
    kinds = ["sigkill"] * args.sigkills + ["host-kill"] * args.host_kills + ["sigterm"] * args.sigterms
    pool = [r for r in range(2, args.rounds - 2) if not args.extend_from - 2 <= r <= args.extend_from]
    rounds = sorted(rng.choice(pool, len(kinds), replace=False).tolist())
    return list(zip(rounds, rng.permutation(kinds).tolist(), strict=True))


def soak(args: argparse.Namespace, settings: list[str]) -> dict:
    out, run = args.out, args.out / "soaked"
    log = (out / "soak.log").open("w")
    events, done, segments, polite_stops = schedule(args), [], 0, 0
    process = None
    rounds = args.extend_from
    while True:
        if process is None and finished(run) == rounds:  # an event hit the segment after its summary
            if rounds == args.rounds:
                break
            rounds = args.rounds
            done.append((args.extend_from, "extension", rounds_done(run)))
        if process is None:
            first = not (run / "config.toml").exists()
            extra = [*settings, "--rounds", str(rounds), "--out", str(run)] if first else \
                ["--resume", str(run), "--rounds", str(rounds)]
            process = subprocess.Popen(command(*extra), stdout=log, stderr=log)
            segments += 1
        started_at = rounds_done(run)
        # an event waits for its round and for this segment to have run a round (not to hit a start-up)
        while process.poll() is None and (not events or rounds_done(run) < max(events[0][0], started_at + 1)):
            time.sleep(0.2)
        if process.poll() is not None:  # the segment ended by itself
            if process.returncode != 0:
                raise SystemExit(f"soak: a segment failed with exit code {process.returncode}; see {out}/soak.log")
            process = None
            if rounds == args.rounds:
                break
            rounds = args.rounds  # the shorter run finished: extend it
            done.append((args.extend_from, "extension", rounds_done(run)))
            continue
        at, kind = events.pop(0)
        seen = rounds_done(run)
        if kind == "sigkill":
            process.kill()
            process.wait()
            wait_for_no_hosts()
            process = None
        elif kind == "sigterm":
            process.send_signal(signal.SIGTERM)
            code = process.wait()  # 0: it was in its last round, which a stop request lets finish
            if code not in (0, 128 + signal.SIGTERM):
                raise SystemExit(f"soak: SIGTERM gave exit code {code}; see {out}/soak.log")
            polite_stops += code == 128 + signal.SIGTERM
            process = None
        else:
            hosts = host_processes()
            if not hosts:
                raise SystemExit("soak: no host actor process found to kill")
            subprocess.run(["kill", "-9", str(hosts[0])])
        done.append((at, kind, seen))
        print(f"{kind} at round {seen} (planned {at})", flush=True)
    log.close()
    text = (out / "soak.log").read_text()
    return {"events": [{"planned_round": a, "event": k, "observed_round": s} for a, k, s in done],
            "segments": segments, "host_recoveries_logged": text.count("warning: lost a host"),
            "polite_stops": polite_stops, "polite_stops_logged": text.count("stopped by SIGTERM")}


def compare(a: Path, b: Path) -> dict:
    ma, mb = (pq.read_table(d / "metrics.parquet").to_pylist() for d in (a, b))
    ra, rb = ([[r[k] for k in TRAFFIC] for r in pq.read_table(d / "rounds.parquet").to_pylist()] for d in (a, b))
    ka, kb = (pq.read_table(d / "masks.parquet").to_pylist() for d in (a, b))
    return {"metrics_rows": len(mb), "metrics_identical": ma == mb, "traffic_identical": ra == rb,
            "masks_identical": ka == kb, "final_mean_accuracy": json.loads((b / "summary.json").read_text())[
                "final_mean_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--extend-from", type=int, default=200)
    parser.add_argument("--sigkills", type=int, default=5)
    parser.add_argument("--host-kills", type=int, default=2)
    parser.add_argument("--sigterms", type=int, default=1)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    OTHERS.update(host_processes())
    settings = ["--model", "small-cnn", "--agents", str(args.agents), "--eval-every", str(args.eval_every),
                "--eval-samples", "100", "--checkpoint-every", "10", "--codec", "delta", "--seed", str(args.seed)]
    if args.data_dir:
        settings += ["--data-dir", args.data_dir]
    start = time.monotonic()
    reference = args.out / "uninterrupted"
    if not (reference / "summary.json").exists():
        subprocess.run(command(*settings, "--rounds", str(args.rounds), "--out", str(reference)), check=True,
                       stdout=subprocess.DEVNULL)
    result = {"date": date.today().isoformat(), "rounds": args.rounds, "extend_from": args.extend_from,
              "settings": " ".join(settings), **soak(args, settings), **compare(reference, args.out / "soaked"),
              "wall_s": time.monotonic() - start}
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Soak test ({result['date']})", "", f"`{' '.join(settings)}`, {args.rounds} rounds, started "
             f"with {args.extend_from} and extended; {result['segments']} driver processes in all.", "",
             "| planned round | event | round done when it happened |", "|---|---|---|"]
    lines += [f"| {e['planned_round']} | {e['event']} | {e['observed_round']} |" for e in result["events"]]
    lines += ["", f"Host recoveries logged: {result['host_recoveries_logged']}; polite stops logged: "
              f"{result['polite_stops_logged']}.", "",
              f"Against the uninterrupted run: metrics identical {result['metrics_identical']} "
              f"({result['metrics_rows']} rows), masks identical {result['masks_identical']}, per-round traffic "
              f"and clock identical {result['traffic_identical']}; final mean accuracy "
              f"{result['final_mean_accuracy']:.4f}. Wall time {result['wall_s']:.0f} s."]
    (args.out / "soak.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not (result["metrics_identical"] and result["masks_identical"] and result["traffic_identical"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
