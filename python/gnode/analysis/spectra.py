"""Jacobian spectra: eigenvalues, the spectral radius (exact, or from power iterates through JVPs), the
classification of a fixed point by its eigenvalues, and the classical stiffness ratio.

Spectral radius from Jacobian-vector products. Power iteration forms v, Jv, J^2 v, ... and reads rho(J) off
their growth. Plain power iteration does not settle when the dominant eigenvalues are a complex-conjugate
pair (common: gnODE Jacobians are not symmetric) or +-lambda; so the power iterates are orthonormalised as
they come (Arnoldi: the same Krylov space, built stably) and rho is read off the eigenvalues of the small
projected matrix H_k (the Ritz values). With k = n iterates it is exact (up to rounding); with k < n the
largest Ritz value approaches the dominant eigenvalue from the power iterates' span (Saad, "Numerical
Methods for Large Eigenvalue Problems", 2nd ed. 2011, ch. 6). Each iterate costs one JVP, never J itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

STABLE, MARGINAL, SADDLE, UNSTABLE = "stable", "marginally_stable", "saddle", "unstable"
CLASSES = (STABLE, MARGINAL, SADDLE, UNSTABLE)
CLASS_DESCRIPTIONS = {
    STABLE: "every eigenvalue has Re < -tol",
    MARGINAL: "no Re > tol and at least one |Re| <= tol (marginal directions)",
    SADDLE: "some Re > tol and some Re < -tol",
    UNSTABLE: "some Re > tol and none Re < -tol",
}


def eigenvalues(J: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (P, n) complex of J (P, n, n), sorted by decreasing real part (ties: decreasing imag)."""
    if J.ndim != 3 or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"J must be (points, n, n), got shape {tuple(J.shape)}")
    lam = torch.linalg.eigvals(J)
    return sort_eigenvalues(lam)


def sort_eigenvalues(lam: torch.Tensor) -> torch.Tensor:
    """Sort (P, n) complex eigenvalues by decreasing real part, then decreasing imaginary part."""
    # two stable sorts: by the secondary key first, then the primary
    order = torch.argsort(-lam.imag, dim=-1, stable=True)
    lam = torch.gather(lam, -1, order)
    order = torch.argsort(-lam.real, dim=-1, stable=True)
    return torch.gather(lam, -1, order)


def spectral_radius(J: torch.Tensor) -> torch.Tensor:
    """rho(J) = max_i |lambda_i| (P,) from the exact eigenvalues of J (P, n, n)."""
    return torch.linalg.eigvals(J).abs().amax(dim=-1)


def spectral_radius_krylov(
    jvp: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, iters: int = 20
) -> torch.Tensor:
    """rho(J) (P,) from `iters` power iterates J^k v0, each one JVP `jvp(v) = J v` (P, n) -> (P, n).

    The iterates are orthonormalised as they come (Arnoldi, classical Gram-Schmidt applied twice) and rho is
    the largest |Ritz value| of the projected (iters, iters) matrix (module docstring). A row whose Krylov
    space closes early (an invariant subspace) stops growing there; its Ritz values are then exact.
    v0: (P, n) start vectors (random ones are best; a start orthogonal to the dominant eigenvector never
    sees it). iters is capped at n.
    """
    if v0.ndim != 2:
        raise ValueError(f"v0 must be (points, n), got shape {tuple(v0.shape)}")
    P, n = v0.shape
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive integer, got {iters!r}")
    k = min(iters, n)
    norm0 = v0.norm(dim=-1, keepdim=True)
    if bool((norm0 == 0).any()):
        raise ValueError("v0 has a zero row; start from random vectors")
    V = [v0 / norm0]
    H = v0.new_zeros(P, k + 1, k)
    alive = torch.ones(P, dtype=torch.bool, device=v0.device)
    for j in range(k):
        w = jvp(V[j])
        scale = w.norm(dim=-1)
        for _ in range(2):  # twice is enough (Giraud et al. 2005), once loses orthogonality
            for i in range(j + 1):
                h = (V[i] * w).sum(-1)
                H[:, i, j] += h
                w = w - h[:, None] * V[i]
        hn = w.norm(dim=-1)
        # breakdown: the Krylov space is invariant; later vectors are zero and add zero Ritz values
        eps = torch.finfo(v0.dtype).eps
        alive = alive & (hn > 64 * eps * scale.clamp(min=torch.finfo(v0.dtype).tiny))
        H[:, j + 1, j] = torch.where(alive, hn, torch.zeros_like(hn))
        V.append(
            torch.where(alive[:, None], w / hn.clamp(min=torch.finfo(v0.dtype).tiny)[:, None], torch.zeros_like(w))
        )
    ritz = torch.linalg.eigvals(H[:, :k, :k])
    return ritz.abs().amax(dim=-1)


def count_directions(lam: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n_unstable, n_marginal, n_stable) (P,) each: eigenvalues with Re > tol, |Re| <= tol, Re < -tol."""
    re = lam.real
    return (re > tol).sum(-1), (re.abs() <= tol).sum(-1), (re < -tol).sum(-1)


def classify(lam: torch.Tensor, tol: float) -> list[str]:
    """The class of each point (see `CLASS_DESCRIPTIONS`) from its eigenvalues lam (P, n).

    tol is on the real parts, in the units of the eigenvalues (1 / time): a direction whose |Re lambda| is
    at most tol relaxes (or grows) on a timescale of at least 1 / tol and counts as marginal.
    """
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"the marginal tolerance must be a number >= 0, got {tol!r}")
    up, marg, down = count_directions(lam, tol)
    out = []
    for u, m, d in zip(up.tolist(), marg.tolist(), down.tolist()):
        if u == 0:
            out.append(STABLE if m == 0 else MARGINAL)
        else:
            out.append(SADDLE if d > 0 else UNSTABLE)
    return out


def stiffness_ratio(lam: torch.Tensor) -> torch.Tensor:
    """The classical stiffness ratio max|Re lambda| / min|Re lambda| over the eigenvalues with Re lambda < 0
    (Lambert, "Computational Methods in Ordinary Differential Equations", 1973), (P,); NaN where no eigenvalue
    has a negative real part.

    Caveat: the ratio measures the spread of decay rates, not the cost of solving. Near a (nearly)
    continuous attractor one eigenvalue sits at ~0 (the marginal direction), so min|Re lambda| -> 0 and the
    ratio blows up even when nothing is fast; an eigenvalue with Re >= 0 is left out altogether. Read it
    beside rho(J) and dt * rho(J) against the method's stability bound, which say whether a step was
    limited by stability.
    """
    re = lam.real
    neg = re < 0
    big = torch.where(neg, -re, torch.zeros_like(re)).amax(-1)
    small = torch.where(neg, -re, torch.full_like(re, float("inf"))).amin(-1)
    ratio = big / small
    return torch.where(neg.any(-1), ratio, torch.full_like(ratio, float("nan")))
