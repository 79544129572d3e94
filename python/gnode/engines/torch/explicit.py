"""One generic explicit Runge–Kutta step that walks any `ButcherTableau`."""

from __future__ import annotations

import torch

from gnode.algorithms.tableaus import ButcherTableau
from gnode.engines.torch.stepper import (
    AbstractLazyDense,
    AbstractRKStages,
    AbstractStepper,
    AbstractTraceable,
    CastTableau,
    StepResult,
    as_counts,
    combine,
    powers,
)


class ExplicitRK(AbstractStepper, AbstractRKStages, AbstractTraceable):
    """A tableau cast to the solve's dtype/device, and the step that walks it.

    dense = (K,) with K (batch, s, n) the stage derivatives; counts: s - 1 evaluations per step (the first stage,
    f0 = f(t, y), is the loop's: the previous step's last stage for an FSAL method, else its own evaluation)."""

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device, traced: bool = False):
        cast = CastTableau(dtype, device)
        self.tableau, self.traced = tableau, traced
        self.stages, self.fsal = tableau.stages, tableau.fsal
        self.order, self.error_order = tableau.order, tableau.error_order
        self.c = cast.floats(tableau.c)
        self.a, self.a_f = cast.rows(tableau.a), [cast.floats(r) for r in tableau.a]
        self.b, self.b_f = cast.vec(tableau.b), cast.floats(tableau.b)
        adaptive = tableau.adaptive
        self.b_error = cast.vec(tableau.b_error) if adaptive else None
        self.b_error_f = cast.floats(tableau.b_error) if adaptive else None
        self.dense = cast.dense(tableau.dense)  # (S_dense, degree)
        self.counts = as_counts(device=device, nf=self.stages - 1)

    def step(self, rhs, state, t, y, h, f0):
        hc = h[:, None]
        recording = self.traced or (torch.is_grad_enabled() and (y.requires_grad or f0.requires_grad))
        if recording:  # autograd or tracing: stages kept as a list (an in-place buffer would break saved tensors)
            ks = [f0]
            K = ks if self.traced else f0[None]
        else:  # no graph: one buffer per step, written stage by stage
            K = torch.empty((self.stages, *y.shape), dtype=y.dtype, device=y.device)
            K[0] = f0
        y1 = None
        for i in range(1, self.stages):
            yi = y + hc * combine(self.a[i], self.a_f[i], K, self.traced)
            if self.fsal and i == self.stages - 1:
                y1 = yi  # the last stage of an FSAL method is evaluated at (t1, y1)
            ki = rhs(t + self.c[i] * h, yi)
            if self.traced:
                ks.append(ki)
            elif recording:
                ks.append(ki)
                K = torch.stack(ks)
            else:
                K[i] = ki
        if y1 is None:
            y1 = y + hc * combine(self.b, self.b_f, K, self.traced)
        err = None if self.b_error is None else hc * combine(self.b_error, self.b_error_f, K, self.traced)
        Kb = torch.stack(ks, dim=1) if self.traced else K.transpose(0, 1)  # (batch, s, n)
        f1 = Kb[:, -1] if self.fsal else None
        return StepResult(y1, err, (Kb,), f1, state, self.counts)

    def stage_states(self, y, h, K):
        """The states at which the stages were evaluated, rebuilt from K (batch, s, n): (batch, s, n)."""
        Ks = K.transpose(0, 1)
        hc = h[:, None]
        return torch.stack([y] + [y + hc * combine(self.a[i], None, Ks, False) for i in range(1, self.stages)], dim=1)

    def interpolate(self, y0, h, dense, theta):
        """y(t0 + θ h) = y0 + h Σ_i b_i(θ) K_i for P points: y0 (P, n), h, θ (P,), K (P, S, n)."""
        (K,) = dense
        bt = powers(theta, self.dense.shape[1]) @ self.dense.T  # (P, S)
        return y0 + h[:, None] * torch.einsum("ps,psn->pn", bt, K)


class LazyExplicitRK(ExplicitRK, AbstractLazyDense):
    """An explicit method whose interpolant needs extra stages (Vern7): computed only where dense output is asked."""

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device, traced: bool = False):
        super().__init__(tableau, dtype, device, traced)
        cast = CastTableau(dtype, device)
        self.c_extra = cast.floats(tableau.extra_c)
        self.a_extra = cast.rows(tableau.extra_a)
        self.n_extra = len(self.c_extra)

    def extra_stages(self, rhs, t, y, h, dense):
        """dense = (K (P, s, n),) → ((K with the extra stages (P, s + extras, n),), evaluations (P,)) at P
        (step, row) pairs."""
        (K,) = dense
        hc = h[:, None]
        for c, a in zip(self.c_extra, self.a_extra):
            yi = y + hc * torch.einsum("s,psn->pn", a, K[:, : a.shape[0]])
            K = torch.cat([K, rhs(t + c * h, yi)[:, None]], dim=1)
        return (K,), torch.full_like(h, self.n_extra, dtype=torch.long)


def explicit_stepper(tableau: ButcherTableau, dtype, device, traced: bool = False) -> ExplicitRK:
    cls = LazyExplicitRK if tableau.extra_c else ExplicitRK
    return cls(tableau, dtype, device, traced)
