"""A vector field frozen at a constant input: h -> f(h, x*), its Jacobian and its Jacobian-vector products.

Fixed-point finding and the attractor views study the autonomous system dh/dt = f(h, x*) that a model
follows while its input is held at x* (for the flip-flop: x* = 0, the memory phase between pulses).
`FrozenField` wraps any of

  - a gnODE-family vector field (`gnode.models.GatedNODE` and its reductions): forward(t, h, x) and the
    structured `jacobian(t, h, x)` (no autograd needed),
  - a `gnode.models.SequenceModel` (its `vector_field` is used),
  - a plain row-wise callable f(t, h) or f(t, h, x) (B, n) -> (B, n); its Jacobian comes from autograd.

All tensors are batch-first: h (P, n) -> f (P, n), J (P, n, n).
"""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn


def unwrap_vector_field(model):
    """The vector field of a `SequenceModel` (anything with a `vector_field` module), else `model` itself."""
    inner = getattr(model, "vector_field", None)
    return inner if isinstance(inner, nn.Module) else model


def _takes_input(f) -> bool:
    """Whether f is called f(t, h, x) (True) or f(t, h) (False)."""
    if isinstance(f, nn.Module):
        return True  # gnODE-family fields take x (None means zero input)
    try:
        params = [
            p
            for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) >= 3


def jacobian_vector_product(fn, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """J v row-wise for a row-wise fn(h) (P, n) -> (P, n), by two reverse passes and no J: with
    g(u) = J^T u (one vector-Jacobian product, kept differentiable), J v = d(g(u) . v)/du (the
    "double-backward trick"; g is linear in u, so any u works). Forward-mode AD would do it in one pass,
    but torch's first forward-mode call loads its TorchScript decompositions: seconds and deprecation
    warnings for a few small products."""
    with torch.enable_grad():
        hh = h.detach().requires_grad_(True)
        out = fn(hh)
        u = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, hh, u, create_graph=True)
        (jv,) = torch.autograd.grad(g, u, v)
    return jv.detach()


class FrozenField:
    """h -> f(t*, h, x*) for a model or callable `f` with the input held at `x` and time at `t`.

    f:      a gnODE-family vector field, a `SequenceModel`, or a row-wise callable (module docstring).
    x:      the constant input x* as a (d_in,) tensor / sequence of numbers, or None (no input / zero input).
    t:      the time at which f is evaluated (gnODE fields ignore it); default 0.
    dtype:  compute in this dtype; a module is copied and cast (the caller's model is left alone). None keeps
            the model's own dtype. A plain callable cannot be cast: its own dtype is used.
    """

    def __init__(self, f, x=None, *, t: float = 0.0, dtype: torch.dtype | None = None):
        f = unwrap_vector_field(f)
        if not callable(f):
            raise TypeError(
                f"FrozenField: f must be a vector field module or a callable f(t, h[, x]), got {type(f).__name__}"
            )
        self.module = isinstance(f, nn.Module)
        if self.module:
            like = next(f.parameters(), None)
            if dtype is not None and like is not None and like.dtype != dtype:
                f = copy.deepcopy(f).to(dtype)
            like = next(f.parameters(), None)
            self.dtype = like.dtype if like is not None else (dtype or torch.get_default_dtype())
            self.device = like.device if like is not None else torch.device("cpu")
        else:
            self.dtype = dtype or torch.get_default_dtype()
            self.device = torch.device("cpu")
        self.f = f
        self.n = getattr(f, "n", None)
        d_in = getattr(f, "d_in", None)
        self.takes_input = _takes_input(f)
        self.t = float(t)
        if x is not None:
            x = torch.as_tensor(x, dtype=self.dtype, device=self.device).reshape(-1)
            if d_in is not None and x.numel() != d_in:
                raise ValueError(
                    f"FrozenField: the input x* has {x.numel()} entries but the model takes "
                    f"d_in={d_in}; pass a ({d_in},) tensor (or None for zero input)"
                )
            if not torch.isfinite(x).all():
                raise ValueError(f"FrozenField: the input x* must be finite, got {x.tolist()}")
            if not self.takes_input:
                raise ValueError("FrozenField: an input x* was given but f takes no input (it is f(t, h))")
        self.x = x
        self.has_jacobian = callable(getattr(f, "jacobian", None))

    # ---- evaluation -----------------------------------------------------------------------------------

    def _args(self, h: torch.Tensor):
        t = torch.full((h.shape[0],), self.t, dtype=h.dtype, device=h.device)
        if not self.takes_input:
            return (t, h)
        x = None if self.x is None else self.x.to(h.dtype).expand(h.shape[0], -1)
        return (t, h, x)

    def check_states(self, h: torch.Tensor, what: str = "states") -> torch.Tensor:
        """h as a (P, n) tensor of this field's dtype and device, with a clear error for a wrong shape."""
        if not isinstance(h, torch.Tensor):
            h = torch.as_tensor(h, dtype=self.dtype)
        if h.ndim == 1:
            h = h[None]
        if h.ndim != 2:
            raise ValueError(f"{what} must be (points, n), got shape {tuple(h.shape)}")
        if self.n is not None and h.shape[1] != self.n:
            raise ValueError(f"{what} have {h.shape[1]} features (shape {tuple(h.shape)}) but the model has n={self.n}")
        return h.to(dtype=self.dtype, device=self.device)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """f(h, x*) (P, n)."""
        return self.f(*self._args(h))

    def jacobian(self, h: torch.Tensor) -> torch.Tensor:
        """df/dh (P, n, n) at each row: the model's structured Jacobian, else autograd (one backward per
        output component over the whole batch; rows do not interact)."""
        if self.has_jacobian:
            return self.f.jacobian(*self._args(h))
        with torch.enable_grad():
            hh = h.detach().requires_grad_(True)
            out = self.f(*self._args(hh))
            rows = []
            for i in range(out.shape[1]):
                (g,) = torch.autograd.grad(out[:, i].sum(), hh, retain_graph=i + 1 < out.shape[1])
                rows.append(g)
        return torch.stack(rows, dim=1)

    def jvp(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """J(h) v row-wise (P, n), without forming J (for large n); see `jacobian_vector_product`."""
        return jacobian_vector_product(self, h, v)

    def timescales(self, h: torch.Tensor) -> torch.Tensor | None:
        """tau / G_i(h, x*) (P, n) for a gated model (a model with `timescales`), else None."""
        fn = getattr(self.f, "timescales", None)
        return fn(*self._args(h)) if callable(fn) else None
