"""Empirical convergence order of every method of the native engine, and of its dense output.

Adaptive methods run their scheme with a constant step (error control off: see `Method.fixed`). The order is
the least-squares slope of log(error) against log(h) over step sizes where the error is neither pre-asymptotic
nor at round-off; the ranges below were chosen from a sweep (errors from ~1e-2 down to ~1e-13) and are listed
per method so that a new method has to state its own.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gnode
from gnode.algorithms.explicit import EXPLICIT_ALGORITHMS
from gnode.engines.registry import get_engine
from helpers import (
    F64,
    LINEAR_A,
    METHODS,
    Method,
    ids,
    kepler_exact,
    kepler_field,
    linear_exact,
    linear_field,
    slope,
)

T_LINEAR = 2.0
U0_LINEAR = np.array([[1.0, -0.5, 0.25], [0.3, 0.8, -1.0]])

# Numbers of steps over [0, 2] for the global order on the linear problem (h = 2/N).
LINEAR_STEPS = {
    "Euler": (64, 128, 256, 512, 1024),
    "Midpoint": (16, 32, 64, 128, 256),
    "RK4": (4, 8, 16, 32, 64),
    "BS3": (8, 16, 32, 64, 128),
    "DP5": (4, 8, 16, 32, 64),
    "Tsit5": (16, 32, 64, 128),
    "Vern7": (4, 6, 8, 12, 16),
}
# log2(1/h) for the one-step (local) errors on Kepler's problem.
KEPLER_LOG2_INV_H = {
    "Euler": (2, 3, 4, 5, 6),
    "Midpoint": (3, 4, 5, 6, 7),
    "RK4": (2, 3, 4, 5, 6),
    "BS3": (3, 4, 5, 6),
    "DP5": (3, 4, 5, 6),
    "Tsit5": (3, 4, 5, 6),
    "Vern7": (2, 2.5, 3, 3.5, 4, 4.5),
}


def test_method_list_covers_the_explicit_methods_and_matches_the_package_claims():
    # (the stiff families are tested with their own issue's suite; they can join METHODS with their orders)
    listed = {type(m.alg) for m in METHODS}
    missing = [a.__name__ for a in EXPLICIT_ALGORITHMS if a not in listed]
    assert not missing, f"add {missing} to tests/helpers.METHODS (with their orders and order-test ranges)"
    assert all(a in get_engine("torch").algorithms for a in listed)
    for m in METHODS:
        assert m.alg.order == m.order, m.name
        assert m.alg.tableau.dense_order == m.dense_order, m.name
        assert m.name in LINEAR_STEPS and m.name in KEPLER_LOG2_INV_H, m.name


def _linear_solve(m: Method, N: int, saveat=None):
    prob = gnode.ODEProblem(linear_field(LINEAR_A), torch.tensor(U0_LINEAR), (0.0, T_LINEAR))
    sol = gnode.solve(prob, m.alg, saveat=saveat, **m.fixed(T_LINEAR / N))
    # the step really was constant: every step accepted, N of them (+1 when N h rounds just short of 2)
    assert (sol.stats.nreject == 0).all()
    assert ((sol.stats.naccept == N) | (sol.stats.naccept == N + 1)).all(), sol.stats.naccept
    return sol


@pytest.mark.parametrize("m", METHODS, ids=ids(METHODS))
def test_global_order_on_a_linear_system(m: Method):
    exact = linear_exact(LINEAR_A, U0_LINEAR, [T_LINEAR])[:, 0]
    hs, errors = [], []
    for N in LINEAR_STEPS[m.name]:
        sol = _linear_solve(m, N)
        hs.append(T_LINEAR / N)
        errors.append(float(np.abs(sol.u[:, -1].numpy() - exact).max()))
    assert min(errors) > 1e-13, f"range reaches round-off: {errors}"
    p = slope(hs, errors)
    assert abs(p - m.order) <= 0.3, f"{m.name}: measured order {p:.2f}, expected {m.order}; errors {errors}"


@pytest.mark.parametrize("m", METHODS, ids=ids(METHODS))
def test_dense_output_at_mid_steps_keeps_the_global_order(m: Method):
    # Every method here has dense order q >= p - 1, so its local interpolation error O(h^(q+1)) is no worse
    # than the global error O(h^p): values at mid-step points (through saveat) converge with order p.
    hs, errors = [], []
    for N in LINEAR_STEPS[m.name]:
        h = T_LINEAR / N
        mids = (np.arange(N) + 0.5) * h
        sol = _linear_solve(m, N, saveat=torch.tensor(mids, dtype=F64))
        hs.append(h)
        errors.append(float(np.abs(sol.u.numpy() - linear_exact(LINEAR_A, U0_LINEAR, mids)).max()))
    p = slope(hs, errors)
    assert abs(p - m.order) <= 0.3, f"{m.name}: measured order {p:.2f}, expected {m.order}; errors {errors}"


@pytest.mark.parametrize("m", METHODS, ids=ids(METHODS))
def test_local_order_of_step_and_interpolant_on_keplers_problem(m: Method):
    # One step of size h from exact states at 8 points of the orbit: the step's error is O(h^(p+1)), the
    # interpolant's at θ = 0.3, 0.5, 0.7 is O(h^(q+1)). A nonlinear problem, so no order is helped by the
    # simpler order conditions of linear problems. Only lower bounds: an interpolant may do better than
    # its order on a given problem (Vern7's misses 12 order-7 conditions by little and measures ~8 here).
    starts = np.linspace(0, 2 * np.pi, 8, endpoint=False) + 0.1
    thetas = np.array([0.3, 0.5, 0.7, 1.0])
    hs, dense_errors, step_errors = [], [], []
    for k in KEPLER_LOG2_INV_H[m.name]:
        h = 2.0**-k
        prob = gnode.ODEProblem(kepler_field, torch.tensor(kepler_exact(starts)), (0.0, h))
        sol = gnode.solve(prob, m.alg, saveat=torch.tensor(thetas * h), **m.fixed(h))
        assert (sol.stats.naccept == 1).all() and (sol.stats.nreject == 0).all()
        exact = kepler_exact(starts[:, None] + thetas[None, :] * h)  # (B, θ, 4)
        err = np.abs(sol.u.numpy() - exact).max(axis=(0, 2))
        hs.append(h)
        dense_errors.append(err[:-1].max())
        step_errors.append(err[-1])
    q_local, p_local = slope(hs, dense_errors), slope(hs, step_errors)
    assert q_local >= m.dense_order + 1 - 0.3, (
        f"{m.name}: interpolant's local order {q_local:.2f} < {m.dense_order + 1}; errors {dense_errors}"
    )
    assert p_local >= m.order + 1 - 0.3, (
        f"{m.name}: step's local order {p_local:.2f} < {m.order + 1}; errors {step_errors}"
    )
