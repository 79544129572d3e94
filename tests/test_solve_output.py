"""What a solve returns and where it steps: `saveat` through dense output, `sol(t)`, backward integration,
and `tstops` landed exactly. References: the linear system's exact solution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gnode
from helpers import ADAPTIVE, F64, LINEAR_A, ids, linear_exact, linear_field

U0 = np.array([[1.0, -0.5, 0.25], [0.3, 0.8, -1.0]])
TOL = {"reltol": 1e-9, "abstol": 1e-11}
ACCURATE = 1e-7  # allowed error at TOL on [0, 3] (measured <= 1e-9 for every method; BS3 runs looser below)


def linear_problem(tspan=(0.0, 3.0), u0=U0):
    return gnode.ODEProblem(linear_field(LINEAR_A), torch.tensor(u0), tspan)


def tol_for(m):
    return {"reltol": 1e-7, "abstol": 1e-9} if m.name == "BS3" else TOL


@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
def test_saveat_and_dense_output_match_the_exact_solution(m):
    saveat = torch.tensor([0.0, 0.1, 0.37, 1.0, 2.2, 2.95, 3.0], dtype=F64)
    sol = gnode.solve(linear_problem(), m.alg, saveat=saveat, **tol_for(m))
    assert sol.t.shape == (7,) and sol.u.shape == (2, 7, 3) and sol.u.dtype == F64
    exact = linear_exact(LINEAR_A, U0, saveat.numpy())
    assert np.abs(sol.u.numpy() - exact).max() < ACCURATE
    assert torch.equal(sol.u[:, 0], torch.tensor(U0))  # the initial state, exactly
    # sol(t) between the saved points, a tensor of times and a single number
    tq = torch.linspace(0, 3, 301, dtype=F64)
    dense = sol(tq)
    assert dense.shape == (2, 301, 3)
    assert np.abs(dense.numpy() - linear_exact(LINEAR_A, U0, tq.numpy())).max() < ACCURATE
    one = sol(1.234)
    assert one.shape == (2, 3)
    assert np.abs(one.numpy() - linear_exact(LINEAR_A, U0, [1.234])[:, 0]).max() < ACCURATE
    torch.testing.assert_close(sol(saveat), sol.u, rtol=0, atol=0)


def test_saveat_costs_no_steps():
    prob = linear_problem()
    few = gnode.solve(prob, gnode.Tsit5(), **TOL)
    many = gnode.solve(prob, gnode.Tsit5(), saveat=torch.linspace(0, 3, 1000, dtype=F64), **TOL)
    assert torch.equal(few.stats.naccept, many.stats.naccept) and torch.equal(few.stats.nf, many.stats.nf)
    torch.testing.assert_close(few.u[:, -1], many.u[:, -1], rtol=0, atol=0)


def test_saveat_accepts_a_list_of_numbers():
    sol = gnode.solve(linear_problem(), gnode.Tsit5(), saveat=[0.0, 1.5, 3.0], **TOL)
    assert sol.t.dtype == F64 and sol.t.tolist() == [0.0, 1.5, 3.0]


@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
def test_backward_integration_matches_the_exact_solution(m):
    saveat = torch.tensor([3.0, 2.5, 1.0, 0.0], dtype=F64)
    sol = gnode.solve(linear_problem((3.0, 0.0)), m.alg, saveat=saveat, **tol_for(m))
    exact = linear_exact(LINEAR_A, U0, saveat.numpy() - 3.0)  # u(t) = exp(A (t - 3)) u0
    accurate = 1e-5 if m.name == "BS3" else ACCURATE  # exp(-3A) amplifies: BS3 measured 9e-7 at reltol 1e-7
    assert np.abs(sol.u.numpy() - exact).max() < accurate
    assert (sol.t_final == 0.0).all()
    tq = torch.tensor([2.9, 1.7, 0.2], dtype=F64)
    assert np.abs(sol(tq).numpy() - linear_exact(LINEAR_A, U0, tq.numpy() - 3.0)).max() < accurate


def test_forward_then_backward_returns_to_the_start():
    fwd = gnode.solve(linear_problem((0.0, 3.0)), gnode.Vern7(), **TOL)
    back = gnode.solve(linear_problem((3.0, 0.0), fwd.u[:, -1].numpy()), gnode.Vern7(), **TOL)
    assert np.abs(back.u[:, -1].numpy() - U0).max() < 1e-8


@pytest.mark.parametrize("tspan", [(0.0, 3.0), (3.0, 0.0)], ids=["forward", "backward"])
def test_saveat_in_either_monotone_order_gives_values_in_that_order(tspan):
    up, down = [0.0, 1.0, 3.0], [3.0, 1.0, 0.0]
    a = gnode.solve(linear_problem(tspan), gnode.Tsit5(), saveat=up, **TOL)
    b = gnode.solve(linear_problem(tspan), gnode.Tsit5(), saveat=down, **TOL)
    assert a.t.tolist() == up and b.t.tolist() == down
    torch.testing.assert_close(a.u, b.u.flip(1), rtol=0, atol=0)


def _accepted_step_starts(sol, b):
    t0, dt, valid = sol.interp.accepted_steps()
    return t0[valid[:, b], b], dt[valid[:, b], b]


@pytest.mark.parametrize("tspan", [(0.0, 3.0), (3.0, 0.0)], ids=["forward", "backward"])
@pytest.mark.parametrize("m", [gnode.Tsit5(), gnode.Vern7(), gnode.RK4()], ids=lambda a: a.name)
def test_tstops_are_landed_on_exactly(m, tspan):
    stops = [0.3, 1.0 / 3.0, 1.7, 2.9000001, 5.0, -1.0]  # the last two lie outside tspan: ignored
    kw = {"dt": 0.1} if not m.adaptive else TOL
    sol = gnode.solve(linear_problem(tspan), m, tstops=stops, **kw)
    d = 1.0 if tspan[1] > tspan[0] else -1.0
    for b in range(U0.shape[0]):
        starts, dts = _accepted_step_starts(sol, b)
        ends = starts + dts
        for s in stops[:4]:
            assert (starts == s).any(), f"no step starts exactly at the stop {s!r} (trajectory {b})"
            straddles = (d * (starts - s) < 0) & (d * (ends - s) > 1e-12)
            assert not straddles.any(), f"a step straddles the stop {s!r}"
    exact = linear_exact(LINEAR_A, U0, [tspan[1] - tspan[0]])[:, 0]
    assert np.abs(sol.u[:, -1].numpy() - exact).max() < (1e-4 if not m.adaptive else ACCURATE)


def test_fixed_step_methods_step_on_their_grid_and_their_dense_output_interpolates():
    sol = gnode.solve(linear_problem(), gnode.Euler(), dt=0.25)
    starts, _dts = _accepted_step_starts(sol, 0)
    torch.testing.assert_close(starts, torch.arange(0, 3, 0.25, dtype=F64))
    # Euler's dense output is the straight line between consecutive step ends
    grid = sol(torch.tensor([1.0, 1.25], dtype=F64))
    mid = sol(torch.tensor([1.1], dtype=F64))[:, 0]
    torch.testing.assert_close(mid, 0.6 * grid[:, 0] + 0.4 * grid[:, 1], rtol=1e-14, atol=1e-15)
