"""The per-trajectory integration loop.

Every trajectory has its own t, dt, accept/reject, stop pointer, return code and counters: all are (batch,)
tensors merged with `torch.where`, so one stiff trajectory never forces small steps on the others.

One attempted step is a pure function of tensors, `Attempt.__call__(carry, rows) -> (carry, record, events)`:
propose h (land on the next stop), step, measure the error, accept or reject, control the next dt, detect
failures, add up the step's counters. The host loop (`integrate`) calls it, keeps the records the dense output
needs, and handles what is rare: trajectories that stop, jumps at stops (the adjoint's cotangent kicks, a
zero-order-hold input's discontinuity), and compaction. With `compile=True` the attempt is one compiled graph
(`compiled.py`); without, the same function runs eagerly. The host syncs once per step, on a 3-number status.

Compaction: trajectories that have stopped leave the working batch once at most half of it is still running, so
the cost of a step follows the number of trajectories still running. `rows` holds the global indices of the
working batch (None while it is the whole batch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from gnode.algorithms.controllers import AbstractController
from gnode.engines.torch.initdt import initial_dt
from gnode.engines.torch.rhs import AbstractRHS
from gnode.engines.torch.stepper import STAT_INDEX, AbstractStepper
from gnode.retcode import ReturnCode
from gnode.solution import STAT_NAMES, SolveStats

_NF, _NNONLINITER = STAT_INDEX["nf"], STAT_INDEX["nnonliniter"]
_SUCCESS, _DTMIN, _UNSTABLE, _MAXITERS = (
    int(ReturnCode.Success),
    int(ReturnCode.DtLessThanMin),
    int(ReturnCode.Unstable),
    int(ReturnCode.MaxIters),
)


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs of the solve's options; `controller` already resolved for the method's order."""

    adaptive: bool
    reltol: float
    abstol: float
    dt: float | None
    dtmin: float | None
    dtmax: float | None
    maxiters: int
    controller: AbstractController | None = None
    order: int = 1
    compact: bool = True


class Carry(NamedTuple):
    """The working batch's state between attempts; every field has the working batch first."""

    t: torch.Tensor
    y: torch.Tensor
    dt: torch.Tensor  # signed size of the next attempt
    f0: torch.Tensor  # f(t, y)
    ctrl: object  # the controller's state
    state: object  # the stepper's state
    running: torch.Tensor
    stop_idx: torch.Tensor
    counts: torch.Tensor  # (batch, C) long, STAT_NAMES order
    naccept: torch.Tensor


class Record(NamedTuple):
    """One attempt as the dense output and the adjoints see it (batch-first)."""

    t: torch.Tensor
    h: torch.Tensor
    y: torch.Tensor
    dense: tuple
    accept: torch.Tensor
    seg: torch.Tensor | None


class Events(NamedTuple):
    stopping: torch.Tensor  # rows that stop after this attempt (finished or failed)
    code: torch.Tensor  # their return codes
    jumped: torch.Tensor  # rows that landed on a stop other than the last
    status: torch.Tensor  # (3,) long: [rows still running, any stopping, any jumped]


class Attempt:
    """One attempted step of the working batch: a pure function of tensors (so it can be compiled)."""

    def __init__(
        self, stepper: AbstractStepper, rhs: AbstractRHS, cfg: LoopConfig, stops: torch.Tensor, direction: float
    ):
        self.stepper, self.rhs, self.cfg, self.stops, self.d = stepper, rhs, cfg, stops, direction
        # tolerances as tensors: inputs of a compiled graph, not constants baked into it (one graph serves all)
        self.reltol = torch.tensor(cfg.reltol, dtype=stops.dtype, device=stops.device)
        self.abstol = torch.tensor(cfg.abstol, dtype=stops.dtype, device=stops.device)
        self.eps = torch.finfo(stops.dtype).eps
        self.dtmax = cfg.dtmax if cfg.dtmax is not None else float("inf")
        self.dtmin = cfg.dtmin if cfg.dtmin is not None else 0.0
        self.batch_norm = cfg.adaptive and cfg.controller.norm == "batch"

    def __call__(self, c: Carry, rows):
        stepper = self.stepper
        n_stops = self.stops.shape[0]  # from the tensor (a compiled graph guards its shape, not a Python int)
        h, land, next_stop = self._propose(c, n_stops)
        seg = self.rhs.segment(c.t)
        res = stepper.step(self.rhs.local(seg, rows), c.state, c.t, c.y, h, c.f0)
        eest, accept, finite = self._accept(c, res)
        landed = accept & land
        t = torch.where(accept, torch.where(land, next_stop, c.t + h), c.t)
        y = torch.where(accept[:, None], res.y1, c.y)
        if stepper.fsal:
            f0 = torch.where(accept[:, None], res.f1, c.f0)
        else:  # the next attempt's first stage, evaluated at the end of this one (a batched call, kept where accepted)
            f0 = torch.where(accept[:, None], self.rhs.local(self.rhs.segment(t), rows)(t, y), c.f0)
        dt, ctrl, failed, fail_code = self._control(c, res, h, t, eest, accept, landed, finite)
        # land on stops, stop, and add up the counters
        stop_idx = c.stop_idx + landed
        done = landed & (stop_idx >= n_stops)
        stopping = c.running & (done | failed)
        running = c.running & ~stopping
        counts = c.counts + res.counts * c.running[:, None]
        if not stepper.fsal:
            counts[:, _NF] += c.running
        jumped = landed & ~done
        status = torch.stack([running.sum(), stopping.any().long(), jumped.any().long()])
        carry = Carry(
            t, y, dt, f0, ctrl, stepper.accepted(res.state, accept), running, stop_idx, counts, c.naccept + accept
        )
        events = Events(stopping, torch.where(done, _SUCCESS, fail_code), jumped, status)
        return carry, Record(c.t, h, c.y, res.dense, accept, seg), events

    def _propose(self, c: Carry, n_stops: int):
        """The planned step, cut short to land on the next stop; 0 for rows that have stopped."""
        next_stop = self.stops[c.stop_idx.clamp(max=n_stops - 1)]
        remaining = next_stop - c.t
        land = self.d * c.dt >= self.d * remaining
        h = torch.where(c.running, torch.where(land, remaining, c.dt), torch.zeros_like(c.dt))
        return h, land, next_stop

    def _accept(self, c: Carry, res):
        """(error estimate, accept, finite): the weighted RMS norm of the step's error estimate (per trajectory, or
        over the batch), +inf where the step went non-finite. Step sizes are constants for the gradient
        (differentiating the controller is neither meaningful nor stable), hence the detached tensors."""
        y1 = res.y1.detach()
        finite = torch.isfinite(y1.sum(dim=-1))  # one reduction: any NaN or Inf shows in the sum
        if not self.cfg.adaptive:
            return None, c.running & finite, finite
        scale = torch.maximum(c.y.detach().abs(), y1.abs()) * self.reltol + self.abstol
        msq = (res.err.detach() / scale).square().mean(dim=-1)
        if self.batch_norm:  # one RMS over every running trajectory's components
            msq = torch.where(c.running, msq, 0).sum() / c.running.sum().clamp(min=1)
            msq = msq.expand(c.t.shape)
        eest = torch.where(finite & torch.isfinite(msq), msq.sqrt(), torch.full_like(msq, float("inf")))
        return eest, c.running & (eest <= 1), finite

    def _control(self, c: Carry, res, h, t, eest, accept, landed, finite):
        """(next signed dt, controller state, failed, failure code)."""
        if not self.cfg.adaptive:
            return c.dt, c.ctrl, c.running & ~finite, torch.full_like(c.stop_idx, _UNSTABLE)
        iters = res.counts[..., _NNONLINITER]  # the step's Newton iterations (the predictive controller's)
        h_next, ctrl = self.cfg.controller.propose(h.abs(), eest, c.ctrl, accept, iters)
        # a step cut short to land on a stop says little about the next: keep the planned size
        h_next = torch.where(landed, torch.maximum(h_next, c.dt.abs()), h_next).clamp(max=self.dtmax)
        dt = torch.where(c.running, self.d * h_next, c.dt)
        failed = c.running & (h_next < (16 * self.eps * t.abs()).clamp(min=self.dtmin))
        # driven down by NaN/Inf rather than by accuracy: the state blew up (SciML's Unstable)
        return dt, ctrl, failed, torch.where(finite, _DTMIN, _UNSTABLE)


@dataclass
class LoopResult:
    y: torch.Tensor  # (B, n) state where each trajectory stopped
    t: torch.Tensor  # (B,)
    retcodes: torch.Tensor  # (B,)
    stats: SolveStats
    records: list  # per attempt: (Record, rows) with rows the global indices of its batch (None: all)


class _Outcome:
    """Full-batch results of the trajectories that have left the working batch."""

    def __init__(self, y0: torch.Tensor):
        B = y0.shape[0]
        self.y, self.t = y0, None
        self.retcodes = torch.full((B,), int(ReturnCode.Default), dtype=torch.long, device=y0.device)
        self.nsteps = torch.zeros(B, dtype=torch.long, device=y0.device)
        self.counts = torch.zeros(B, len(STAT_NAMES), dtype=torch.long, device=y0.device)
        self.naccept = torch.zeros(B, dtype=torch.long, device=y0.device)

    def write(self, c: Carry, code, nsteps, rows, which):
        """Store the rows `which` (indices into the working batch) of trajectories `rows`."""
        if rows is None and which is None:  # the whole batch at once
            self.y, self.t, self.retcodes, self.nsteps = c.y, c.t, code, nsteps
            self.counts, self.naccept = c.counts, c.naccept
            return
        g = which if rows is None else rows[which]
        self.y = self.y.index_copy(0, g, c.y[which])
        self.t = (torch.zeros_like(self.retcodes, dtype=c.t.dtype) if self.t is None else self.t).index_copy(
            0, g, c.t[which]
        )
        self.retcodes = self.retcodes.index_copy(0, g, code[which])
        self.nsteps = self.nsteps.index_copy(0, g, nsteps[which])
        self.counts = self.counts.index_copy(0, g, c.counts[which])
        self.naccept = self.naccept.index_copy(0, g, c.naccept[which])

    def stats(self) -> SolveStats:
        cols = {name: self.counts[:, i] for i, name in enumerate(STAT_NAMES)}
        cols["naccept"] = self.naccept
        cols["nreject"] = self.nsteps - self.naccept
        return SolveStats(**cols)


def integrate(
    stepper: AbstractStepper,
    rhs: AbstractRHS,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    cfg: LoopConfig,
    stops: torch.Tensor | None = None,
    *,
    refresh_at_stops: bool = False,
    on_stop: Callable | None = None,
    on_step: Callable | None = None,
    record: bool = True,
    compiled=None,
) -> LoopResult:
    """Integrate from t0 to t1, landing exactly on `stops` (any order; those strictly inside the span count).

    on_stop(t, y, landed (B,) bool, rows) → y: a jump applied where a trajectory lands on a stop (the adjoint's
    cotangent kicks). After a jump, or at a discontinuity of the inputs (`refresh_at_stops`), f(t, y) is evaluated
    afresh. on_step(record, rows): called after every attempt (the adjoints' parameter quadrature).
    compiled: a `compiled.CompiledAttempts` (solve(..., compile=True)), or None for the eager attempt.
    """
    B = y0.shape[0]
    dtype, device = y0.dtype, y0.device
    d = 1.0 if t1 > t0 else -1.0
    if rhs.backward != (d < 0):
        raise RuntimeError("internal: the RHS's direction does not match the integration direction")
    end = torch.tensor([t1], dtype=dtype, device=device)
    stops = end if stops is None or stops.numel() == 0 else torch.cat([_inside(stops, t0, t1), end])
    dtmax = cfg.dtmax if cfg.dtmax is not None else float("inf")

    t = torch.full((B,), float(t0), dtype=dtype, device=device)
    seg = rhs.segment(t)
    f0 = rhs.first(t, y0, seg)
    nf_start = 1
    if not cfg.adaptive:
        dt = torch.full((B,), d * cfg.dt, dtype=dtype, device=device)
    elif cfg.dt is not None:
        dt = torch.full((B,), d * min(cfg.dt, dtmax), dtype=dtype, device=device)
    else:
        dt = d * initial_dt(
            rhs, t, y0.detach(), f0.detach(), cfg.order, cfg.reltol, cfg.abstol, d, abs(t1 - t0), dtmax, seg
        )
        nf_start += 1
        if cfg.controller.norm == "batch":  # one step size for the whole batch: the most cautious row's
            dt = d * dt.abs().min().expand(B).clone()
    counts = torch.zeros(B, len(STAT_NAMES), dtype=torch.long, device=device)
    counts[:, _NF] = nf_start
    carry = Carry(
        t,
        y0,
        dt,
        f0,
        cfg.controller.init(t) if cfg.adaptive else None,
        stepper.init(rhs.local(seg, None), t, y0, f0),
        torch.ones(B, dtype=torch.bool, device=device),
        torch.zeros(B, dtype=torch.long, device=device),
        counts,
        torch.zeros(B, dtype=torch.long, device=device),
    )

    attempt = Attempt(stepper, rhs, cfg, stops, d)
    run = attempt if compiled is None else compiled.bind(attempt)
    out = _Outcome(y0)
    code = torch.full((B,), int(ReturnCode.Default), dtype=torch.long, device=device)
    nsteps = torch.zeros(B, dtype=torch.long, device=device)
    # compiled: rows always a tensor, and never fewer than 2 (dynamo specialises sizes 0 and 1), so that the
    # full batch and every compacted size share two graphs (see `compiled.py`)
    rows, min_rows = (None, 1) if compiled is None else (torch.arange(B, device=device), 2)
    records = []
    it = 0
    while True:
        carry, rec, ev = run(carry, rows)
        it += 1
        if record:
            records.append((rec, rows))
        if on_step is not None:
            on_step(rec, rows)
        n_running, any_stopping, any_jumped = ev.status.tolist()
        out_of_iters = it >= cfg.maxiters and n_running > 0
        if any_stopping or out_of_iters:  # rare: some trajectory stops here
            code = torch.where(ev.stopping, ev.code, code)
            nsteps = torch.where(ev.stopping, it, nsteps)
            if out_of_iters:
                code = torch.where(carry.running, _MAXITERS, code)
                nsteps = torch.where(carry.running, it, nsteps)
                carry = carry._replace(running=torch.zeros_like(carry.running))
                n_running = 0
        # a jump moves y; a discontinuous input changes f at the stop: the FSAL stage no longer holds (a non-FSAL
        # method's f0 was evaluated at the end of the attempt, on the new side of the stop, and holds)
        if any_jumped and (on_stop is not None or (refresh_at_stops and stepper.fsal)):
            carry = _jump(carry, ev.jumped, rhs, rows, on_stop)
        if n_running == 0:
            break
        size = carry.t.shape[0]
        if cfg.compact and n_running <= size // 2 and size > min_rows:
            carry, code, nsteps, rows = _compact(carry, code, nsteps, rows, out, min_rows)
    out.write(carry, code, nsteps, rows, None if rows is None else torch.arange(rows.numel(), device=device))
    return LoopResult(y=out.y, t=out.t, retcodes=out.retcodes, stats=out.stats(), records=records)


def _jump(carry: Carry, jumped, rhs, rows, on_stop) -> Carry:
    """Apply the jumps at stops and re-evaluate f(t, y) on the rows that landed on one."""
    y = carry.y
    if on_stop is not None:
        y = on_stop(carry.t, y, jumped, rows)
    f_new = rhs.local(rhs.segment(carry.t), rows)(carry.t, y)
    counts = carry.counts.clone()
    counts[:, _NF] += jumped
    return carry._replace(y=y, f0=torch.where(jumped[:, None], f_new, carry.f0), counts=counts)


def _compact(carry: Carry, code, nsteps, rows, out: _Outcome, min_rows: int):
    """Write out the stopped rows and keep the running ones (and stopped ones, stepping by 0, up to min_rows)."""
    running = carry.running
    stopped = (~running).nonzero()[:, 0]
    keep = running.nonzero()[:, 0]
    if keep.numel() < min_rows:
        keep = torch.cat([keep, stopped[: min_rows - keep.numel()]])
    out.write(carry, code, nsteps, rows, stopped)
    select = _selector(keep)
    carry = Carry(*(select(v) for v in carry))
    return carry, code[keep], nsteps[keep], (keep if rows is None else rows[keep])


def _selector(idx):
    def select(v):
        if v is None:
            return None
        if isinstance(v, torch.Tensor):
            return v[idx]
        parts = [select(x) for x in v]  # tuples and named tuples (stepper and controller states)
        return type(v)(*parts) if hasattr(v, "_fields") else type(v)(parts)

    return select


def _inside(stops: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
    """The stops strictly between t0 and t1, sorted in the direction of integration, without repeats."""
    lo, hi = min(t0, t1), max(t0, t1)
    s = torch.unique(stops[(stops > lo) & (stops < hi)])
    return s if t1 > t0 else s.flip(0)
