"""Consistency and order conditions of the stiff tableaus: Rosenbrock (`tableaus/rosenbrock.py`) and ESDIRK
(`tableaus/esdirk.py`), computed exactly with Fractions over rooted trees (the tree machinery of
`test_tableaus.py`).

ESDIRK: an implicit RK method; the usual conditions Σ b_i Φ_i(t) = 1/γ(t) with Φ over the full lower-triangular
A (diagonal included).

Rosenbrock, in Hairer & Wanner's form (I - hγJ) K_i = h f(y0 + Σ α_ij K_j) + hJ Σ_{j<i} γ_ij K_j: expanding K_i
in elementary differentials, a node with one child comes from both f'(y)·(Σ α K) and J·(Σ γ K) (J = f'(y0)), a
node with several children only from f's higher derivatives. So with β = α + Γ (Γ including its diagonal γ):

    Φ_i(τ) = 1,   Φ_i([t1]) = Σ_j β_ij Φ_j(t1),   Φ_i([t1..tm]) = Π_k Σ_j α_ij Φ_j(t_k)  (m >= 2),

and order p iff Σ b_i Φ_i(t) = 1/γ(t) for |t| <= p — Hairer & Wanner II, IV.7 (Table 7.1's conditions, e.g.
Σ b_j β'_j = 1/2 - γ, are these with the diagonal moved to the right-hand side). A continuous extension
w_i(θ) has order q iff Σ w_i(θ) Φ_i(t) = θ^|t| / γ(t) for |t| <= q.

Rodas4/Rodas5P are float64-printed decimals pushed through Γ = (diag(1/γ) - C)^-1, so their residuals are
~1e-15..2e-13 (measured); TOL_DATA = 1e-12 passes them, and "fails" means a residual above FAIL = 1e-8.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from gnode.algorithms.tableaus import esdirk, rosenbrock
from gnode.algorithms.tableaus.esdirk import ESDIRKTableau
from gnode.algorithms.tableaus.rosenbrock import RosenbrockTableau
from test_tableaus import gamma, size, trees

TOL_EXACT = Fraction(1, 10**15)
TOL_DATA = Fraction(1, 10**12)
FAIL = Fraction(1, 10**8)

ROSENBROCK = [v for v in vars(rosenbrock).values() if isinstance(v, RosenbrockTableau)]
ESDIRK = [v for v in vars(esdirk).values() if isinstance(v, ESDIRKTableau)]

# name: (stages, order, error_order, dense_order, fsal) — what each tableau claims.
EXPECTED_ROSENBROCK = {
    "Rosenbrock23": (3, 2, 3, 2, True),
    "Rodas4": (6, 4, 3, 3, False),
    "Rodas5P": (8, 5, 4, 4, False),
}
EXPECTED_ESDIRK = {  # (stages, order, error_order, gamma)
    "TRBDF2": (3, 2, 3, 1 - rosenbrock._sqrt(2) / 2),
    "KenCarp4": (6, 4, 3, Fraction(1, 4)),
    "Kvaerno5": (7, 5, 4, Fraction(26, 100)),
}


def test_every_stiff_tableau_is_listed():
    assert {t.name for t in ROSENBROCK} == set(EXPECTED_ROSENBROCK)
    assert {t.name for t in ESDIRK} == set(EXPECTED_ESDIRK)
    assert set(rosenbrock.ROSENBROCK_TABLEAUS) == set(ROSENBROCK) and set(esdirk.ESDIRK_TABLEAUS) == set(ESDIRK)


# -------------------------------------------------------------------------------------------------- Rosenbrock


def rosenbrock_weights(tab: RosenbrockTableau, max_order: int):
    alpha, Gamma, _, _ = tab.hairer_wanner_form()
    s = tab.stages
    phi = {}
    for order in range(1, max_order + 1):
        for t in trees(order):
            if not t:
                v = [Fraction(1)] * s
            elif len(t) == 1:
                u = phi[t[0]]
                v = [sum((alpha[i][j] + Gamma[i][j]) * u[j] for j in range(i)) + Gamma[i][i] * u[i] for i in range(s)]
            else:
                v = [Fraction(1)] * s
                for child in t:
                    u = phi[child]
                    v = [v[i] * sum(alpha[i][j] * u[j] for j in range(i)) for i in range(s)]
            phi[t] = v
    return phi


def residual(b, phi, t) -> Fraction:
    return abs(sum((Fraction(bi) * p for bi, p in zip(b, phi[t]) if bi), Fraction(0)) - Fraction(1, gamma(t)))


def residual_dense(rows, phi, t) -> Fraction:
    degree = max(len(r) for r in rows)
    worst = Fraction(0)
    for k in range(1, max(degree, size(t)) + 1):
        lhs = sum((Fraction(r[k - 1]) * p for r, p in zip(rows, phi[t]) if len(r) >= k and r[k - 1]), Fraction(0))
        worst = max(worst, abs(lhs - (Fraction(1, gamma(t)) if k == size(t) else 0)))
    return worst


def worst(fn, coeffs, phi, order):
    return max(fn(coeffs, phi, t) for t in trees(order))


@pytest.mark.parametrize("tab", ROSENBROCK, ids=lambda t: t.name)
def test_rosenbrock_declared_shape(tab):
    stages, order, error_order, dense_order, fsal = EXPECTED_ROSENBROCK[tab.name]
    assert (tab.stages, tab.order, tab.error_order, tab.dense_order, tab.fsal) == (
        stages,
        order,
        error_order,
        dense_order,
        fsal,
    )
    _, Gamma, _, _ = tab.hairer_wanner_form()
    assert all(Gamma[i][i] == tab.gamma for i in range(tab.stages))  # singly diagonal
    assert all(Gamma[i][j] == 0 for i in range(tab.stages) for j in range(i + 1, tab.stages))


@pytest.mark.parametrize("tab", ROSENBROCK, ids=lambda t: t.name)
def test_rosenbrock_weights_have_exactly_the_claimed_orders(tab):
    tol = TOL_EXACT if tab.name == "Rosenbrock23" else TOL_DATA
    _, _, b, err = tab.hairer_wanner_form()
    b_hat = [x - e for x, e in zip(b, err)]
    phi = rosenbrock_weights(tab, max(tab.order, tab.error_order) + 1)
    for weights, p in ((b, tab.order), (b_hat, tab.error_order)):
        for order in range(1, p + 1):
            assert worst(residual, weights, phi, order) <= tol, f"{tab.name}: order {order} fails"
        assert worst(residual, weights, phi, p + 1) > FAIL, f"{tab.name}: has order {p + 1}, more than claimed"


@pytest.mark.parametrize("tab", ROSENBROCK, ids=lambda t: t.name)
def test_rosenbrock_interpolant_has_exactly_the_claimed_order(tab):
    tol = TOL_EXACT if tab.name == "Rosenbrock23" else TOL_DATA
    rows = tab.dense_hairer_wanner()
    phi = rosenbrock_weights(tab, tab.dense_order + 1)
    for order in range(1, tab.dense_order + 1):
        assert worst(residual_dense, rows, phi, order) <= tol, f"{tab.name}: dense order {order} fails"
    assert worst(residual_dense, rows, phi, tab.dense_order + 1) > FAIL


def test_rosenbrock23_is_ode23s():
    # Shampine & Reichelt: d = 1/(2 + √2) on the diagonal, b = (0, 1, 0) in K (y1 = y0 + h k2), and the
    # error (K1 - 2K2 + K3)/6 = b_hat - b (our b_error = b - b_hat is its negative).
    tab = rosenbrock.ROSENBROCK23
    d = 1 / (2 + rosenbrock._sqrt(2))
    _, _, b, err = tab.hairer_wanner_form()
    assert tab.gamma == d and b == [0, 1, 0]
    assert all(abs(e + x) < TOL_EXACT for e, x in zip(err, (Fraction(1, 6), Fraction(-1, 3), Fraction(1, 6))))
    assert tab.d == (d, 0, -d)


def test_rodas_time_derivative_weights_are_the_row_sums_of_gamma():
    # d_i = γ_i = Σ_j γ_ij is what makes a non-autonomous problem integrate to full order; the published d
    # and the published C must agree (checked at construction; here against the raw data once more).
    for tab in (rosenbrock.RODAS4, rosenbrock.RODAS5P):
        _, Gamma, _, _ = tab.hairer_wanner_form()
        assert all(abs(sum(Gamma[i]) - Fraction(tab.d[i])) <= TOL_DATA for i in range(tab.stages))


BROKEN_ROSENBROCK = {
    "d != row sums of Γ": (
        rosenbrock.RODAS4,
        {"d": (rosenbrock.RODAS4.d[0] + Fraction(1, 10**6),) + rosenbrock.RODAS4.d[1:]},
        r"d\[0\] != sum\(Gamma\[0\]\)",
    ),
    "c != row sums of α": (
        rosenbrock.RODAS5P,
        {"c": (0, Fraction(64, 100)) + rosenbrock.RODAS5P.c[2:]},
        r"c\[1\] != sum\(alpha\[1\]\)",
    ),
    "dense(1) != b": (rosenbrock.RODAS4, {"dense": ((1,),) + rosenbrock.RODAS4.dense[1:]}, r"dense row 0 at θ=1"),
    "a row too long": (rosenbrock.RODAS4, {"a": ((0,),) + rosenbrock.RODAS4.a[1:]}, r"a\[0\] and C\[0\] must have 0"),
}


@pytest.mark.parametrize("case", list(BROKEN_ROSENBROCK), ids=list(BROKEN_ROSENBROCK))
def test_broken_rosenbrock_tableau_is_rejected(case):
    base, changes, message = BROKEN_ROSENBROCK[case]
    assert dataclasses.replace(base) == base
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(base, **changes)


# ------------------------------------------------------------------------------------------------------ ESDIRK


def esdirk_weights(tab: ESDIRKTableau, max_order: int):
    s = tab.stages
    a = [[Fraction(x) for x in row] for row in tab.a]
    phi = {}
    for order in range(1, max_order + 1):
        for t in trees(order):
            v = [Fraction(1)] * s
            for child in t:
                u = phi[child]
                v = [v[i] * sum(a[i][j] * u[j] for j in range(i + 1)) for i in range(s)]
            phi[t] = v
    return phi


@pytest.mark.parametrize("tab", ESDIRK, ids=lambda t: t.name)
def test_esdirk_declared_shape(tab):
    stages, order, error_order, gamma_ = EXPECTED_ESDIRK[tab.name]
    assert (tab.stages, tab.order, tab.error_order, tab.dense_order) == (stages, order, error_order, 3)
    assert abs(Fraction(tab.gamma) - gamma_) <= TOL_EXACT
    assert tab.stiffly_accurate and tab.a[0] == (0,)


@pytest.mark.parametrize("tab", ESDIRK, ids=lambda t: t.name)
def test_esdirk_weights_have_exactly_the_claimed_orders(tab):
    b = [Fraction(x) for x in tab.b]
    b_hat = [x - Fraction(e) for x, e in zip(b, tab.b_error)]
    phi = esdirk_weights(tab, max(tab.order, tab.error_order) + 1)
    for weights, p in ((b, tab.order), (b_hat, tab.error_order)):
        for order in range(1, p + 1):
            assert worst(residual, weights, phi, order) <= TOL_EXACT, f"{tab.name}: order {order} fails"
        assert worst(residual, weights, phi, p + 1) > FAIL


@pytest.mark.parametrize("tab", ESDIRK, ids=lambda t: t.name)
def test_esdirk_is_l_stable(tab):
    # Stability function R(z) = 1 + z b^T (I - zA)^-1 1; stiffly accurate + nonsingular A-block gives R(∞) = 0.
    # Evaluate exactly at a large z: |R| must be tiny (L-stability's limit), and |R(iy)| <= 1 on the axis.
    import numpy as np

    A = np.array([[float(x) for x in row] + [0.0] * (tab.stages - len(row)) for row in tab.a])
    b = np.array([float(x) for x in tab.b])
    one = np.ones(tab.stages)

    def R(z):
        return 1 + z * b @ np.linalg.solve(np.eye(tab.stages) - z * A, one)

    assert abs(R(-1e8)) < 1e-6
    assert max(abs(R(1j * y)) for y in np.logspace(-2, 4, 200)) <= 1 + 1e-12
    assert max(abs(R(x)) for x in -np.logspace(-2, 6, 200)) <= 1 + 1e-12


BROKEN_ESDIRK = {
    "implicit first stage": (
        esdirk.KENCARP4,
        {"a": ((Fraction(1, 4),),) + esdirk.KENCARP4.a[1:], "c": (Fraction(1, 4),) + esdirk.KENCARP4.c[1:]},
        r"first stage must be explicit",
    ),
    "diagonal varies": (
        esdirk.TRBDF2,
        {
            "a": (esdirk.TRBDF2.a[0], (Fraction(1, 2), Fraction(1, 10)), esdirk.TRBDF2.a[2]),
            "c": (0, Fraction(6, 10), 1),
        },
        r"share one positive diagonal",
    ),
    "row sum != c": (
        esdirk.KVAERNO5,
        {"c": esdirk.KVAERNO5.c[:2] + (Fraction(123, 100),) + esdirk.KVAERNO5.c[3:]},
        r"c\[2\] != sum\(a\[2\]\)",
    ),
    "b_error sum != 0": (esdirk.KENCARP4, {"b_error": (1,) + esdirk.KENCARP4.b_error[1:]}, r"sum\(b_error\) != 0"),
}


@pytest.mark.parametrize("case", list(BROKEN_ESDIRK), ids=list(BROKEN_ESDIRK))
def test_broken_esdirk_tableau_is_rejected(case):
    base, changes, message = BROKEN_ESDIRK[case]
    assert dataclasses.replace(base) == base
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(base, **changes)
