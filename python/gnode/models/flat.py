"""One flat parameter vector per model: the order, the export and the in-place load.

The order is the model's `flat_entries()` (documented for every family in `gnode.models.spec`); each
tensor is flattened row-major (C order). Engines that integrate outside PyTorch take this vector and hand
gradients back in the same layout.
"""

from __future__ import annotations

import torch
from torch import nn

SPEC_VERSION = 1
DTYPE_NAMES = {torch.float64: "float64", torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def dtype_name(dtype: torch.dtype) -> str:
    if dtype not in DTYPE_NAMES:
        raise TypeError(f"parameters must be floating point to export a spec, got {dtype}")
    return DTYPE_NAMES[dtype]


def dtype_from_name(name: str) -> torch.dtype:
    for dt, n in DTYPE_NAMES.items():
        if n == name:
            return dt
    raise ValueError(f"spec dtype must be one of {sorted(DTYPE_NAMES.values())}, got {name!r}")


class FlatParameters:
    """Mixin for an `nn.Module` that lists its parameters in a fixed order via `flat_entries()`."""

    def flat_entries(self) -> list[tuple[str, nn.Parameter]]:
        """[(name, parameter), ...] in the order of the flat vector."""
        raise NotImplementedError

    def flat_layout(self) -> list[list]:
        """[[name, shape], ...] (JSON-friendly), the `parameters` entry of the spec."""
        return [[name, list(p.shape)] for name, p in self.flat_entries()]

    def num_flat(self) -> int:
        return sum(p.numel() for _, p in self.flat_entries())

    def flat_parameters(self) -> torch.Tensor:
        """All parameters as one 1-D tensor (differentiable: gradients flow back to the parameters)."""
        return torch.cat([p.reshape(-1) for _, p in self.flat_entries()])

    @torch.no_grad()
    def load_flat(self, flat: torch.Tensor) -> FlatParameters:
        """Set every parameter from a 1-D vector laid out as `flat_parameters()` (in place; returns self)."""
        entries = self.flat_entries()
        if not isinstance(flat, torch.Tensor):
            flat = torch.as_tensor(flat)
        if flat.ndim != 1:
            raise ValueError(f"load_flat: flat must be 1-D, got shape {tuple(flat.shape)}")
        if not flat.is_floating_point():
            raise TypeError(f"load_flat: flat must be floating point, got {flat.dtype}")
        total = sum(p.numel() for _, p in entries)
        if flat.numel() != total:
            raise ValueError(
                f"load_flat: {type(self).__name__} has {total} parameters "
                f"({', '.join(f'{n} {tuple(p.shape)}' for n, p in entries)}) but flat has "
                f"{flat.numel()}; was it exported from a model with other sizes?"
            )
        offset = 0
        for _, p in entries:
            k = p.numel()
            p.copy_(flat[offset : offset + k].view(p.shape))
            offset += k
        return self

    def check_flat_covers_parameters(self) -> None:
        """Raise if `flat_entries` misses or repeats a parameter of the module (a bug guard for subclasses)."""
        listed = [id(p) for _, p in self.flat_entries()]
        actual = [id(p) for p in self.parameters()]  # type: ignore[attr-defined]
        if sorted(listed) != sorted(actual):
            raise RuntimeError(f"{type(self).__name__}.flat_entries does not list each parameter exactly once")
