"""Consistency and order conditions of every explicit Runge–Kutta tableau in `gnode.algorithms.tableaus`.

Order conditions by rooted trees (Butcher 1963; Hairer, Nørsett & Wanner I, II.2): weights b give order p iff

    sum_i b_i Φ_i(t) = 1 / γ(t)        for every rooted tree t with |t| <= p,

with elementary weights Φ_i(τ) = 1 and Φ_i([t_1, ..., t_m]) = Π_k (A Φ(t_k))_i, and γ([t_1..t_m]) = |t| Π_k γ(t_k).
A continuous extension b_i(θ) = Σ_k r_ik θ^k has order q iff
sum_i b_i(θ) Φ_i(t) = θ^|t| / γ(t) for |t| <= q and every θ. That is checked coefficient by coefficient in θ
(the same as for all θ in (0, 1] at once), with Φ over the tableau extended by its interpolation-only stages
(extra_c, extra_a).

Everything is computed exactly with Fractions; published decimals are truncated, so residuals are compared with
TOL (1e-15, below float64 resolution), and "fails" means a residual above FAIL (1e-8, far above truncation).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from functools import cache
from math import prod

import pytest

from gnode.algorithms import tableaus
from gnode.algorithms.tableaus import ButcherTableau

TOL = Fraction(1, 10**15)
FAIL = Fraction(1, 10**8)

# The one list that drives every test: all tableaus the package exports, found by type so none is forgotten.
ALL_TABLEAUS = [v for v in vars(tableaus).values() if isinstance(v, ButcherTableau)]

# name: (stages, extra stages, order, error_order, dense_order, fsal) — what each tableau claims.
EXPECTED = {
    "Euler": (1, 0, 1, None, 1, False),
    "Midpoint": (2, 0, 2, None, 2, False),
    "RK4": (4, 0, 4, None, 3, False),
    "BS3": (4, 0, 3, 2, 3, True),
    "DP5": (7, 0, 5, 4, 4, True),
    "Tsit5": (7, 0, 5, 4, 4, True),
    # Order 6, not 7: Verner's originally posted (2008) interpolant, which OrdinaryDiffEq.jl ships, misses 12
    # of the 48 order-7 conditions (tableaus/explicit.py; test_vern7_interpolant_misses_order_7_as_verner_notes).
    "Vern7": (10, 6, 7, 6, 6, False),
}

# Published weight of the last stage in the embedded formula b_hat (pins the sign convention b_error = b - b_hat).
B_HAT_LAST = {
    "BS3": Fraction(1, 8),
    "DP5": Fraction(1, 40),
    "Tsit5": Fraction(1, 66),
    "Vern7": Fraction(2152106665253777, 106040260335225546),
}

ids = [t.name for t in ALL_TABLEAUS]


# --------------------------------------------------------------------------------------------------- rooted trees
# A tree is the sorted tuple of its root's subtrees (canonical, hence hashable and comparable); τ = ().


@cache
def trees(order: int) -> tuple[tuple, ...]:
    """All rooted trees with `order` nodes: grow each tree of order - 1 by one leaf at every node."""
    if order == 1:
        return ((),)
    return tuple(sorted({grown for t in trees(order - 1) for grown in _add_leaf(t)}))


def _add_leaf(t: tuple):
    yield tuple(sorted(t + ((),)))
    for k, child in enumerate(t):
        for grown in _add_leaf(child):
            yield tuple(sorted(t[:k] + (grown,) + t[k + 1 :]))


@cache
def size(t: tuple) -> int:
    return 1 + sum(size(u) for u in t)


@cache
def gamma(t: tuple) -> int:
    return size(t) * prod(gamma(u) for u in t)


def elementary_weights(c, a, max_order: int) -> dict[tuple, list[Fraction]]:
    """Φ_i(t) for every tree up to max_order, for the explicit tableau (c, a) with a[i] of length i."""
    s = len(c)
    a = [[Fraction(x) for x in row] for row in a]
    phi: dict[tuple, list[Fraction]] = {}
    for order in range(1, max_order + 1):
        for t in trees(order):
            v = [Fraction(1)] * s
            for u in t:  # children are of lower order, so already known
                au = [sum((a[i][j] * phi[u][j] for j in range(i) if a[i][j]), Fraction(0)) for i in range(s)]
                v = [x * y for x, y in zip(v, au)]
            phi[t] = v
    return phi


@cache
def weights_of(name: str, with_extras: bool, max_order: int):
    tab = _by_name(name)
    c, a = tab.c, tab.a
    if with_extras:
        c, a = tuple(c) + tuple(tab.extra_c), tuple(a) + tuple(tab.extra_a)
    return elementary_weights(c, a, max_order)


def _by_name(name: str) -> ButcherTableau:
    return next(t for t in ALL_TABLEAUS if t.name == name)


def residual_weights(b, phi, t) -> Fraction:
    """sum_i b_i Φ_i(t) - 1/γ(t)."""
    return sum((Fraction(bi) * p for bi, p in zip(b, phi[t]) if bi), Fraction(0)) - Fraction(1, gamma(t))


def residual_dense(dense, phi, t) -> Fraction:
    """max over powers k of |sum_i r_ik Φ_i(t) - [k = |t|]/γ(t)|: the θ-polynomial identity, all θ at once."""
    degree = max(len(row) for row in dense)
    worst = Fraction(0)
    for k in range(1, max(degree, size(t)) + 1):
        lhs = sum(
            (Fraction(row[k - 1]) * p for row, p in zip(dense, phi[t]) if len(row) >= k and row[k - 1]), Fraction(0)
        )
        worst = max(worst, abs(lhs - (Fraction(1, gamma(t)) if k == size(t) else 0)))
    return worst


def max_residual(residual, coeffs, phi, order: int) -> Fraction:
    return max(abs(residual(coeffs, phi, t)) for t in trees(order))


# ------------------------------------------------------------------------------------------------------- tests


def test_tree_generator_counts_and_densities():
    # OEIS A000081: number of rooted trees with n nodes.
    assert [len(trees(n)) for n in range(1, 9)] == [1, 1, 2, 4, 9, 20, 48, 115]
    assert sum(len(trees(n)) for n in range(1, 8)) == 85  # order-7 conditions in all
    tall, bushy = (), ()
    for _ in range(5):
        tall, bushy = (tall,), bushy + ((),)
    assert (size(tall), gamma(tall)) == (6, 720)  # chain: γ = n!
    assert (size(bushy), gamma(bushy)) == (6, 6)  # root with n-1 leaves: γ = n


def test_every_tableau_is_listed_with_its_claims():
    assert {t.name for t in ALL_TABLEAUS} == set(EXPECTED)
    assert len(ALL_TABLEAUS) == len(EXPECTED)  # no duplicate names


@pytest.mark.parametrize("tab", ALL_TABLEAUS, ids=ids)
def test_declared_shape_and_fsal(tab):
    stages, extras, order, error_order, dense_order, fsal = EXPECTED[tab.name]
    assert (tab.stages, len(tab.extra_c), tab.order) == (stages, extras, order)
    assert (tab.error_order, tab.dense_order, tab.fsal, tab.adaptive) == (
        error_order,
        dense_order,
        fsal,
        error_order is not None,
    )
    if tab.fsal:  # the last stage is f(t0 + dt, y1): next step's first stage
        assert tab.c[-1] == 1 and tuple(tab.a[-1]) == tuple(tab.b[:-1]) and tab.b[-1] == 0


@pytest.mark.parametrize("tab", ALL_TABLEAUS, ids=ids)
def test_weights_have_exactly_the_claimed_order(tab):
    phi = weights_of(tab.name, False, tab.order + 1)
    for order in range(1, tab.order + 1):
        assert max_residual(residual_weights, tab.b, phi, order) <= TOL, f"{tab.name}: order {order} fails"
    # ... and not one more: a mislabelled order shows here.
    assert max_residual(residual_weights, tab.b, phi, tab.order + 1) > FAIL


@pytest.mark.parametrize("tab", [t for t in ALL_TABLEAUS if t.adaptive], ids=lambda t: t.name)
def test_embedded_weights_have_exactly_the_error_order(tab):
    b_hat = [Fraction(b) - Fraction(e) for b, e in zip(tab.b, tab.b_error)]
    phi = weights_of(tab.name, False, tab.error_order + 1)
    for order in range(1, tab.error_order + 1):
        assert max_residual(residual_weights, b_hat, phi, order) <= TOL, f"{tab.name}: b_hat order {order} fails"
    assert max_residual(residual_weights, b_hat, phi, tab.error_order + 1) > FAIL


@pytest.mark.parametrize("tab", [t for t in ALL_TABLEAUS if t.adaptive], ids=lambda t: t.name)
def test_b_error_is_b_minus_b_hat(tab):
    # Order conditions cannot tell b - b_hat from b_hat - b; the published last weight of b_hat can.
    assert abs(Fraction(tab.b[-1]) - Fraction(tab.b_error[-1]) - B_HAT_LAST[tab.name]) <= TOL


@pytest.mark.parametrize("tab", ALL_TABLEAUS, ids=ids)
def test_interpolant_has_exactly_the_claimed_order(tab):
    q = tab.dense_order
    phi = weights_of(tab.name, True, q + 1)
    for order in range(1, q + 1):
        assert max_residual(residual_dense, tab.dense, phi, order) <= TOL, f"{tab.name}: dense order {order} fails"
    assert max_residual(residual_dense, tab.dense, phi, q + 1) > FAIL


def test_interpolant_reproduces_the_step_at_theta_1():
    # b_i(1) = b_i (extras: 0) makes the dense output continuous across steps; checked on every tableau's data.
    for tab in ALL_TABLEAUS:
        for i, row in enumerate(tab.dense):
            target = tab.b[i] if i < tab.stages else 0
            assert abs(sum(Fraction(r) for r in row) - Fraction(target)) <= TOL, (tab.name, i)


def test_vern7_interpolant_misses_order_7_as_verner_notes():
    # Verner's site: the originally posted Vern7 interpolant "satisfied some but not all conditions of order 7".
    tab = tableaus.VERN7
    phi = weights_of(tab.name, True, 7)
    res = [residual_dense(tab.dense, phi, t) for t in trees(7)]
    failing = [r for r in res if r > FAIL]
    assert len(failing) == 12 and all(r <= TOL for r in res if r <= FAIL)


# ------------------------------------------------------------------------------------ self-checks reject bad data

F = Fraction
RK4, BS3, TSIT5, VERN7 = tableaus.RK4, tableaus.BS3, tableaus.TSIT5, tableaus.VERN7

BROKEN = {
    "row sum != c": (RK4, {"c": (0, F(1, 2), F(1, 2), F(9, 10))}, r"c\[3\] != sum\(a\[3\]\)"),
    "sum(b) != 1": (RK4, {"b": (F(1, 6), F(1, 3), F(1, 3), F(1, 5))}, r"sum\(b\) != 1"),
    "a row too short": (RK4, {"a": ((), (F(1, 2),), (F(1, 2),), (0, 0, 1))}, r"a\[2\] must have 2 entries"),
    "b_error sum != 0": (BS3, {"b_error": (0, 0, 0, F(1, 8))}, r"sum\(b_error\) != 0"),
    "adaptive without error_order": (BS3, {"error_order": None}, r"error_order missing"),
    "dense(1) != b": (RK4, {"dense": RK4.dense[:3] + ((0, F(-1, 2), F(1, 2)),)}, r"dense row 3 at θ=1"),
    "dense row missing": (RK4, {"dense": RK4.dense[:3]}, r"dense needs a row per stage"),
    "extra_a row too short": (
        VERN7,
        {"extra_a": VERN7.extra_a[:-1] + (VERN7.extra_a[-1][:-1],)},
        r"extra_a\[5\] must have 15 entries",
    ),
    "extra_c/extra_a mismatch": (VERN7, {"extra_c": VERN7.extra_c[:-1]}, r"extra_c and extra_a differ"),
    # a typo in the 12th digit of a published decimal is caught, despite the slack for truncated decimals
    "decimal typo": (
        TSIT5,
        {"a": TSIT5.a[:3] + ((TSIT5.a[3][0] + F(1, 10**12),) + TSIT5.a[3][1:],) + TSIT5.a[4:]},
        r"c\[3\] != sum\(a\[3\]\)",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_tableau_is_rejected(case):
    base, changes, message = BROKEN[case]
    assert dataclasses.replace(base) == base  # the unbroken data passes the same checks
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(base, **changes)
