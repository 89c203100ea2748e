"""raympl's own networks, whose maskable weights are passed in at call time: forward(x, [w_l ⊙ m_l]).

The fixed random weights `w` and biases are drawn from one seed with a CPU generator, so every
process builds bit-identical tensors and nothing but masks ever needs to travel.

Several agents at once: give every weight a leading agent dimension (A, *layer shape) and x the
agents' minibatches one after the other (A·B, C, H, W); convolutions then run grouped per agent and
linear layers as batched matrix products, everything else is per image anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch.func import vmap

from raympl.models import precision


@dataclass(frozen=True)
class Layer:
    kind: str  # "conv" or "linear"
    shape: tuple[int, ...]  # (out, in, kh, kw) or (out, in)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def fan_in(self) -> int:
        return math.prod(self.shape[1:])


class MaskedNet:
    """Architecture + fixed shared weights/biases; subclasses define `layers` and `_forward`."""

    name = "base"
    precision = "fp32"  # --precision; set by models.for_run

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, *, seed: int,
                 weight_init: str = "uniform_pm1", final_elu: bool = True, device: str = "cpu"):
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.final_elu = final_elu
        self.layers = self._build_layers(input_shape, num_classes)
        gen = torch.Generator().manual_seed(seed)
        self.weights = [init_fixed(layer, weight_init, gen).to(device) for layer in self.layers]
        self.biases = {i: uniform(gen, (layer.shape[0],), 1 / math.sqrt(layer.fan_in)).to(device)
                       for i, layer in enumerate(self.layers) if layer.kind == "linear"}

    @property
    def num_maskable(self) -> int:
        return sum(layer.numel for layer in self.layers)

    @property
    def buffers(self) -> dict[str, torch.Tensor]:
        """Per-agent state of the forward pass (none here; batch-norm statistics of an nn.Module model)."""
        return {}

    def train(self, mode: bool) -> None:
        """Training or evaluation mode: the same computation for these networks."""

    def forward(self, x: torch.Tensor, weights: list[torch.Tensor],
                biases: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Float32 logits with these weights and biases (default: the fixed shared biases); convolutions and
        linear layers in the network's precision (models/precision.py)."""
        if self.precision == "fp32":
            return self._logits(x, weights, biases)
        with precision.compute(self.precision, x.device):
            return self._logits(x, weights, biases).float()

    def _logits(self, x: torch.Tensor, weights: list[torch.Tensor],
                biases: dict[int, torch.Tensor] | None) -> torch.Tensor:
        raise NotImplementedError

    def _build_layers(self, input_shape, num_classes) -> list[Layer]:
        raise NotImplementedError

    def _flat_features(self, conv_layers: list[Layer], input_shape) -> int:
        """Run the conv stack on zeros once to learn the flatten size for this input size."""
        dummy = [torch.zeros(layer.shape) for layer in conv_layers]
        with torch.no_grad():
            out = self._features(torch.zeros(1, *input_shape), dummy)
        return out.shape[1]


def uniform(gen: torch.Generator, shape, bound: float) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def init_fixed(layer: Layer, weight_init: str, gen: torch.Generator) -> torch.Tensor:
    """uniform_pm1: U[-1, 1] (paper §V-A); torch_default: U(±1/sqrt(fan_in)) (PyTorch's default)."""
    bound = 1.0 if weight_init == "uniform_pm1" else 1 / math.sqrt(layer.fan_in)
    return uniform(gen, layer.shape, bound)


def init_scores(layers: list[Layer], gen: torch.Generator, device: str = "cpu") -> list[torch.Tensor]:
    """kaiming_uniform(a=sqrt(5)) as the reference code: U(±1/sqrt(fan_in)) per layer."""
    return [uniform(gen, layer.shape, 1 / math.sqrt(layer.fan_in)).to(device) for layer in layers]


def conv(x: torch.Tensor, w: torch.Tensor, padding: int) -> torch.Tensor:
    """F.conv2d without bias; with stacked weights (A, O, C, kh, kw), agent a's images use w[a]."""
    if w.dim() == 4:
        return F.conv2d(x, w, None, padding=padding)
    per_agent = vmap(partial(F.conv2d, bias=None, padding=padding))  # a grouped convolution
    return per_agent(x.unflatten(0, (w.shape[0], -1)), w).flatten(0, 1)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """F.linear; with stacked weights (A, O, I) and a bias shared by all agents, as a batched product."""
    if w.dim() == 2:
        return F.linear(x, w, b)
    rows = x.unflatten(0, (w.shape[0], -1))
    out = torch.bmm(rows, w.transpose(1, 2)) if b is None else torch.baddbmm(b, rows, w.transpose(1, 2))
    return out.flatten(0, 1)


def window_sum(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """out[:, c] = sum of t[:, c + o] for o = -before..after (zero outside): LRN's sum over neighbouring
    channels, added in place on one copy of t instead of F.local_response_norm's padded copy."""
    channels, out = t.shape[1], t.clone()
    for o in range(1, before + 1):
        out[:, o:] += t[:, :channels - o]
    for o in range(1, after + 1):
        out[:, :channels - o] += t[:, o:]
    return out


def inverse_power(d: torch.Tensor, beta: float) -> torch.Tensor:
    """d ** -beta; for beta = 3/4 (every LRN here) as rsqrt(d) * sqrt(rsqrt(d)): square roots are
    vector instructions, pow is not, and this is about 3x faster on a CPU (same value up to rounding)."""
    if beta != 0.75:
        return d.pow(-beta)
    r = d.rsqrt()
    return r.sqrt().mul_(r)


def max_pool(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """F.max_pool2d; in a CPU evaluation (no gradient) computed in the channels-last layout, where torch's
    kernel is several times faster, and returned in the layout of its input, so the convolutions after it
    (and their rounding) stay as they are. A maximum does not depend on the layout: the values are bit for
    bit those of the NCHW pool. Measured on one thread, AlexNet, 128 images, alternating in one process: an
    evaluation 0.260 -> 0.188 s; a training step (forward + backward) 0.530 -> 0.560 s, so training keeps
    the input's layout."""
    if x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad) \
            or x.is_contiguous(memory_format=torch.channels_last):  # (then its result is channels-last too)
        return F.max_pool2d(x, kernel, stride, padding)
    return F.max_pool2d(x.contiguous(memory_format=torch.channels_last), kernel, stride, padding).contiguous()


class EluLrn(torch.autograd.Function):
    """y = LRN(ELU(x)) = e / (k + alpha/size * sum of e^2 over `size` channels)^beta, with e = ELU(x).

    Equal to F.local_response_norm(F.elu(x)) up to rounding, in fewer element-wise passes (each pass
    over a large activation costs about as much as a small convolution on a CPU): the squares are summed
    with addcmul straight into the denominator, and the backward pass is analytic instead of autograd's
    chain (division, power, slice additions, padding, square, ELU):
        dL/de_j = g_j / p_j - (2 beta alpha / size) e_j * sum over the windows c holding j of g_c y_c / d_c
    with d = k + alpha/size * window(e^2), p = d^beta, then dL/dx = dL/de * ELU'(x).
    """

    @staticmethod
    def forward(ctx, x, size: int, alpha: float, beta: float, k: float):
        e = F.elu(x)
        before, after, scale = size // 2, (size - 1) // 2, alpha / size
        d = torch.addcmul(torch.tensor(k, dtype=e.dtype, device=e.device), e, e, value=scale)
        channels = e.shape[1]
        for o in range(1, before + 1):
            d[:, o:].addcmul_(e[:, :channels - o], e[:, :channels - o], value=scale)
        for o in range(1, after + 1):
            d[:, :channels - o].addcmul_(e[:, o:], e[:, o:], value=scale)
        inv_p = inverse_power(d, beta)
        y = e * inv_p
        ctx.save_for_backward(e, y, d, inv_p)
        ctx.constants = (size, alpha, beta)
        return y

    @staticmethod
    def backward(ctx, grad):
        e, y, d, inv_p = ctx.saved_tensors
        size, alpha, beta = ctx.constants
        through_window = window_sum((grad * y).div_(d), (size - 1) // 2, size // 2)
        grad_e = (grad * inv_p).addcmul_(e, through_window, value=-(2 * beta * alpha / size))
        # ELU'(x) = 1 for x > 0, else e + 1; min(e, 0) + 1 is the same value without a select
        return grad_e.mul_(e.clamp(max=0).add_(1)), None, None, None, None


def elu_lrn(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    if x.dtype == torch.bfloat16:  # --precision bf16: the normalisation itself stays in float32
        x = x.float()
    return EluLrn.apply(x, size, alpha, beta, k)


class AlexNet(MaskedNet):
    """The paper's AlexNet variant (docs/algorithms.md §1): 3 conv 5x5 + 2 FC, ELU/LRN/max-pool."""

    name = "alexnet"
    LRN = ((4, 2e-5, 0.75, 1.0), (4, 1e-4, 0.75, 1.0), (4, 1e-4, 0.75, 1.0))
    POOL_PAD = (0, 0, 1)

    def _build_layers(self, input_shape, num_classes):
        convs = [Layer("conv", (64, input_shape[0], 5, 5)), Layer("conv", (128, 64, 5, 5)),
                 Layer("conv", (256, 128, 5, 5))]
        flat = self._flat_features(convs, input_shape)
        return convs + [Layer("linear", (192, flat)), Layer("linear", (num_classes, 192))]

    def _features(self, x, weights):
        for w, (size, alpha, beta, k), pad in zip(weights[:3], self.LRN, self.POOL_PAD, strict=True):
            x = max_pool(elu_lrn(conv(x, w, padding=1), size, alpha, beta, k), 3, 2, pad)
        return x.flatten(1)

    def _logits(self, x, weights, biases):
        b = self.biases if biases is None else biases
        x = F.elu(linear(self._features(x, weights), weights[3], b[3]))
        x = linear(x, weights[4], b[4])
        return F.elu(x) if self.final_elu else x


class SmallCNN(MaskedNet):
    """A small 2-conv network for quick runs and tests (~100k maskable weights on 28x28)."""

    name = "small-cnn"

    def _build_layers(self, input_shape, num_classes):
        convs = [Layer("conv", (16, input_shape[0], 3, 3)), Layer("conv", (32, 16, 3, 3))]
        flat = self._flat_features(convs, input_shape)
        return convs + [Layer("linear", (64, flat)), Layer("linear", (num_classes, 64))]

    def _features(self, x, weights):
        for w in weights[:2]:
            x = max_pool(F.relu(conv(x, w, padding=1)), 2, 2, 0)
        return x.flatten(1)

    def _logits(self, x, weights, biases):
        b = self.biases if biases is None else biases
        x = F.relu(linear(self._features(x, weights), weights[2], b[2]))
        return linear(x, weights[3], b[3])


MODELS: dict[str, type[MaskedNet]] = {"alexnet": AlexNet, "small-cnn": SmallCNN}
