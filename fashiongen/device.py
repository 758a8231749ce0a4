"""Choosing the device to compute on, and the precision of its forward passes."""

from __future__ import annotations

import torch

from fashiongen.errors import ConfigError


def resolve_device(requested: str) -> torch.device:
    """``auto`` takes the GPU when one is usable; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "train.device is 'cuda' but PyTorch sees no usable GPU; "
            "set train.device to 'auto' or 'cpu', or install a CUDA build of PyTorch."
        )
    return torch.device(requested)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (AVX512-BF16 or AMX), where autocast can pay.

    Elsewhere oneDNN emulates bf16 with float32 instructions plus conversions:
    slower than float32, so the option is refused there rather than run slowly.
    """
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def autocast_dtype(device: torch.device, amp: bool, cpu_bf16: bool) -> torch.dtype | None:
    """The dtype of the forward passes' autocast (``train.amp`` on a GPU, ``train.cpu_bf16`` on a CPU); None = float32."""
    if device.type == "cuda":
        return torch.bfloat16 if amp else None
    if device.type == "cpu" and cpu_bf16:
        if not cpu_has_native_bf16():
            raise ConfigError(
                f"train.cpu_bf16 is true but this CPU has no native bf16 units (PyTorch reports "
                f"{torch.backends.cpu.get_cpu_capability()} without AVX512-BF16 or AMX), where bf16 is emulated "
                "and slower than float32; set train.cpu_bf16: false, or train on a CPU with AVX512-BF16/AMX or a GPU."
            )
        return torch.bfloat16
    return None
