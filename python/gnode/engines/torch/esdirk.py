"""One generic ESDIRK step that walks any `ESDIRKTableau`, with a simplified Newton iteration per stage.

Per step and trajectory: W = I - γ dt J is factorised once (`linalg.py`) and shared by every implicit stage and
Newton iteration (`newton.py`). J is computed at the step's start when the trajectory asks for a new one — at
its first step, after a step whose Newton iterations contracted slower than `fast_rate`, or when a stage failed
with a Jacobian from an earlier step, in which case the step is redone at once with a fresh J — and reused
across steps otherwise. A stage that still fails (diverges, or is out of iterations) rejects that trajectory's
step (`err = inf`; the loop then shrinks its dt), counted in `nnonlinconvfail`.

The error estimate is dt Σ b_error_i F_i, filtered through W^-1 where the algorithm's `smooth_est` asks
(Shampine's smoothing, as OrdinaryDiffEq.jl's option; `gnode.algorithms.esdirk` says when and why). K holds the
stage derivatives F_i (F_0 = f(t0, y0),
F_i = z_i / dt), so the adjoints can use the method's own weights at its stages (`stage_states`, `b`, `c`).
"""

from __future__ import annotations

import torch

from gnode.algorithms.tableaus.esdirk import ESDIRKTableau
from gnode.engines.torch.linalg import factorize_w
from gnode.engines.torch.newton import NewtonOptions, solve_stage


class ESDIRKStepper:
    """An ESDIRK tableau cast to the solve's dtype/device. The loop opens a `session` per solve (the Newton
    tolerances and the Jacobian kept between steps live there); the dense output and the adjoints' stage
    quadrature use the stepper itself."""

    def __init__(self, tableau: ESDIRKTableau, dtype: torch.dtype, device: torch.device, kappa=0.01, max_iter=10,
                 fast_rate=0.05, smooth_est=False):
        def vec(xs):
            return torch.tensor([float(x) for x in xs], dtype=dtype, device=device)

        self.tableau = tableau
        self.stages = tableau.stages
        self.fsal = True  # stiffly accurate: F_s = f(t1, y1)
        self.gamma = float(tableau.gamma)
        self.c = [float(x) for x in tableau.c]
        self.a = [vec(row) for row in tableau.a]  # a[i] has i + 1 entries (incl. the diagonal)
        self.b = vec(tableau.b)
        self.b_error = vec(tableau.b_error)
        self.c_dense = []
        self.newton = (float(kappa), int(max_iter), float(fast_rate))
        self.smooth_est = bool(smooth_est)
        s = self.stages
        # cubic Hermite on (y0, F_0, y1 = y0 + dt Σ b_i F_i, F_{s-1}) in the monomial basis, per stage:
        # y(θ) = y0 + dt Σ_i F_i (θ e0_i + θ² (3 b_i - 2 e0_i - e1_i) + θ³ (-2 b_i + e0_i + e1_i))
        e0 = torch.zeros(s, dtype=dtype, device=device)
        e0[0] = 1
        e1 = torch.zeros(s, dtype=dtype, device=device)
        e1[-1] = 1
        self.dense = torch.stack([e0, 3 * self.b - 2 * e0 - e1, -2 * self.b + e0 + e1], dim=1)  # (s, 3)

    def session(self, cfg, batch: int) -> ESDIRKSession:
        kappa, max_iter, fast_rate = self.newton
        return ESDIRKSession(self, NewtonOptions(kappa, max_iter, fast_rate, cfg.reltol, cfg.abstol), batch)

    @staticmethod
    def combine(weights: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        s = weights.shape[0]
        return (weights @ K[:s].reshape(s, -1)).reshape(K.shape[1:])

    def stage_states(self, y, dt, K):
        """Z_i = y0 + dt Σ_{j<=i} a_ij F_j, rebuilt from K: (s, B, n)."""
        dtc = dt[:, None]
        return torch.stack([y] + [torch.addcmul(y, dtc, self.combine(self.a[i], K)) for i in range(1, self.stages)])

    def interpolate(self, y0, dt, K, theta):
        """The cubic Hermite interpolant at P points: y0 (P, n), dt, θ (P,), K (s, P, n)."""
        return y0 + torch.einsum("pm,mpn->pn", _powers(theta, 3), self.power_coefficients(dt, K))

    def power_coefficients(self, dt, K):
        """P (3, B, n) with y(θ) = y0 + Σ_m θ^(m+1) P_m."""
        return dt[None, :, None] * torch.einsum("sm,sbn->mbn", self.dense, K[: self.stages])


class ESDIRKSession:
    """One solve's Newton options and per-trajectory Jacobian cache (J, where it was computed, whether the next
    step wants a new one)."""

    def __init__(self, stepper: ESDIRKStepper, opts: NewtonOptions, batch: int):
        self.stepper, self.opts, self.batch = stepper, opts, batch
        for name in ("stages", "fsal", "c", "b", "c_dense", "stage_states", "interpolate", "power_coefficients"):
            setattr(self, name, getattr(stepper, name))
        self.J = None  # (batch, n, n)
        self.J_t = None  # (batch,) time at which each row's J was computed
        self.want_new = None  # (batch,) bool
        self.theta = None  # (batch,) last contraction rate, the first iteration's guess

    def step(self, rhs, t, y, dt, k1, seg):
        y1, err, K, counters, _ = self.step_info(rhs, t, y, dt, k1, seg)
        return y1, err, K, counters

    def step_info(self, rhs, t, y, dt, k1, seg, rows=None):
        """The step for the trajectories `rows` (indices into this session's batch; None: all of them)."""
        B = y.shape[0]
        if self.J is None:
            n = y.shape[1]
            self.J = torch.zeros(self.batch, n, n, dtype=y.dtype, device=y.device)
            self.J_t = torch.full((self.batch,), float("nan"), dtype=y.dtype, device=y.device)
            self.want_new = torch.ones(self.batch, dtype=torch.bool, device=y.device)
            self.theta = torch.ones(self.batch, dtype=y.dtype, device=y.device)
        sel = (lambda v: v) if rows is None else (lambda v: v[rows])
        running = dt != 0
        njacs = self._refresh_jacobian(rhs, t, y, seg, rows, sel(self.want_new) & running)
        # the first iteration's rate guess: the last measured one, inflated towards 1 at every step (Hairer &
        # Wanner's FACCON^0.8) so that a rate measured once cannot vouch for one-iteration solves forever
        theta0 = sel(self.theta).clamp(min=torch.finfo(y.dtype).eps).pow(0.8)
        out = self._attempt(rhs, t, y, dt, k1, seg, sel(self.J), theta0, running)
        y1, err, K, failed, iters, rate = out
        # a failure with a Jacobian from an earlier step: retry those rows now with a fresh one
        stale = failed & (sel(self.J_t) != t)
        if bool(stale.any()):
            njacs = njacs + self._refresh_jacobian(rhs, t, y, seg, rows, stale)
            y1b, errb, Kb, failedb, itersb, rateb = self._attempt(rhs, t, y, dt, k1, seg, sel(self.J),
                                                                  torch.ones_like(theta0), stale)
            y1 = torch.where(stale[:, None], y1b, y1)
            err = torch.where(stale[:, None], errb, err)
            K = torch.where(stale[None, :, None], Kb, K)
            failed = torch.where(stale, failedb, failed)
            rate = torch.where(stale, rateb, rate)
            iters = iters + itersb
        with torch.no_grad():
            want_new = failed | (rate > self.opts.fast_rate)
            theta = torch.where(failed, torch.ones_like(rate), rate.clamp(max=1.0))
            if rows is None:
                self.want_new = torch.where(running, want_new, self.want_new)
                self.theta = torch.where(running, theta, self.theta)
            else:
                self.want_new[rows] = torch.where(running, want_new, self.want_new[rows])
                self.theta[rows] = torch.where(running, theta, self.theta[rows])
        st = self.stepper
        one = torch.ones(B, dtype=torch.long, device=y.device)
        # one f evaluation per Newton iteration; the loop already counts stages - 1 per step
        smoothing = (one + stale) if st.smooth_est else 0  # the filtered error estimate's solve, per attempt
        counters = {"nf": iters - (st.stages - 1), "njacs": njacs, "nw": one + (stale & running),
                    "nsolve": iters + smoothing, "nnonliniter": iters, "nnonlinconvfail": failed.long()}
        stiffness = sel(self.J).detach().abs().sum(dim=-1).amax(dim=-1)
        return y1, err, K, counters, stiffness

    def _refresh_jacobian(self, rhs, t, y, seg, rows, need):
        """Recompute J (at this step's start) for the rows in `need`; returns the per-row count (B,) long."""
        if not bool(need.any()):
            return torch.zeros_like(need, dtype=torch.long)
        if bool(need.all()):
            J = rhs.jacobian(t, y, seg)
            J_t = t
        else:
            idx = need.nonzero()[:, 0]
            Jn = rhs.jacobian(t[idx], y[idx], None if seg is None else seg[idx], idx)
            J = (self.J if rows is None else self.J[rows]).index_copy(0, idx, Jn)
            J_t = (self.J_t if rows is None else self.J_t[rows]).index_copy(0, idx, t[idx])
        if rows is None:
            self.J, self.J_t = J, J_t.detach().clone()
        else:
            self.J = self.J.index_copy(0, rows, J)
            self.J_t = self.J_t.index_copy(0, rows, J_t.detach())
        return need.long()

    def _attempt(self, rhs, t, y, dt, k1, seg, J, theta, active):
        """All stages with a given J: (y1, err, K, failed, Newton iterations, slowest rate)."""
        st, opts = self.stepper, self.opts
        gamma = st.gamma
        W = factorize_w(J, gamma * dt)
        safe_dt = torch.where(dt == 0, torch.ones_like(dt), dt)[:, None]
        dtc = dt[:, None]
        Z = (dtc * k1)[None]  # stage increments z_j = dt F_j
        failed = active & ~W.ok
        going = active & W.ok
        iters = torch.zeros_like(dt, dtype=torch.long)
        rate = torch.zeros_like(dt)
        for i in range(1, st.stages):
            base = y + st.combine(st.a[i][:i], Z)
            ti = t + st.c[i] * dt

            def f_stage(u, ti=ti):
                return rhs(ti, u, seg)

            sol = solve_stage(f_stage, base, gamma, Z[-1], dt, W, y, opts, theta, going)
            Z = torch.cat([Z, sol.z[None]])
            iters = iters + sol.iterations
            rate = torch.maximum(rate, sol.rate)
            theta = torch.where(going, sol.rate, theta)
            failed = failed | sol.failed
            going = going & ~sol.failed
        y1 = y + st.combine(st.b, Z)
        err = st.combine(st.b_error, Z)
        if st.smooth_est:
            err = W.solve(err)
        err = torch.where(failed[:, None], torch.full_like(err, float("inf")), err)
        K = Z / safe_dt[None]
        K = torch.cat([k1[None], K[1:]])  # F_0 exactly (dt = 0 rows would lose it)
        return y1, err, K, failed, iters, rate


def _powers(theta, degree):
    return theta[:, None] ** torch.arange(1, degree + 1, device=theta.device, dtype=theta.dtype)
