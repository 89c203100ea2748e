"""Pull-SGD, a plug-in algorithm for raympl (docs/extending.md walks through this file).

Each round an agent takes local SGD steps, sends its model to its neighbours, and then moves a share
`pull` of the way towards their average:  x_i <- (1 - pull) * x_i + pull * mean_j x_j.

Run it from the folder that holds `examples/`:
    raympl simulate --algorithm examples.pull_sgd:PullSGD --model small-cnn --set pull=0.3 ...
"""

from __future__ import annotations

import numpy as np

from raympl.algorithms.base import LocalData, local_steps
from raympl.algorithms.real import Params, RealState, RealValued
from raympl.config import ConfigError


class PullSGD(RealValued):
    """RealValued gives the dense model, the SGD loop, the message format, evaluation and stats."""

    name = "pull-sgd"
    options = {"pull": 0.5}  # its own option: --set pull=0.3, read as config.algorithm_options["pull"]
    # raympl's algorithm-specific options it reads; any other is refused as doing nothing
    uses = ("topology", "p", "degree", "link_drop", "comm_model", "local_steps", "local_epochs")
    defaults = {"lr": 0.01, "weight_init": "torch_default"}  # SGD on real weights, like raympl's DSGD

    @staticmethod
    def check_options(options: dict) -> None:
        """Called when the configuration is resolved, so a bad value fails before anything runs."""
        if not 0.0 <= options["pull"] <= 1.0:
            raise ConfigError(f"invalid pull {options['pull']!r}: must be in [0, 1]")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pull = self.config.algorithm_options["pull"]

    def local(self, state: RealState, data: LocalData, round_: int) -> np.ndarray:
        self.train(state.params, data, local_steps(self.config, data), self.config.lr)
        return self.pack(state.params)

    def merge(self, state: RealState, decoded: list[Params]) -> None:
        if not decoded:  # an agent without neighbours keeps its model
            return
        for k, param in enumerate(state.params):
            mean = sum(model[k] for model in decoded) / len(decoded)
            param.mul_(1.0 - self.pull).add_(mean, alpha=self.pull)
