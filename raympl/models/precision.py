"""The arithmetic of a network's convolutions and matrix products (--precision fp32|bf16|tf32).

fp32 is exact float32 everywhere (the default). bf16 runs the forward and backward of convolutions and linear
layers in bfloat16 under torch's autocast, on the CPU or a CUDA device; everything around them stays float32:
the logits and the loss, the scores z, Thres/top-k and the masks, ā, the fixed weights, every optimiser state
and every value that travels (a real-valued method's model, its gradients and its messages included). tf32
lets a CUDA device's matrix units round float32 inputs to TF32 in matmuls and convolutions.

A machine that would run bf16 or tf32 through slow fallbacks is refused in one line: torch's bfloat16 kernels
on a CPU without AVX512_BF16 or AMX run many times slower than float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from raympl.errors import DeviceError


def fast_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX-BF16), as torch sees it."""
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def check_device(precision: str, device: torch.device) -> None:
    """DeviceError naming what this device lacks for `precision`."""
    if precision == "tf32" and device.type != "cuda":
        raise DeviceError("invalid precision 'tf32': TF32 is a mode of CUDA GPUs (Ampere or newer); this host "
                          f"computes on {device.type}; use fp32 or bf16")
    if precision == "tf32" and torch.cuda.get_device_capability(device)[0] < 8:
        raise DeviceError(f"invalid precision 'tf32': {torch.cuda.get_device_name(device)} has no TF32 "
                          "(compute capability 8.0 or newer)")
    if precision != "bf16":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise DeviceError(f"invalid precision 'bf16': {torch.cuda.get_device_name(device)} has no bfloat16 "
                          "arithmetic")
    if device.type == "cpu" and not fast_bf16_cpu():
        name = torch.cpu.get_capabilities().get("cpu_name", "unknown")
        raise DeviceError(f"invalid precision 'bf16': this CPU ({name}) has neither AVX512_BF16 nor AMX-BF16, "
                          "and torch's fallback runs many times slower than float32; use fp32")


def set_matmul_mode(precision: str) -> None:
    """TF32 matmuls and convolutions on CUDA for tf32; full float32 otherwise (this process)."""
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow


@contextlib.contextmanager
def compute(precision: str, device: torch.device) -> Iterator[None]:
    """The region of a forward pass whose convolutions and linear layers run in `precision`."""
    if precision != "bf16":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield
