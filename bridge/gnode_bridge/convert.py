"""Arrays across the bridge, without copies: torch tensors as Julia sees them (dimensions reversed).

A C-contiguous torch tensor of shape (B, T, n) is, over the same memory, the column-major array of
size (n, T, B): on the CPU that is `tensor.numpy().T` (a numpy view; PythonCall wraps it as a
`PyArray`), on CUDA the tensor itself, which the backend turns into a `CuArray` with
`DLPack.from_dlpack` (whose dimensions come out reversed in the same way). Output buffers are
allocated here, as torch tensors, and written by Julia in place.
"""

from __future__ import annotations

import numpy as np
import torch

SUPPORTED_DTYPES = (torch.float64, torch.float32)


def check_dtype(name: str, t: torch.Tensor) -> None:
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} has dtype {t.dtype}; the julia engine solves in float64 or float32 "
            f"(cast with {name}.double() or {name}.float())"
        )


def julia_view(t: torch.Tensor | None):
    """`t` in Julia's layout over the same memory: a numpy view with reversed axes on the CPU, the
    (contiguous) tensor itself on CUDA. None stays None (Julia's `nothing`)."""
    if t is None:
        return None
    t = t.detach()
    if not t.is_contiguous():
        raise ValueError("julia_view needs a contiguous tensor (call .contiguous() first)")
    if t.device.type == "cpu":
        return t.numpy().T
    if t.device.type == "cuda":
        return t
    raise ValueError(f"the julia engine takes CPU or CUDA tensors, got one on {t.device}")


def host_array(t: torch.Tensor | None, dtype: torch.dtype = torch.float64) -> np.ndarray | None:
    """A 1-D host numpy array (times live on the host on every device)."""
    if t is None:
        return None
    return t.detach().to("cpu", dtype).contiguous().reshape(-1).numpy()


def torch_from_julia(a) -> torch.Tensor:
    """The inverse of `julia_view`: a Julia-layout numpy view (or a CUDA tensor) as the torch tensor it
    views, sharing memory."""
    if isinstance(a, torch.Tensor):
        return a
    return torch.from_numpy(np.asarray(a).T)
