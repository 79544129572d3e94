"""Per-trajectory derivatives of a row-wise vector field for the stiff methods: ∂f/∂y (B, n, n) and ∂f/∂t (B, n).

∂f/∂y: the vector field's own structured `jacobian(t, y[, x])` when it has one (the gnODE models build it
layer by layer, no autograd), else reverse-mode autodiff on n stacked copies of the batch with one-hot
cotangents: rows do not interact, so one forward over n·B rows and one backward give every row's Jacobian.
That is plain autograd, so it works for any differentiable f, and it measured 1x-3.5x faster than
`vmap(jacrev(f_row))` (0.2 vs 0.7 ms for Robertson, 1.3 vs 1.4 ms for a 32-unit tanh layer at batch 64, one
CPU thread; `torch.func` dispatch dominates small problems), and 4x faster than stacked forward mode.

∂f/∂t: forward-mode autodiff (`torch.autograd.forward_ad`) in t; an f that does not depend on t costs one plain
evaluation. Where forward mode is unavailable, a one-sided finite difference in the direction of integration.

Every result stays on the autograd graph, so backpropagating through a stiff solve (`BackpropAdjoint`)
differentiates the Jacobian too.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.autograd.forward_ad as fwad

_FUNC_FAILURES = (RuntimeError, NotImplementedError, TypeError, ValueError)


def jacobian(f, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    """∂f/∂y of a row-wise f(t, y[, x]) at every row: t (B,), y (B, n), x (B, dim) or None → (B, n, n)."""
    structured = getattr(f, "jacobian", None)
    if callable(structured):
        J = structured(t, y) if x is None else structured(t, y, x)
        if J.shape != (*y.shape, y.shape[-1]):
            raise ValueError(f"{type(f).__name__}.jacobian returned shape {tuple(J.shape)}; expected "
                             f"(batch, n, n) = {(*y.shape, y.shape[-1])}")
        return J
    return _stacked_autograd(f, t, y, x)


def _stacked_autograd(f, t, y, x):
    """n copies of the batch, one forward and one backward with cotangent e_i on copy i."""
    B, n = y.shape
    differentiable = torch.is_grad_enabled() and (y.requires_grad or _has_grad_params(f))
    with torch.enable_grad():
        ys = y[None].expand(n, B, n).reshape(n * B, n)
        if not ys.requires_grad:
            ys = ys.detach().requires_grad_(True)
        ts = t[None].expand(n, B).reshape(-1)
        out = f(ts, ys) if x is None else f(ts, ys, x[None].expand(n, *x.shape).reshape(n * B, -1))
        eye = torch.eye(n, dtype=y.dtype, device=y.device)[:, None, :].expand(n, B, n).reshape(n * B, n)
        (g,) = torch.autograd.grad(out, ys, eye, create_graph=differentiable)
    return g.reshape(n, B, n).transpose(0, 1)  # g[i, b, :] = ∂f_i/∂y of row b


def _has_grad_params(f) -> bool:
    return isinstance(f, torch.nn.Module) and any(p.requires_grad for p in f.parameters())


def time_derivative(fn, t: torch.Tensor, y: torch.Tensor, f0: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """∂fn/∂t at (t, y) row-wise, (B, n). fn(t, y) is the right-hand side with its inputs bound; f0 = fn(t, y)
    and dt (B,) (its sign: the direction for the finite-difference fallback)."""
    try:
        with fwad.dual_level():
            with warnings.catch_warnings():  # torch's own first-use import of its jvp decompositions warns
                warnings.simplefilter("ignore", DeprecationWarning)
                dual_t = fwad.make_dual(t, torch.ones_like(t))
            out = fn(dual_t, y)
            tangent = fwad.unpack_dual(out).tangent
        return torch.zeros_like(f0) if tangent is None else tangent
    except _FUNC_FAILURES:
        return finite_difference_time_derivative(fn, t, y, f0, dt)


def finite_difference_time_derivative(fn, t, y, f0, dt):
    """(fn(t + δ, y) - f0) / δ with δ = √eps max(|t|, |dt|, tiny) signed like dt, and never past t + dt/2, so
    the probe stays inside the step (where a dense history or the inputs are defined)."""
    eps = torch.finfo(y.dtype).eps
    size = math.sqrt(eps) * torch.maximum(t.abs(), dt.abs()).clamp(min=math.sqrt(eps))
    size = torch.minimum(size, (dt.abs() / 2).clamp(min=eps))
    delta = torch.where(dt < 0, -size, size)
    return (fn(t + delta, y) - f0) / delta[:, None]
