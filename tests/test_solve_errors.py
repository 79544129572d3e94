"""Bad input gets a clear error (what, where, what to try); numerical failure gets a return code per trajectory.

Every failing solve here must also end quickly: `quick` bounds its wall time, so a hang shows up as a failure.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import torch

import gnode
from gnode.algorithms.base import AbstractAlgorithm
from helpers import F64

U0 = torch.ones(2, 3, dtype=F64)
TIMES = torch.linspace(0, 1, 3, dtype=F64)


def decay(t, u):
    return -u


def prob(f=decay, u0=U0, tspan=(0.0, 1.0), **kw):
    return gnode.ODEProblem(f, u0, tspan, **kw)


@contextmanager
def error(kind, *fragments):
    """Expect `kind` with a message containing every fragment (case-insensitive regexes)."""
    with pytest.raises(kind) as info:
        yield info
    msg = str(info.value)
    for frag in fragments:
        assert re.search(frag, msg, re.IGNORECASE), f"{frag!r} not in the message: {msg}"


@contextmanager
def quick(seconds: float = 5.0):
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < seconds, "took too long: a failing solve must stop promptly"


# --------------------------------------------------------------------------------------------- shapes


def test_u0_must_be_batched():
    with error(ValueError, r"u0", r"\(batch, n\)", r"\(3,\)", r"u0\[None\]"):
        prob(u0=torch.ones(3, dtype=F64))
    with error(ValueError, r"u0", r"\(1, 2, 3\)"):
        prob(u0=torch.ones(1, 2, 3, dtype=F64))


def test_u0_must_be_floating_point():
    with error(TypeError, r"u0", r"int64", r"\.double\(\)"):
        prob(u0=torch.ones(2, 3, dtype=torch.long))


def test_f_returning_the_wrong_shape_is_named():
    # f must map (B, n) to (B, n); a silent broadcast of a wrong shape would give a wrong solution
    with error(ValueError, r"\bf\b", r"\(2, 3\)", r"\(2, 2\)"):
        gnode.solve(prob(lambda t, u: u[:, :2]))
    with error(ValueError, r"\bf\b", r"\(2, 3\)", r"\(3,\)"):
        gnode.solve(prob(lambda t, u: u.sum(0)))


def test_f_returning_another_dtype_is_named():
    with error(TypeError, r"\bf\b", r"float32", r"float64"):
        gnode.solve(prob(lambda t, u: (-u).float()))


def test_control_shapes():
    with error(ValueError, r"Control values", r"\(batch, time, dim\)", r"values\[None\]"):
        gnode.Control(TIMES, torch.ones(3, 1, dtype=F64))
    with error(ValueError, r"3 times", r"4 time points"):
        gnode.Control(TIMES, torch.ones(2, 4, 1, dtype=F64))
    with error(ValueError, r"batch 3", r"batch 2", r"batch 1"):
        prob(lambda t, u, x: -u, inputs=gnode.Control(TIMES, torch.ones(3, 3, 1, dtype=F64)))
    with error(ValueError, r"interpolation", r"zoh", r"'spline'"):
        gnode.Control(TIMES, torch.ones(2, 3, 1, dtype=F64), interpolation="spline")
    with error(ValueError, r"Control times", r"monotone", r"times\[2\]"):
        gnode.Control(torch.tensor([0.0, 0.5, 0.2], dtype=F64), torch.ones(2, 3, 1, dtype=F64))


def test_f_without_an_input_argument_on_a_problem_with_inputs():
    p = prob(decay, inputs=gnode.Control(TIMES, torch.ones(2, 3, 1, dtype=F64)))
    with error(TypeError, r"inputs", r"f\(t, u, x\)"):
        gnode.solve(p)


# -------------------------------------------------------------------------------------- dtype / device


def test_inputs_with_another_dtype_than_u0():
    with error(TypeError, r"inputs\.values", r"float32", r"float64", r"\.to\("):
        prob(lambda t, u, x: -u, inputs=gnode.Control(TIMES.float(), torch.ones(2, 3, 1)))


def test_saveat_with_another_dtype_than_u0():
    with error(TypeError, r"saveat", r"float32", r"float64"):
        gnode.solve(prob(), saveat=torch.tensor([0.0, 0.5, 1.0]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inputs_on_another_device_than_u0():
    control = gnode.Control(TIMES.cuda(), torch.ones(2, 3, 1, dtype=F64, device="cuda"))
    with error(ValueError, r"inputs\.values", r"cuda", r"cpu", r"\.to\("):
        prob(lambda t, u, x: -u, inputs=control)


# ---------------------------------------------------------------------------------------- values


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_u0_names_the_entry(bad):
    u0 = torch.ones(3, 2, dtype=F64)
    u0[2, 1] = bad
    with error(ValueError, r"u0", r"non-finite", r"\(2, 1\)"):
        prob(u0=u0)


def test_non_finite_input_values():
    values = torch.ones(2, 3, 1, dtype=F64)
    values[1, 2, 0] = float("nan")
    with error(ValueError, r"Control values", r"non-finite", r"\(1, 2, 0\)"):
        gnode.Control(TIMES, values)


def test_tspan():
    with error(ValueError, r"tspan", r"t0 != t1"):
        prob(tspan=(1.0, 1.0))
    with error(ValueError, r"tspan", r"finite"):
        prob(tspan=(0.0, float("inf")))
    with error(ValueError, r"tspan", r"pair"):
        prob(tspan=(0.0, 1.0, 2.0))


def test_saveat_not_monotone():
    with error(ValueError, r"saveat", r"monotone", r"saveat\[1\] = 0\.5", r"saveat\[2\] = 0\.3", r"sort"):
        gnode.solve(prob(), saveat=[0.0, 0.5, 0.3, 1.0])
    with error(ValueError, r"saveat", r"monotone", r"duplicates"):
        gnode.solve(prob(), saveat=[0.0, 0.5, 0.5, 1.0])


def test_saveat_outside_tspan():
    with error(ValueError, r"saveat\[2\] = 1\.5", r"outside tspan"):
        gnode.solve(prob(), saveat=[0.0, 0.5, 1.5])
    with error(ValueError, r"saveat\[0\] = -0\.5", r"outside tspan"):
        gnode.solve(prob(tspan=(1.0, 0.0)), saveat=[-0.5, 0.0])


def test_options():
    with error(ValueError, r"RK4\(\)", r"fixed-step", r"dt="):
        gnode.solve(prob(), gnode.RK4())
    with error(ValueError, r"\bdt\b", r"positive"):
        gnode.solve(prob(), gnode.RK4(), dt=-0.1)
    with error(ValueError, r"reltol", r">= 0"):
        gnode.solve(prob(), reltol=-1.0)
    with error(ValueError, r"reltol=1e-10", r"float32", r"float64"):
        gnode.solve(prob(u0=U0.float()), reltol=1e-10)
    with error(ValueError, r"maxiters", r"positive integer"):
        gnode.solve(prob(), maxiters=0)
    with error(ValueError, r"tstops", r"finite"):
        gnode.solve(prob(), tstops=[float("nan")])
    with error(TypeError, r"rtol"):
        gnode.solve(prob(), rtol=1e-3)  # an unknown keyword is an error, not a warning


# ------------------------------------------------------------------------------- algorithms and engines


@dataclass(frozen=True, repr=False)
class NoSuchMethod(AbstractAlgorithm):
    order = 1
    error_order = None
    adaptive = False


def test_unknown_algorithm_for_an_engine_lists_what_it_has():
    with error(ValueError, r"'torch' engine has no NoSuchMethod\(\)", r"Tsit5\(\)", r"Vern7\(\)"):
        gnode.solve(prob(), NoSuchMethod(), dt=0.1)
    with error(ValueError, r"'scipy' engine has no Tsit5\(\)", r"ScipyRadau\(\)", r"DP5\(\)"):
        gnode.solve(prob(), gnode.Tsit5(), engine="scipy")


def test_algorithm_given_as_a_class_or_a_string():
    with error(TypeError, r"instance", r"Tsit5\(\)"):
        gnode.solve(prob(), gnode.Tsit5)
    with error(TypeError, r"gnode\.Tsit5\(\)", r"'Tsit5'"):
        gnode.solve(prob(), "Tsit5")
    with error(TypeError, r"sensealg", r"BacksolveAdjoint\(\)"):
        gnode.solve(prob(), sensealg=gnode.BacksolveAdjoint)


def test_unknown_engine_lists_the_engines():
    with error(ValueError, r"unknown engine 'nope'", r"torch", r"scipy"):
        gnode.solve(prob(), engine="nope")


def test_engine_without_gradients_says_so():
    with error(ValueError, r"'scipy' engine has no BacksolveAdjoint\(\)", r"forward only"):
        gnode.solve(prob(), gnode.DP5(), engine="scipy", sensealg=gnode.BacksolveAdjoint())


def test_adjoint_refuses_tensors_it_cannot_differentiate():
    W = torch.eye(3, dtype=F64, requires_grad=True)
    with error(ValueError, r"InterpolatingAdjoint", r"\(W\)", r"params="):
        gnode.solve(prob(lambda t, u: u @ W), sensealg=gnode.InterpolatingAdjoint())


# ------------------------------------------------------------------------------ numerical failure: retcodes


def square(t, u):
    return u * u  # u' = u^2, u(0) = u0: blows up at t = 1/u0


BLOWUP_U0 = torch.tensor([[0.25], [1.0]], dtype=F64)


@pytest.mark.parametrize("engine", ["torch", "scipy"])
def test_finite_time_blow_up_is_dt_less_than_min(engine):
    alg = gnode.Tsit5() if engine == "torch" else gnode.DP5()
    with (
        quick(),
        error(gnode.SolveError, r"DtLessThanMin", r"trajectory 1", r"t = 1\b", r"singularity", r"throw=False") as info,
    ):
        gnode.solve(prob(square, BLOWUP_U0, (0.0, 2.0)), alg, engine=engine)
    err = info.value
    assert err.retcode is gnode.ReturnCode.DtLessThanMin and err.index == 1 and abs(err.t - 1.0) < 1e-3


@pytest.mark.parametrize("engine", ["torch", "scipy"])
def test_throw_false_returns_retcodes_per_trajectory(engine):
    alg = gnode.Tsit5() if engine == "torch" else gnode.DP5()
    with quick():
        sol = gnode.solve(prob(square, BLOWUP_U0, (0.0, 2.0)), alg, engine=engine, throw=False)
    assert sol.retcodes.tolist() == [int(gnode.ReturnCode.Success), int(gnode.ReturnCode.DtLessThanMin)]
    assert sol.retcode is gnode.ReturnCode.DtLessThanMin and not sol.successful
    assert float(sol.t_final[0]) == 2.0 and abs(float(sol.t_final[1]) - 1.0) < 1e-3
    assert abs(float(sol.u[0, -1, 0]) - 0.25 / (1 - 0.25 * 2.0)) < 1e-5  # the good one is right
    assert torch.isnan(sol.u[1, -1]).all()  # nothing saved past the failure


@pytest.mark.parametrize("engine", ["torch", "scipy"])
def test_maxiters_reached(engine):
    alg = gnode.Tsit5() if engine == "torch" else gnode.DP5()
    with quick(), error(gnode.SolveError, r"MaxIters", r"trajectory 0", r"t = ", r"maxiters"):
        gnode.solve(prob(tspan=(0.0, 100.0)), alg, engine=engine, maxiters=5)
    sol = gnode.solve(prob(tspan=(0.0, 100.0)), alg, engine=engine, maxiters=5, throw=False)
    assert (sol.retcodes == int(gnode.ReturnCode.MaxIters)).all()
    assert (sol.stats.naccept + sol.stats.nreject <= 5).all()
    assert (sol.t_final > 0).all() and (sol.t_final < 100).all()


def test_fixed_step_overflow_is_unstable():
    stiff = lambda t, u: -1000 * u  # Euler with dt = 0.1 multiplies by -99 per step: overflow by t = 16
    with quick(), error(gnode.SolveError, r"Unstable", r"trajectory 0", r"lower `dt`"):
        gnode.solve(prob(stiff, tspan=(0.0, 20.0)), gnode.Euler(), dt=0.1)


def test_dtmin_is_honoured():
    stiff = lambda t, u: -1000 * u
    with quick(), error(gnode.SolveError, r"DtLessThanMin", r"dtmin"):
        gnode.solve(prob(stiff), gnode.Tsit5(), dtmin=0.01)


def test_nan_from_f_stops_promptly_and_says_so():
    # f turns NaN past t = 0.5: an adaptive method rejects, shrinks the step and must give up with a code that
    # points at the non-finite values, not only at stiffness
    nan_late = lambda t, u: torch.where(t[:, None] > 0.5, u * float("nan"), -u)
    with quick(), error(gnode.SolveError, r"t = 0\.5", r"non-finite|NaN"):
        gnode.solve(prob(nan_late), gnode.Tsit5())
    with quick(), error(gnode.SolveError, r"Unstable", r"t = 0\.5"):
        gnode.solve(prob(nan_late), gnode.RK4(), dt=0.1)
