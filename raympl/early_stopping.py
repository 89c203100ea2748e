"""--early-stop asha: Ray Tune's ASHA scheduler, one set of brackets per group of trials (raympl/selection.py's
grid points of one method, column and seed), so a point is compared only with its rivals while every
group's trials share the cluster."""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler


class GroupedASHA(FIFOScheduler):
    """Tune's ASHA, one bracket set per group of trials (a method, column and seed of a --grid selection), so
    that grid points compete only with each other, while every group's trials share the cluster."""

    def __init__(self, groups: list[str], rounds: list[int], eval_every: list[int]):
        super().__init__()
        self.group_of = groups
        self.brackets: dict[str, ASHAScheduler] = {}
        for index, group in enumerate(groups):
            if group not in self.brackets:
                grace = max(eval_every[index], rounds[index] // 8)
                self.brackets[group] = ASHAScheduler(time_attr="round", metric="val_accuracy", mode="max",
                                                     max_t=rounds[index], grace_period=grace, reduction_factor=2,
                                                     stop_last_trials=False)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # each bracket set already knows its metric

    def _of(self, trial) -> ASHAScheduler:
        return self.brackets[self.group_of[trial.config["run"]]]

    def on_trial_add(self, tune_controller, trial) -> None:
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._of(trial).on_trial_remove(tune_controller, trial)
