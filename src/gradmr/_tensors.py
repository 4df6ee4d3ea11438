"""Small helpers shared by the tensor dataclasses and the simulators."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import torch

T = TypeVar("T")


def tensor_map(obj: T, fn) -> T:
    """Return a copy of the dataclass ``obj`` with ``fn`` applied to every tensor field."""
    changes = {}
    for field in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, field.name)
        if isinstance(value, torch.Tensor):
            changes[field.name] = fn(value)
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


class TensorDataclass:
    """Mixin for frozen dataclasses of tensors: ``.to(device, dtype)`` written once.

    ``dtype`` is a *real* floating dtype (float32 or float64); complex fields follow it
    (complex64 or complex128), integer and boolean fields keep their dtype.
    """

    def to(self: T, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> T:
        def convert(t: torch.Tensor) -> torch.Tensor:
            target = None
            if dtype is not None:
                if t.is_complex():
                    target = complex_dtype(dtype)
                elif t.is_floating_point():
                    target = dtype
            return t.to(device=device, dtype=target)

        return tensor_map(self, convert)


def complex_dtype(real: torch.dtype) -> torch.dtype:
    """The complex dtype that pairs with a real floating dtype."""
    if real == torch.float64:
        return torch.complex128
    if real == torch.float32:
        return torch.complex64
    if real in (torch.complex64, torch.complex128):
        return real
    raise TypeError(f"dtype must be torch.float32 or torch.float64, got {real}")


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype that pairs with a (real or complex) floating dtype."""
    if dtype in (torch.complex128, torch.float64):
        return torch.float64
    return torch.float32


def cexp(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """exp(real + i·imag) from real exp/cos/sin.

    torch's complex ``exp`` on CPU is ~100× slower than the real one; the simulators
    call this instead on every hot path.
    """
    return torch.polar(torch.exp(real), imag)


def expi(phase: torch.Tensor) -> torch.Tensor:
    """exp(i·phase) for a real tensor."""
    return torch.polar(torch.ones_like(phase), phase)


def as_tensor(value, *, dtype: torch.dtype, device=None) -> torch.Tensor:
    """Like ``torch.as_tensor`` but keeps autograd history of tensors that already have the dtype."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=dtype, device=device)
    return torch.as_tensor(value, dtype=dtype, device=device)
