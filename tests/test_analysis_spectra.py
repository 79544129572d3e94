"""Spectra and stability: the Krylov spectral radius from JVP power iterates against dense eigenvalues,
classification at the tolerance's edges, the stiffness ratio, and each method's stability polynomial and
real-axis bound against the order conditions, published values, a brute-force scan and actual solves."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import gnode
from gnode.analysis import (
    MARGINAL,
    SADDLE,
    STABLE,
    UNSTABLE,
    amplification,
    classify,
    spectral_radius,
    spectral_radius_krylov,
    stability_bound,
    stability_polynomial,
    stiffness_ratio,
)

D = torch.float64


EXPLICIT = [gnode.Euler(), gnode.Midpoint(), gnode.RK4(), gnode.BS3(), gnode.DP5(), gnode.Tsit5(), gnode.Vern7()]


def test_krylov_spectral_radius_is_exact_with_n_iterates():
    g = torch.Generator().manual_seed(0)
    J = torch.randn(6, 30, 30, generator=g, dtype=D)
    v0 = torch.randn(6, 30, generator=g, dtype=D)
    got = spectral_radius_krylov(lambda v: (J @ v[..., None])[..., 0], v0, iters=30)
    torch.testing.assert_close(got, torch.linalg.eigvals(J).abs().amax(-1), rtol=1e-9, atol=0)
    torch.testing.assert_close(spectral_radius(J), torch.linalg.eigvals(J).abs().amax(-1))


def test_krylov_finds_a_dominant_complex_pair_from_few_iterates():
    # dominant eigenvalues 4 +- 3i (|.| = 5) in a random basis, the rest inside |z| <= 1: plain power iteration
    # rotates forever on such a pair; the Ritz values of 8 iterates resolve it
    g = torch.Generator().manual_seed(1)
    n = 40
    core = torch.block_diag(
        torch.tensor([[4.0, 3.0], [-3.0, 4.0]], dtype=D), torch.diag(torch.rand(n - 2, generator=g, dtype=D) * 2 - 1)
    )
    P = torch.eye(n, dtype=D) + 0.2 * torch.randn(n, n, generator=g, dtype=D)
    J = P @ core @ torch.linalg.inv(P)
    v0 = torch.randn(3, n, generator=g, dtype=D)
    got = spectral_radius_krylov(lambda v: v @ J.T, v0, iters=8)
    torch.testing.assert_close(got, torch.full((3,), 5.0, dtype=D), rtol=1e-6, atol=0)


def test_krylov_handles_an_invariant_start_and_rejects_a_zero_start():
    J = torch.diag(torch.tensor([3.0, -1.0, 0.5], dtype=D))
    v0 = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=D)  # row 0 is an eigenvector: breakdown at k = 1
    got = spectral_radius_krylov(lambda v: v @ J.T, v0, iters=3)
    torch.testing.assert_close(got, torch.tensor([1.0, 3.0], dtype=D), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="zero row"):
        spectral_radius_krylov(lambda v: v, torch.zeros(1, 3, dtype=D))


def test_classification_at_the_edges_of_the_tolerance():
    lam = torch.tensor(
        [
            [-1.0, -2.0],  # stable
            [-0.01, -2.0],  # |Re| = tol: marginal
            [0.01, -2.0],  # Re = +tol: still marginal
            [0.0101, -2.0],  # just above: saddle
            [0.5, 0.0],  # growing and marginal, nothing decaying: unstable
            [0.5, 1.0],  # unstable
        ],
        dtype=D,
    ).to(torch.complex128)
    assert classify(lam, 0.01) == [STABLE, MARGINAL, MARGINAL, SADDLE, UNSTABLE, UNSTABLE]
    assert classify(lam, 0.0)[1] == STABLE
    with pytest.raises(ValueError, match="marginal tolerance must be a number >= 0"):
        classify(lam, -1.0)


def test_stiffness_ratio_and_its_caveat():
    lam = torch.tensor(
        [[-1 + 5j, -1 - 5j, -100 + 0j], [-1e-6 + 0j, -2 + 0j, 0.3 + 0j], [0.1 + 0j, 0.2 + 0j, 0j]],
        dtype=torch.complex128,
    )
    r = stiffness_ratio(lam)
    assert float(r[0]) == pytest.approx(100.0)
    assert float(r[1]) == pytest.approx(2e6)  # a near-marginal direction inflates it; Re > 0 is left out
    assert math.isnan(float(r[2]))


@pytest.mark.parametrize("alg", EXPLICIT, ids=lambda a: a.name)
def test_stability_polynomial_matches_exp_to_the_order(alg):
    gamma = stability_polynomial(alg.tableau)
    p = alg.order
    assert len(gamma) <= alg.tableau.stages + 1
    for k in range(p + 1):  # a method of order p reproduces e^z up to z^p (order conditions on trees t_k)
        assert abs(gamma[k] - Fraction(1, math.factorial(k))) < Fraction(1, 10**14), (alg.name, k)
    if len(gamma) > p + 1:  # and no further: otherwise it would have higher order
        assert abs(gamma[p + 1] - Fraction(1, math.factorial(p + 1))) > Fraction(1, 10**12)


PUBLISHED = {  # real-axis stability bounds
    "Euler": (2.0, 1e-12),
    "Midpoint": (2.0, 1e-12),
    "RK4": (2.785293563405282, 1e-12),  # root of 1 - x + x^2/2 - x^3/6 + x^4/24 = 1 (Hairer & Wanner II, IV.2)
    "Tsit5": (3.5068, 1e-4),  # OrdinaryDiffEq.jl alg_stability_size(Tsit5())
    "Vern7": (4.64, 1e-3),  # OrdinaryDiffEq.jl alg_stability_size(Vern7())
}


@pytest.mark.parametrize("alg", EXPLICIT, ids=lambda a: a.name)
def test_real_axis_bound_against_published_values_and_a_brute_force_scan(alg):
    r = stability_bound(alg)
    if alg.name in PUBLISHED:
        want, tol = PUBLISHED[alg.name]
        assert r == pytest.approx(want, abs=tol)
    # independent scan: |R(-x)| on a fine grid, the first x where it exceeds 1
    coeffs = [float(c) for c in stability_polynomial(alg.tableau)]
    x = np.linspace(0, 8, 800_001)
    vals = np.polynomial.polynomial.polyval(-x, coeffs)
    first_out = x[np.argmax(np.abs(vals) > 1 + 1e-12)]
    assert r == pytest.approx(first_out, abs=2e-5)


def test_stiff_methods_have_no_bound_and_auto_switching_uses_its_explicit_one():
    assert stability_bound(gnode.Rodas5P()) == math.inf and stability_bound(gnode.KenCarp4()) == math.inf
    assert stability_bound(gnode.AutoTsit5(gnode.Rodas5P())) == stability_bound(gnode.Tsit5())
    # the hand-set switching threshold of AutoTsit5 agrees with the computed bound
    assert gnode.AutoTsit5(gnode.Rodas5P()).stability_size == pytest.approx(stability_bound(gnode.Tsit5()), abs=1e-4)
    assert amplification(gnode.Rodas5P(), torch.tensor([-1.0 + 0j])) is None
    z = torch.tensor([-1.0 + 0j, 0.5j], dtype=torch.complex128)
    torch.testing.assert_close(amplification(gnode.Euler(), z), (1 + z).abs())


@pytest.mark.parametrize("alg", [gnode.RK4(), gnode.Euler()], ids=lambda a: a.name)
def test_the_bound_separates_decay_from_blow_up_in_actual_solves(alg):
    # y' = -y with fixed steps dt = 0.97 and 1.03 times the bound: the solver's own iterates decay / grow
    bound = stability_bound(alg)
    prob = gnode.ODEProblem(lambda t, y: -y, torch.ones(1, 1, dtype=D), (0.0, 60 * bound))
    inside = gnode.solve(prob, alg, dt=0.97 * bound)
    outside = gnode.solve(prob, alg, dt=1.03 * bound)
    assert float(inside.u[0, -1, 0].abs()) < 1e-1
    assert float(outside.u[0, -1, 0].abs()) > 2.0
    # and |R(dt lambda)| says the same
    assert float(amplification(alg, torch.tensor([-0.97 * bound + 0j]))) < 1
    assert float(amplification(alg, torch.tensor([-1.03 * bound + 0j]))) > 1
