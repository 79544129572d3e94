"""Radau IIA methods: fully implicit Runge–Kutta (collocation) methods, L-stable and stiffly accurate, solved as
Hairer & Wanner's RADAU5 solves them (Solving ODEs II, IV.8; Hairer & Wanner, J. Comput. Appl. Math. 111, 1999).

Each step solves the s·n stage equations z = h (A ⊗ I) F(z) by a simplified Newton iteration on the transformed
increments w = (T^-1 ⊗ I) z, which decouple into one real and (s-1)/2 complex n-dimensional systems, each with one
LU factorisation per step; the Jacobian is reused across steps while Newton converges fast. The iteration starts
from the previous step's collocation polynomial, extrapolated. The error estimate is RADAU5's embedded one,
filtered through (I - γ0 h J)^-1 (a second, better one after a rejected step). Dense output: the collocation
polynomial (order s). Step sizes: Gustafsson's predictive controller (`PredictiveController`), the default here
as in RADAU5 and OrdinaryDiffEq.jl. Use float64.

Tolerances are transformed as RADAU5 and OrdinaryDiffEq.jl do (rtol' = 0.1 rtol^(2/3), atol' = rtol' atol/rtol):
the order-s estimate of an order-(2s-1) method over-estimates the local error, and the transformation brings the
reached accuracy near rtol. SciPy's Radau does not transform, so at the same rtol it is 10-100x more accurate and
proportionally more expensive; compare the two at matched accuracy (benchmarks/radau_workprecision.py). On the
classic stiff problems the global error stays within ~10 rtol (the slow tests of tests/test_stiff_solve.py); on a
smooth non-stiff problem with few steps it follows rtol' instead (measured 19x rtol at rtol 1e-8).

A known weakness, shared with RADAU5 and SciPy's Radau: the filtered estimate under-reports the error of a stiff
component forced by a smooth signal (the Prothero–Robinson problem u' = -λ (u - φ(t))), since the filter divides
it by ~γ0 h λ. Measured on λ = 1e4, φ = cos t over [0, 2]: RadauIIA5 at rtol 1e-8 errs 2e-4, SciPy's Radau 1.9e-6
(8e-5 at rtol 2e-7, the transformed tolerance); Rodas5P stays within a few rtol. For a gnODE with stiff units
driven by a smooth (cubic) input the effect is mild: 13-20x rtol at rtol 1e-6..1e-8 for RadauIIA5, 1.3-1.9x for
RadauIIA9. Where inputs are smooth and the tolerance must hold, prefer Rodas5P or a tighter rtol.
"""

from __future__ import annotations

from dataclasses import dataclass

from gnode.algorithms.base import AbstractTableauAlgorithm
from gnode.algorithms.tableaus import radau as tableaus


@dataclass(frozen=True, repr=False)
class AbstractRadauIIA(AbstractTableauAlgorithm):
    """A Radau IIA method given by its `tableau` (a `RadauIIATableau`), with the Newton iteration's options,
    named as in OrdinaryDiffEq.jl's RadauIIA5 (defaults: RADAU5's):

    kappa:     stop when the predicted remaining error η ‖Δw‖ <= kappa (RMS norm over all stages, scaled by the
               transformed tolerances; η = θ/(1-θ) from the contraction rate θ). None: RADAU5's
               FNEWT = max(10 eps / rtol', min(0.03, rtol'^(1/2))).
    max_iter:  Newton iterations per step before the step is rejected (RADAU5's NIT = 7). An iteration predicted
               not to converge within max_iter (θ^(max_iter - k) η ‖Δw‖ > kappa) stops early.
    fast_convergence_cutoff: keep the Jacobian for the next step when the step's Newton iteration contracted with
               η = θ/(1-θ) below this (OrdinaryDiffEq.jl's option, default 1/5 there; RADAU5 compares θ with
               0.001). The default 0.001 is RADAU5's: a new Jacobian costs a few evaluations here (structured, or
               one batched backward pass), fewer than the Newton iterations a stale one adds. f evaluations at
               matched l2 error over rtol 1e-5..1e-9, as a ratio to SciPy's Radau (benchmarks/radau_workprecision.py
               problems): cutoff 0.2 — HIRES 1.04, Robertson 1.27, Van der Pol 1.12; 0.01 — 0.96, 0.86, 0.96 and
               the stiff gnODE batch 1.03; 0.001 — 0.73, 0.86, 1.01 and 0.95 (with up to 2x the Jacobians).
    """

    kappa: float | None = None
    max_iter: int = 7
    fast_convergence_cutoff: float = 0.001

    def __post_init__(self):
        if self.kappa is not None and not (isinstance(self.kappa, (int, float)) and 0 < self.kappa < 1):
            raise ValueError(
                f"{self.name}: kappa must lie in (0, 1) (or None for RADAU5's default), got {self.kappa!r}"
            )
        if not (isinstance(self.max_iter, int) and not isinstance(self.max_iter, bool) and self.max_iter >= 2):
            raise ValueError(
                f"{self.name}: max_iter must be an integer >= 2 (the iteration needs two to measure "
                f"its contraction), got {self.max_iter!r}"
            )
        if not (isinstance(self.fast_convergence_cutoff, (int, float)) and self.fast_convergence_cutoff >= 0):
            raise ValueError(
                f"{self.name}: fast_convergence_cutoff must be a number >= 0 (0: a new Jacobian "
                f"every step), got {self.fast_convergence_cutoff!r}"
            )


@dataclass(frozen=True, repr=False)
class RadauIIA5(AbstractRadauIIA):
    """Radau IIA with 3 stages (Hairer & Wanner II, IV.5 and IV.8; RADAU5, OrdinaryDiffEq.jl's RadauIIA5).
    Order 5, stage order 3, L-stable, stiffly accurate; order-3 embedded error estimate; dense output the cubic
    collocation polynomial. For stiff problems at tight tolerances (1e-8 and below)."""

    tableau = property(lambda self: tableaus.RADAU_IIA5)


@dataclass(frozen=True, repr=False)
class RadauIIA9(AbstractRadauIIA):
    """Radau IIA with 5 stages (Hairer's RADAU with 5 stages; OrdinaryDiffEq.jl's RadauIIA9). Order 9, stage
    order 5, L-stable, stiffly accurate; order-5 embedded error estimate; dense output the quintic collocation
    polynomial. For stiff problems at very tight tolerances (1e-10 and below)."""

    tableau = property(lambda self: tableaus.RADAU_IIA9)


RADAU_ALGORITHMS = (RadauIIA5, RadauIIA9)
