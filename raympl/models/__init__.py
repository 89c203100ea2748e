"""The run's network by name: raympl's functional networks (functional.py) or any nn.Module behind the same
interface (module_net.py; built in: zoo.py, torchvision:NAME, package.module:factory, entry points of
raympl.models), and the check of a run's model options before anything is built.
"""

from __future__ import annotations

import functools

from raympl.config import FUNCTIONAL_MODELS, RunConfig
from raympl.errors import ConfigError
from raympl.models import zoo
from raympl.models.functional import MODELS, Layer, MaskedNet, elu_lrn, init_scores
from raympl.models.module_net import ModuleNet, check_selector
from raympl.plugins import load_named

__all__ = ["Layer", "MaskedNet", "ModuleNet", "build", "check_config", "elu_lrn", "for_run", "init_scores",
           "module_factory"]


MODEL_GROUP = "raympl.models"


@functools.cache
def module_factory(name: str):
    """The factory (input_shape, num_classes) -> nn.Module of a model that is not a functional network:
    one of models/zoo.py, torchvision:NAME, package.module:factory, or an entry point of raympl.models."""
    if name in zoo.BUILT_IN:
        return zoo.BUILT_IN[name]
    if name.startswith("torchvision:"):
        return zoo.torchvision_model(name.partition(":")[2])
    found = load_named("model", name, MODEL_GROUP)
    if not callable(found):
        raise ConfigError(f"invalid model {name!r}: {type(found).__name__} is not callable; give a factory "
                          "(input_shape, num_classes) -> torch.nn.Module")
    return found


def build(name: str, input_shape, num_classes: int, *, seed: int, weight_init: str = "uniform_pm1",
          final_elu: bool = True, device: str = "cpu", maskable: str = "conv+linear", norm_stats: str = "running"):
    """A built-in functional network (MaskedNet), or any nn.Module behind the same interface (ModuleNet)."""
    if name in MODELS:
        if len(input_shape) != 3:
            raise ConfigError(f"invalid model {name!r}: needs images, got inputs of shape "
                              f"{'x'.join(map(str, input_shape))}")
        try:
            return MODELS[name](tuple(input_shape), num_classes, seed=seed, weight_init=weight_init,
                                final_elu=final_elu, device=device)
        except RuntimeError as error:  # images too small for its convolutions and pools
            raise ConfigError(f"invalid model {name!r}: it does not take inputs of shape "
                              f"{'x'.join(map(str, input_shape))} ({str(error).splitlines()[0]})") from None
    return ModuleNet(name, module_factory(name), tuple(input_shape), num_classes, seed=seed, weight_init=weight_init,
                     device=device, maskable=maskable, norm_stats=norm_stats)


def for_run(config: RunConfig, input_shape, num_classes: int, device: str = "cpu"):
    """The run's network with its options (every process builds the same one from config.seed)."""
    net = build(config.model, input_shape, num_classes, seed=config.seed, weight_init=config.weight_init,
                final_elu=config.final_elu, device=device, maskable=config.maskable, norm_stats=config.norm_stats)
    net.precision = config.precision
    return net


def check_config(config: RunConfig) -> None:
    """A model that is not built in is found (its code imported, nothing built); --maskable parses."""
    if config.model not in FUNCTIONAL_MODELS:
        module_factory(config.model)
    check_selector(config.maskable)
