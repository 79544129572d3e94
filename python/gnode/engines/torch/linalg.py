"""The iteration matrix W = I - γ dt J of the stiff methods, its batched LU factorisation and solves.

One factorisation per trajectory and step (`torch.linalg.lu_factor_ex`), reused by every stage's solve (and by
every Newton iteration of an ESDIRK step). A singular W (γ dt exactly at an inverse eigenvalue of J) or a
non-finite J marks that row as failed instead of raising, so the loop rejects that step of that trajectory
only; its factors are replaced by the identity's so the other rows' solves (and their gradients) stay finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Factorized:
    """LU factors of W (B, n, n), pivots, and ok (B,): the factorisation exists and is finite."""

    lu: torch.Tensor
    pivots: torch.Tensor
    ok: torch.Tensor

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """W^-1 rhs for rhs (B, n) → (B, n)."""
        return torch.linalg.lu_solve(self.lu, self.pivots, rhs.unsqueeze(-1)).squeeze(-1)


def factorize_w(J: torch.Tensor, gamma_dt: torch.Tensor) -> Factorized:
    """LU of W = I - gamma_dt J for J (B, n, n), gamma_dt (B,)."""
    n = J.shape[-1]
    eye = torch.eye(n, dtype=J.dtype, device=J.device)
    W = eye - gamma_dt[:, None, None] * J
    lu, pivots, info = torch.linalg.lu_factor_ex(W)
    ok = (info == 0) & torch.isfinite(lu).all(dim=(-2, -1))
    identity_pivots = torch.arange(1, n + 1, dtype=pivots.dtype, device=pivots.device)
    lu = torch.where(ok[:, None, None], lu, eye)
    pivots = torch.where(ok[:, None], pivots, identity_pivots)
    return Factorized(lu, pivots, ok)
