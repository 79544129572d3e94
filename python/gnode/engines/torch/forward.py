"""The forward solve: from (problem, algorithm, options) to what the loop needs (stepper, right-hand side,
config, stops), the loop run, and the ODESolution made of its result."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from gnode.algorithms.auto import AbstractAutoSwitch
from gnode.algorithms.base import AbstractExplicitRK
from gnode.algorithms.controllers import PIController, PredictiveController
from gnode.algorithms.esdirk import AbstractESDIRK
from gnode.algorithms.radau import AbstractRadauIIA
from gnode.algorithms.rosenbrock import AbstractRosenbrock
from gnode.engines.torch.auto import AutoSwitchStepper, LazyAutoSwitchStepper
from gnode.engines.torch.esdirk import esdirk_stepper
from gnode.engines.torch.explicit import explicit_stepper
from gnode.engines.torch.history import DenseHistory
from gnode.engines.torch.loop import LoopConfig, integrate
from gnode.engines.torch.radau import radau_stepper
from gnode.engines.torch.rhs import AbstractRHS, ProblemRHS
from gnode.engines.torch.rosenbrock import RosenbrockStepper
from gnode.engines.torch.stepper import AbstractLazyDense
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution


def _auto(alg, dtype, device, traced, reltol, abstol):
    nonstiff = make_stepper(alg.nonstiff, dtype, device)
    stiff = make_stepper(alg.stiffalg, dtype, device, reltol=reltol, abstol=abstol)
    cls = LazyAutoSwitchStepper if isinstance(nonstiff, AbstractLazyDense) else AutoSwitchStepper
    return cls(alg, nonstiff, stiff)


STEPPERS = {
    AbstractExplicitRK: lambda alg, dtype, device, traced, reltol, abstol: explicit_stepper(
        alg.tableau, dtype, device, traced
    ),
    AbstractRosenbrock: lambda alg, dtype, device, traced, reltol, abstol: RosenbrockStepper(
        alg.tableau, dtype, device, traced
    ),
    AbstractESDIRK: lambda alg, dtype, device, traced, reltol, abstol: esdirk_stepper(
        alg, dtype, device, reltol, abstol
    ),
    AbstractRadauIIA: lambda alg, dtype, device, traced, reltol, abstol: radau_stepper(
        alg, dtype, device, reltol, abstol
    ),
    AbstractAutoSwitch: _auto,
}


@functools.lru_cache(maxsize=128)
def make_stepper(
    alg, dtype: torch.dtype, device: torch.device, traced: bool = False, *, reltol: float = 1e-6, abstol: float = 1e-8
):
    """The engine's stepper for `alg`, with coefficients cast to dtype/device (cached). `traced`: for a compiled
    attempt. The tolerances matter only to methods with an inner iteration (the Newton stopping test)."""
    for kind, factory in STEPPERS.items():
        if isinstance(alg, kind):
            return factory(alg, dtype, device, traced, reltol, abstol)
    raise ValueError(f"the torch engine has no stepper for {alg.name}()")


def loop_config(alg, opts, reltol=None, abstol=None) -> LoopConfig:
    controller = None
    if alg.adaptive:
        controller = default_controller(alg) if opts.controller is None else opts.controller
        # Radau IIA weighs its steps' Newton iterations against its limit (the predictive controller's factor)
        controller = controller.resolve(alg.error_order, alg.max_iter if isinstance(alg, AbstractRadauIIA) else None)
    return LoopConfig(
        adaptive=alg.adaptive,
        reltol=opts.reltol if reltol is None else reltol,
        abstol=opts.abstol if abstol is None else abstol,
        dt=opts.dt,
        dtmin=opts.dtmin,
        dtmax=opts.dtmax,
        maxiters=opts.maxiters,
        controller=controller,
        order=alg.order,
    )


def default_controller(alg):
    """The controller of a solve that names none, as in OrdinaryDiffEq.jl: Gustafsson's predictive controller for
    Radau IIA (RADAU5's), the PI controller otherwise."""
    return PredictiveController() if isinstance(alg, AbstractRadauIIA) else PIController()


@dataclass
class Forward:
    """A finished forward solve: the loop's result and the dense history over it."""

    result: object
    dense: DenseHistory
    rhs: AbstractRHS
    stepper: object


def solve_loop(alg, stepper, rhs: AbstractRHS, y0, t0, t1, cfg: LoopConfig, stops, opts, **kw):
    """`integrate`, compiled when the solve asks for it and the method allows it (see `compiled.py`)."""
    compiled = None
    if opts.compile:
        from gnode.engines.torch.compiled import compiled_attempts  # torch._dynamo is a heavy import

        def traced():
            return make_stepper(alg, y0.dtype, y0.device, True, reltol=cfg.reltol, abstol=cfg.abstol)

        compiled = compiled_attempts(alg, stepper, traced, rhs, y0, cfg, opts.compile)
    return integrate(stepper, rhs, y0, t0, t1, cfg, stops, compiled=compiled, **kw)


def run_forward(prob, alg, opts, *, y0=None, control=None, record=True) -> Forward:
    u0 = prob.u0 if y0 is None else y0
    stepper = make_stepper(alg, u0.dtype, u0.device, reltol=opts.reltol, abstol=opts.abstol)
    t0, t1 = prob.tspan
    rhs = ProblemRHS(prob, control, 1.0 if t1 > t0 else -1.0)
    res = solve_loop(
        alg,
        stepper,
        rhs,
        u0,
        t0,
        t1,
        loop_config(alg, opts),
        problem_stops(opts, rhs.control),
        opts,
        refresh_at_stops=rhs.control is not None and rhs.control.discontinuous,
        record=record,
    )
    dense = DenseHistory(stepper, rhs, res.records, u0, t0, res.t, 1.0 if t1 > t0 else -1.0)
    return Forward(res, dense, rhs, stepper)


def problem_stops(opts, control) -> torch.Tensor | None:
    parts = [s for s in (opts.tstops, None if control is None else control.times.detach()) if s is not None]
    return torch.cat(parts) if parts else None


def make_solution(prob, alg, opts, fwd: Forward, u: torch.Tensor) -> ODESolution:
    res = fwd.result
    stats = res.stats
    if fwd.dense.extra_nf.any():  # the lazy interpolant's stages the saved values needed
        stats = type(stats)(**{**stats.as_dict(), "nf": stats.nf + fwd.dense.extra_nf})
    sol = ODESolution(
        t=opts.saveat, u=u, retcodes=res.retcodes, stats=stats, alg=alg, engine="torch", t_final=res.t, interp=fwd.dense
    )
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
