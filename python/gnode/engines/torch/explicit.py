"""One generic explicit Runge–Kutta step that walks any `ButcherTableau`."""

from __future__ import annotations

import torch

from gnode.algorithms.tableaus import ButcherTableau


class ExplicitRK:
    """A tableau cast to the solve's dtype/device, and the step that walks it.

    step(rhs, t, y, dt, k1, seg) → (y1, err, K, counters): K (s, B, n) holds every stage derivative (the
    dense output needs them), err (B, n) is the embedded error estimate (None for fixed-step methods), and
    counters a dict of extra per-trajectory statistics (implicit methods: njacs, nw, ...; here none).
    The loop relies on: stages, fsal, step, interpolate, extra stages (c_dense, extra_stages); the
    RK-weight adjoint quadrature on: b, c, stage_states.
    """

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device: torch.device):
        def vec(xs):
            return torch.tensor([float(x) for x in xs], dtype=dtype, device=device)

        self.tableau = tableau
        self.stages = tableau.stages
        self.fsal = tableau.fsal
        self.c = [float(x) for x in tableau.c]
        self.a = [vec(row) for row in tableau.a]
        self.a_dense = [vec(row) for row in tableau.extra_a]
        self.c_dense = [float(x) for x in tableau.extra_c]
        self.b = vec(tableau.b)
        self.b_error = vec(tableau.b_error) if tableau.adaptive else None
        degree = max(len(r) for r in tableau.dense)
        self.dense = torch.tensor([[float(x) for x in r] + [0.0] * (degree - len(r)) for r in tableau.dense],
                                  dtype=dtype, device=device)  # (S_dense, degree)

    @staticmethod
    def combine(weights: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """sum_j weights[j] K[j] for K (s, B, n) → (B, n), as one matrix product."""
        s = weights.shape[0]
        return (weights @ K[:s].reshape(s, -1)).reshape(K.shape[1:])

    def step(self, rhs, t, y, dt, k1, seg):
        dtc = dt[:, None]
        recording = torch.is_grad_enabled() and (y.requires_grad or k1.requires_grad)
        if recording:  # autograd: stages stacked afresh (an in-place buffer would break the saved tensors)
            ks = [k1]
            K = k1[None]
        else:  # no graph: one buffer per step, written stage by stage
            K = torch.empty((self.stages, *y.shape), dtype=y.dtype, device=y.device)
            K[0] = k1
        y1 = None
        for i in range(1, self.stages):
            yi = torch.addcmul(y, dtc, self.combine(self.a[i], K))
            if self.fsal and i == self.stages - 1:
                y1 = yi  # the last stage of an FSAL method is evaluated at (t1, y1)
            ki = rhs(t + self.c[i] * dt, yi, seg)
            if recording:
                ks.append(ki)
                K = torch.stack(ks)
            else:
                K[i] = ki
        if y1 is None:
            y1 = torch.addcmul(y, dtc, self.combine(self.b, K))
        err = None if self.b_error is None else dtc * self.combine(self.b_error, K)
        return y1, err, K, {}

    def stage_states(self, y, dt, K):
        """The states at which the stages were evaluated, rebuilt from K: (s, B, n)."""
        dtc = dt[:, None]
        return torch.stack([y] + [torch.addcmul(y, dtc, self.combine(self.a[i], K)) for i in range(1, self.stages)])

    def extra_stages(self, rhs, t, y, dt, K, seg, rows):
        """The interpolant's lazy stages (Vern7) at given (step, row) pairs: K (s, P, n) → (s + extras, P, n)."""
        dtc = dt[:, None]
        for c, a in zip(self.c_dense, self.a_dense):
            yi = torch.addcmul(y, dtc, self.combine(a, K))
            K = torch.cat([K, rhs(t + c * dt, yi, seg, rows)[None]])
        return K

    def interpolate(self, y0, dt, K, theta):
        """y(t0 + θ dt) = y0 + dt sum_i b_i(θ) K_i for P points: y0 (P, n), dt, θ (P,), K (S, P, n)."""
        powers = theta[:, None] ** torch.arange(1, self.dense.shape[1] + 1, device=theta.device, dtype=theta.dtype)
        bt = powers @ self.dense.T  # (P, S)
        return y0 + dt[:, None] * torch.einsum("ps,spn->pn", bt, K)
