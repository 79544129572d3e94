"""One generic ESDIRK step that walks any `ESDIRKTableau`, with a simplified Newton iteration per stage.

Per step and trajectory: W = I - γ dt J is factorised once (`linalg.py`) and shared by every implicit stage and
Newton iteration (`newton.py`). J is computed at the step's start when the trajectory asks for a new one — at
its first step, after a step whose Newton iterations contracted slower than `fast_rate`, or when a stage failed
with a Jacobian from an earlier step, in which case the step is redone at once with a fresh J — and reused
across steps otherwise. A stage that still fails (diverges, or is out of iterations) rejects that trajectory's
step (`err = inf`; the loop then shrinks its dt), counted in `nnonlinconvfail`.

The error estimate is dt Σ b_error_i F_i, filtered through W^-1 where the algorithm's `smooth_est` asks
(Shampine's smoothing, as OrdinaryDiffEq.jl's option; `gnode.algorithms.esdirk` says when and why). dense = (K,)
with K (batch, s, n) the stage derivatives F_i (F_0 = f(t0, y0), F_i = z_i / dt), so the adjoints can use the
method's own weights at its stages (`stage_states`, `b`, `c`).

The Newton iteration stops when every row has converged, a data-dependent loop: ESDIRK steps run eagerly.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from gnode.algorithms.tableaus.esdirk import ESDIRKTableau
from gnode.engines.torch.jacobian import refresh_rows
from gnode.engines.torch.linalg import factorize_w
from gnode.engines.torch.newton import NewtonOptions, solve_stage
from gnode.engines.torch.rosenbrock import AbstractStiffStepper
from gnode.engines.torch.stepper import AbstractRKStages, CastTableau, StepResult, per_row_counts, powers


class JacobianCache(NamedTuple):
    """Per trajectory: J (batch, n, n), the time it was computed at, whether the next step wants a new one, and
    the last contraction rate (the first Newton iteration's guess)."""

    J: torch.Tensor
    J_t: torch.Tensor
    want_new: torch.Tensor
    theta: torch.Tensor


class ESDIRKStepper(AbstractStiffStepper, AbstractRKStages):
    """An ESDIRK tableau cast to the solve's dtype/device, with the Newton options of one solve."""

    def __init__(
        self, tableau: ESDIRKTableau, dtype: torch.dtype, device, opts: NewtonOptions, smooth_est: bool = False
    ):
        cast = CastTableau(dtype, device)
        self.tableau, self.opts, self.smooth_est = tableau, opts, bool(smooth_est)
        self.stages = tableau.stages
        self.fsal = True  # stiffly accurate: F_s = f(t1, y1)
        self.order, self.error_order = tableau.order, tableau.error_order
        self.gamma = float(tableau.gamma)
        self.c = cast.floats(tableau.c)
        self.a = cast.rows(tableau.a)  # a[i] has i + 1 entries (incl. the diagonal)
        self.b = cast.vec(tableau.b)
        self.b_error = cast.vec(tableau.b_error)
        s = self.stages
        # cubic Hermite on (y0, F_0, y1 = y0 + dt Σ b_i F_i, F_{s-1}) in the monomial basis, per stage:
        # y(θ) = y0 + dt Σ_i F_i (θ e0_i + θ² (3 b_i - 2 e0_i - e1_i) + θ³ (-2 b_i + e0_i + e1_i))
        e0 = torch.zeros(s, dtype=dtype, device=device)
        e0[0] = 1
        e1 = torch.zeros(s, dtype=dtype, device=device)
        e1[-1] = 1
        self.dense = torch.stack([e0, 3 * self.b - 2 * e0 - e1, -2 * self.b + e0 + e1], dim=1)  # (s, 3)

    @staticmethod
    def combine(weights: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        s = weights.shape[0]
        return (weights @ Z[:s].reshape(s, -1)).reshape(Z.shape[1:])

    def init(self, rhs, t, y, f0):
        B, n = y.shape
        return JacobianCache(
            torch.zeros(B, n, n, dtype=y.dtype, device=y.device),
            torch.full_like(t, float("nan")),
            torch.ones(B, dtype=torch.bool, device=y.device),
            torch.ones_like(t),
        )

    def stage_states(self, y, h, K):
        """Z_i = y0 + dt Σ_{j<=i} a_ij F_j, rebuilt from K (batch, s, n): (batch, s, n)."""
        Ks, hc = K.transpose(0, 1), h[:, None]
        return torch.stack([y] + [y + hc * self.combine(self.a[i], Ks) for i in range(1, self.stages)], dim=1)

    def interpolate(self, y0, h, dense, theta):
        """The cubic Hermite interpolant at P points: y0 (P, n), h, θ (P,), K (P, s, n)."""
        return y0 + torch.einsum("pm,pmn->pn", powers(theta, 3), self.power_coefficients(h, dense))

    def power_coefficients(self, h, dense):
        return h[:, None, None] * torch.einsum("sm,bsn->bmn", self.dense, dense[0])

    def step_stiffness(self, rhs, state: JacobianCache, t, y, h, f0):
        running = h != 0
        J, J_t, njacs = refresh_rows(rhs, state.J, state.J_t, t, y, state.want_new & running)
        # the first iteration's rate guess: the last measured one, inflated towards 1 at every step (Hairer &
        # Wanner's FACCON^0.8) so that a rate measured once cannot vouch for one-iteration solves forever
        theta0 = state.theta.clamp(min=torch.finfo(y.dtype).eps).pow(0.8)
        y1, err, K, failed, iters, rate = self._attempt(rhs, t, y, h, f0, J, theta0, running)
        # a failure with a Jacobian from an earlier step: retry those rows now with a fresh one
        stale = failed & (J_t != t)
        if bool(stale.any()):
            J, J_t, more = refresh_rows(rhs, J, J_t, t, y, stale)
            njacs = njacs + more
            y1b, errb, Kb, failedb, itersb, rateb = self._attempt(rhs, t, y, h, f0, J, torch.ones_like(theta0), stale)
            y1 = torch.where(stale[:, None], y1b, y1)
            err = torch.where(stale[:, None], errb, err)
            K = torch.where(stale[:, None, None], Kb, K)
            failed = torch.where(stale, failedb, failed)
            rate = torch.where(stale, rateb, rate)
            iters = iters + itersb
        with torch.no_grad():
            want_new = torch.where(running, failed | (rate > self.opts.fast_rate), state.want_new)
            theta = torch.where(running, torch.where(failed, torch.ones_like(rate), rate.clamp(max=1.0)), state.theta)
        attempts = running.long() + stale.long()
        # one f evaluation per Newton iteration, one solve per iteration (and per attempt for the filtered error)
        counts = per_row_counts(
            y.shape[0],
            y.device,
            nf=iters,
            njacs=njacs,
            nw=attempts,
            nsolve=iters + (attempts if self.smooth_est else 0),
            nnonliniter=iters,
            nnonlinconvfail=failed.long(),
        )
        stiffness = J.detach().abs().sum(dim=-1).amax(dim=-1)
        result = StepResult(y1, err, (K,), K[:, -1], JacobianCache(J, J_t, want_new, theta), counts)
        return result, stiffness

    def _attempt(self, rhs, t, y, h, f0, J, theta, active):
        """All stages with a given J: (y1, err, K (batch, s, n), failed, Newton iterations, slowest rate)."""
        W = factorize_w(J, self.gamma * h)
        safe_h = torch.where(h == 0, torch.ones_like(h), h)[:, None]
        hc = h[:, None]
        Z = (hc * f0)[None]  # stage increments z_j = dt F_j
        failed = active & ~W.ok
        going = active & W.ok
        iters = torch.zeros_like(h, dtype=torch.long)
        rate = torch.zeros_like(h)
        for i in range(1, self.stages):
            base = y + self.combine(self.a[i][:i], Z)
            ti = t + self.c[i] * h

            def f_stage(u, ti=ti):
                return rhs(ti, u)

            sol = solve_stage(f_stage, base, self.gamma, Z[-1], h, W, y, self.opts, theta, going)
            Z = torch.cat([Z, sol.z[None]])
            iters = iters + sol.iterations
            rate = torch.maximum(rate, sol.rate)
            theta = torch.where(going, sol.rate, theta)
            failed = failed | sol.failed
            going = going & ~sol.failed
        y1 = y + self.combine(self.b, Z)
        err = self.combine(self.b_error, Z)
        if self.smooth_est:
            err = W.solve(err)
        err = torch.where(failed[:, None], torch.full_like(err, float("inf")), err)
        K = torch.cat([f0[None], Z[1:] / safe_h[None]]).transpose(0, 1)  # F_0 exactly (h = 0 rows would lose it)
        return y1, err, K, failed, iters, rate


def esdirk_stepper(alg, dtype, device, reltol: float, abstol: float) -> ESDIRKStepper:
    opts = NewtonOptions(float(alg.kappa), int(alg.max_iter), float(alg.fast_rate), reltol, abstol)
    return ESDIRKStepper(alg.tableau, dtype, device, opts, alg.smooth_est)
