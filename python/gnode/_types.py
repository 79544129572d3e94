"""Input checks shared by the public constructors. Each error names the argument, what was wrong and what to try."""

from __future__ import annotations

import torch


def as_tensor(name: str, value, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """`value` as a floating tensor; with `like`, on its device and dtype (a Python number or list is converted)."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(
                f"{name} must be a floating-point tensor, got dtype {value.dtype}; "
                "convert it with .double() or .float()"
            )
        if like is not None:
            check_same(name, value, like)
        return value
    try:
        return torch.as_tensor(
            value,
            dtype=like.dtype if like is not None else torch.get_default_dtype(),
            device=like.device if like is not None else None,
        )
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a tensor or a sequence of numbers, got {type(value).__name__}") from e


def check_same(name: str, value: torch.Tensor, like: torch.Tensor, what: str = "u0") -> None:
    if value.dtype != like.dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but {what} has {like.dtype}; "
            f"cast one of them (e.g. {name}.to({what}.dtype)) so that they match"
        )
    if value.device != like.device:
        raise ValueError(
            f"{name} is on {value.device} but {what} is on {like.device}; "
            f"move them to one device (e.g. {name}.to({what}.device))"
        )


def check_finite(name: str, value: torch.Tensor) -> None:
    bad = ~torch.isfinite(value)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} holds a non-finite value ({value[idx].item()}) at index {idx}; "
            "initial states and inputs must be finite"
        )


def check_increasing(name: str, t: torch.Tensor, *, strict: bool = True) -> None:
    """`t` (1-D) must be strictly increasing (or strictly decreasing: its direction is `sign(t[-1]-t[0])`)."""
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (time,), got shape {tuple(t.shape)}")
    check_finite(name, t)
    if t.numel() < 2:
        return
    d = torch.diff(t)
    sign = torch.sign(d[0]) if d[0] != 0 else torch.tensor(1.0)
    bad = (d * sign <= 0) if strict else (d * sign < 0)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name} must be strictly monotone, but {name}[{i}] = {t[i].item():.6g} and "
            f"{name}[{i + 1}] = {t[i + 1].item():.6g}; sort it and remove duplicates"
        )
