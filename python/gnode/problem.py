"""The problem: a vector field, a batch of initial states, a time span and optional continuous-time inputs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gnode._types import as_tensor, check_finite, check_increasing, check_same

INTERPOLATIONS = ("zoh", "linear", "cubic")


class Control:
    """A continuous-time input x(t) built from samples: `values` (batch, time, dim) at `times` (time,).

    interpolation:
      "zoh"    zero-order hold, x(t) = values[k] for times[k] <= t < times[k+1] (right-continuous);
      "linear" piecewise linear;
      "cubic"  C1 cubic Hermite with central-difference slopes (one-sided at the ends).
    Outside [times[0], times[-1]] the end values are held. The sample times are breakpoints of x (or of
    its derivatives) and become `tstops`: adaptive methods step onto them exactly, and a step never
    straddles one, so within a step x is smooth. `evaluate` takes the segment from the caller so that a
    step that ends on a breakpoint sees the left limit there.
    """

    def __init__(self, times, values: torch.Tensor, interpolation: str = "zoh"):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"Control: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        values = as_tensor("Control values", values)
        if values.ndim != 3:
            raise ValueError(
                f"Control values must be (batch, time, dim), got shape {tuple(values.shape)}; "
                "for a single sequence use values[None]"
            )
        times = as_tensor("Control times", times, like=values.detach())
        check_increasing("Control times", times)
        if times.numel() != values.shape[1]:
            raise ValueError(
                f"Control: {times.numel()} times but values has {values.shape[1]} time points "
                f"(shape {tuple(values.shape)}); they must match"
            )
        if times.numel() >= 2 and times[-1] < times[0]:
            raise ValueError("Control times must increase")
        check_finite("Control values", values.detach())
        self.times, self.values, self.interpolation = times, values, interpolation
        self._slopes = _hermite_slopes(times, values) if interpolation == "cubic" else None

    @property
    def batch(self) -> int:
        return self.values.shape[0]

    @property
    def dim(self) -> int:
        return self.values.shape[2]

    @property
    def discontinuous(self) -> bool:
        """Whether x itself jumps at the breakpoints (then a method's FSAL stage must be recomputed there)."""
        return self.interpolation == "zoh"

    def with_values(self, values: torch.Tensor) -> Control:
        """The same control with other values of the same shape (engines differentiate through this)."""
        new = object.__new__(Control)
        new.times, new.values, new.interpolation = self.times, values, self.interpolation
        new._slopes = _hermite_slopes(self.times, values) if self.interpolation == "cubic" else None
        return new

    def segment(self, t: torch.Tensor, left: bool = False) -> torch.Tensor:
        """Index k of the interval [times[k], times[k+1]) holding t (right-continuous), clamped to the ends.

        left=True takes (times[k], times[k+1]] instead: the segment a step *ending* at t, or a backward step
        starting at t, lies in.
        """
        k = torch.searchsorted(self.times, t.contiguous(), right=not left) - 1
        last = self.times.numel() - (1 if self.interpolation == "zoh" else 2)  # zoh: T-1 is "after the last sample"
        return k.clamp_(0, max(last, 0))

    @staticmethod
    def _rows(a: torch.Tensor, rows, P: int) -> torch.Tensor:
        """The per-point rows of `a` (batch, time, dim): a[rows], or a shared (batch 1) input expanded."""
        if a.shape[0] == 1:
            return a.expand(P, -1, -1)
        return a if rows is None else a[rows]

    def evaluate(
        self, t: torch.Tensor, segment: torch.Tensor | None = None, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x at times `t` (P,) for batch rows `rows` (P,) (default: all rows, P = batch) → (P, dim)."""
        seg = self.segment(t) if segment is None else segment
        v = self._rows(self.values, rows, t.shape[0])
        ar = torch.arange(v.shape[0], device=v.device)
        if self.interpolation == "zoh" or self.times.numel() == 1:
            return v[ar, seg] if self.times.numel() > 1 else v[:, 0]
        t0, t1 = self.times[seg], self.times[seg + 1]
        x0, x1 = v[ar, seg], v[ar, seg + 1]
        h = t1 - t0
        s = ((t - t0) / h).clamp(0, 1)[:, None]
        if self.interpolation == "linear":
            return x0 + s * (x1 - x0)
        m = self._rows(self._slopes, rows, t.shape[0])
        m0, m1 = m[ar, seg] * h[:, None], m[ar, seg + 1] * h[:, None]
        s2, s3 = s * s, s * s * s
        return (2 * s3 - 3 * s2 + 1) * x0 + (s3 - 2 * s2 + s) * m0 + (-2 * s3 + 3 * s2) * x1 + (s3 - s2) * m1


def _hermite_slopes(times: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    if times.numel() < 2:
        return torch.zeros_like(values)
    dt = times[:, None]
    d = torch.diff(values, dim=1) / torch.diff(dt, dim=0)
    if times.numel() == 2:
        return torch.cat([d, d], dim=1)
    central = (values[:, 2:] - values[:, :-2]) / (dt[2:] - dt[:-2])
    return torch.cat([d[:, :1], central, d[:, -1:]], dim=1)


@dataclass(frozen=True)
class ODEProblem:
    """du/dt = f(t, u) (or f(t, u, x(t)) with `inputs`), u(tspan[0]) = u0, for a batch of trajectories.

    f:      any torch callable or `nn.Module`, called row-wise: `f(t, u)` with t (B,), u (B, n) → (B, n)
            (`f(t, u, x)` with x (B, dim) when the problem has inputs). Rows must not interact: engines may
            call f on any subset or stacking of rows (B need not equal the batch size).
    u0:     (batch, n) initial states; the dtype and device of the solve follow it.
    tspan:  (t0, t1), the same for the whole batch; t1 < t0 integrates backwards.
    inputs: a `Control` (batch or 1, time, dim) for input-driven vector fields.
    params: the tensors that adjoint sensitivities differentiate (default: `f.parameters()` for a module).
    """

    f: Callable
    u0: torch.Tensor
    tspan: tuple[float, float]
    inputs: Control | None = None
    params: tuple[torch.Tensor, ...] = field(default=None)

    def __post_init__(self):
        if not callable(self.f):
            raise TypeError(f"ODEProblem: f must be callable (a function or nn.Module), got {type(self.f).__name__}")
        u0 = self.u0
        if not isinstance(u0, torch.Tensor):
            u0 = as_tensor("u0", u0)
        if not u0.is_floating_point():
            raise TypeError(
                f"ODEProblem: u0 must be a floating-point tensor, got {u0.dtype}; use u0.double() or u0.float()"
            )
        if u0.ndim != 2:
            raise ValueError(
                f"ODEProblem: u0 must be batched (batch, n), got shape {tuple(u0.shape)}"
                + ("; for one trajectory use u0[None]" if u0.ndim == 1 else "")
            )
        if u0.numel() == 0:
            raise ValueError(
                f"ODEProblem: u0 has shape {tuple(u0.shape)}, with no "
                f"{'trajectories' if u0.shape[0] == 0 else 'state components'}; it needs batch >= 1 "
                "and n >= 1"
            )
        check_finite("u0", u0.detach())
        t0, t1 = _tspan(self.tspan)
        if t0 == t1:
            raise ValueError(f"ODEProblem: tspan must have t0 != t1, got ({t0}, {t1})")
        if self.inputs is not None:
            if not isinstance(self.inputs, Control):
                raise TypeError(f"ODEProblem: inputs must be a gnode.Control, got {type(self.inputs).__name__}")
            check_same("inputs.values", self.inputs.values, u0)
            if self.inputs.batch not in (1, u0.shape[0]):
                raise ValueError(
                    f"ODEProblem: inputs have batch {self.inputs.batch} but u0 has batch "
                    f"{u0.shape[0]}; they must match (or inputs batch 1 to share one input)"
                )
        params = self.params
        if params is None:
            params = (
                tuple(p for p in self.f.parameters() if p.requires_grad) if isinstance(self.f, torch.nn.Module) else ()
            )
        else:
            params = tuple(params)
        object.__setattr__(self, "u0", u0)
        object.__setattr__(self, "tspan", (t0, t1))
        object.__setattr__(self, "params", params)

    @property
    def batch(self) -> int:
        return self.u0.shape[0]

    @property
    def n(self) -> int:
        return self.u0.shape[1]

    def rhs(self, t: torch.Tensor, u: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        return self.f(t, u) if self.inputs is None else self.f(t, u, x)

    def closure_tensors_requiring_grad(self) -> list[str]:
        """Names of tensors that f captures by closure and that require grad but are not in `params`.

        Adjoint methods can only differentiate `params`; such tensors would silently get no gradient.
        """
        if isinstance(self.f, torch.nn.Module) or not inspect.isfunction(self.f):
            return []
        known = {id(p) for p in self.params}
        names = []
        for name, cell in zip(self.f.__code__.co_freevars, self.f.__closure__ or ()):
            try:
                v = cell.cell_contents
            except ValueError:
                continue
            tensors = (
                [v]
                if isinstance(v, torch.Tensor)
                else ([p for p in v.parameters()] if isinstance(v, torch.nn.Module) else [])
            )
            if any(t.requires_grad and id(t) not in known for t in tensors):
                names.append(name)
        return names


def _tspan(tspan) -> tuple[float, float]:
    try:
        t0, t1 = (float(v) for v in tspan)
    except (TypeError, ValueError) as e:
        raise ValueError(f"ODEProblem: tspan must be a pair (t0, t1) of numbers, got {tspan!r}") from e
    if not (abs(t0) < float("inf") and abs(t1) < float("inf")):
        raise ValueError(f"ODEProblem: tspan must be finite, got ({t0}, {t1})")
    return t0, t1
