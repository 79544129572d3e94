"""The native engine's loop and stepper protocol, tested with stub steppers and against closed forms: landing on
stops, counters that add up, per-trajectory return codes, compaction, the controller as a user option, and nf
counted exactly for every method."""

from __future__ import annotations

import math

import pytest
import torch

import gnode
from gnode.algorithms.controllers import PIController
from gnode.engines.registry import SolveOptions
from gnode.engines.torch.forward import loop_config, make_stepper
from gnode.engines.torch.loop import integrate
from gnode.engines.torch.rhs import ProblemRHS
from gnode.engines.torch.stepper import AbstractStepper, StepResult, as_counts
from helpers import ADAPTIVE, F64, ids

RATES = torch.tensor([0.1, 1.0, 10.0, 100.0], dtype=F64)  # x' = -λ x, one λ per row: very different step counts


def decay_with_rate(t, u):
    """u = (x, λ): x' = -λ x, λ' = 0 (λ travels with its row whatever rows the loop evaluates)."""
    return torch.stack([-u[:, 1] * u[:, 0], torch.zeros_like(u[:, 1])], dim=1)


U0 = torch.stack([torch.ones(4, dtype=F64), RATES], dim=1)


def options(**kw):
    base = {
        "saveat": None,
        "reltol": 1e-8,
        "abstol": 1e-10,
        "dt": None,
        "dtmin": None,
        "dtmax": None,
        "maxiters": 100_000,
        "tstops": None,
        "throw": True,
    }
    return SolveOptions(**{**base, **kw})


class EulerStub(AbstractStepper):
    """Forward Euler through the protocol, with the local error estimate h²/2 |f'| ≈ h/2 |f(y1) - f(y0)| folded
    into err, and one `nsolve` counted per step so that the loop's counter plumbing can be checked."""

    fsal, order, error_order = True, 1, 1

    def step(self, rhs, state, t, y, h, f0):
        y1 = y + h[:, None] * f0
        f1 = rhs(t + h, y1)
        err = 0.5 * h[:, None] * (f1 - f0)
        return StepResult(y1, err, (f0[:, None],), f1, state, as_counts(nf=1, nsolve=1))

    def interpolate(self, y0, h, dense, theta):
        return y0 + (theta * h)[:, None] * dense[0][:, 0]


BS3 = gnode.BS3()


def run(stepper, prob, opts, alg=BS3, **kw):
    cfg = loop_config(alg, opts)
    return integrate(stepper, ProblemRHS(prob), prob.u0, *prob.tspan, cfg, opts.tstops, **kw)


def test_a_protocol_stub_lands_on_every_stop_and_its_counters_add_up():
    prob = gnode.ODEProblem(decay_with_rate, U0[:3], (0.0, 2.0))
    stops = torch.tensor([0.5, 1.0, 1.5], dtype=F64)
    res = run(EulerStub(), prob, options(reltol=1e-4, abstol=1e-6, tstops=stops))
    assert (res.retcodes == int(gnode.ReturnCode.Success)).all()
    assert torch.equal(res.t, torch.full((3,), 2.0, dtype=F64))
    for rec, rows in res.records:  # every accepted step that ends near a stop ends exactly on it
        ends = (rec.t + rec.h)[rec.accept]
        near = (ends[:, None] - stops[None]).abs().min(dim=1).values
        assert ((near == 0) | (near > 1e-9)).all()
    s = res.stats
    steps = s.naccept + s.nreject
    assert torch.equal(s.nsolve, steps)  # one per attempt, counted only while the row runs
    assert torch.equal(s.nf, 2 + steps)  # f(t0), the initial step's probe, then one per attempt
    exact = torch.exp(-2.0 * RATES[:3])
    assert torch.allclose(res.y[:, 0], exact, rtol=0.05)  # first order at reltol 1e-4


def test_compaction_keeps_each_trajectory_and_shrinks_the_working_batch():
    prob = gnode.ODEProblem(decay_with_rate, U0, (0.0, 3.0))
    opts = options()
    alg = gnode.Tsit5()
    stepper = make_stepper(alg, F64, torch.device("cpu"))
    cfg = loop_config(alg, opts)
    compact = integrate(stepper, ProblemRHS(prob), prob.u0, 0.0, 3.0, cfg)
    whole = integrate(stepper, ProblemRHS(prob), prob.u0, 0.0, 3.0, type(cfg)(**{**cfg.__dict__, "compact": False}))
    sizes = [rec.t.shape[0] for rec, _ in compact.records]
    assert sizes[0] == 4 and sizes[-1] == 1  # the stiffest row finishes alone
    assert sum(sizes) < 0.6 * 4 * len(sizes)  # far fewer row-steps than the lock-step batch
    exact = torch.exp(-3.0 * RATES)
    for res in (compact, whole):
        assert torch.allclose(res.y[:, 0], exact, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(compact.y, whole.y, rtol=1e-9, atol=1e-15)
    assert torch.equal(compact.retcodes, whole.retcodes)
    # dense output from records of changing working batches
    sol = gnode.solve(prob, alg, saveat=torch.linspace(0, 3, 13, dtype=F64), reltol=1e-8, abstol=1e-10)
    ref = torch.exp(-torch.linspace(0, 3, 13, dtype=F64)[None] * RATES[:, None])
    assert torch.allclose(sol.u[..., 0], ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("m", ADAPTIVE, ids=ids(ADAPTIVE))
def test_nf_counts_every_evaluation_of_f(m):
    calls = []

    def counted(t, u):
        calls.append(u.shape[0])
        return decay_with_rate(t, u)

    sol = gnode.solve(
        gnode.ODEProblem(counted, U0[1:2], (0.0, 2.0)),
        m.alg,
        saveat=torch.linspace(0, 2, 11, dtype=F64),
        reltol=1e-7,
        abstol=1e-9,
    )
    assert int(sol.stats.nf[0]) == sum(calls)  # Vern7's lazy interpolant stages included


def test_the_batch_norm_controller_steps_every_trajectory_alike():
    prob = gnode.ODEProblem(decay_with_rate, U0, (0.0, 2.0))
    own = gnode.solve(prob, gnode.Tsit5(), reltol=1e-6, abstol=1e-8)
    shared = gnode.solve(prob, gnode.Tsit5(), reltol=1e-6, abstol=1e-8, controller=PIController(norm="batch"))
    assert len(set(shared.stats.naccept.tolist())) == 1 and len(set(shared.stats.nreject.tolist())) == 1
    assert own.stats.naccept[0] < own.stats.naccept[-1]  # per trajectory: the slow row takes fewer steps
    exact = torch.exp(-2.0 * RATES)
    assert torch.allclose(shared.u[:, -1, 0], exact, rtol=1e-4, atol=1e-8)


def test_the_controller_exponents_are_a_user_option():
    prob = gnode.ODEProblem(decay_with_rate, U0[1:2], (0.0, 5.0))
    kw = {"reltol": 1e-8, "abstol": 1e-10, "dt": 1e-6}  # a tiny first step: the controller must grow it
    pi = gnode.solve(prob, gnode.Tsit5(), **kw)
    integral = gnode.solve(prob, gnode.Tsit5(), controller=PIController(beta2=0.0), **kw)
    cautious = gnode.solve(prob, gnode.Tsit5(), controller=PIController(qmax=1.2), **kw)
    assert cautious.stats.naccept[0] > pi.stats.naccept[0] + 20  # growth capped at 1.2x per step
    for sol in (pi, integral, cautious):
        assert math.isclose(float(sol.u[0, -1, 0]), math.exp(-5.0), rel_tol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"controller": "PI"}, "controller must be a gnode controller"),
        ({"controller": PIController(), "alg": gnode.RK4(), "dt": 0.1}, "fixed-step method"),
    ],
)
def test_bad_controllers_are_refused_by_name(bad, message):
    alg = bad.pop("alg", gnode.Tsit5())
    with pytest.raises((TypeError, ValueError), match=message):
        gnode.solve(gnode.ODEProblem(decay_with_rate, U0, (0.0, 1.0)), alg, **bad)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"qmin": 2.0}, "qmin < 1 < qmax"),
        ({"beta1": 1.5}, "beta1"),
        ({"norm": "max"}, "norm must be one of"),
        ({"gamma": 0.0}, "gamma"),
    ],
)
def test_controller_options_are_checked(kw, message):
    with pytest.raises(ValueError, match=message):
        PIController(**kw)
