"""Automatic stiffness switching, per trajectory: an explicit stepper and a stiff one behind one step.

Each trajectory carries a mode (explicit or stiff) and a signed count of consecutive stiffness verdicts
(OrdinaryDiffEq.jl's AutoSwitch, see `gnode.algorithms.auto`). A step runs the explicit method on the
trajectories in explicit mode and the stiff method on the others (each on its own rows, so neither pays for
the other). At the start of a step, the verdict on the previous one counts where the loop accepted it, and a
trajectory switches once its count says so.

dense = (body, stiff): body (batch, S, n) holds the explicit method's stages on explicit rows and the stiff
interpolant's monomial coefficients (zero-padded) on stiff rows; stiff (batch,) says which. Selecting rows is a
host decision, so this stepper runs eagerly.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from gnode.algorithms.auto import AbstractAutoSwitch
from gnode.engines.torch.explicit import ExplicitRK
from gnode.engines.torch.rosenbrock import AbstractStiffStepper
from gnode.engines.torch.stepper import STAT_INDEX, AbstractLazyDense, AbstractStepper, StepResult, combine, powers
from gnode.solution import STAT_NAMES


class SwitchState(NamedTuple):
    """Per trajectory: the mode (True: stiff), the signed count of consecutive verdicts, the last step's
    stiffness verdict and whether the loop accepted that step, and the stiff method's own state."""

    stiff: torch.Tensor
    count: torch.Tensor
    verdict: torch.Tensor
    last_accept: torch.Tensor
    inner: object


class AutoSwitchStepper(AbstractStepper):
    def __init__(self, alg: AbstractAutoSwitch, nonstiff: ExplicitRK, stiff: AbstractStiffStepper):
        self.alg, self.nonstiff, self.stiff = alg, nonstiff, stiff
        self.fsal = nonstiff.fsal
        self.order = nonstiff.order
        self.error_order = alg.error_order
        self.body = nonstiff.stages
        self.n_extra = getattr(nonstiff, "n_extra", 0)
        c = nonstiff.c
        if len(c) < 2 or c[-1] != 1 or c[-2] != 1:
            raise ValueError(
                f"{alg.name}: the stiffness estimate needs the explicit method's last two stages at "
                f"c = 1, which {alg.nonstiff.name} does not have"
            )
        degree = stiff.dense.shape[1]
        if degree > self.body:
            raise ValueError(
                f"{alg.name}: the interpolant of {alg.stiffalg.name} (degree {degree}) does not fit "
                f"in the {self.body} stages of {alg.nonstiff.name}"
            )

    def init(self, rhs, t, y, f0):
        B = t.shape[0]
        stiff = torch.full((B,), bool(self.alg.stiffalgfirst), dtype=torch.bool, device=t.device)
        count = torch.zeros(B, dtype=torch.long, device=t.device)
        return SwitchState(
            stiff, count, torch.zeros_like(stiff), torch.zeros_like(stiff), self.stiff.init(rhs, t, y, f0)
        )

    def step(self, rhs, state: SwitchState, t, y, h, f0):
        B, n = y.shape
        running = h != 0
        state, switched = self._switch(state)
        y1, err = torch.zeros_like(y), torch.zeros_like(y)
        body = y.new_zeros(B, self.body, n)
        f1 = torch.zeros_like(y)
        rho = torch.zeros_like(t)
        counts = torch.zeros(B, len(STAT_NAMES), dtype=torch.long, device=y.device)
        inner = state.inner
        explicit_rows = (~state.stiff & running).nonzero()[:, 0]
        stiff_rows = (state.stiff & running).nonzero()[:, 0]
        if explicit_rows.numel():
            r = explicit_rows
            res, rho_e = self._explicit(rhs.subset(r), t[r], y[r], h[r], f0[r])
            y1, err = y1.index_copy(0, r, res.y1), err.index_copy(0, r, res.err)
            if self.fsal:
                f1 = f1.index_copy(0, r, res.f1)
            body, rho = body.index_copy(0, r, res.dense[0]), rho.index_copy(0, r, rho_e)
            counts = counts.index_copy(0, r, res.counts.expand(r.numel(), -1))
        if stiff_rows.numel():
            r = stiff_rows
            sub = _select(inner, r)
            res, rho_s = self.stiff.step_stiffness(rhs.subset(r), sub, t[r], y[r], h[r], f0[r])
            f1_s = res.f1
            step_counts = res.counts.expand(r.numel(), -1)
            if self.fsal and f1_s is None:  # a stiff method without FSAL: the explicit one needs f(t1, y1)
                f1_s = rhs.subset(r)(t[r] + h[r], res.y1)
                step_counts = step_counts.clone()
                step_counts[:, STAT_INDEX["nf"]] += 1
            P = self.stiff.power_coefficients(h[r], res.dense)
            P = torch.cat([P, P.new_zeros(r.numel(), self.body - P.shape[1], n)], dim=1)
            y1, err = y1.index_copy(0, r, res.y1), err.index_copy(0, r, res.err)
            if self.fsal:
                f1 = f1.index_copy(0, r, f1_s)
            body, rho = body.index_copy(0, r, P), rho.index_copy(0, r, rho_s)
            counts = counts.index_copy(0, r, step_counts)
            inner = _scatter(inner, r, res.state)
        counts[:, STAT_INDEX["nstiffswitch"]] += switched & running
        with torch.no_grad():
            tol = torch.where(state.stiff, self.alg.stifftol, self.alg.nonstifftol)
            verdict = rho * h.abs() > self.alg.stability_size * tol
        f1 = f1 if self.fsal else None
        return StepResult(y1, err, (body, state.stiff), f1, state._replace(verdict=verdict, inner=inner), counts)

    def accepted(self, state: SwitchState, accept):
        return state._replace(last_accept=accept)

    def _switch(self, state: SwitchState):
        """Count the previous step's verdict where it was accepted; switch where the count says so."""
        alg, accept = self.alg, state.last_accept
        with torch.no_grad():
            up = torch.where(state.count < 0, torch.ones_like(state.count), state.count + 1)
            down = torch.where(state.count > 0, -torch.ones_like(state.count), state.count - 1)
            count = torch.where(accept, torch.where(state.verdict, up, down), state.count)
            to_stiff = accept & ~state.stiff & (count > alg.maxstiffstep)
            to_explicit = accept & state.stiff & (count < -alg.maxnonstiffstep)
            switched = to_stiff | to_explicit
        return state._replace(stiff=state.stiff ^ switched, count=count, last_accept=torch.zeros_like(accept)), switched

    def _explicit(self, rhs, t, y, h, f0):
        ns = self.nonstiff
        res = ns.step(rhs, None, t, y, h, f0)
        # Hairer's estimate from the last two stages (both at t1), in the max norm of the componentwise ratios
        # max_i |f_i(g_s) - f_i(g_{s-1})| / |g_s,i - g_{s-1},i| as OrdinaryDiffEq.jl: the Euclidean ratio is a
        # lower bound that measured ~15% low on Robertson, which kept a stability-limited Tsit5 from switching.
        s = ns.stages
        with torch.no_grad():
            K = res.dense[0].transpose(0, 1)  # (s, batch, n)
            dg = h[:, None] * combine(ns.a[s - 1] - _pad(ns.a[s - 2], s - 1), None, K, False)  # g_s - g_{s-1}
            dk = (K[s - 1] - K[s - 2]).abs()
            ratio = torch.where(dg != 0, dk / dg.abs().clamp(min=torch.finfo(dg.dtype).tiny), torch.zeros_like(dk))
            rho = ratio.amax(dim=-1)
        return res, rho

    def interpolate(self, y0, h, dense, theta):
        body, stiff = dense
        explicit = self.nonstiff.interpolate(y0, h, (body,), theta)
        degree = self.stiff.dense.shape[1]
        implicit = y0 + torch.einsum("pm,pmn->pn", powers(theta, degree), body[:, :degree])
        return torch.where(stiff[:, None], implicit, explicit)


class LazyAutoSwitchStepper(AutoSwitchStepper, AbstractLazyDense):
    """AutoSwitch over an explicit method with a lazy interpolant (AutoVern7)."""

    def extra_stages(self, rhs, t, y, h, dense):
        """The explicit interpolant's lazy stages (Vern7), evaluated only at points on explicit steps."""
        body, stiff = dense
        extras = body.new_zeros(body.shape[0], self.n_extra, body.shape[2])
        idx = (~stiff).nonzero()[:, 0]
        if idx.numel():
            (K,), _ = self.nonstiff.extra_stages(rhs.subset(idx), t[idx], y[idx], h[idx], (body[idx],))
            extras = extras.index_copy(0, idx, K[:, self.body :])
        return (torch.cat([body, extras], dim=1), stiff), (~stiff).long() * self.n_extra


def _pad(v, size):
    return torch.cat([v, v.new_zeros(size - v.shape[0])])


def _select(state, idx):
    if state is None:
        return None
    return type(state)(*(v[idx] for v in state))


def _scatter(state, idx, part):
    if state is None:
        return None
    return type(state)(*(v.index_copy(0, idx, p) for v, p in zip(state, part)))
