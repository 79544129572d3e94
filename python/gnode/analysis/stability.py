"""Linear stability of a method: its stability polynomial and how far its stability region reaches along
the negative real axis — the bound that dt * rho(J) is compared with.

For an explicit Runge–Kutta method (c, A, b) with s stages, one step on y' = lambda y is y1 = R(z) y0 with
z = dt lambda and

    R(z) = 1 + z b^T (I - z A)^{-1} 1 = sum_{k=0}^{s} gamma_k z^k,   gamma_0 = 1, gamma_k = b^T A^{k-1} 1

(A is strictly lower triangular, so the series stops at k = s; Hairer & Wanner II, IV.2). A method of
order p has gamma_k = 1/k! for k <= p. The step is stable for the mode lambda when |R(z)| <= 1; the
real-axis bound is the largest r with |R(-x)| <= 1 for all x in [0, r]: Euler 2, RK4 2.7853, DP5 3.3066,
Tsit5 3.5068, Vern7 4.64 (the last two are OrdinaryDiffEq.jl's `alg_stability_size`).

Rosenbrock and ESDIRK methods here are L-stable (their docstrings), so their bound is infinite: no step is
limited by stability. An auto-switching method is bounded by its explicit method on explicit steps.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import torch

from gnode.algorithms.auto import AbstractAutoSwitch
from gnode.algorithms.base import AbstractAlgorithm, AbstractExplicitRK
from gnode.algorithms.esdirk import AbstractESDIRK
from gnode.algorithms.rosenbrock import AbstractRosenbrock


@functools.lru_cache(maxsize=32)
def stability_polynomial(tableau) -> tuple[Fraction, ...]:
    """The exact coefficients (gamma_0, ..., gamma_s) of R(z) for an explicit Butcher tableau
    (`gnode.algorithms.tableaus.ButcherTableau`: c, a (rows of the strictly lower triangle), b)."""
    s = len(tableau.b)
    A = [[Fraction(0)] * s for _ in range(s)]
    for i, row in enumerate(tableau.a):
        if len(row) > i:
            raise ValueError(
                f"{tableau.name}: stage {i} has {len(row)} coefficients; an explicit method has at most {i}"
            )
        for j, a_ij in enumerate(row):
            A[i][j] = Fraction(a_ij)
    b = [Fraction(bi) for bi in tableau.b]
    coeffs = [Fraction(1)]
    v = [Fraction(1)] * s  # A^{k-1} 1
    for _ in range(s):
        coeffs.append(sum((bi * vi for bi, vi in zip(b, v)), Fraction(0)))
        v = [sum((A[i][j] * v[j] for j in range(i)), Fraction(0)) for i in range(s)]
    while len(coeffs) > 1 and coeffs[-1] == 0:
        coeffs.pop()
    return tuple(coeffs)


def evaluate_polynomial(coeffs, z: torch.Tensor) -> torch.Tensor:
    """R(z) = sum_k coeffs[k] z^k (Horner) for a real or complex tensor z."""
    out = torch.zeros_like(z)
    for c in reversed(coeffs):
        out = out * z + float(c)
    return out


def real_axis_bound(coeffs) -> float:
    """The largest r with |R(-x)| <= 1 on [0, r] for R given by `coeffs`; inf if |R(-x)| <= 1 for all x >= 0.

    Candidates are the positive real roots of R(-x) - 1 and R(-x) + 1 (numpy.roots, then polished by Newton
    in float64); the first at which |R(-x)| leaves [-1, 1] is the bound.
    """
    c = [float(v) for v in coeffs]
    # p(x) = R(-x) in numpy's highest-degree-first order
    p = np.array([c[k] * (-1) ** k for k in range(len(c))][::-1])
    if len(p) == 1:
        return math.inf
    dp = np.polyder(p)
    roots = []
    for shift in (1.0, -1.0):
        q = p.copy()
        q[-1] -= shift
        for r in np.roots(q):
            if abs(r.imag) <= 1e-7 * max(1.0, abs(r)) and r.real > 1e-9:
                x = float(r.real)
                for _ in range(3):  # polish on p(x) = shift
                    d = float(np.polyval(dp, x))
                    if d == 0:
                        break
                    x -= (float(np.polyval(p, x)) - shift) / d
                roots.append(x)
    for x in sorted(roots):
        probe = x * (1 + 1e-7) + 1e-12
        if abs(float(np.polyval(p, probe))) > 1:
            return x
    # a non-constant polynomial is unbounded as x -> inf, so a crossing exists; not finding one means the
    # root finder failed, which is reported rather than answered with a wrong number
    raise ArithmeticError(
        "could not locate where |R(-x)| first exceeds 1; R(-x) has the coefficients "
        f"{p.tolist()} (highest degree first)"
    )


def stability_bound(alg: AbstractAlgorithm) -> float:
    """The real-axis stability bound of `alg` (module docstring): computed from the tableau for explicit RK
    methods, inf for the L-stable Rosenbrock and ESDIRK methods, the explicit method's for auto-switching."""
    if isinstance(alg, AbstractAutoSwitch):
        return stability_bound(alg.nonstiff)
    if isinstance(alg, AbstractExplicitRK):
        return _explicit_bound(alg.tableau)
    if isinstance(alg, (AbstractRosenbrock, AbstractESDIRK)):
        return math.inf
    raise ValueError(
        f"no stability bound is known for {getattr(alg, 'name', type(alg).__name__)}; give one "
        "explicitly (stability_bound=...)"
    )


@functools.lru_cache(maxsize=32)
def _explicit_bound(tableau) -> float:
    return real_axis_bound(stability_polynomial(tableau))


def amplification(alg: AbstractAlgorithm, z: torch.Tensor) -> torch.Tensor | None:
    """|R(z)| for an explicit RK method at complex z = dt * lambda (any shape); None for other methods (their
    R is rational and, being L-stable, |R| <= 1 on the left half-plane)."""
    if isinstance(alg, AbstractAutoSwitch):
        alg = alg.nonstiff
    if not isinstance(alg, AbstractExplicitRK):
        return None
    return evaluate_polynomial(stability_polynomial(alg.tableau), z).abs()
