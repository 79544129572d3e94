"""The "scipy" reference engine (gnode.engines.scipy): the same `solve` call, SciPy's solvers per trajectory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gnode
from gnode.engines.registry import get_engine
from gnode.engines.scipy import ScipyBDF, ScipyDOP853, ScipyLSODA, ScipyRadau, ScipyRK23, ScipyRK45
from helpers import (
    F64,
    LINEAR_A,
    linear_exact,
    linear_field,
    lv_field,
    lv_numpy,
    max_error,
    scipy_reference,
    vdp_field,
    vdp_numpy,
)

TS = np.linspace(0, 10, 11)
LV_U0 = np.array([[1.0, 1.0], [2.0, 0.5]])
VDP_U0 = np.array([[2.0, 0.0, 1.0], [2.0, 0.0, 10.0]])

ALGS = [ScipyRadau(), ScipyBDF(), ScipyLSODA(), ScipyDOP853(), ScipyRK45(), ScipyRK23(), gnode.DP5(), gnode.BS3()]
ALG_IDS = ["Radau", "BDF", "LSODA", "DOP853", "RK45", "RK23", "DP5", "BS3"]


def test_the_engine_is_registered_and_available():
    eng = get_engine("scipy")
    assert eng.available() == (True, "")
    assert eng.sensealgs == ()


@pytest.mark.parametrize("alg", ALGS, ids=ALG_IDS)
def test_lotka_volterra_matches_the_reference(alg):
    # reltol 1e-6 on [0, 5]; measured error / reltol: Radau 0.3, DOP853 4, RK23 10, LSODA 23, RK45 23, BDF 26
    ts = TS[:6]
    prob = gnode.ODEProblem(lv_field, torch.tensor(LV_U0), (0.0, 5.0))
    sol = gnode.solve(prob, alg, engine="scipy", saveat=torch.tensor(ts), reltol=1e-6, abstol=1e-8)
    err = max_error(sol.u, scipy_reference(lv_numpy, LV_U0, ts))
    assert 0 < err < 100 * 1e-6, f"{alg!r}: error {err:.2e}"
    assert sol.engine == "scipy" and sol.retcode is gnode.ReturnCode.Success
    assert (sol.stats.nf > 0).all() and (sol.stats.naccept > 0).all() and (sol.stats.nreject == 0).all()


class Counting:
    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, t, u):
        self.calls += 1
        return self.f(t, u)


@pytest.mark.parametrize("alg", [ScipyRadau(), ScipyBDF()], ids=["Radau", "BDF"])
def test_stiff_solvers_on_van_der_pol_use_the_autograd_jacobian(alg):
    u0, ts = VDP_U0[1:], TS[:6]  # mu = 10 on [0, 5]
    f = Counting(vdp_field)
    prob = gnode.ODEProblem(f, torch.tensor(u0), (0.0, 5.0))
    sol = gnode.solve(prob, alg, engine="scipy", saveat=torch.tensor(ts), reltol=1e-7, abstol=1e-9)
    err = max_error(sol.u, scipy_reference(vdp_numpy, u0, ts))
    assert err < (1e-5 if isinstance(alg, ScipyRadau) else 1e-3), err  # SciPy's BDF errs ~100x more than Radau
    assert (sol.stats.njacs > 0).all() and (sol.stats.nw >= sol.stats.njacs).all()
    # with jac=False SciPy differences f (n = 3 calls per Jacobian; its nfev leaves them out)
    g = Counting(vdp_field)
    gnode.solve(
        gnode.ODEProblem(g, torch.tensor(u0), (0.0, 5.0)),
        type(alg)(jac=False),
        engine="scipy",
        saveat=torch.tensor(ts),
        reltol=1e-7,
        abstol=1e-9,
    )
    assert g.calls > f.calls


def test_dense_output_saveat_and_backward():
    prob = gnode.ODEProblem(linear_field(LINEAR_A), torch.tensor(LV_U0[:, :1].repeat(3, 1)), (0.0, 3.0))
    sol = gnode.solve(prob, ScipyDOP853(), engine="scipy", saveat=[0.0, 1.0, 3.0], reltol=1e-10, abstol=1e-12)
    u0 = LV_U0[:, :1].repeat(3, 1)
    tq = np.array([0.3, 1.7, 2.999])
    assert np.abs(sol(torch.tensor(tq)).numpy() - linear_exact(LINEAR_A, u0, tq)).max() < 1e-8
    assert sol(1.5).shape == (2, 3)
    torch.testing.assert_close(sol(torch.tensor([0.0, 1.0, 3.0], dtype=F64)), sol.u)
    back = gnode.ODEProblem(linear_field(LINEAR_A), torch.tensor(u0), (3.0, 0.0))
    sol = gnode.solve(back, ScipyDOP853(), engine="scipy", saveat=[3.0, 1.0, 0.0], reltol=1e-10, abstol=1e-12)
    assert np.abs(sol.u.numpy() - linear_exact(LINEAR_A, u0, np.array([0.0, -2.0, -3.0]))).max() < 1e-8


@pytest.mark.parametrize("engine", ["scipy", "torch"])
def test_tstops_split_the_integration(engine):
    # u' = |t - 1/2|: a kink at 1/2. Landing on it makes every step a polynomial one that DP5 integrates exactly.
    kink = lambda t, u: (t - 0.5).abs()[:, None].expand_as(u)
    prob = gnode.ODEProblem(kink, torch.zeros(1, 1, dtype=F64), (0.0, 1.0))
    sol = gnode.solve(prob, gnode.DP5(), engine=engine, tstops=[0.5], reltol=1e-3, abstol=1e-6)
    assert abs(float(sol.u[0, -1, 0]) - 0.25) < 1e-14
    straddled = gnode.solve(prob, gnode.DP5(), engine=engine, reltol=1e-3, abstol=1e-6)
    assert abs(float(straddled.u[0, -1, 0]) - 0.25) > 1e-12  # without the stop the kink costs accuracy


@pytest.mark.parametrize("kind", ["zoh", "cubic"])
def test_inputs_match_the_piecewise_reference(kind):
    from test_solve_inputs import problem, reference

    ts = np.linspace(0, 4, 17)  # the times test_solve_inputs uses: its cached reference serves both
    with torch.no_grad():  # its field's weights require grad, which this engine cannot give
        sol = gnode.solve(
            problem(kind), ScipyDOP853(), engine="scipy", saveat=torch.tensor(ts), reltol=1e-8, abstol=1e-10
        )
    assert max_error(sol.u, reference(kind, ts)) < 1e-6


def test_a_solve_that_needs_gradients_is_refused_and_an_evaluation_works():
    """The engine used to return detached values silently: a loss with another term then got all-zero
    gradients. Whatever requires grad is named; under no_grad (evaluation) the same solve works."""
    u0 = torch.tensor(LV_U0, requires_grad=True)
    with pytest.raises(ValueError, match=r"no gradients, but u0 requires grad.*torch.no_grad\(\).*engine='torch'"):
        gnode.solve(gnode.ODEProblem(lv_field, u0, (0.0, 1.0)), gnode.DP5(), engine="scipy")
    model = torch.nn.Linear(2, 2).double()
    field = lambda t, u: model(u)  # f captures a module whose weights require grad
    prob = gnode.ODEProblem(field, torch.tensor(LV_U0), (0.0, 1.0))
    with pytest.raises(ValueError, match="the tensor 'model' that f captures requires grad"):
        gnode.solve(prob, gnode.DP5(), engine="scipy")

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = model

        def forward(self, t, u):
            return self.lin(u)

    with pytest.raises(ValueError, match=r"f's parameter lin.weight \(and 1 more\) requires grad"):
        gnode.solve(gnode.ODEProblem(Field(), torch.tensor(LV_U0), (0.0, 1.0)), gnode.DP5(), engine="scipy")
    values = torch.ones(2, 3, 1, dtype=F64, requires_grad=True)
    driven = gnode.ODEProblem(
        lambda t, u, x: -u + x,
        torch.tensor(LV_U0),
        (0.0, 1.0),
        inputs=gnode.Control(torch.tensor([0.0, 0.5, 1.0], dtype=F64), values),
    )
    with pytest.raises(ValueError, match="inputs.values requires grad"):
        gnode.solve(driven, gnode.DP5(), engine="scipy")
    with torch.no_grad():  # evaluation: a float64 reference check of a trained model
        sol = gnode.solve(gnode.ODEProblem(Field(), u0, (0.0, 1.0)), gnode.DP5(), engine="scipy")
        ref = gnode.solve(
            gnode.ODEProblem(Field(), u0, (0.0, 1.0)), gnode.DP5(), engine="torch", reltol=1e-10, abstol=1e-12
        )
    assert not sol.u.requires_grad and max_error(sol.u, ref.u.numpy()) < 1e-5
    with pytest.raises(ValueError, match="forward only"):
        gnode.solve(
            gnode.ODEProblem(lv_field, u0, (0.0, 1.0)),
            gnode.DP5(),
            engine="scipy",
            sensealg=gnode.InterpolatingAdjoint(),
        )


def test_a_step_size_controller_other_than_scipys_is_refused():
    prob = gnode.ODEProblem(lv_field, torch.tensor(LV_U0), (0.0, 1.0))
    with pytest.raises(ValueError, match=r"controller=PIController\(gamma=0\.8\): SciPy's solvers control"):
        gnode.solve(prob, gnode.DP5(), engine="scipy", controller=gnode.PIController(gamma=0.8))
    assert gnode.solve(prob, gnode.DP5(), engine="scipy", controller=gnode.PIController()).successful
