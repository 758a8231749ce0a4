"""Choosing the device to compute on."""

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
