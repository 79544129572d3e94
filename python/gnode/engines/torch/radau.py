"""One Radau IIA step that walks any `RadauIIATableau`, as Hairer & Wanner's RADAU5 takes it (Solving ODEs II,
IV.8), per trajectory.

Stage equations, in the increments z_i = Z_i - y0 (stage i at t0 + c_i h):  z = h (A ⊗ I) F(z),  F_i = f(Z_i).
Simplified Newton on w = (T^-1 ⊗ I) z, with J fixed for the step: since T^-1 A^-1 T = Λ is block diagonal, the
s·n-dimensional system splits into one real and (s-1)/2 complex n-dimensional ones,

    (I - h/γ J) Δw_0 = h/γ (T^-1 F)_0 - w_0,
    (I - h μ_k J) Δw_k = h μ_k (T^-1 F)_k - w_k,    w_k = w_2k-1 + i w_2k,  μ_k = 1/(α_k + i β_k),

one LU each per step (the complex ones in complex arithmetic: their factorisation measured as fast as the
equivalent real 2n × 2n systems' at n = 3..8 and 2x faster at n = 32..100). The iteration starts from the previous
accepted step's collocation polynomial, extrapolated to this step's nodes (zero on a trajectory's first step), and
is stopped as RADAU5 does: with ‖Δw‖ the RMS norm over all stages scaled by the transformed tolerances, the
contraction rate θ_k = ‖Δw_k‖/‖Δw_k-1‖ (the geometric mean of the last two after the second iteration), and
η = θ/(1-θ) carried over from the previous step (as η^0.8) for the first test: converged when η ‖Δw‖ <= kappa;
failed when θ >= 0.99, when the iteration is predicted not to converge within max_iter
(η ‖Δw‖ θ^(max_iter-k) > kappa), or when it runs out of iterations. A failure with a Jacobian from an earlier
step is retried at once with a fresh one (SciPy's rule); a failure with a fresh one rejects that row's step
(err = inf, counted in `nnonlinconvfail`).

Jacobian reuse (RADAU5): after an accepted step, a new J where the Newton iteration contracted slower than the
algorithm's `fast_convergence_cutoff` (on η); after a rejected step, a new J unless the step already had a fresh
one. W = I - h/γ J and its complex companions are factorised at every attempt (their h changes).

Error estimate (Hairer & Wanner II, IV.8, eqs. 8.19-8.20): err = (I - h/γ J)^-1 (h f(t0, y0) + Σ d_i z_i) / γ
(the real block's factors); where it fails the test on a trajectory's first step or after a rejection, RADAU5's
second estimate (I - h/γ J)^-1 (h f(t0, y0 + err) + Σ d_i z_i) / γ replaces it. Tolerances are transformed as
RADAU5 does (rtol' = 0.1 rtol^(2/3), atol' = rtol' atol / rtol; see `gnode.algorithms.radau`): the Newton norm uses
them, and err is returned multiplied by rtol/rtol', so that the loop's norm in the user's tolerances equals
RADAU5's in the transformed ones.

dense = (K,) with K (batch, s, n) the stage derivatives K = A^-1 z / h: the collocation polynomial is
y0 + h Σ_j w_j(θ) K_j (`tableau.dense`), and the continuous adjoints integrate the parameter gradient with the
method's own weights b at its stages (`stage_states`, `b`, `c`). Every Newton iteration evaluates f at all s stages
of every row in one batched call (s·batch rows). The iteration stops when no row is iterating: a data-dependent
loop, so Radau steps run eagerly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from gnode.algorithms.tableaus.radau import RadauIIATableau
from gnode.engines.torch.initdt import rms
from gnode.engines.torch.jacobian import refresh_rows
from gnode.engines.torch.linalg import Factorized, factorize_w
from gnode.engines.torch.rosenbrock import AbstractStiffStepper
from gnode.engines.torch.stepper import AbstractRKStages, CastTableau, StepResult, per_row_counts, powers


class RadauState(NamedTuple):
    """Per trajectory (batch first). Kept across steps: J, the time it was computed at (J_t), whether the next
    attempt wants a new one, η of the last Newton iteration (eta), and the last accepted step's stage derivatives
    and size (K_prev, h_prev; h_prev = 0 before the first). This attempt's, which `accepted` merges: its stage
    derivatives and size (K_new, h_new), whether its Newton iteration converged fast, whether its J was fresh, and
    whether it was rejected (last_reject, read by the next attempt)."""

    J: torch.Tensor
    J_t: torch.Tensor
    want_new: torch.Tensor
    eta: torch.Tensor
    K_prev: torch.Tensor
    h_prev: torch.Tensor
    K_new: torch.Tensor
    h_new: torch.Tensor
    fast: torch.Tensor
    fresh: torch.Tensor
    last_reject: torch.Tensor


class _Newton(NamedTuple):
    z: torch.Tensor  # (B, s, n) stage increments
    failed: torch.Tensor  # (B,) bool
    iterations: torch.Tensor  # (B,) long
    eta: torch.Tensor  # (B,) the last η = θ/(1-θ)


class _Factors(NamedTuple):
    real: object  # `linalg.Factorized` of I - h/γ J
    complex: list  # (lu, pivots) of I - h μ_k J per complex pair
    ok: torch.Tensor  # (B,) every factorisation exists and is finite


class RadauStepper(AbstractStiffStepper, AbstractRKStages):
    """A Radau IIA tableau cast to the solve's dtype/device, with the Newton options and tolerances of one solve."""

    def __init__(
        self,
        tableau: RadauIIATableau,
        dtype: torch.dtype,
        device,
        *,
        kappa: float | None,
        max_iter: int,
        fast_convergence_cutoff: float,
        reltol: float,
        abstol: float,
    ):
        cast = CastTableau(dtype, device)
        self.tableau = tableau
        self.stages = tableau.stages
        self.fsal = False
        self.order, self.error_order = tableau.order, tableau.error_order
        self.c = cast.floats(tableau.c)
        self.c_vec = cast.vec(tableau.c)
        self.A = torch.stack(cast.rows(tableau.a))  # (s, s)
        self.A_inv = torch.linalg.inv(self.A)
        self.b = cast.vec(tableau.b)
        self.dense = torch.stack(cast.rows(tableau.dense))  # (s, s): w_j(θ) = Σ_m dense[j, m] θ^(m+1)
        self.d = cast.vec(tableau.d)
        self.T = torch.stack(cast.rows(tableau.T))
        self.TI = torch.stack(cast.rows(tableau.TI))
        self.inv_gamma = 1 / float(tableau.gamma)
        self.mu = [1 / complex(float(a), float(b)) for a, b in zip(tableau.alpha, tableau.beta)]
        self.cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.max_iter, self.fast_cutoff = int(max_iter), float(fast_convergence_cutoff)
        # RADAU5's transformed tolerances: the Newton test's scale, and the factor on err for the loop's norm
        eps = torch.finfo(dtype).eps
        self.rtol = 0.1 * reltol ** (2 / 3) if reltol > 0 else 0.0
        self.atol = self.rtol * abstol / reltol if reltol > 0 else abstol
        self.err_factor = reltol / self.rtol if reltol > 0 else 1.0
        self.reltol, self.abstol = reltol, abstol
        tol = self.rtol if self.rtol > 0 else max(abstol, eps)
        self.kappa = float(kappa) if kappa is not None else max(10 * eps / tol, min(0.03, math.sqrt(tol)))
        self.n_solves = 1 + len(self.mu)  # linear solves per Newton iteration

    # -- protocol ---------------------------------------------------------------------------------------------

    def init(self, rhs, t, y, f0):
        B, n = y.shape
        s = self.stages
        false = torch.zeros(B, dtype=torch.bool, device=y.device)
        zeros_K = y.new_zeros(B, s, n)
        return RadauState(
            J=y.new_zeros(B, n, n),
            J_t=torch.full_like(t, float("nan")),
            want_new=~false,
            eta=torch.ones_like(t),
            K_prev=zeros_K,
            h_prev=torch.zeros_like(t),
            K_new=zeros_K,
            h_new=torch.zeros_like(t),
            fast=false,
            fresh=false,
            last_reject=false,
        )

    def accepted(self, state: RadauState, accept):
        with torch.no_grad():
            # accepted: a new J unless Newton converged fast; rejected: a new J unless this attempt had a fresh one
            want_new = torch.where(accept, ~state.fast, ~state.fresh)
        return state._replace(
            K_prev=torch.where(accept[:, None, None], state.K_new, state.K_prev),
            h_prev=torch.where(accept, state.h_new, state.h_prev),
            want_new=want_new,
            last_reject=~accept,
        )

    def interpolate(self, y0, h, dense, theta):
        """The collocation polynomial at P points: y0 (P, n), h, θ (P,), K (P, s, n)."""
        return y0 + torch.einsum("pm,pmn->pn", powers(theta, self.stages), self.power_coefficients(h, dense))

    def power_coefficients(self, h, dense):
        return h[:, None, None] * torch.einsum("sm,bsn->bmn", self.dense, dense[0])

    def stage_states(self, y, h, K):
        """Z_i = y0 + h Σ_j a_ij K_j from K (batch, s, n): (batch, s, n)."""
        return y[:, None] + h[:, None, None] * (self.A @ K)

    def step_stiffness(self, rhs, state: RadauState, t, y, h, f0):
        B = y.shape[0]
        s = self.stages
        running = h != 0
        J, J_t, njacs = refresh_rows(rhs, state.J, state.J_t, t, y, state.want_new & running)
        stage_rhs = rhs.subset(torch.arange(B, device=y.device).repeat_interleave(s))
        scal = y.detach().abs() * self.rtol + self.atol
        z0 = self._start(state, h)
        eta0 = state.eta.clamp(min=torch.finfo(y.dtype).eps).pow(0.8)
        W = self._factorize(J, h)
        newton = self._newton(stage_rhs, t, y, h, z0, W, scal, eta0, running & W.ok)
        failed = newton.failed | (running & ~W.ok)
        iters = newton.iterations
        # a failure with a Jacobian from an earlier step: retry those rows now with a fresh one
        stale = failed & (J_t != t)
        attempts = running.long()
        if bool(stale.any()):
            J, J_t, more = refresh_rows(rhs, J, J_t, t, y, stale)
            njacs = njacs + more
            W_b = self._factorize(J, h)
            retry = self._newton(stage_rhs, t, y, h, z0, W_b, scal, torch.ones_like(eta0), stale & W_b.ok)
            W = _where_factors(stale, W_b, W)
            newton = _Newton(*(torch.where(_expand(stale, a), b_, a) for a, b_ in zip(newton, retry)))
            failed = torch.where(stale, retry.failed | ~W_b.ok, failed)
            iters = iters + retry.iterations
            attempts = attempts + stale.long()
        z = newton.z
        y1 = y + z[:, -1]
        err, extra_nf = self._error(rhs, state, t, y, y1, h, f0, z, W.real, failed, running)
        safe_h = torch.where(running, h, torch.ones_like(h))
        K = (self.A_inv @ z) / safe_h[:, None, None]
        fresh = J_t == t
        with torch.no_grad():
            fast = ~failed & (newton.eta < self.fast_cutoff)
            eta = torch.where(running, torch.where(failed, torch.ones_like(newton.eta), newton.eta), state.eta)
        second = (extra_nf > 0).long()
        counts = per_row_counts(
            B,
            y.device,
            nf=s * iters + extra_nf,
            njacs=njacs,
            nw=attempts,
            nsolve=self.n_solves * iters + running.long() + second,
            nnonliniter=iters,
            nnonlinconvfail=failed.long(),
        )
        new_state = RadauState(
            J=J,
            J_t=J_t,
            want_new=state.want_new,
            eta=eta,
            K_prev=state.K_prev,
            h_prev=state.h_prev,
            K_new=K,
            h_new=h.detach(),
            fast=fast,
            fresh=fresh,
            last_reject=state.last_reject,
        )
        stiffness = J.detach().abs().sum(dim=-1).amax(dim=-1)
        return StepResult(y1, err, (K,), None, new_state, counts), stiffness

    # -- the pieces of a step -----------------------------------------------------------------------------------

    def _start(self, state: RadauState, h):
        """The Newton iteration's start: the last accepted step's collocation polynomial at this step's nodes,
        z_i = h_prev Σ_j (w_j(1 + c_i h/h_prev) - b_j) K_prev_j; zero before a trajectory's first accepted step.

        It stays on the autograd graph: backprop through a step that converges in one or two iterations then
        starts from the extrapolated derivative, not from zero (detached, the gradient of the small stiff gnODE of
        tests/test_stiff_solve.py at rtol 1e-8 erred 1.2e-5 against finite differences; attached, 1.5e-7)."""
        have = state.h_prev != 0
        h_prev = torch.where(have, state.h_prev, torch.ones_like(h))
        theta = 1 + self.c_vec[None, :] * (h / h_prev)[:, None]  # (B, s)
        P = theta[..., None] ** torch.arange(1, self.stages + 1, device=h.device, dtype=h.dtype)  # (B, s, m)
        weights = P @ self.dense.T - self.b  # (B, s, s)
        z0 = h_prev[:, None, None] * (weights @ state.K_prev)
        return torch.where(have[:, None, None], z0, torch.zeros_like(z0))

    def _factorize(self, J, h) -> _Factors:
        real = factorize_w(J, h * self.inv_gamma)
        n = J.shape[-1]
        eye = torch.eye(n, dtype=self.cdtype, device=J.device)
        Jc, hc = J.to(self.cdtype), h.to(self.cdtype)
        identity_pivots = torch.arange(1, n + 1, dtype=torch.int32, device=J.device)
        ok, blocks = real.ok, []
        for mu in self.mu:
            lu, pivots, info = torch.linalg.lu_factor_ex(eye - (hc * mu)[:, None, None] * Jc)
            good = (info == 0) & torch.isfinite(torch.view_as_real(lu)).all(dim=(-3, -2, -1))
            # a failed row gets the identity's factors, so the other rows' solves (and gradients) stay finite
            lu = torch.where(good[:, None, None], lu, eye)
            pivots = torch.where(good[:, None], pivots, identity_pivots.to(pivots.dtype))
            blocks.append((lu, pivots))
            ok = ok & good
        return _Factors(real, blocks, ok)

    def _solve(self, W: _Factors, fw, w, h_gamma, h_mu):
        """The Newton increments Δw (B, s, n) from (T^-1 F) and w (B, s, n); h_gamma = h/γ (B, 1), h_mu the
        complex h μ_k (B, 1) of each pair."""
        parts = [W.real.solve(h_gamma * fw[:, 0] - w[:, 0])[:, None]]
        for k, (hm, (lu, pivots)) in enumerate(zip(h_mu, W.complex)):
            a, b = 2 * k + 1, 2 * k + 2
            r = hm * torch.complex(fw[:, a], fw[:, b]) - torch.complex(w[:, a], w[:, b])
            dw = torch.linalg.lu_solve(lu, pivots, r.unsqueeze(-1)).squeeze(-1)
            parts += [dw.real[:, None], dw.imag[:, None]]
        return torch.cat(parts, dim=1)

    def _newton(self, stage_rhs, t, y, h, z0, W: _Factors, scal, eta0, active) -> _Newton:
        """RADAU5's simplified Newton iteration for the rows in `active`; the others keep z0."""
        B, n = y.shape
        s, max_iter, kappa = self.stages, self.max_iter, self.kappa
        ts = (t[:, None] + self.c_vec[None, :] * h[:, None]).reshape(-1)
        h_gamma = (h * self.inv_gamma)[:, None]
        h_mu = [(h.to(self.cdtype) * mu)[:, None] for mu in self.mu]
        tiny = torch.finfo(y.dtype).eps
        z, w = z0, self.TI @ z0
        eta = eta0.clone()
        dyno_old = torch.ones_like(h)
        thq_old = torch.ones_like(h)
        iterations = torch.zeros(B, dtype=torch.long, device=y.device)
        failed = torch.zeros(B, dtype=torch.bool, device=y.device)
        going = active.clone()
        for k in range(1, max_iter + 1):
            F = stage_rhs(ts, (y[:, None] + z).reshape(B * s, n)).reshape(B, s, n)
            dw = self._solve(W, self.TI @ F, w, h_gamma, h_mu)
            with torch.no_grad():
                dyno = rms((dw / scal[:, None]).reshape(B, s * n))
                bad = ~torch.isfinite(dyno)
                iterations += going
                if 1 < k < max_iter:
                    thq = dyno / dyno_old
                    theta = thq if k == 2 else (thq * thq_old).sqrt()
                    thq_old = thq
                    diverging = theta >= 0.99
                    eta = torch.where(going & ~diverging, theta / (1 - theta), eta)
                    slow = eta * dyno * theta.pow(max_iter - 1 - k) > kappa
                    bad = bad | diverging | slow
                dyno_old = dyno.clamp(min=tiny)
                step = going & ~bad
            w = torch.where(step[:, None, None], w + dw, w)
            z = torch.where(step[:, None, None], self.T @ w, z)
            with torch.no_grad():
                converged = step & (eta * dyno <= kappa)
                failed |= going & bad
                going = step & ~converged
                if not bool(going.any()):
                    break
        failed |= going  # out of iterations
        return _Newton(z, failed, iterations, eta)

    def _error(self, rhs, state: RadauState, t, y, y1, h, f0, z, W1, failed, running):
        """RADAU5's filtered error estimate, scaled for the loop's norm, and the evaluations of its second
        estimate per row (1 where it was taken)."""
        hc = h[:, None]
        tail = self.d @ z  # Σ_i d_i z_i
        err = W1.solve((hc * f0 + tail) * self.inv_gamma)
        with torch.no_grad():
            scale = torch.maximum(y.detach().abs(), y1.detach().abs()) * self.rtol + self.atol
            big = rms(err.detach() / scale) >= 1
            redo = running & ~failed & big & ((state.h_prev == 0) | state.last_reject)
        extra_nf = redo.long()
        if bool(redo.any()):
            idx = redo.nonzero()[:, 0]
            f_err = rhs.subset(idx)(t[idx], y[idx] + err[idx])
            W_idx = Factorized(W1.lu[idx], W1.pivots[idx], W1.ok[idx])
            err = err.index_copy(0, idx, W_idx.solve((h[idx, None] * f_err + tail[idx]) * self.inv_gamma))
        err = err * self.err_factor
        return torch.where(failed[:, None], torch.full_like(err, float("inf")), err), extra_nf


def _expand(mask, like):
    return mask.view(-1, *([1] * (like.dim() - 1)))


def _where_factors(mask, a: _Factors, b: _Factors) -> _Factors:
    """The factors of `a` on the rows in mask, of `b` elsewhere."""
    real = Factorized(
        torch.where(mask[:, None, None], a.real.lu, b.real.lu),
        torch.where(mask[:, None], a.real.pivots, b.real.pivots),
        torch.where(mask, a.real.ok, b.real.ok),
    )
    blocks = [
        (torch.where(mask[:, None, None], la, lb), torch.where(mask[:, None], pa, pb))
        for (la, pa), (lb, pb) in zip(a.complex, b.complex)
    ]
    return _Factors(real, blocks, torch.where(mask, a.ok, b.ok))


def radau_stepper(alg, dtype, device, reltol: float, abstol: float) -> RadauStepper:
    return RadauStepper(
        alg.tableau,
        dtype,
        device,
        kappa=alg.kappa,
        max_iter=alg.max_iter,
        fast_convergence_cutoff=alg.fast_convergence_cutoff,
        reltol=reltol,
        abstol=abstol,
    )
