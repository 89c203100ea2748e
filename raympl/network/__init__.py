"""The simulated network: device and link profiles, the simulated clock, and agent availability (churn).

Nothing here runs a model: the driver asks, per round, who is online and what each round's transfers
cost in simulated time (rounds.py, clock.py), and what each directed link carries (links.py: the codecs'
sender and receiver sides, --link-drop); time-varying graphs live in raympl.topologies.schedule.
"""

from __future__ import annotations

from raympl.config import RunConfig
from raympl.network import availability, profiles


def check_config(config: RunConfig) -> None:
    """Profiles and availability parse (and their files read) before anything runs; graph schedules are
    checked against the run's graph when it is built (topologies/schedule.py)."""
    for quantity in profiles.QUANTITIES:
        profiles.values(quantity, getattr(config, quantity.replace("-", "_")), config.agents, config.seed)
    availability.Availability(config.availability, config.agents, config.seed)
