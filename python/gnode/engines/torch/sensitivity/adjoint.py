"""Continuous adjoints: `BacksolveAdjoint`, `InterpolatingAdjoint`, `QuadratureAdjoint`.

For L depending on u(s_k) at the saved times, the adjoint a(t) = dL/du(t) solves a' = -(∂f/∂u)^T a
backwards from t1 with jumps a += dL/du(s_k) at each s_k; then dL/du0 = a(t0) and
dL/dθ = ∫_{t0}^{t1} a^T ∂f/∂θ dt, with θ the problem's `params` and the input values.
Per trajectory adaptivity holds in the backward solve too. The θ integral is accumulated from the
accepted backward steps only: either with the method's own weights b_j at its stages (Backsolve,
Interpolating — as if θ were part of the adjoint state) or by Gauss–Legendre quadrature on the
adjoint's dense output (Quadrature). Each is one batched vector–Jacobian product over all stages.
"""

from __future__ import annotations

import numpy as np
import torch

from gnode.algorithms.sensealg import BacksolveAdjoint, InterpolatingAdjoint, QuadratureAdjoint
from gnode.engines.torch.dense import DenseHistory
from gnode.engines.torch.jacobian import finite_difference_time_derivative, jacobian
from gnode.engines.torch.loop import RHS, integrate
from gnode.engines.torch.forward import check, loop_config, make_solution, make_stepper, problem_stops, run_forward
from gnode.problem import ODEProblem
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution

_QUADRATURE_ROWS = 1 << 16  # rows per batched VJP in the quadrature (bounds its memory)


def solve_adjoint(prob: ODEProblem, alg, sensealg, opts) -> ODESolution:
    leaked = prob.closure_tensors_requiring_grad()
    if leaked:
        raise ValueError(
            f"{sensealg.name}: f uses tensors that require grad but are not among the problem's params "
            f"({', '.join(leaked)}); an adjoint cannot see them and their gradient would silently be missing. "
            "Pass them as ODEProblem(..., params=[...]) or make f an nn.Module.")
    job = _AdjointJob(prob, alg, sensealg, opts)
    values = prob.inputs.values if prob.inputs is not None else prob.u0.new_zeros(0)
    u = _Adjoint.apply(job, prob.u0, values, *prob.params)
    sol = make_solution(prob, alg, opts, job.forward, u)
    if job.drop_history:
        sol.interp = None  # O(1)-memory methods keep no dense output
    job.solution = sol
    return sol


class _AdjointJob:
    """What the autograd.Function needs between forward and backward (not tensors, so not in ctx)."""

    def __init__(self, prob, alg, sensealg, opts):
        self.prob, self.alg, self.sensealg, self.opts = prob, alg, sensealg, opts
        self.drop_history = isinstance(sensealg, BacksolveAdjoint) or (
            isinstance(sensealg, InterpolatingAdjoint) and sensealg.checkpointing)
        self.forward = None
        self.solution = None
        self.checkpoints = None


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, job: _AdjointJob, u0, values, *params):
        prob, opts = job.prob, job.opts
        control = prob.inputs.with_values(values) if prob.inputs is not None else None
        fwd = run_forward(prob, job.alg, opts, y0=u0, control=control)
        u = fwd.dense.at_times(opts.saveat)
        if isinstance(job.sensealg, InterpolatingAdjoint) and job.sensealg.checkpointing:
            times = _checkpoint_times(prob.tspan, opts.saveat)
            job.checkpoints = (times, fwd.dense.at_times(times))
        job.forward = fwd
        ctx.job = job
        return u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u):
        job = ctx.job
        fwd = job.forward
        check_forward = fwd.result.retcodes != int(ReturnCode.Success)
        if check_forward.any():
            i = int(check_forward.nonzero()[0, 0])
            raise SolveError(ReturnCode(int(fwd.result.retcodes[i])), i, float(fwd.result.t[i]), "torch",
                             job.alg.name, "cannot differentiate a failed forward solve")
        grads = _Backward(job, grad_u).run()
        if job.drop_history:
            job.forward = None  # release the history as soon as the gradient is out
        return (None, *grads)


class _Backward:
    """One backward pass: the adjoint solve(s) and the parameter integral."""

    def __init__(self, job: _AdjointJob, grad_u: torch.Tensor):
        self.job, self.prob, self.sensealg, self.opts = job, job.prob, job.sensealg, job.opts
        self.grad_u = grad_u.contiguous()
        self.alg = self.sensealg.alg or job.alg
        u0 = self.prob.u0
        self.B, self.n = u0.shape
        self.stepper = make_stepper(self.alg, u0.dtype, u0.device)
        self.cfg = loop_config(self.alg, self.opts, self.sensealg.reltol, self.sensealg.abstol)
        self.rows = torch.arange(self.B, device=u0.device)
        self.params = self.prob.params
        # the control twice: plain for the adjoint's own vector field, differentiable for dL/d(values)
        self.control = job.forward.rhs.control
        self.values = None if self.control is None else self.control.values.detach().requires_grad_(True)
        self.grads = [torch.zeros_like(p) for p in self.params]
        self.grad_values = None if self.values is None else torch.zeros_like(self.values)
        self.stats = None

    # -- the driver ---------------------------------------------------------------------------------

    def run(self):
        t0, t1 = self.prob.tspan
        a = self._jump_at(t1)
        if isinstance(self.sensealg, BacksolveAdjoint):
            a = self._backsolve(a, t1, t0)
        elif isinstance(self.sensealg, QuadratureAdjoint):
            a = self._interval(a, t1, t0, self.job.forward.dense, quadrature=True)
        elif self.job.checkpoints is not None:
            times, states = self.job.checkpoints
            for j in range(times.numel() - 1, 0, -1):
                lo, hi = float(times[j - 1]), float(times[j])
                dense = self._resolve(states[:, j - 1], lo, hi)
                a = self._interval(a, hi, lo, dense)
                if j > 1:
                    a = a + self._jump_at(lo)
        else:
            a = self._interval(a, t1, t0, self.job.forward.dense)
        a = a + self._jump_at(t0)
        if self.job.solution is not None:
            self.job.solution.adjoint_stats = self.stats
        return (a, self.grad_values, *self.grads)

    def _jump_at(self, t: float) -> torch.Tensor:
        """Σ_k dL/du(s_k) over the saved times equal to t (exactly), (B, n)."""
        hit = (self.opts.saveat == t).to(self.grad_u.dtype)
        return torch.einsum("k,bkn->bn", hit, self.grad_u)

    def _jump(self, t, a, landed):
        """on_stop: add dL/du(s_k) where a trajectory lands on a saved time s_k inside the interval."""
        hit = (self.opts.saveat[None, :] == t[:, None]) & landed[:, None]
        return a + torch.einsum("bk,bkn->bn", hit.to(a.dtype), self.grad_u)

    def _stops(self, lo, hi):
        parts = [self.opts.saveat]
        extra = problem_stops(self.opts, self.control)
        if extra is not None:
            parts.append(extra)
        s = torch.cat(parts)
        return s[(s > min(lo, hi)) & (s < max(lo, hi))]

    def _record_stats(self, res):
        self.stats = res.stats if self.stats is None else _add_stats(self.stats, res.stats)
        bad = res.retcodes != int(ReturnCode.Success)
        if bad.any():
            i = int(bad.nonzero()[0, 0])
            raise SolveError(ReturnCode(int(res.retcodes[i])), i, float(res.t[i]), "torch", self.alg.name,
                             f"in the backward (adjoint) solve of {self.sensealg.name}")

    # -- the adjoint's vector fields ----------------------------------------------------------------

    def _adjoint_rhs(self, dense: DenseHistory, direction: float):
        f = self.prob.f

        def rhs(t, a, seg=None, rows=None):
            y = dense.at(t) if rows is None else dense.at_rows(t, rows)
            x = None if self.control is None else self.control.evaluate(t, seg, rows)
            with torch.enable_grad():
                y = y.detach().requires_grad_(True)
                out = f(t, y) if x is None else f(t, y, x)
                (g,) = torch.autograd.grad(out, y, a)
            return -g

        def jac(t, a, seg=None, rows=None):  # the adjoint is linear in a: its Jacobian is -J(y(t))^T
            y = dense.at(t) if rows is None else dense.at_rows(t, rows)
            x = None if self.control is None else self.control.evaluate(t, seg, rows)
            with torch.no_grad():
                return -jacobian(f, t, y, x).transpose(-1, -2)

        return _FunctionRHS(rhs, self.control, direction, jac)

    def _backsolve_rhs(self, direction: float):
        f, n = self.prob.f, self.n

        def rhs(t, z, seg=None, rows=None):
            x = None if self.control is None else self.control.evaluate(t, seg, rows)
            with torch.enable_grad():
                y = z[:, :n].detach().requires_grad_(True)
                out = f(t, y) if x is None else f(t, y, x)
                (g,) = torch.autograd.grad(out, y, z[:, n:])
            return torch.cat([out.detach(), -g], dim=1)

        def augmented(t, z, x=None):  # differentiable in z (for the stiff methods' Jacobian)
            y, a = z[:, :n], z[:, n:]
            out = f(t, y) if x is None else f(t, y, x)
            (g,) = torch.autograd.grad(out, y, a, create_graph=True)
            return torch.cat([out, -g], dim=1)

        def jac(t, z, seg=None, rows=None):  # [[J, 0], [-∂(J^T a)/∂y, -J^T]], by autodiff of the system
            x = None if self.control is None else self.control.evaluate(t, seg, rows)
            return jacobian(augmented, t, z.detach(), x).detach()

        return _FunctionRHS(rhs, self.control, direction, jac)

    # -- the solves ---------------------------------------------------------------------------------

    def _interval(self, a, hi, lo, dense: DenseHistory, quadrature: bool = False):
        """Adjoint from hi back to lo with u(t) from `dense`; accumulates the θ integral."""
        rhs = self._adjoint_rhs(dense, 1.0 if lo > hi else -1.0)
        quadrature = quadrature or not hasattr(self.stepper, "stage_states")  # Rosenbrock, Auto*: no RK stages

        def stage_states(t, dt, z, K, accept, seg):
            ts, Z, w = self._stage_weights(t, dt, z, K, accept)
            ys = dense.at(ts.T).transpose(0, 1)  # (s', B, n)
            self._param_vjp(ts.reshape(-1), ys.reshape(-1, self.n), Z.reshape(-1, self.n), w.reshape(-1), seg, ts.shape[0])

        res = integrate(self.stepper, rhs, a, hi, lo, self.cfg, self._stops(lo, hi),
                        refresh_at_stops=self.control is not None and self.control.discontinuous,
                        on_stop=self._jump, on_step=None if quadrature else stage_states, record=quadrature)
        self._record_stats(res)
        if quadrature:
            adj = DenseHistory(self.stepper, rhs, res.steps, a, hi, res.t, -1.0 if lo < hi else 1.0)
            self._gauss_legendre(adj, dense)
        return res.y

    def _backsolve(self, a, hi, lo):
        n = self.n
        z = torch.cat([self.job.forward.result.y.detach(), a], dim=1)
        rhs = self._backsolve_rhs(1.0 if lo > hi else -1.0)

        def stage_states(t, dt, zz, K, accept, seg):
            ts, Z, w = self._stage_weights(t, dt, zz, K, accept)
            s = ts.shape[0]
            self._param_vjp(ts.reshape(-1), Z[..., :n].reshape(-1, n), Z[..., n:].reshape(-1, n), w.reshape(-1), seg, s)

        def jump(t, zz, landed):
            return torch.cat([zz[:, :n], self._jump(t, zz[:, n:], landed)], dim=1)

        quadrature = not hasattr(self.stepper, "stage_states")  # Rosenbrock, Auto*: no RK stages
        res = integrate(self.stepper, rhs, z, hi, lo, self.cfg, self._stops(lo, hi),
                        refresh_at_stops=self.control is not None and self.control.discontinuous,
                        on_stop=jump, on_step=None if quadrature else stage_states, record=quadrature)
        self._record_stats(res)
        if quadrature:
            both = DenseHistory(self.stepper, rhs, res.steps, z, hi, res.t, -1.0 if lo < hi else 1.0)
            self._gauss_legendre(_Columns(both, slice(n, None)), _Columns(both, slice(None, n)))
        return res.y[:, n:]

    def _resolve(self, y_lo, lo, hi) -> DenseHistory:
        """Re-solve forward on [lo, hi] from a checkpoint, keeping the dense history (checkpointing)."""
        prob = self.prob
        stepper = make_stepper(self.job.alg, y_lo.dtype, y_lo.device)
        rhs = RHS(prob, self.control, 1.0 if hi > lo else -1.0)
        with torch.no_grad():
            res = integrate(stepper, rhs, y_lo, lo, hi, loop_config(self.job.alg, self.opts), self._stops(lo, hi),
                            refresh_at_stops=self.control is not None and self.control.discontinuous)
        check(_as_solution(res, self.job.alg), self.job.alg)
        return DenseHistory(stepper, rhs, res.steps, y_lo, lo, res.t, 1.0 if hi > lo else -1.0)

    # -- the parameter integral ---------------------------------------------------------------------

    def _stage_weights(self, t, dt, z, K, accept):
        """Stage times (s', B), adjoint-stage states (s', B, m) and quadrature weights (s', B) for the
        stages with b_j != 0 of the accepted steps; weight = -dt b_j (dt < 0 going back)."""
        st = self.stepper
        keep = (st.b != 0).nonzero()[:, 0]
        Z = st.stage_states(z, dt, K)[keep]
        c = torch.tensor(st.c, dtype=dt.dtype, device=dt.device)[keep]
        ts = t[None, :] + c[:, None] * dt[None, :]
        w = st.b[keep][:, None] * (-dt * accept)[None, :]
        return ts, Z, w

    def _param_vjp(self, t, y, a, w, seg, repeats):
        """Add Σ_p w_p a_p^T ∂f/∂θ (t_p, y_p) to the parameter (and input-value) gradients."""
        if not self.params and self.values is None:
            return
        rows = self.rows.repeat(repeats) if repeats else None
        seg_p = None if seg is None else seg.repeat(repeats)
        self._vjp(t, y, a * w[:, None], seg_p, rows)

    def _vjp(self, t, y, cot, seg, rows):
        f = self.prob.f
        targets = list(self.params) + ([self.values] if self.values is not None else [])
        with torch.enable_grad():
            if self.values is None:
                out = f(t, y.detach())
            else:  # built afresh: a cubic control's slopes depend on the values too
                out = f(t, y.detach(), self.control.with_values(self.values).evaluate(t, seg, rows))
            gs = torch.autograd.grad(out, targets, cot, allow_unused=True)
        for acc, g in zip(self.grads, gs):
            if g is not None:
                acc.add_(g)
        if self.values is not None and gs[-1] is not None:
            self.grad_values.add_(gs[-1])

    def _gauss_legendre(self, adj: DenseHistory, dense: DenseHistory):
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
            tq = t0[start:start + chunk, :, None] + nodes * dt[start:start + chunk, :, None]  # (m, B, Q)
            tq = tq.permute(1, 0, 2).reshape(self.B, -1)  # (B, m*Q)
            w = (weights * -dt[start:start + chunk, :, None]).permute(1, 0, 2).reshape(-1)
            a, y = adj.at(tq), dense.at(tq)  # (B, m*Q, n)
            t_flat = tq.reshape(-1)
            rows = self.rows[:, None].expand_as(tq).reshape(-1)
            seg = None if self.control is None else self.control.segment(t_flat, left=True)
            self._vjp(t_flat, y.reshape(-1, self.n), a.reshape(-1, self.n) * w[:, None], seg, rows)


class _FunctionRHS(RHS):
    """An RHS from a plain function (the adjoint systems; backwards in time when the forward solve is not).

    jac(t, y, seg, rows) → (B, m, m): the system's Jacobian, for stiff adjoint methods. Its time derivative
    (Rosenbrock methods) is a finite difference: the system reads u(t) from a dense history, which forward-mode
    autodiff cannot see through."""

    def __init__(self, fn, control, direction: float, jac=None):
        self.fn, self.control, self.backward, self.jac = fn, control, direction < 0, jac

    def __call__(self, t, y, seg=None, rows=None):
        return self.fn(t, y, seg, rows)

    def first(self, t, y, seg=None):
        return self.fn(t, y, seg, None)

    def jacobian(self, t, y, seg=None, rows=None):
        return self.jac(t, y, seg, rows)

    def time_derivative(self, t, y, f0, dt, seg=None, rows=None):
        return finite_difference_time_derivative(lambda tt, yy: self(tt, yy, seg, rows), t, y, f0, dt)


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


def _as_solution(res, alg):
    return ODESolution(t=res.t, u=res.y[:, None], retcodes=res.retcodes, stats=res.stats, alg=alg,
                       engine="torch", t_final=res.t)
