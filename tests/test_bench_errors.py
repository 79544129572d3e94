"""The benchmark's error metrics (DiffEqDevTools' final / l2 / L2) on problems with closed-form solutions,
and the matched-error comparison on curves whose ratio is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gnode
from gnode.bench.compare import compare_all, compare_pair
from gnode.bench.errors import dense_times, gradient_error, solution_errors

F64 = torch.float64


def _euler_decay(h: float, y0: np.ndarray, t1: float = 1.0):
    """gnode's Euler on y' = -y with step h: its solution is exactly y0 (1 - h)^k at t_k = k h."""
    u0 = torch.as_tensor(y0, dtype=F64)[:, None]
    prob = gnode.ODEProblem(lambda t, u: -u, u0, (0.0, t1))
    saveat = torch.linspace(0.0, t1, 5, dtype=F64)
    sol = gnode.solve(prob, gnode.Euler(), dt=h, saveat=saveat)
    return sol, saveat.numpy()


def test_final_and_l2_match_the_closed_form_of_euler_on_linear_decay():
    y0 = np.array([1.0, -2.0, 0.5])
    h = 1 / 16
    sol, ts = _euler_decay(h, y0)
    exact = y0[:, None, None] * np.exp(-ts)[None, :, None]
    euler = y0[:, None, None] * (1 - h) ** np.round(ts / h)[None, :, None]
    # the solver really is Euler: its saved values are the closed form of the recursion
    np.testing.assert_allclose(sol.u.numpy(), euler, rtol=1e-13, atol=1e-15)
    err = solution_errors(sol.u.numpy(), exact)
    e = euler - exact
    assert err["final"] == pytest.approx(np.mean(np.abs(e[:, -1])), rel=1e-12)
    assert err["l2"] == pytest.approx(math.sqrt(np.mean(e**2)), rel=1e-12)
    assert err["linf"] == pytest.approx(np.max(np.abs(e)), rel=1e-12)
    # the global error of Euler here is ~ t e^-t h / 2 at t = 1: a sanity scale, not a tautology
    assert err["final"] == pytest.approx(np.mean(np.abs(y0)) * math.exp(-1) * h / 2, rel=0.1)


def test_L2_uses_100_dense_points_of_the_solvers_interpolant():
    y0 = np.array([1.0])
    h = 1 / 8
    sol, _ = _euler_decay(h, y0)
    td = dense_times(0.0, 1.0)
    assert td.shape == (100,) and td[0] == 0.0 and td[-1] == 1.0
    u_dense = sol(torch.as_tensor(td)).numpy()
    # Euler's dense output is the straight line between its steps: build it by hand
    k = np.minimum(np.floor(td / h + 1e-12), 7).astype(int)
    a, b = (1 - h) ** k, (1 - h) ** (k + 1)
    by_hand = a + (td - k * h) / h * (b - a)
    np.testing.assert_allclose(u_dense[0, :, 0], by_hand, rtol=1e-12)
    exact = np.exp(-td)
    err = solution_errors(sol.u.numpy(), np.exp(-sol.t.numpy())[None, :, None], u_dense, exact[None, :, None])
    assert err["L2"] == pytest.approx(math.sqrt(np.mean((by_hand - exact) ** 2)), rel=1e-10)
    assert err["Linf"] == pytest.approx(np.max(np.abs(by_hand - exact)), rel=1e-10)


def test_errors_of_an_adaptive_solve_fall_with_the_tolerance_on_a_rotation():
    """u' = A u with A a rotation generator: u(t) = expm(A t) u0 in closed form (a cos/sin pair)."""
    u0 = torch.tensor([[1.0, 0.0], [0.3, -0.7]], dtype=F64)
    A = torch.tensor([[0.0, -2.0], [2.0, 0.0]], dtype=F64)
    prob = gnode.ODEProblem(lambda t, u: u @ A.T, u0, (0.0, 3.0))
    ts = torch.linspace(0, 3, 7, dtype=F64)
    c, s = np.cos(2 * ts.numpy()), np.sin(2 * ts.numpy())
    exact = np.stack([np.stack([c * a - s * b, s * a + c * b], -1) for a, b in u0.numpy()])
    errs = [
        solution_errors(gnode.solve(prob, gnode.Tsit5(), saveat=ts, reltol=r, abstol=r * 1e-2).u.numpy(), exact)["l2"]
        for r in (1e-3, 1e-6, 1e-9)
    ]
    assert errs[0] > 30 * errs[1] > 900 * errs[2]
    assert errs[2] < 1e-7


def test_a_failed_trajectory_counts_as_infinite_error_not_as_a_small_one():
    u = np.zeros((2, 3, 1))
    u[1, 2, 0] = np.nan
    err = solution_errors(u, np.zeros_like(u))
    assert err["final"] == math.inf and err["l2"] == math.inf and err["linf"] == math.inf


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"shape \(2, 3, 1\).*\(2, 4, 1\)"):
        solution_errors(np.zeros((2, 3, 1)), np.zeros((2, 4, 1)))


def test_gradient_error_is_relative_and_rejects_mismatched_sizes():
    g_ref = np.array([3.0, 4.0])
    assert gradient_error(np.array([3.0, 4.5]), g_ref) == pytest.approx(0.1)
    assert gradient_error(np.array([np.nan, 4.0]), g_ref) == math.inf
    with pytest.raises(ValueError, match="same parameters"):
        gradient_error(np.zeros(3), g_ref)


# ------------------------------------------------------------------------------------ matched-error ratios


def _curve(family, method, scale, errors):
    """cost = scale / error (time) and 10 scale / error (nf): a straight line in log-log."""
    return {
        "family": family,
        "package": family.split("[")[0],
        "method": method,
        "sensealg": None,
        "points": [(e, scale / e, 10 * scale / e, None) for e in errors],
    }


def test_a_solver_twice_as_expensive_at_every_error_has_ratio_two_over_the_overlap_only():
    a = _curve("gnode[torch]", "Tsit5()", 1.0, [1e-2, 1e-4, 1e-6])
    b = _curve("diffrax", "Tsit5", 2.0, [1e-3, 1e-5, 1e-8])
    out = compare_pair(a, b)
    assert out["time_ratio"] == pytest.approx(2.0, rel=1e-9)
    assert out["nf_ratio"] == pytest.approx(2.0, rel=1e-9)
    assert min(out["errors"]) == pytest.approx(1e-6) and max(out["errors"]) == pytest.approx(1e-3)
    assert compare_pair(a, _curve("diffrax", "Tsit5", 2.0, [1e-8, 1e-9])) is None  # no overlap: no number


def test_compare_all_pairs_twins_and_reports_the_envelope():
    rows = []
    for solver, family, package, method, scale in [
        ("torch Tsit5()", "gnode[torch]", "gnode", "Tsit5()", 1.0),
        ("torch Vern7()", "gnode[torch]", "gnode", "Vern7()", 0.5),
        ("torchode Tsit5", "torchode", "torchode", "Tsit5", 3.0),
    ]:
        for e in (1e-3, 1e-5, 1e-7):
            rows.append(
                {
                    "problem": "p",
                    "mode": "forward",
                    "status": "ok",
                    "solver": solver,
                    "family": family,
                    "package": package,
                    "method": method,
                    "sensealg": None,
                    "l2": e,
                    "time": scale / e,
                    "nf": scale / e,
                    "f_calls": None,
                }
            )
    rows.append(
        {
            "problem": "p",
            "mode": "forward",
            "status": "failed",
            "solver": "torchode Tsit5",
            "family": "torchode",
            "l2": 1e-9,
            "time": 1e-9,
        }
    )  # failures never enter a curve
    comp = compare_all(rows, "l2")["problems"]["p"]["forward"]
    (pair,) = comp["pairs"]
    assert pair["native"] == "torch Tsit5()" and pair["time_ratio"] == pytest.approx(3.0)
    (env,) = comp["envelope"]
    assert env["other"] == "torchode" and env["time_ratio"] == pytest.approx(6.0)  # vs the best native (Vern7)
