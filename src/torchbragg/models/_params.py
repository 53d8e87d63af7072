"""Helpers for registering refinable values on modules."""

from __future__ import annotations

import torch
from torch import nn


def parameter(value, dtype: torch.dtype) -> nn.Parameter:
    """A parameter that does not require a gradient until the user asks for one."""
    return nn.Parameter(torch.as_tensor(value, dtype=dtype).clone(), requires_grad=False)


def buffer(value, dtype: torch.dtype) -> torch.Tensor:
    """A tensor copy of ``value`` for ``register_buffer``."""
    return torch.as_tensor(value, dtype=dtype).clone()
