"""The simplified Newton iteration of an implicit stage, per trajectory (Hairer & Wanner II, IV.8).

Stage equation, in the increment z = dt F of the stage derivative F:

    g(z) = dt f(t_i, base + γ z) - z = 0,      Newton step  Δ = W^-1 g(z),  W = I - γ dt J,

with J and the factors of W fixed for the whole step. Convergence is judged from the contraction rate
θ_k = ‖Δ_k‖ / ‖Δ_{k-1}‖ (the rate of the previous solve on the first iteration): the remaining error is about
η ‖Δ_k‖ with η = θ/(1-θ), and the stage has converged once η ‖Δ_k‖ < κ — in the same weighted RMS norm
as the step's error estimate, ‖v‖ = rms(v / (abstol + reltol max(|y0|, |u|))). It diverges when θ > 2 or the
iterate stops being finite, and fails after `max_iter` iterations. Increments at the level of rounding
(‖Δ‖ below max(1e-5, 16 eps / reltol)) count as converged whatever θ says, since θ is then noise.
Every trajectory iterates until it converges or fails; the iteration stops when none is left iterating.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gnode.engines.torch.initdt import rms
from gnode.engines.torch.linalg import Factorized


@dataclass(frozen=True)
class NewtonOptions:
    kappa: float = 0.01
    max_iter: int = 10
    fast_rate: float = 0.05
    reltol: float = 1e-6
    abstol: float = 1e-8

    def floor(self, dtype: torch.dtype) -> float:
        """‖Δ‖ below which an increment is rounding, not information."""
        eps = torch.finfo(dtype).eps
        return max(1e-5, 16 * eps / self.reltol) if self.reltol > 0 else 1e-5


@dataclass
class StageSolution:
    z: torch.Tensor  # (B, n) the stage increment dt F
    iterations: torch.Tensor  # (B,) long: Newton iterations (= evaluations of f) per trajectory
    failed: torch.Tensor  # (B,) bool: diverged or out of iterations
    rate: torch.Tensor  # (B,) the slowest contraction rate measured (theta0 where one iteration sufficed)


def solve_stage(
    f_stage,
    base: torch.Tensor,
    gamma: float,
    z0: torch.Tensor,
    dt: torch.Tensor,
    W: Factorized,
    y0: torch.Tensor,
    opts: NewtonOptions,
    theta0: torch.Tensor,
    active: torch.Tensor,
) -> StageSolution:
    """Solve z = dt f_stage(base + γ z) from z0 for the rows in `active` (B,) bool; the others keep z0.

    theta0 (B,): the contraction rate to assume on the first iteration (the previous stage's)."""
    B = z0.shape[0]
    dtc = dt[:, None]
    floor = opts.floor(z0.dtype)
    z = z0
    theta = theta0
    ndz_prev = None
    iterations = torch.zeros(B, dtype=torch.long, device=z0.device)
    failed = torch.zeros(B, dtype=torch.bool, device=z0.device)
    rate = theta0.clone()  # the rate of this solve; where none is measured (one iteration), the guess stands
    for k in range(opts.max_iter):
        u = base + gamma * z
        fu = f_stage(u)
        dz = W.solve(dtc * fu - z)
        with torch.no_grad():
            scale = torch.maximum(y0.abs(), u.abs()).mul_(opts.reltol).add_(opts.abstol)
            ndz = rms(dz / scale)
            finite = torch.isfinite(ndz)
            if k > 0:
                theta = torch.where(active, ndz / ndz_prev.clamp(min=torch.finfo(ndz.dtype).tiny), theta)
                measured = active & (ndz > floor)  # increments at rounding level say nothing about θ
                rate = torch.where(measured & (k == 1), theta, torch.where(measured, torch.maximum(rate, theta), rate))
            eta = theta / (1 - theta)
            tiny = ndz <= floor
            converged = finite & (tiny | ((theta < 1) & (eta * ndz < opts.kappa)))
            diverged = ~finite | ((k > 0) & (theta > 2) & ~tiny)
            step_rows = active & finite
        z = torch.where(step_rows[:, None], z + dz, z)
        with torch.no_grad():
            iterations += active
            failed |= active & diverged
            active = active & ~converged & ~diverged
            if not bool(active.any()):
                break
            ndz_prev = ndz
    failed |= active  # out of iterations
    return StageSolution(z=z, iterations=iterations, failed=failed, rate=rate)
