"""The forward solve: from (problem, algorithm, options) to what the loop needs (stepper, right-hand side,
config, stops), the loop run, and the ODESolution made of its result."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from gnode.algorithms.auto import AbstractAutoSwitch
from gnode.algorithms.base import AbstractExplicitRK
from gnode.algorithms.esdirk import AbstractESDIRK
from gnode.algorithms.rosenbrock import AbstractRosenbrock
from gnode.engines.torch.auto import AutoSwitchStepper
from gnode.engines.torch.controller import PIController
from gnode.engines.torch.dense import DenseHistory
from gnode.engines.torch.esdirk import ESDIRKStepper
from gnode.engines.torch.explicit import ExplicitRK
from gnode.engines.torch.loop import RHS, LoopConfig, integrate
from gnode.engines.torch.rosenbrock import RosenbrockStepper
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution

STEPPERS = {
    AbstractExplicitRK: lambda alg, dtype, device: ExplicitRK(alg.tableau, dtype, device),
    AbstractRosenbrock: lambda alg, dtype, device: RosenbrockStepper(alg.tableau, dtype, device),
    AbstractESDIRK: lambda alg, dtype, device: ESDIRKStepper(alg.tableau, dtype, device, alg.kappa, alg.max_iter,
                                                             alg.fast_rate, alg.smooth_est),
    AbstractAutoSwitch: lambda alg, dtype, device: AutoSwitchStepper(
        alg, make_stepper(alg.nonstiff, dtype, device), make_stepper(alg.stiffalg, dtype, device)),
}


@functools.lru_cache(maxsize=64)
def make_stepper(alg, dtype: torch.dtype, device: torch.device):
    """The engine's stepper for `alg`, with coefficients cast to dtype/device (cached per triple)."""
    for kind, factory in STEPPERS.items():
        if isinstance(alg, kind):
            return factory(alg, dtype, device)
    raise ValueError(f"the torch engine has no stepper for {alg.name}()")


def loop_config(alg, opts, reltol=None, abstol=None) -> LoopConfig:
    controller = PIController(k=alg.error_order + 1) if alg.adaptive else None
    return LoopConfig(adaptive=alg.adaptive, reltol=opts.reltol if reltol is None else reltol,
                      abstol=opts.abstol if abstol is None else abstol, dt=opts.dt, dtmin=opts.dtmin,
                      dtmax=opts.dtmax, maxiters=opts.maxiters, controller=controller, order=alg.order)


@dataclass
class Forward:
    """A finished forward solve: the loop's result and the dense history over it."""

    result: object
    dense: DenseHistory
    rhs: RHS
    stepper: object


def run_forward(prob, alg, opts, *, y0=None, control=None, record=True) -> Forward:
    u0 = prob.u0 if y0 is None else y0
    stepper = make_stepper(alg, u0.dtype, u0.device)
    t0, t1 = prob.tspan
    rhs = RHS(prob, control, 1.0 if t1 > t0 else -1.0)
    stops = problem_stops(opts, rhs.control)
    res = integrate(stepper, rhs, u0, t0, t1, loop_config(alg, opts), stops,
                    refresh_at_stops=rhs.control is not None and rhs.control.discontinuous, record=record)
    dense = DenseHistory(stepper, rhs, res.steps, u0, t0, res.t, 1.0 if t1 > t0 else -1.0)
    return Forward(res, dense, rhs, stepper)


def problem_stops(opts, control) -> torch.Tensor | None:
    parts = [s for s in (opts.tstops, None if control is None else control.times.detach()) if s is not None]
    return torch.cat(parts) if parts else None


def make_solution(prob, alg, opts, fwd: Forward, u: torch.Tensor) -> ODESolution:
    res = fwd.result
    sol = ODESolution(t=opts.saveat, u=u, retcodes=res.retcodes, stats=res.stats, alg=alg, engine="torch",
                      t_final=res.t, interp=fwd.dense)
    if opts.throw:
        check(sol, alg)
    return sol


def check(sol: ODESolution, alg) -> None:
    bad = (sol.retcodes != int(ReturnCode.Success)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        code = ReturnCode(int(sol.retcodes[i]))
        others = bad.shape[0] - 1
        detail = f"{others} other trajectories failed too" if others else ""
        raise SolveError(code, i, float(sol.t_final[i]), "torch", alg.name, detail)
