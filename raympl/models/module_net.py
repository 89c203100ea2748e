"""Any torch.nn.Module as the agents' network: ModuleNet gives it the interface of raympl's functional
networks (layers, weights, biases, forward(x, weights, biases)), so every algorithm runs it unchanged.

- Maskable parameters (`--maskable`): the weights of every convolution and linear module by default. Their
  values are drawn by raympl from the run's seed exactly as for the built-in networks (`--weight-init`), are
  the same in every process, and never travel; mask methods learn masks over them, real-valued methods train
  them from there.
- Every other parameter (biases, normalisation scales and shifts) is a "free" parameter: it keeps the value
  the module's own initialisation gives it under the run's seed. Mask methods hold it fixed and shared
  (`--free-params frozen`) or let each agent train its own copy (`personal`); real-valued methods train and
  exchange it with the weights.
- Buffers (batch-norm running statistics) are per-agent state (`--norm-stats running`): the host gives each
  agent its own copy for every forward pass, and checkpoints it. `--norm-stats batch` turns running
  statistics off, so normalisation always uses the statistics of the batch at hand, evaluation included.

The module runs through torch.func.functional_call with the tensors of the moment; it is not changed.
With `--engine batched` the weights come stacked, one row per agent: the call is vectorised over the agents
with torch.func.vmap, each agent with its own images and its own buffers (stacked the same way by the host),
the free parameters shared (the engine requires `--free-params frozen`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, vmap

from raympl.errors import ConfigError
from raympl.models import precision
from raympl.models.functional import Layer, init_fixed
from raympl.plugins import first_line

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
SELECTORS = ("conv+linear", "conv", "linear")


def parameter_kinds(module: nn.Module) -> dict[str, str]:
    """Every parameter's name -> "conv", "linear" or "other", by the module that owns it."""
    kinds = {}
    for owner_name, owner in module.named_modules():
        kind = "conv" if isinstance(owner, CONV) else "linear" if isinstance(owner, nn.Linear) else "other"
        for name, _ in owner.named_parameters(recurse=False):
            kinds[f"{owner_name}.{name}" if owner_name else name] = kind if name == "weight" else "other"
    return kinds


def check_selector(selector: str) -> re.Pattern | None:
    """The pattern of a re:REGEX selector (None for the named ones); ConfigError for anything else."""
    if selector.startswith("re:"):
        try:
            return re.compile(selector[3:])
        except re.error as error:
            raise ConfigError(f"invalid maskable {selector!r}: {error}") from None
    if selector not in SELECTORS:
        raise ConfigError(f"invalid maskable {selector!r}: choose {', '.join(SELECTORS)} or re:REGEX")
    return None


def select_maskable(module: nn.Module, selector: str) -> list[str]:
    """Names of the maskable parameters, in the module's parameter order (docs/models.md, "--maskable")."""
    pattern = check_selector(selector)
    names = [name for name, _ in module.named_parameters()]
    if pattern is not None:
        chosen = [n for n in names if pattern.fullmatch(n)]
    else:
        kinds, wanted = parameter_kinds(module), selector.split("+")
        chosen = [n for n in names if kinds.get(n) in wanted]
    if not chosen:
        raise ConfigError(f"invalid maskable {selector!r}: selects no parameter of this model")
    return chosen


def without_running_stats(module: nn.Module) -> None:
    """Normalisation layers always use batch statistics and keep no buffers (--norm-stats batch)."""
    for layer in module.modules():
        if getattr(layer, "track_running_stats", False):
            layer.track_running_stats = False
            layer.running_mean = layer.running_var = layer.num_batches_tracked = None


class ModuleNet:
    """A user's nn.Module with raympl's fixed maskable weights; the interface of models.MaskedNet."""

    precision = "fp32"  # --precision; set by models.for_run

    def __init__(self, name: str, factory: Callable[[tuple[int, ...], int], nn.Module],
                 input_shape: tuple[int, ...], num_classes: int, *, seed: int, weight_init: str = "uniform_pm1",
                 device: str = "cpu", maskable: str = "conv+linear", norm_stats: str = "running"):
        self.name, self.input_shape, self.num_classes = name, tuple(input_shape), num_classes
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the module's own initialisation: the same in every process
            try:
                module = factory(self.input_shape, num_classes)
            except ConfigError:
                raise
            except Exception as error:  # the user's code: whatever it raises is a bad model for these data
                raise ConfigError(f"invalid model {name!r}: its factory failed for input shape "
                                  f"{'x'.join(map(str, self.input_shape))} and {num_classes} classes "
                                  f"({type(error).__name__}: {first_line(error)})") from None
        if not isinstance(module, nn.Module):
            raise ConfigError(f"invalid model {name!r}: its factory returned {type(module).__name__}, "
                              "not a torch.nn.Module")
        # normalisation layers that keep running statistics (before --norm-stats batch turns them off)
        self.norm_layers = sum(bool(getattr(layer, "track_running_stats", False)) for layer in module.modules())
        if norm_stats == "batch":
            without_running_stats(module)
        self.module = module.to(device).train()
        self.maskable = select_maskable(module, maskable)
        kinds = parameter_kinds(module)
        params = dict(module.named_parameters())
        self.layers = [Layer(kinds[n], tuple(params[n].shape)) for n in self.maskable]
        gen = torch.Generator().manual_seed(seed)
        self.weights = [init_fixed(layer, weight_init, gen).to(device) for layer in self.layers]
        self.biases = {n: p.detach().clone() for n, p in params.items() if n not in self.maskable}
        self.buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
        self.agent_buffers: dict[str, torch.Tensor] | None = None  # the buffers of the agent being run (host)
        self._check_output(device)

    @property
    def num_maskable(self) -> int:
        return sum(layer.numel for layer in self.layers)

    def forward(self, x: torch.Tensor, weights: list[torch.Tensor],
                biases: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        stacked = weights[0].dim() > len(self.layers[0].shape)  # one row per agent (--engine batched)
        # without an agent's buffers (a probe, a FLOP count), copies: the shared initial ones stay as built
        buffers = self.agent_buffers
        if buffers is None:
            buffers = {n: b.expand(weights[0].shape[0], *b.shape).clone() if stacked else b.clone()
                       for n, b in self.buffers.items()}
        free, masked = self.biases if biases is None else biases, dict(zip(self.maskable, weights, strict=True))
        with precision.compute(self.precision, x.device):
            if stacked:
                out = self._forward_agents(x, masked, free, buffers)
            else:
                out = functional_call(self.module, {**free, **masked, **buffers}, (x,))
        return out.float() if self.precision != "fp32" and isinstance(out, torch.Tensor) else out

    def _forward_agents(self, x: torch.Tensor, weights: dict[str, torch.Tensor], free: dict[str, torch.Tensor],
                        buffers: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of A agents' images (A·B rows, agent-major) through their own stacked weights and buffers."""
        agents = next(iter(weights.values())).shape[0]

        def one_agent(own: dict[str, torch.Tensor], own_buffers: dict[str, torch.Tensor],
                      images: torch.Tensor) -> torch.Tensor:
            return functional_call(self.module, {**free, **own, **own_buffers}, (images,))

        # dropout draws differ per agent, as they would one agent after the other (not the same draws)
        out = vmap(one_agent, randomness="different")(weights, buffers, x.unflatten(0, (agents, -1)))
        return out.flatten(0, 1)

    def train(self, mode: bool) -> None:
        """Training mode (batch statistics, running statistics updated) or evaluation mode."""
        self.module.train(mode)

    def _check_output(self, device: str) -> None:
        """One forward pass on zeros in each mode: the module must take this data's shape and give one
        logit per class (some models return a tuple of outputs in training mode only)."""
        x = torch.zeros(2, *self.input_shape, device=device, dtype=self.weights[0].dtype)
        for mode in ("", " in training mode"):
            self.module.train(bool(mode))
            try:
                # dropout draws in training mode leave no trace in the random streams
                with torch.no_grad(), torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
                    out = self.forward(x, self.weights)
            except Exception as error:  # the user's code, as above
                raise ConfigError(f"invalid model {self.name!r}: it does not take inputs of shape "
                                  f"{'x'.join(map(str, self.input_shape))}{mode} ({first_line(error)})") from None
            finally:
                self.module.train()
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, self.num_classes):
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ConfigError(f"invalid model {self.name!r}: gives {shape} for 2 inputs{mode}, expected "
                                  f"logits of shape (2, {self.num_classes})")
