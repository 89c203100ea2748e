"""Algorithms behind one two-phase protocol (see base.py); pick one by name."""

from __future__ import annotations

from raympl import plugins
from raympl.algorithms.avr_weipru import AvrWeiPru
from raympl.algorithms.base import Algorithm
from raympl.algorithms.deprl import DePRL
from raympl.algorithms.dis_pfl import DisPFL
from raympl.algorithms.dsgd import DSGD
from raympl.algorithms.dsgd_prox import DSGDProx
from raympl.algorithms.fedavg import FedAvg
from raympl.algorithms.ind_mask import IndMask
from raympl.algorithms.ind_weipru import IndWeiPru
from raympl.algorithms.lottery_dsgd import LotteryDSGD
from raympl.algorithms.malcom_psgd import MalcomPSGD
from raympl.algorithms.mce_pl import MCEPL
from raympl.algorithms.par_weipru import ParWeiPru

REGISTRY: dict[str, type[Algorithm]] = {cls.name: cls for cls in (
    MCEPL, IndMask, DSGD, FedAvg, DSGDProx, IndWeiPru, AvrWeiPru, ParWeiPru, LotteryDSGD, DisPFL, DePRL, MalcomPSGD)}


def get(name: str) -> type[Algorithm]:
    """A built-in algorithm, or a plug-in (`module:Class` or an entry point; plugins.py)."""
    if name in REGISTRY:
        return REGISTRY[name]
    return plugins.algorithm_class(name)
