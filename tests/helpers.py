"""Shared pieces of the solve tests: the one list of algorithms, test problems with independent references.

References are computed independently of gnode: closed forms (the matrix exponential via SciPy, the Kepler
orbit via Kepler's equation) or SciPy's `solve_ivp` in float64 on a NumPy copy of the vector field.

Default-run reference: SciPy DOP853 at rtol 1e-13, atol 1e-15 (order 8, ~100x faster than Radau at these
tolerances). The `slow` tests check the same problems against SciPy Radau at rtol 1e-12, atol 1e-14 and check
that the two references agree to 1e-10 (measured: <= 2e-12 on Van der Pol mu = 1, 3, 10 and Lotka–Volterra).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.integrate
import scipy.linalg
import torch

import gnode

F64 = torch.float64


# ----------------------------------------------------------------------------------------------- algorithms


@dataclass(frozen=True)
class Method:
    """An algorithm and what the tests expect of it: order p of the step, order q of the dense output."""

    alg: gnode.algorithms.AbstractAlgorithm
    order: int
    dense_order: int

    @property
    def name(self) -> str:
        return self.alg.name

    @property
    def adaptive(self) -> bool:
        return self.alg.adaptive

    def fixed(self, h: float) -> dict:
        """solve() keywords that run the method with the constant step h (adaptive ones with their error
        control switched off: huge tolerances accept every step, dtmax = dt keeps it constant)."""
        if self.adaptive:
            return {"dt": h, "dtmax": h, "reltol": 1e6, "abstol": 1e6}
        return {"dt": h}


# The one list: every method of the native engine, with its published orders.
METHODS = [
    Method(gnode.Euler(), 1, 1),
    Method(gnode.Midpoint(), 2, 2),
    Method(gnode.RK4(), 4, 3),
    Method(gnode.BS3(), 3, 3),
    Method(gnode.DP5(), 5, 4),
    Method(gnode.Tsit5(), 5, 4),
    Method(gnode.Vern7(), 7, 6),
]
ADAPTIVE = [m for m in METHODS if m.adaptive]
FIXED = [m for m in METHODS if not m.adaptive]


def ids(methods) -> list[str]:
    return [m.name for m in methods]


# ------------------------------------------------------------------------------------------------- problems

# A damped rotation mixed with a decaying mode: eigenvalues -0.49 ± 1.27i and -0.91 (non-normal, nothing special).
LINEAR_A = np.array([[-0.4, 1.3, 0.2], [-1.1, -0.3, 0.5], [0.3, -0.6, -0.7]])


def expm(A: np.ndarray, t: float) -> np.ndarray:
    """exp(A t) in float64 by SciPy (Al-Mohy & Higham). Not torch.linalg.matrix_exp: in torch 2.13 that loses
    accuracy for float64 matrices of norm ~0.005-0.03 (errors up to ~7e-12, measured against SciPy)."""
    return scipy.linalg.expm(A * t)


def linear_exact(A: np.ndarray, u0: np.ndarray, ts) -> np.ndarray:
    """u(t) = exp(A t) u0 for each row of u0 (B, n) at times ts (T,) → (B, T, n), by the eigendecomposition
    A = V Λ V⁻¹ (fast for many t; A must be diagonalisable and well conditioned: LINEAR_A's V has
    condition number 1.6, and this agrees with `expm` to ~3e-15, see test_solve_reference)."""
    w, V = np.linalg.eig(A)
    E = np.einsum("ij,tj,jk->tik", V, np.exp(np.outer(np.atleast_1d(ts), w)), np.linalg.inv(V)).real
    return np.einsum("tij,bj->bti", E, u0)


def linear_field(A: np.ndarray, dtype=F64):
    At = torch.as_tensor(A, dtype=dtype).T.contiguous()
    return lambda t, u: u @ At


def vdp_field(t, u):
    """Van der Pol with mu carried as a third, constant state (so one batch holds several mu and f stays row-wise)."""
    x, y, mu = u[:, 0], u[:, 1], u[:, 2]
    return torch.stack([y, mu * (1 - x * x) * y - x, torch.zeros_like(mu)], dim=-1)


def vdp_numpy(t, u):
    x, y, mu = u
    return np.array([y, mu * (1 - x * x) * y - x, 0.0])


LV = (1.5, 1.0, 3.0, 1.0)  # a, b, c, d of x' = a x - b x y, y' = -c y + d x y


def lv_field(t, u):
    a, b, c, d = LV
    x, y = u[:, 0], u[:, 1]
    return torch.stack([a * x - b * x * y, -c * y + d * x * y], dim=-1)


def lv_numpy(t, u):
    a, b, c, d = LV
    x, y = u
    return np.array([a * x - b * x * y, -c * y + d * x * y])


class GatedField(torch.nn.Module):
    """tau dh/dt = sigmoid(Wz h + bz) ⊙ (-h + tanh(W h + b)): a small gnODE built here, independently of
    gnode.models (so the solver tests do not depend on the model code). With `inputs`, U x is added inside both."""

    def __init__(self, n: int, dim: int = 0, tau: float = 1.0, gain: float = 1.5, seed: int = 0, dtype=F64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)
        self.W = torch.nn.Parameter(gain * r(n, n) / math.sqrt(n))
        self.b = torch.nn.Parameter(0.1 * r(n))
        self.Wz = torch.nn.Parameter(r(n, n) / math.sqrt(n))
        self.bz = torch.nn.Parameter(0.1 * r(n))
        self.U = torch.nn.Parameter(r(n, dim)) if dim else None
        self.Uz = torch.nn.Parameter(r(n, dim)) if dim else None
        self.tau = tau

    def forward(self, t, h, x=None):
        a, z = h @ self.W.T + self.b, h @ self.Wz.T + self.bz
        if x is not None:
            a, z = a + x @ self.U.T, z + x @ self.Uz.T
        return torch.sigmoid(z) * (-h + torch.tanh(a)) / self.tau

    def numpy(self):
        """The same field in NumPy for a SciPy reference: fun(t, h, x=None) on one state (n,)."""
        W, b, Wz, bz = (p.detach().cpu().double().numpy() for p in (self.W, self.b, self.Wz, self.bz))
        U = None if self.U is None else self.U.detach().cpu().double().numpy()
        Uz = None if self.Uz is None else self.Uz.detach().cpu().double().numpy()
        tau = self.tau

        def fun(t, h, x=None):
            a, z = W @ h + b, Wz @ h + bz
            if x is not None:
                a, z = a + U @ x, z + Uz @ x
            return 1 / (1 + np.exp(-z)) * (-h + np.tanh(a)) / tau

        return fun


# Kepler's problem q'' = -q/|q|^3, eccentricity E_KEPLER, period 2π: a nonlinear problem with a closed form.
E_KEPLER = 0.5


def kepler_exact(t) -> np.ndarray:
    """State (q1, q2, p1, p2) at times t (any shape) of the orbit starting at pericentre, from Kepler's equation
    E - e sin E = t solved by Newton to round-off."""
    e = E_KEPLER
    t = np.asarray(t, dtype=np.float64)
    E = t.copy()
    for _ in range(60):
        E = E - (E - e * np.sin(E) - t) / (1 - e * np.cos(E))
    r, s = 1 - e * np.cos(E), math.sqrt(1 - e * e)
    return np.stack([np.cos(E) - e, s * np.sin(E), -np.sin(E) / r, s * np.cos(E) / r], axis=-1)


def kepler_field(t, u):
    q, p = u[:, :2], u[:, 2:]
    return torch.cat([p, -q / (q * q).sum(-1, keepdim=True) ** 1.5], dim=-1)


# ---------------------------------------------------------------------------------------------- references


def scipy_reference(
    fun,
    u0: np.ndarray,
    ts,
    *,
    method: str = "DOP853",
    rtol: float = 1e-13,
    atol: float = 1e-15,
    jac=None,
    breakpoints=(),
) -> np.ndarray:
    """SciPy solution of u' = fun(t, u) for each row of u0 (B, n) at the times ts (T,) (monotone, ts[0] the
    initial time) → (B, T, n), float64. Each row is integrated piece by piece, stopping exactly at every ts
    and at every breakpoint (no interpolation error; no step straddles a breakpoint). `fun(t, u, k)` gets
    the index k of the piece (the interval between consecutive breakpoints the piece lies in) when
    breakpoints are given."""
    ts = np.asarray(ts, dtype=np.float64)
    sign = 1.0 if ts[-1] >= ts[0] else -1.0
    bps = np.asarray(sorted(breakpoints), dtype=np.float64)
    inside = bps[((bps - ts[0]) * sign > 0) & ((ts[-1] - bps) * sign > 0)]
    grid = np.unique(np.concatenate([ts, inside]))
    grid = grid if sign > 0 else grid[::-1]
    out = np.empty((u0.shape[0], ts.size, u0.shape[1]))
    for b, y in enumerate(np.asarray(u0, dtype=np.float64)):
        values = {float(grid[0]): y}
        for lo, hi in itertools.pairwise(grid):
            if len(bps):
                k = int(np.searchsorted(bps, 0.5 * (lo + hi), side="right")) - 1
                rhs = lambda t, u, k=k: fun(t, u, k)
            else:
                rhs = fun
            sol = scipy.integrate.solve_ivp(
                rhs, (lo, hi), y, method=method, rtol=rtol, atol=atol, **({"jac": jac} if jac is not None else {})
            )
            assert sol.status == 0, sol.message
            y = sol.y[:, -1]
            values[float(hi)] = y
        out[b] = np.stack([values[float(t)] for t in ts])
    return out


def radau_reference(fun, u0, ts, **kw) -> np.ndarray:
    """The reference the design names: SciPy Radau at rtol 1e-12, atol 1e-14 (slow: use in `slow` tests)."""
    return scipy_reference(fun, u0, ts, method="Radau", rtol=1e-12, atol=1e-14, **kw)


# ----------------------------------------------------------------------------------------------- utilities


def max_error(u: torch.Tensor, ref: np.ndarray) -> float:
    return float(np.abs(u.detach().cpu().double().numpy() - ref).max())


def slope(hs, errors) -> float:
    """Least-squares slope of log(error) against log(h)."""
    return float(np.polyfit(np.log(hs), np.log(errors), 1)[0])
