"""Step-size control: the PI controller of OrdinaryDiffEq.jl (Hairer & Wanner II, IV.2), per trajectory.

All functions take and return (batch,) tensors and run without autograd: step sizes are constants for the
gradient (differentiating the controller's choice is neither meaningful nor stable).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PIController:
    """q = (EEst^β1 / qold^β2) / γ, clamped to [1/qmax, 1/qmin]; dt_new = dt / q on accept,
    dt / min(1/qmin, EEst^β1/γ) on reject. β1 = 0.7/k, β2 = 0.4/k with k = embedded order + 1."""

    k: int
    gamma: float = 0.9
    qmin: float = 0.2
    qmax: float = 10.0
    qoldinit: float = 1e-4

    @property
    def beta1(self) -> float:
        return 0.7 / self.k

    @property
    def beta2(self) -> float:
        return 0.4 / self.k

    def propose(self, dt: torch.Tensor, eest: torch.Tensor, qold: torch.Tensor, accept: torch.Tensor):
        """(dt_next, qold_next) for each trajectory. A non-finite EEst (passed as +inf) shrinks dt by qmin."""
        q11 = eest.pow(self.beta1)
        q = (q11 * qold.pow(-self.beta2)).mul_(1 / self.gamma).clamp_(1 / self.qmax, 1 / self.qmin)
        q_reject = (q11 / self.gamma).clamp_(max=1 / self.qmin)
        dt_next = dt / torch.where(accept, q, q_reject)
        qold_next = torch.where(accept, eest.clamp(min=self.qoldinit), qold)
        return dt_next, qold_next
