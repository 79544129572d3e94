"""The per-trajectory integration loop: every trajectory has its own t, dt, accept/reject, stop pointer,
return code and counters; all are (batch,) tensors merged with `torch.where`, so one stiff trajectory
never forces small steps on the others. The only host sync per step is "is anything still running?".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from gnode.engines.torch.controller import PIController
from gnode.engines.torch.initdt import initial_dt
from gnode.engines.torch.jacobian import jacobian, time_derivative
from gnode.retcode import ReturnCode
from gnode.solution import SolveStats


class RHS:
    """f with the control folded in: rhs(t, y, seg, rows) = f(t, y, x(t)) with x from the step's segment.

    Steps never straddle a breakpoint of the control; `segment(t)` names the one a step starting at t (in
    the direction of integration) lies in, so that a zero-order hold is evaluated on the right side.
    """

    def __init__(self, prob, control=None, direction: float = 1.0):
        self.f, self.control = prob.f, prob.inputs if control is None else control
        self.backward = direction < 0

    def segment(self, t):
        return None if self.control is None else self.control.segment(t, left=self.backward)

    def __call__(self, t, y, seg=None, rows=None):
        if self.control is None:
            return self.f(t, y)
        return self.f(t, y, self.control.evaluate(t, seg, rows))

    def first(self, t, y, seg=None):
        """The first evaluation, checked: f must return a tensor like u (same shape, dtype and device)."""
        signature = "f(t, u)" if self.control is None else "f(t, u, x)"
        try:
            out = self(t, y, seg)
        except TypeError as e:
            if self.control is not None and "positional argument" in str(e):
                raise TypeError(f"the problem has inputs, so f is called as f(t, u, x) with x (batch, dim) "
                                f"= x(t); make f accept x ({e})") from e
            raise
        name = getattr(self.f, "__qualname__", type(self.f).__name__)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{signature} ({name}) must return a tensor, got {type(out).__name__}")
        if out.shape != y.shape:
            raise ValueError(f"{signature} ({name}) returned shape {tuple(out.shape)} for u of shape "
                             f"{tuple(y.shape)}; it must return du/dt with u's shape (batch, n), row by row")
        if out.dtype != y.dtype or out.device != y.device:
            raise TypeError(f"{signature} ({name}) returned {out.dtype} on {out.device} for u in {y.dtype} on "
                            f"{y.device}; return du/dt in u's dtype and device (e.g. cast its parameters with "
                            f"module.to(u0.dtype))")
        return out

    def jacobian(self, t, y, seg=None, rows=None):
        """∂f/∂y row-wise (B, n, n), for the stiff methods: f's own `jacobian` if it has one, else autodiff."""
        x = None if self.control is None else self.control.evaluate(t, seg, rows)
        return jacobian(self.f, t, y, x)

    def time_derivative(self, t, y, f0, dt, seg=None, rows=None):
        """∂f/∂t row-wise (B, n) at (t, y), where f0 = f(t, y) and dt (B,) is the step (see `jacobian.py`)."""
        return time_derivative(lambda tt, yy: self(tt, yy, seg, rows), t, y, f0, dt)


@dataclass(frozen=True)
class LoopConfig:
    adaptive: bool
    reltol: float
    abstol: float
    dt: float | None
    dtmin: float | None
    dtmax: float | None
    maxiters: int
    controller: PIController | None = None
    order: int = 1


@dataclass
class LoopResult:
    y: torch.Tensor  # (B, n) state where each trajectory stopped
    t: torch.Tensor  # (B,)
    retcodes: torch.Tensor  # (B,)
    stats: SolveStats
    steps: list = field(default_factory=list)  # per iteration: (t0, dt, y0, K, accepted, seg)


def integrate(stepper, rhs: RHS, y0: torch.Tensor, t0: float, t1: float, cfg: LoopConfig,
              stops: torch.Tensor | None = None, *, refresh_at_stops: bool = False,
              on_stop: Callable | None = None, on_step: Callable | None = None,
              record: bool = True) -> LoopResult:
    """Integrate from t0 to t1, landing exactly on `stops` (sorted in the direction of integration).

    on_stop(t, y, landed (B,) bool) → y: a jump applied where a trajectory lands on a stop
    (the adjoint's cotangent kicks). After a jump, or at a discontinuity of the inputs
    (`refresh_at_stops`), the FSAL derivative is recomputed.
    on_step(t, dt, y, K, accepted, seg): called after every step's accept/reject decision (the adjoints'
    parameter quadrature).
    """
    B = y0.shape[0]
    dtype, device = y0.dtype, y0.device
    if hasattr(stepper, "session"):  # per-solve state (Jacobian reuse, stiffness switching) and tolerances
        stepper = stepper.session(cfg, B)
    d = 1.0 if t1 > t0 else -1.0
    if rhs.backward != (d < 0):
        raise RuntimeError("internal: the RHS's direction does not match the integration direction")
    eps = torch.finfo(dtype).eps
    span = abs(t1 - t0)
    end = torch.tensor([t1], dtype=dtype, device=device)
    stops = end if stops is None or stops.numel() == 0 else torch.cat([_inside(stops, t0, t1), end])
    n_stops = stops.numel()
    dtmax = cfg.dtmax if cfg.dtmax is not None else float("inf")
    dtmin_user = cfg.dtmin if cfg.dtmin is not None else 0.0

    stats = SolveStats.zeros(B, device)
    retcodes = torch.full((B,), int(ReturnCode.Default), dtype=torch.long, device=device)
    running = torch.ones(B, dtype=torch.bool, device=device)
    nsteps = torch.zeros(B, dtype=torch.long, device=device)  # set when a trajectory stops
    stop_idx = torch.zeros(B, dtype=torch.long, device=device)
    t = torch.full((B,), float(t0), dtype=dtype, device=device)
    y = y0
    seg = rhs.segment(t)
    k1 = rhs.first(t, y, seg)
    nf_start = 1
    if not cfg.adaptive:
        dt = torch.full((B,), d * cfg.dt, dtype=dtype, device=device)
    elif cfg.dt is not None:
        dt = torch.full((B,), d * min(cfg.dt, dtmax), dtype=dtype, device=device)
    else:
        dt = d * initial_dt(rhs, t, y.detach(), k1.detach(), cfg.order, cfg.reltol, cfg.abstol, d, span, dtmax, seg)
        nf_start += 1
    qold = torch.full((B,), cfg.controller.qoldinit if cfg.controller else 1.0, dtype=dtype, device=device)
    inv_sqrt_n = y0.shape[1] ** -0.5
    steps = []

    it = 0
    while it < cfg.maxiters and bool(running.any()):
        with torch.no_grad():
            next_stop = stops[stop_idx.clamp(max=n_stops - 1)]
            remaining = next_stop - t
            land = d * dt >= d * remaining
            dt_step = torch.where(running, torch.where(land, remaining, dt), torch.zeros_like(dt))
        seg = rhs.segment(t)
        if not stepper.fsal and it > 0:
            k1 = rhs(t, y, seg)
        y1, err, K, counters = stepper.step(rhs, t, y, dt_step, k1, seg)
        with torch.no_grad():
            for name, count in counters.items():
                getattr(stats, name).add_(count * running)
            finite = torch.isfinite(y1.sum(dim=-1))  # one reduction: any NaN or Inf shows in the sum
            if cfg.adaptive:
                scale = torch.maximum(y.abs(), y1.abs()).mul_(cfg.reltol).add_(cfg.abstol)
                eest = torch.linalg.vector_norm(err / scale, dim=-1).mul_(inv_sqrt_n)  # RMS norm
                eest = torch.where(finite, eest, torch.full_like(eest, float("inf")))
                accept = running & (eest <= 1)
            else:
                accept = running & finite
            landed = accept & land
            t_new = torch.where(accept, torch.where(land, next_stop, t + dt_step), t)
        if record:
            steps.append((t, dt_step, y, K, accept, seg))
        if on_step is not None:
            on_step(t, dt_step, y, K, accept, seg)
        y = torch.where(accept[:, None], y1, y)
        if stepper.fsal:
            k1 = torch.where(accept[:, None], K[-1], k1)
        with torch.no_grad():
            stop_idx = stop_idx + landed
            stats.naccept += accept
            if cfg.adaptive:
                dt_next, qold = cfg.controller.propose(dt_step.abs(), eest, qold, accept)
                # a step cut short to land on a stop says little about the next: keep the planned size
                dt_next = torch.where(landed, torch.maximum(dt_next, dt.abs()), dt_next).clamp_(max=dtmax)
                dt = torch.where(running, d * dt_next, dt)
                failed = running & (dt_next < torch.clamp(16 * eps * t_new.abs(), min=dtmin_user))
                # driven down by NaN/Inf rather than by accuracy: the state blew up (SciML's Unstable)
                fail_code = torch.where(finite, int(ReturnCode.DtLessThanMin), int(ReturnCode.Unstable))
            else:
                failed = running & ~finite
                fail_code = int(ReturnCode.Unstable)
            t = t_new
            done = landed & (stop_idx >= n_stops)
            it += 1
            out_of_iters = it >= cfg.maxiters
            if out_of_iters or bool((done | failed).any()):  # rare: some trajectory stops here
                code = torch.where(done, int(ReturnCode.Success), fail_code)
                if out_of_iters:
                    code = torch.where(done | failed, code, int(ReturnCode.MaxIters))
                    failed = running & ~done
                stopping = running & (done | failed)
                retcodes = torch.where(stopping, code, retcodes)
                nsteps = torch.where(stopping, it, nsteps)
                running = running & ~stopping
        jumped = landed & ~done  # the end point is the caller's business, not a stop's
        if on_stop is not None and bool(jumped.any()):
            y = on_stop(t, y, jumped)
        if (refresh_at_stops or on_stop is not None) and stepper.fsal and bool(jumped.any()):
            k1 = torch.where(jumped[:, None], rhs(t, y, rhs.segment(t)), k1)
            stats.nf += jumped
    # per-trajectory counts from the step count: every running trajectory steps in every iteration
    new_evals = stepper.stages - (1 if stepper.fsal else 0)
    stats.nreject += nsteps - stats.naccept
    stats.nf += nf_start + torch.where(nsteps > 0, (stepper.stages - 1) + (nsteps - 1) * new_evals, 0)
    return LoopResult(y=y, t=t, retcodes=retcodes, stats=stats, steps=steps)


def _inside(stops: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
    """The stops strictly between t0 and t1, sorted in the direction of integration, without repeats."""
    lo, hi = min(t0, t1), max(t0, t1)
    s = torch.unique(stops[(stops > lo) & (stops < hi)])
    return s if t1 > t0 else s.flip(0)
