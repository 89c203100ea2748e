"""Per-agent device and link figures from a SPEC: --device-speed (GFLOP/s), --bandwidth (Mbit/s, each
agent's uplink and downlink), --latency (seconds of one-way delay on the agent's side of a link).

A SPEC is one of
  a number                    every agent the same: "10"
  lognormal:MEDIAN:SIGMA      seeded draws median * exp(sigma * N(0, 1)), one per agent
  classes:NAME=SHARE,...      named device classes (CLASSES below) in the given shares; a number in place
                              of a name is a class of that figure ("classes:5=0.1,50=0.9")
  a CSV file                  lines "agent,value" (a header line is allowed), every agent exactly once

Class membership is drawn from the run's seed alone (one seeded order of the agents, filled class by class
in the order given), so options given the same class list put the same agents in the same class: a
"phone" is slow and has a slow link.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from raympl.errors import ProfileError
from raympl.textfiles import is_count, read_text

PROFILE_SEED = 41
CLASS_SEED = 42
QUANTITIES = {"device-speed": 0, "bandwidth": 1, "latency": 2}  # purpose of each quantity's draws
# Stated figures of the named classes: sustained float32 training throughput, access link rate, one-way
# access delay. Phone: a mobile SoC's CPU cores on a 4G link; laptop: a laptop CPU on home broadband;
# server: a data-centre GPU running small models (far below peak) on a 1 Gbit/s link.
CLASSES = {
    "device-speed": {"phone": 10.0, "laptop": 100.0, "server": 2000.0},
    "bandwidth": {"phone": 10.0, "laptop": 50.0, "server": 1000.0},
    "latency": {"phone": 0.05, "laptop": 0.02, "server": 0.002},
}
UNITS = {"device-speed": "GFLOP/s", "bandwidth": "Mbit/s", "latency": "s"}


def values(quantity: str, spec: str | float, agents: int, seed: int) -> np.ndarray:
    """One float64 per agent, checked: positive (latency: non-negative) and finite."""
    option = f"--{quantity}"
    text = str(spec).strip()
    if _is_number(text):
        out = np.full(agents, float(text))
    elif text.startswith("lognormal:"):
        out = _lognormal(option, text, agents, seed, QUANTITIES[quantity])
    elif text.startswith("classes:"):
        out = _classes(quantity, option, text, agents, seed)
    elif Path(text).is_file():
        out = _csv(option, Path(text), agents)
    else:
        raise ProfileError(f"invalid {option} {text!r}: expected a number, lognormal:MEDIAN:SIGMA, "
                           "classes:NAME=SHARE,... or a CSV file of agent,value (no such file)")
    too_low = out < 0 if quantity == "latency" else out <= 0
    bad = np.flatnonzero(~np.isfinite(out) | too_low)
    if bad.size:
        need = ">= 0" if quantity == "latency" else "> 0"
        raise ProfileError(f"invalid {option} {text!r}: agent {bad[0]} gets {out[bad[0]]:g} {UNITS[quantity]}, "
                           f"must be {need}")
    return out


def _is_number(text: str) -> bool:
    """A finite number: nan and inf are refused where they are given, not found later as bad draws."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _lognormal(option: str, text: str, agents: int, seed: int, purpose: int) -> np.ndarray:
    parts = text.split(":")
    if len(parts) != 3 or not all(_is_number(p) for p in parts[1:]):
        raise ProfileError(f"invalid {option} {text!r}: expected lognormal:MEDIAN:SIGMA with two numbers")
    median, sigma = float(parts[1]), float(parts[2])
    if median <= 0 or sigma < 0:
        raise ProfileError(f"invalid {option} {text!r}: MEDIAN must be > 0 and SIGMA >= 0")
    rng = np.random.default_rng([seed, PROFILE_SEED, purpose])
    with np.errstate(over="ignore"):  # an overflow is refused by values() as an infinite figure
        return median * np.exp(sigma * rng.standard_normal(agents))


def class_members(shares: list[float], agents: int, seed: int) -> list[np.ndarray]:
    """Agents of each class: counts by largest remainder, members from one seeded order of all agents."""
    total = sum(shares)
    exact = [s / total * agents for s in shares]
    counts = [math.floor(x) for x in exact]
    for k in sorted(range(len(shares)), key=lambda k: exact[k] - counts[k], reverse=True)[:agents - sum(counts)]:
        counts[k] += 1
    order = np.random.default_rng([seed, CLASS_SEED]).permutation(agents)
    bounds = np.cumsum([0, *counts])
    return [np.sort(order[bounds[k]:bounds[k + 1]]) for k in range(len(shares))]


def _classes(quantity: str, option: str, text: str, agents: int, seed: int) -> np.ndarray:
    named = CLASSES[quantity]
    figures, shares = [], []
    for item in text.removeprefix("classes:").split(","):
        name, sep, share = item.partition("=")
        name = name.strip()
        if not sep or not _is_number(share) or float(share) <= 0:
            raise ProfileError(f"invalid {option} {text!r}: expected classes:NAME=SHARE,... with finite shares > 0, "
                               f"got {item!r}")
        if name in named:
            figures.append(named[name])
        elif _is_number(name):
            figures.append(float(name))
        else:
            raise ProfileError(f"invalid {option} {text!r}: unknown class {name!r}; known: "
                               + ", ".join(f"{k} ({v:g} {UNITS[quantity]})" for k, v in named.items())
                               + ", or a number")
        shares.append(float(share))
    if not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
        raise ProfileError(f"invalid {option} {text!r}: the shares sum to {sum(shares):g}, they must sum to 1")
    out = np.empty(agents)
    for figure, members in zip(figures, class_members(shares, agents, seed), strict=True):
        out[members] = figure
    return out


def _csv(option: str, path: Path, agents: int) -> np.ndarray:
    out = np.full(agents, np.nan)
    text = read_text(path, f"{option} file", ProfileError)
    for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or row[0].strip().startswith("#") or (line == 1 and not _is_number(row[0])):
            continue  # blank, comment or header
        if len(row) != 2 or not is_count(row[0]) or not _is_number(row[1]):
            raise ProfileError(f"invalid {option} file {str(path)!r}: line {line} is not agent,value: {row!r}")
        agent = int(row[0])
        if agent >= agents:
            raise ProfileError(f"invalid {option} file {str(path)!r}: line {line} names agent {agent}, "
                               f"but the run has agents 0..{agents - 1}")
        if not np.isnan(out[agent]):
            raise ProfileError(f"invalid {option} file {str(path)!r}: agent {agent} is listed twice")
        out[agent] = float(row[1])
    missing = np.flatnonzero(np.isnan(out))
    if missing.size:
        raise ProfileError(f"invalid {option} file {str(path)!r}: {missing.size} agent(s) missing, first "
                           f"{missing[0]}")
    return out
