"""One generic Rosenbrock step that walks any `RosenbrockTableau` (W-transformed form, see its module).

Per step and trajectory: one Jacobian J = ∂f/∂y(t0, y0), one time derivative ∂f/∂t(t0, y0), one LU of
W = I - γ dt J, then for each stage one right-hand side and one solve with the same factors:

    k_i = γ dt W^-1 [ f(t0 + c_i dt, y0 + Σ_j a_ij k_j) + Σ_j (C_ij / dt) k_j + dt d_i ∂f/∂t ]

(γ dt W^-1 = (I/(γ dt) - J)^-1). dense = (k,) with k (batch, s, n) the increments; the dense output is
y0 + Σ_i w_i(θ) k_i. A Rosenbrock method is not a Runge–Kutta method in the adjoint's sense, so it has no
`stage_states`: continuous adjoints integrate the parameter gradient by Gauss–Legendre quadrature on the dense
output instead.
"""

from __future__ import annotations

import torch

from gnode.algorithms.tableaus.rosenbrock import RosenbrockTableau
from gnode.engines.torch.linalg import factorize_w
from gnode.engines.torch.stepper import (
    AbstractStepper,
    AbstractTraceable,
    CastTableau,
    StepResult,
    as_counts,
    combine,
    powers,
)


class AbstractStiffStepper(AbstractStepper):
    """A stiff method that also reports a stiffness estimate (the automatic switching reads it)."""

    def step(self, rhs, state, t, y, h, f0):
        return self.step_stiffness(rhs, state, t, y, h, f0)[0]

    def step_stiffness(self, rhs, state, t, y, h, f0) -> tuple[StepResult, torch.Tensor]:
        """(the step, ‖J‖_∞ (batch,) at its start: the dominant eigenvalue's bound, as OrdinaryDiffEq's eigen_est)."""
        raise NotImplementedError

    def power_coefficients(self, h: torch.Tensor, dense: tuple) -> torch.Tensor:
        """P (batch, degree, n) with y(θ) = y0 + Σ_m θ^(m+1) P_m: the interpolant in the monomial basis."""
        raise NotImplementedError


class RosenbrockStepper(AbstractStiffStepper, AbstractTraceable):
    """A Rosenbrock tableau cast to the solve's dtype/device and the step that walks it.

    counts: one Jacobian, one factorisation, s solves, and s - 1 + 1 evaluations (the stages after the first,
    and the time derivative)."""

    def __init__(self, tableau: RosenbrockTableau, dtype: torch.dtype, device, traced: bool = False):
        cast = CastTableau(dtype, device)
        self.tableau, self.traced = tableau, traced
        self.stages, self.fsal = tableau.stages, tableau.fsal
        self.order, self.error_order = tableau.order, tableau.error_order
        self.gamma = float(tableau.gamma)
        self.c, self.d = cast.floats(tableau.c), cast.floats(tableau.d)
        self.a, self.a_f = cast.rows(tableau.a), [cast.floats(r) for r in tableau.a]
        self.C, self.C_f = cast.rows(tableau.C), [cast.floats(r) for r in tableau.C]
        self.b, self.b_f = cast.vec(tableau.b), cast.floats(tableau.b)
        adaptive = tableau.adaptive
        self.b_error = cast.vec(tableau.b_error) if adaptive else None
        self.b_error_f = cast.floats(tableau.b_error) if adaptive else None
        self.dense = cast.dense(tableau.dense)  # (s, degree)
        self.counts = as_counts(device=device, njacs=1, nw=1, nsolve=self.stages, nf=self.stages)

    def step_stiffness(self, rhs, state, t, y, h, f0):
        J = rhs.jacobian(t, y)
        f_t = rhs.time_derivative(t, y, f0, h)
        gh = self.gamma * h
        W = factorize_w(J, gh)
        safe_h = torch.where(h == 0, torch.ones_like(h), h)[:, None]  # stopped rows step by 0
        hc, ghc = h[:, None], gh[:, None]
        K = [] if self.traced else None  # the increments: a list to trace, a stage-major tensor eagerly
        f_last = f0
        for i in range(self.stages):
            if i == 0:
                fi = f0
            else:
                fi = rhs(t + self.c[i] * h, y + combine(self.a[i], self.a_f[i], K, self.traced))
                f_last = fi
            r = fi
            if i > 0:
                r = r + combine(self.C[i], self.C_f[i], K, self.traced) / safe_h
            if self.d[i] != 0:
                r = r + (self.d[i] * hc) * f_t
            ki = ghc * W.solve(r)
            if self.traced:
                K.append(ki)
            else:
                K = ki[None] if K is None else torch.cat([K, ki[None]])
        y1 = y + combine(self.b, self.b_f, K, self.traced)
        err = None
        if self.b_error is not None:  # a singular W: reject that row's step
            err = combine(self.b_error, self.b_error_f, K, self.traced)
            err = torch.where(W.ok[:, None], err, torch.full_like(err, float("inf")))
        dense = (torch.stack(K, dim=1) if self.traced else K.transpose(0, 1),)
        stiffness = J.detach().abs().sum(dim=-1).amax(dim=-1)
        return StepResult(y1, err, dense, f_last if self.fsal else None, state, self.counts), stiffness

    def interpolate(self, y0, h, dense, theta):
        """y(t0 + θ h) = y0 + Σ_i w_i(θ) k_i for P points: y0 (P, n), θ (P,), k (P, s, n)."""
        return y0 + torch.einsum("pm,pmn->pn", powers(theta, self.dense.shape[1]), self.power_coefficients(h, dense))

    def power_coefficients(self, h, dense):
        return torch.einsum("sm,bsn->bmn", self.dense, dense[0])
