"""One generic Rosenbrock step that walks any `RosenbrockTableau` (W-transformed form, see its module).

Per step and trajectory: one Jacobian J = ∂f/∂y(t0, y0), one time derivative ∂f/∂t(t0, y0), one LU of
W = I - γ dt J, then for each stage one right-hand side and one solve with the same factors:

    k_i = γ dt W^-1 [ f(t0 + c_i dt, y0 + Σ_j a_ij k_j) + Σ_j (C_ij / dt) k_j + dt d_i ∂f/∂t ]

(γ dt W^-1 = (I/(γ dt) - J)^-1). The step returns K = the increments k_i (plus f(t1, y1) for an FSAL method,
the loop's next first stage); the dense output is y0 + Σ_i w_i(θ) k_i. A Rosenbrock method is not a Runge–Kutta
method in the adjoint's sense, so it has no `stage_states`: continuous adjoints integrate the parameter
gradient by Gauss–Legendre quadrature on the dense output instead.
"""

from __future__ import annotations

import torch

from gnode.algorithms.tableaus.rosenbrock import RosenbrockTableau
from gnode.engines.torch.linalg import factorize_w


class RosenbrockStepper:
    """A Rosenbrock tableau cast to the solve's dtype/device and the step that walks it.

    step(rhs, t, y, dt, k1, seg) → (y1, err, K, counters); `step_info` also returns the max-row-sum norm of J
    (the stiffness estimate the automatic switching reads). counters: njacs, nw, nsolve and nf for the time
    derivative (the loop counts the stage evaluations itself, from `stages`).
    """

    def __init__(self, tableau: RosenbrockTableau, dtype: torch.dtype, device: torch.device):
        def vec(xs):
            return torch.tensor([float(x) for x in xs], dtype=dtype, device=device)

        self.tableau = tableau
        self.stages = tableau.stages
        self.fsal = tableau.fsal
        self.gamma = float(tableau.gamma)
        self.c = [float(x) for x in tableau.c]
        self.d = [float(x) for x in tableau.d]
        self.a = [vec(row) for row in tableau.a]
        self.C = [vec(row) for row in tableau.C]
        self.b = vec(tableau.b)
        self.b_error = vec(tableau.b_error) if tableau.adaptive else None
        degree = max(len(r) for r in tableau.dense)
        self.dense = torch.tensor([[float(x) for x in r] + [0.0] * (degree - len(r)) for r in tableau.dense],
                                  dtype=dtype, device=device)  # (s, degree)
        self.c_dense = []  # no lazy interpolation stages

    @staticmethod
    def combine(weights: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """Σ_j weights[j] K[j] for K (≥ len(weights), B, n) → (B, n), as one matrix product."""
        s = weights.shape[0]
        return (weights @ K[:s].reshape(s, -1)).reshape(K.shape[1:])

    def step(self, rhs, t, y, dt, k1, seg):
        y1, err, K, counters, _ = self.step_info(rhs, t, y, dt, k1, seg)
        return y1, err, K, counters

    def step_info(self, rhs, t, y, dt, k1, seg):
        B = y.shape[0]
        J = rhs.jacobian(t, y, seg)
        f_t = rhs.time_derivative(t, y, k1, dt, seg)
        gdt = self.gamma * dt
        W = factorize_w(J, gdt)
        safe_dt = torch.where(dt == 0, torch.ones_like(dt), dt)[:, None]  # finished rows step by 0
        dtc, gdtc = dt[:, None], gdt[:, None]
        K = None
        f_last = k1
        for i in range(self.stages):
            if i == 0:
                fi = k1
            else:
                fi = rhs(t + self.c[i] * dt, y + self.combine(self.a[i], K), seg)
                f_last = fi
            r = fi
            if i > 0:
                r = r + self.combine(self.C[i], K) / safe_dt
            if self.d[i] != 0:
                r = r + (self.d[i] * dtc) * f_t
            ki = gdtc * W.solve(r)
            K = ki[None] if K is None else torch.cat([K, ki[None]])
        y1 = y + self.combine(self.b, K)
        err = None if self.b_error is None else self.combine(self.b_error, K)
        if err is not None:  # a singular W: reject that row's step
            err = torch.where(W.ok[:, None], err, torch.full_like(err, float("inf")))
        if self.fsal:  # the last stage was evaluated at (t1, y1)
            K = torch.cat([K, f_last[None]])
        one = torch.ones(B, dtype=torch.long, device=y.device)
        counters = {"njacs": one, "nw": one, "nsolve": one * self.stages, "nf": one}
        stiffness = J.detach().abs().sum(dim=-1).amax(dim=-1)  # ‖J‖_∞, as OrdinaryDiffEq's eigen_est
        return y1, err, K, counters, stiffness

    def interpolate(self, y0, dt, K, theta):
        """y(t0 + θ dt) = y0 + Σ_i w_i(θ) k_i for P points: y0 (P, n), θ (P,), K (≥ s, P, n)."""
        return y0 + torch.einsum("pm,mpn->pn", self._powers(theta), self.power_coefficients(dt, K))

    def power_coefficients(self, dt, K):
        """P (degree, B, n) with y(θ) = y0 + Σ_m θ^(m+1) P_m: the interpolant in the monomial basis."""
        s = self.stages
        return torch.einsum("sm,sbn->mbn", self.dense, K[:s])

    def _powers(self, theta):
        degree = self.dense.shape[1]
        return theta[:, None] ** torch.arange(1, degree + 1, device=theta.device, dtype=theta.dtype)
