"""Continuous adjoints: `BacksolveAdjoint`, `InterpolatingAdjoint`, `QuadratureAdjoint`.

For L depending on u(s_k) at the saved times, the adjoint a(t) = dL/du(t) solves a' = -(∂f/∂u)^T a
backwards from t1 with jumps a += dL/du(s_k) at each s_k; then dL/du0 = a(t0) and
dL/dθ = ∫_{t0}^{t1} a^T ∂f/∂θ dt, with θ the problem's `params` and the input values.
Per trajectory adaptivity holds in the backward solve too. The θ integral is accumulated from the
accepted backward steps only: either with the method's own weights b_j at its stages (Backsolve,
Interpolating — as if θ were part of the adjoint state) or by Gauss–Legendre quadrature on the
adjoint's dense output (Quadrature, and methods without Runge–Kutta stages). Each is one batched
vector–Jacobian product over all stages.

What the backward pass needs of the forward solve is saved with `ctx.save_for_backward`, so autograd keeps it
while a graph is retained (`retain_graph=True`, `torch.autograd.grad` over several outputs, gradcheck) and frees
it otherwise. Each sensitivity algorithm is a `_Strategy`: what it saves and how it runs backwards.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from gnode.algorithms.sensealg import BacksolveAdjoint, InterpolatingAdjoint, QuadratureAdjoint
from gnode.engines.torch.forward import check, loop_config, make_solution, make_stepper, problem_stops, run_forward
from gnode.engines.torch.history import DenseHistory
from gnode.engines.torch.jacobian import finite_difference_time_derivative, jacobian, vjp
from gnode.engines.torch.loop import integrate
from gnode.engines.torch.rhs import AbstractRHS, ProblemRHS
from gnode.engines.torch.stepper import AbstractRKStages
from gnode.problem import ODEProblem
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution

_QUADRATURE_ROWS = 1 << 16  # rows per batched VJP in the quadrature (bounds its memory)
# BacksolveAdjoint warns when the state it reconstructs at t0 misses u0 by more than this many times the
# tolerance scale (abstol + reltol |u0|): far beyond what the backward solve's own error explains
_DRIFT_WARN = 1e3


def solve_adjoint(prob: ODEProblem, alg, sensealg, opts) -> ODESolution:
    leaked = prob.closure_tensors_requiring_grad()
    if leaked:
        raise ValueError(
            f"{sensealg.name}: f uses tensors that require grad but are not among the problem's params "
            f"({', '.join(leaked)}); an adjoint cannot see them and their gradient would silently be missing. "
            "Pass them as ODEProblem(..., params=[...]) or make f an nn.Module."
        )
    job = _AdjointJob(prob, alg, sensealg, opts)
    values = prob.inputs.values if prob.inputs is not None else prob.u0.new_zeros(0)
    u = _Adjoint.apply(job, prob.u0, values, *prob.params)
    sol = make_solution(prob, alg, opts, job.forward, u)
    if not job.strategy.keeps_history:
        sol.interp = None  # O(1)-memory methods keep no dense output
    job.forward = None  # what the backward pass needs is in the autograd context
    job.solution = sol
    return sol


class _AdjointJob:
    """What the autograd.Function needs between forward and backward besides tensors."""

    def __init__(self, prob, alg, sensealg, opts):
        self.prob, self.alg, self.sensealg, self.opts = prob, alg, sensealg, opts
        self.strategy = strategy_for(sensealg)
        self.forward = None  # the forward solve, until the solution is made
        self.retcodes = None
        self.t_final = None
        self.solution = None
        self.skeleton = None  # the dense history's structure (its tensors are saved in ctx)


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, job: _AdjointJob, u0, values, *params):
        prob, opts = job.prob, job.opts
        control = prob.inputs.with_values(values) if prob.inputs is not None else None
        fwd = run_forward(prob, job.alg, opts, y0=u0, control=control)
        u = fwd.dense.at_times(opts.saveat)
        job.forward, job.retcodes, job.t_final = fwd, fwd.result.retcodes, fwd.result.t
        job.control = fwd.rhs.control
        ctx.save_for_backward(*job.strategy.save(job, fwd))
        ctx.job = job
        return u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u):
        job = ctx.job
        saved = ctx.saved_tensors
        failed = job.retcodes != int(ReturnCode.Success)
        if failed.any():
            i = int(failed.nonzero()[0, 0])
            raise SolveError(
                ReturnCode(int(job.retcodes[i])),
                i,
                float(job.t_final[i]),
                "torch",
                job.alg.name,
                "cannot differentiate a failed forward solve",
            )
        grads = _Backward(job, grad_u).run(saved)
        return (None, *grads)


# -- the sensitivity algorithms ---------------------------------------------------------------------------------


class _Strategy:
    """What a sensitivity algorithm saves of the forward solve, and its backward solve(s)."""

    keeps_history = True

    def save(self, job: _AdjointJob, fwd) -> tuple:
        job.skeleton = fwd.dense.skeleton()
        return fwd.dense.tensors()

    def backward(self, bw: _Backward, a, saved):
        raise NotImplementedError


class _Interpolating(_Strategy):
    """u(t) from the forward solution's dense output."""

    def backward(self, bw, a, saved):
        t0, t1 = bw.prob.tspan
        return bw.interval(a, t1, t0, bw.job.skeleton.restore(saved))


class _Quadrature(_Interpolating):
    """Only the adjoint state backwards, then Gauss–Legendre quadrature of the parameter integral."""

    def backward(self, bw, a, saved):
        t0, t1 = bw.prob.tspan
        return bw.interval(a, t1, t0, bw.job.skeleton.restore(saved), quadrature=True)


class _Checkpointed(_Strategy):
    """The forward states at the saved times (the checkpoints); each interval is re-solved forward from its
    checkpoint when the backward pass reaches it."""

    keeps_history = False

    def save(self, job, fwd):
        times = _checkpoint_times(job.prob.tspan, job.opts.saveat)
        job.checkpoint_times = times
        return (fwd.dense.at_times(times),)

    def backward(self, bw, a, saved):
        (states,) = saved
        times = bw.job.checkpoint_times
        for j in range(times.numel() - 1, 0, -1):
            lo, hi = float(times[j - 1]), float(times[j])
            a = bw.interval(a, hi, lo, bw.resolve(states[:, j - 1], lo, hi))
            if j > 1:
                a = a + bw.jump_at(lo)
        return a


class _Backsolve(_Strategy):
    """u re-solved backwards with the adjoint, from u(t1) (or from each checkpoint, with checkpointing)."""

    keeps_history = False

    def __init__(self, checkpointing: bool):
        self.checkpointing = checkpointing

    def save(self, job, fwd):
        if self.checkpointing:
            times = _checkpoint_times(job.prob.tspan, job.opts.saveat)
            job.checkpoint_times = times
            return (fwd.dense.at_times(times),)
        job.checkpoint_times = None
        return (fwd.result.y,)

    def backward(self, bw, a, saved):
        (states,) = saved
        t0, t1 = bw.prob.tspan
        times = bw.job.checkpoint_times
        if times is None:
            a, u_start = bw.backsolve(a, t1, t0, states)
        else:
            u_start = None
            for j in range(times.numel() - 1, 0, -1):
                lo, hi = float(times[j - 1]), float(times[j])
                a, u_start = bw.backsolve(a, hi, lo, states[:, j])  # the state reset to the forward one
                if j > 1:
                    a = a + bw.jump_at(lo)
        bw.warn_if_drifted(u_start)
        return a


def strategy_for(sensealg) -> _Strategy:
    for kind, make in _STRATEGIES.items():
        if isinstance(sensealg, kind):
            return make(sensealg)
    raise ValueError(f"the torch engine has no continuous adjoint called {sensealg.name}()")


_STRATEGIES = {
    BacksolveAdjoint: lambda s: _Backsolve(s.checkpointing),
    InterpolatingAdjoint: lambda s: _Checkpointed() if s.checkpointing else _Interpolating(),
    QuadratureAdjoint: lambda s: _Quadrature(),
}


# -- the backward pass ------------------------------------------------------------------------------------------


class _Backward:
    """One backward pass: the adjoint solve(s) and the parameter integral."""

    def __init__(self, job: _AdjointJob, grad_u: torch.Tensor):
        self.job, self.prob, self.sensealg, self.opts = job, job.prob, job.sensealg, job.opts
        self.grad_u = grad_u.contiguous()
        self.alg = self.sensealg.alg or job.alg
        u0 = self.prob.u0
        self.B, self.n = u0.shape
        reltol = self.sensealg.reltol if self.sensealg.reltol is not None else self.opts.reltol
        abstol = self.sensealg.abstol if self.sensealg.abstol is not None else self.opts.abstol
        self.stepper = make_stepper(self.alg, u0.dtype, u0.device, reltol=reltol, abstol=abstol)
        self.cfg = loop_config(self.alg, self.opts, reltol, abstol)
        self.all_rows = torch.arange(self.B, device=u0.device)
        self.params = self.prob.params
        # the control twice: plain for the adjoint's own vector field, differentiable for dL/d(values)
        self.control = job.control
        self.values = None if self.control is None else self.control.values.detach().requires_grad_(True)
        self.grads = [torch.zeros_like(p) for p in self.params]
        self.grad_values = None if self.values is None else torch.zeros_like(self.values)
        self.stats = None

    def run(self, saved):
        t0, t1 = self.prob.tspan
        a = self.jump_at(t1)
        a = self.job.strategy.backward(self, a, saved)
        a = a + self.jump_at(t0)
        if self.job.solution is not None:
            self.job.solution.adjoint_stats = self.stats
        return (a, self.grad_values, *self.grads)

    def jump_at(self, t: float) -> torch.Tensor:
        """Σ_k dL/du(s_k) over the saved times equal to t (exactly), (B, n)."""
        hit = (self.opts.saveat == t).to(self.grad_u.dtype)
        return torch.einsum("k,bkn->bn", hit, self.grad_u)

    def _jump(self, t, a, landed, rows):
        """on_stop: add dL/du(s_k) where a trajectory lands on a saved time s_k inside the interval."""
        hit = (self.opts.saveat[None, :] == t[:, None]) & landed[:, None]
        g = self.grad_u if rows is None else self.grad_u[rows]
        return a + torch.einsum("bk,bkn->bn", hit.to(a.dtype), g)

    def _stops(self, lo, hi):
        parts = [self.opts.saveat]
        extra = problem_stops(self.opts, self.control)
        if extra is not None:
            parts.append(extra)
        s = torch.cat(parts)
        return s[(s > min(lo, hi)) & (s < max(lo, hi))]

    def _integrate(self, rhs, start, hi, lo, on_stop, on_step, record):
        res = integrate(
            self.stepper,
            rhs,
            start,
            hi,
            lo,
            self.cfg,
            self._stops(lo, hi),
            refresh_at_stops=self.control is not None and self.control.discontinuous,
            on_stop=on_stop,
            on_step=on_step,
            record=record,
        )
        self.stats = res.stats if self.stats is None else _add_stats(self.stats, res.stats)
        bad = res.retcodes != int(ReturnCode.Success)
        if bad.any():
            i = int(bad.nonzero()[0, 0])
            raise SolveError(
                ReturnCode(int(res.retcodes[i])),
                i,
                float(res.t[i]),
                "torch",
                self.alg.name,
                f"in the backward (adjoint) solve of {self.sensealg.name}",
            )
        return res

    # -- the solves -----------------------------------------------------------------------------------------

    def interval(self, a, hi, lo, dense: DenseHistory, quadrature: bool = False):
        """Adjoint from hi back to lo with u(t) from `dense`; accumulates the θ integral."""
        rhs = _AdjointRHS(self.prob.f, dense, self.control, 1.0 if lo > hi else -1.0)
        quadrature = quadrature or not isinstance(self.stepper, AbstractRKStages)  # Rosenbrock, Auto*

        def stage_terms(rec, rows):
            ts, Z, w = self._stage_weights(rec)
            r = self.all_rows if rows is None else rows
            ys = dense.at_rows(ts.reshape(-1), r.repeat_interleave(ts.shape[1]))
            self._param_vjp(ts.reshape(-1), ys, Z.reshape(-1, self.n), w.reshape(-1), rec.seg, rows, ts.shape[1])

        res = self._integrate(rhs, a, hi, lo, self._jump, None if quadrature else stage_terms, quadrature)
        if quadrature:
            adj = DenseHistory(self.stepper, rhs, res.records, a, hi, res.t, -1.0 if lo < hi else 1.0)
            self._gauss_legendre(adj, dense)
        return res.y

    def backsolve(self, a, hi, lo, u_hi):
        """[u, a] backwards from hi to lo, u starting at u_hi: (a(lo), the reconstructed u(lo))."""
        n = self.n
        z = torch.cat([u_hi.detach(), a], dim=1)
        rhs = _BacksolveRHS(self.prob.f, self.control, 1.0 if lo > hi else -1.0, n)
        quadrature = not isinstance(self.stepper, AbstractRKStages)

        def stage_terms(rec, rows):
            ts, Z, w = self._stage_weights(rec)
            self._param_vjp(
                ts.reshape(-1),
                Z[..., :n].reshape(-1, n),
                Z[..., n:].reshape(-1, n),
                w.reshape(-1),
                rec.seg,
                rows,
                ts.shape[1],
            )

        def jump(t, zz, landed, rows):
            return torch.cat([zz[:, :n], self._jump(t, zz[:, n:], landed, rows)], dim=1)

        res = self._integrate(rhs, z, hi, lo, jump, None if quadrature else stage_terms, quadrature)
        if quadrature:
            both = DenseHistory(self.stepper, rhs, res.records, z, hi, res.t, -1.0 if lo < hi else 1.0)
            self._gauss_legendre(_Columns(both, slice(n, None)), _Columns(both, slice(None, n)))
        return res.y[:, n:], res.y[:, :n]

    def warn_if_drifted(self, u_rec):
        """Warn when BacksolveAdjoint's reconstructed u(t0) is far from u0 (the sign its gradient is wrong)."""
        u0 = self.prob.u0.detach()
        scale = self.cfg.abstol + self.cfg.reltol * u0.abs()
        miss = ((u_rec - u0) / scale).square().mean(dim=-1).sqrt()
        worst = int(miss.argmax())
        if float(miss[worst]) > _DRIFT_WARN:
            rel = float((u_rec[worst] - u0[worst]).norm() / u0[worst].norm().clamp(min=self.cfg.abstol))
            warnings.warn(
                f"{self.sensealg.name}: the state reconstructed backwards to t0 misses u0 by {rel:.2g} (relative, "
                f"trajectory {worst}; {float(miss[worst]):.2g}x the tolerance), so the gradient is unreliable: the "
                "dynamics contract forwards and expand backwards. Use InterpolatingAdjoint() or "
                "BacksolveAdjoint(checkpointing=True).",
                RuntimeWarning,
                stacklevel=2,
            )

    def resolve(self, y_lo, lo, hi) -> DenseHistory:
        """Re-solve forward on [lo, hi] from a checkpoint, keeping the dense history (checkpointing)."""
        prob, alg = self.prob, self.job.alg
        stepper = make_stepper(alg, y_lo.dtype, y_lo.device, reltol=self.opts.reltol, abstol=self.opts.abstol)
        rhs = ProblemRHS(prob, self.control, 1.0 if hi > lo else -1.0)
        with torch.no_grad():
            res = integrate(
                stepper,
                rhs,
                y_lo,
                lo,
                hi,
                loop_config(alg, self.opts),
                self._stops(lo, hi),
                refresh_at_stops=self.control is not None and self.control.discontinuous,
            )
        check(
            ODESolution(
                t=res.t,
                u=res.y[:, None],
                retcodes=res.retcodes,
                stats=res.stats,
                alg=alg,
                engine="torch",
                t_final=res.t,
            ),
            alg,
        )
        return DenseHistory(stepper, rhs, res.records, y_lo, lo, res.t, 1.0 if hi > lo else -1.0)

    # -- the parameter integral -----------------------------------------------------------------------------

    def _stage_weights(self, rec):
        """Stage times (B, s'), adjoint-stage states (B, s', m) and quadrature weights (B, s') for the stages with
        b_j != 0 of the accepted steps; weight = -dt b_j (dt < 0 going back)."""
        st = self.stepper
        keep = (st.b != 0).nonzero()[:, 0]
        Z = st.stage_states(rec.y, rec.h, rec.dense[0])[:, keep]
        c = torch.tensor(st.c, dtype=rec.h.dtype, device=rec.h.device)[keep]
        ts = rec.t[:, None] + c[None, :] * rec.h[:, None]
        w = st.b[keep][None, :] * (-rec.h * rec.accept)[:, None]
        return ts, Z, w

    def _param_vjp(self, t, y, a, w, seg, rows, repeats):
        """Add Σ_p w_p a_p^T ∂f/∂θ (t_p, y_p) to the parameter (and input-value) gradients; the P = B·repeats
        points are row-major (each row's `repeats` points together)."""
        if not self.params and self.values is None:
            return
        r = (self.all_rows if rows is None else rows).repeat_interleave(repeats)
        seg_p = None if seg is None else seg.repeat_interleave(repeats)
        self._vjp(t, y, a * w[:, None], seg_p, r)

    def _vjp(self, t, y, cot, seg, rows):
        f = self.prob.f
        targets = list(self.params) + ([self.values] if self.values is not None else [])
        with torch.enable_grad():
            if self.values is None:
                out = f(t, y.detach())
            else:  # built afresh: a cubic control's slopes depend on the values too
                out = f(t, y.detach(), self.control.with_values(self.values).evaluate(t, seg, rows))
            gs = vjp(out, targets, cot)
        for acc, g in zip(self.grads, gs):
            acc.add_(g)
        if self.values is not None:
            self.grad_values.add_(gs[-1])

    def _gauss_legendre(self, adj, dense):
        """∫ a^T ∂f/∂θ dt over the backward steps, `order` Gauss–Legendre nodes per step."""
        if (not self.params and self.values is None) or adj.count.max() == 0:
            return
        # QuadratureAdjoint's own node count; elsewhere (a stiff adjoint method without RK stages) 5 nodes,
        # exact to degree 9: beyond the order of every interpolant the history can hold
        x, wq = np.polynomial.legendre.leggauss(getattr(self.sensealg, "order", 5))
        t0, dt, valid = adj.accepted_steps()  # (M, B)
        nodes = torch.tensor((x + 1) / 2, dtype=dt.dtype, device=dt.device)
        weights = torch.tensor(wq / 2, dtype=dt.dtype, device=dt.device)
        t0 = torch.where(valid, t0, t0[:1])  # padding ranks: a harmless time, weight 0
        dt = torch.where(valid, dt, torch.zeros_like(dt))
        Q = nodes.numel()
        chunk = max(1, _QUADRATURE_ROWS // (self.B * Q))
        for start in range(0, t0.shape[0], chunk):
            tq = t0[start : start + chunk, :, None] + nodes * dt[start : start + chunk, :, None]  # (m, B, Q)
            tq = tq.permute(1, 0, 2).reshape(self.B, -1)  # (B, m*Q)
            w = (weights * -dt[start : start + chunk, :, None]).permute(1, 0, 2).reshape(-1)
            a, y = adj.at(tq), dense.at(tq)  # (B, m*Q, n)
            t_flat = tq.reshape(-1)
            rows = self.all_rows[:, None].expand_as(tq).reshape(-1)
            seg = None if self.control is None else self.control.segment(t_flat, left=True)
            self._vjp(t_flat, y.reshape(-1, self.n), a.reshape(-1, self.n) * w[:, None], seg, rows)


# -- the adjoint systems ----------------------------------------------------------------------------------------


class _AdjointRHS(AbstractRHS):
    """a' = -(∂f/∂u)^T a with u(t) from a dense history; its Jacobian -J(u(t))^T (stiff adjoint methods).

    Its time derivative (Rosenbrock methods) is a finite difference: the system reads u(t) from a dense history,
    which forward-mode autodiff cannot see through."""

    def __init__(self, f, dense: DenseHistory, control, direction: float):
        self.f, self.dense, self.control, self.backward = f, dense, control, direction < 0

    def _u(self, t, rows):
        return self.dense.at(t) if rows is None else self.dense.at_rows(t, rows)

    def _x(self, t, seg, rows):
        return None if self.control is None else self.control.evaluate(t, seg, rows)

    def evaluate(self, t, a, seg=None, rows=None):
        y, x = self._u(t, rows), self._x(t, seg, rows)
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            out = self.f(t, y) if x is None else self.f(t, y, x)
            (g,) = vjp(out, [y], a)
        return -g

    def jacobian(self, t, a, seg=None, rows=None):
        with torch.no_grad():
            return -jacobian(self.f, t, self._u(t, rows), self._x(t, seg, rows)).transpose(-1, -2)

    def time_derivative(self, t, y, f0, dt, seg=None, rows=None):
        return finite_difference_time_derivative(lambda tt, yy: self.evaluate(tt, yy, seg, rows), t, y, f0, dt)


class _BacksolveRHS(AbstractRHS):
    """[u, a]' = [f(u), -(∂f/∂u)^T a]: u re-solved backwards together with the adjoint."""

    def __init__(self, f, control, direction: float, n: int):
        self.f, self.control, self.backward, self.n = f, control, direction < 0, n

    def _x(self, t, seg, rows):
        return None if self.control is None else self.control.evaluate(t, seg, rows)

    def evaluate(self, t, z, seg=None, rows=None):
        x = self._x(t, seg, rows)
        with torch.enable_grad():
            y = z[:, : self.n].detach().requires_grad_(True)
            out = self.f(t, y) if x is None else self.f(t, y, x)
            (g,) = vjp(out, [y], z[:, self.n :])
        return torch.cat([out.detach(), -g], dim=1)

    def _augmented(self, t, z, x=None):  # differentiable in z (for the stiff methods' Jacobian)
        y, a = z[:, : self.n], z[:, self.n :]
        out = self.f(t, y) if x is None else self.f(t, y, x)
        (g,) = vjp(out, [y], a, create_graph=True)
        return torch.cat([out, -g], dim=1)

    def jacobian(self, t, z, seg=None, rows=None):  # [[J, 0], [-∂(J^T a)/∂y, -J^T]], by autodiff of the system
        return jacobian(self._augmented, t, z.detach(), self._x(t, seg, rows)).detach()

    def time_derivative(self, t, y, f0, dt, seg=None, rows=None):
        return finite_difference_time_derivative(lambda tt, yy: self.evaluate(tt, yy, seg, rows), t, y, f0, dt)


class _Columns:
    """Some state columns of a dense history (Backsolve's [u, a] → u or a), for the Gauss–Legendre quadrature."""

    def __init__(self, history: DenseHistory, columns: slice):
        self.history, self.columns, self.count = history, columns, history.count

    def at(self, t):
        return self.history.at(t)[..., self.columns]

    def accepted_steps(self):
        return self.history.accepted_steps()


def _checkpoint_times(tspan, saveat):
    t0, t1 = tspan
    ends = torch.tensor([t0, t1], dtype=saveat.dtype, device=saveat.device)
    times = torch.unique(torch.cat([ends, saveat]))
    times = times[(times >= min(t0, t1)) & (times <= max(t0, t1))]
    return times if t1 > t0 else times.flip(0)


def _add_stats(a, b):
    return type(a)(**{k: v + getattr(b, k) for k, v in a.as_dict().items()})
