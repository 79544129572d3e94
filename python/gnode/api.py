"""`solve`: one entry point for every engine."""

from __future__ import annotations

import dataclasses
import math

import torch

from gnode._types import as_tensor, check_increasing
from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.controllers import AbstractController
from gnode.algorithms.sensealg import AbstractSensitivityAlgorithm
from gnode.engines.registry import SolveOptions, get_engine
from gnode.problem import ODEProblem
from gnode.solution import ODESolution


def solve(
    prob: ODEProblem,
    alg: AbstractAlgorithm | None = None,
    *,
    saveat=None,
    reltol: float = 1e-6,
    abstol: float = 1e-8,
    dt: float | None = None,
    dtmin: float | None = None,
    dtmax: float | None = None,
    maxiters: int = 100_000,
    tstops=None,
    sensealg: AbstractSensitivityAlgorithm | None = None,
    engine: str = "torch",
    controller: AbstractController | None = None,
    compile=False,
    throw: bool = True,
) -> ODESolution:
    """Solve `prob` with `alg` (default `Tsit5()`) on `engine`.

    saveat:   times (time,) within tspan, monotone in the direction of integration; default (t0, t1).
              Values there come from the method's dense output, so they cost no extra steps.
    reltol, abstol: tolerances of adaptive methods (per-component error scaled by abstol + reltol |u|).
    dt:       the step of fixed-step methods (required for them); for adaptive ones the first step
              (default: Hairer's automatic choice).
    dtmin, dtmax: bounds on |dt|. Below dtmin a trajectory stops with `DtLessThanMin`.
    maxiters: steps (accepted + rejected) allowed per trajectory before `MaxIters`.
    tstops:   extra times each trajectory steps onto exactly (input breakpoints are added automatically).
    sensealg: how gradients flow: `BackpropAdjoint()` (default: autograd through the solver),
              `BacksolveAdjoint()`, `InterpolatingAdjoint()`, `QuadratureAdjoint()`, ...
    engine:   "torch" (native, default), "julia", "scipy" (float64 reference, no gradients), ...
    controller: the step-size controller of adaptive methods, e.g. `PIController(beta1=..., norm="batch")`
              (default: the method's, with its exponents and a per-trajectory error norm: `PredictiveController()`
              for RadauIIA5/RadauIIA9 as in OrdinaryDiffEq.jl, `PIController()` otherwise).
    compile:  native engine only: True (or a `torch.compile` backend name) traces each attempted step —
              stages, error norm, controller, accept/reject — into one compiled graph per method, vector field,
              dtype, device and batch shape, cached for later solves. It pays off for repeated solves (training,
              sweeps): the first costs the compile (seconds to a minute), later ones run 2-3x faster. Explicit
              and Rosenbrock methods; others, and fields that cannot be traced, solve eagerly with a warning.
    throw:    raise `SolveError` when a trajectory fails (default); False returns the solution with
              per-trajectory `retcodes` instead.
    """
    if not isinstance(prob, ODEProblem):
        raise TypeError(f"solve: prob must be a gnode.ODEProblem, got {type(prob).__name__}")
    if alg is None:
        from gnode.algorithms import Tsit5

        alg = Tsit5()
    if isinstance(alg, type):
        raise TypeError(f"solve: alg must be an algorithm instance, e.g. {alg.__name__}(), not the class")
    if not isinstance(alg, AbstractAlgorithm):
        raise TypeError(f"solve: alg must be a gnode algorithm such as gnode.Tsit5(), got {alg!r}")
    if isinstance(sensealg, type):
        raise TypeError(f"solve: sensealg must be an instance, e.g. {sensealg.__name__}(), not the class")
    if sensealg is not None and not isinstance(sensealg, AbstractSensitivityAlgorithm):
        raise TypeError(
            f"solve: sensealg must be a gnode sensitivity algorithm such as "
            f"gnode.InterpolatingAdjoint(), got {sensealg!r}"
        )
    eng = get_engine(engine)
    ok, why = eng.available()
    if not ok:
        raise RuntimeError(f"solve: the {engine!r} engine is not available here: {why}")
    if not any(isinstance(alg, a) for a in eng.algorithms):
        have = ", ".join(f"{a.__name__}()" for a in eng.algorithms)
        raise ValueError(f"solve: the {engine!r} engine has no {alg.name}(); it has {have}")
    if sensealg is not None and not any(isinstance(sensealg, s) for s in eng.sensealgs):
        have = ", ".join(f"{s.__name__}()" for s in eng.sensealgs) or "none (forward only)"
        raise ValueError(f"solve: the {engine!r} engine has no {sensealg.name}(); it has {have}")
    if controller is not None and not isinstance(controller, AbstractController):
        raise TypeError(
            f"solve: controller must be a gnode controller such as gnode.PIController(), got {controller!r}"
        )
    if controller is not None and not alg.adaptive:
        raise ValueError(f"solve: {alg.name}() is a fixed-step method; a step-size controller does not apply")
    backend = _compile_backend(compile, engine)
    opts = _options(prob, alg, saveat, reltol, abstol, dt, dtmin, dtmax, maxiters, tstops, throw)
    opts = dataclasses.replace(opts, controller=controller, compile=backend)
    return eng.solve(prob, alg, sensealg, opts)


def _compile_backend(compile, engine) -> str | None:
    if compile is False or compile is None:
        return None
    if engine != "torch":
        raise ValueError(f"solve: compile= applies to the native engine (engine='torch'), not {engine!r}")
    if compile is True:
        return "inductor"
    if (isinstance(compile, str) and compile) or callable(compile):
        return compile
    raise TypeError(
        f"solve: compile must be True, False or a torch.compile backend (a name such as 'inductor', "
        f"or a backend callable), got {compile!r}"
    )


def _options(prob, alg, saveat, reltol, abstol, dt, dtmin, dtmax, maxiters, tstops, throw) -> SolveOptions:
    t0, t1 = prob.tspan
    like = prob.u0.detach()
    direction = 1.0 if t1 > t0 else -1.0
    if saveat is None:
        saveat = torch.tensor([t0, t1], dtype=like.dtype, device=like.device)
    else:
        # a number is one time; a 2-D saveat is refused by check_increasing, never flattened
        saveat = torch.atleast_1d(as_tensor("saveat", saveat, like=like).detach())
        check_increasing("saveat", saveat * direction)
        lo, hi = min(t0, t1), max(t0, t1)
        slack = 8 * torch.finfo(like.dtype).eps * max(abs(t0), abs(t1), 1.0)
        outside = (saveat < lo - slack) | (saveat > hi + slack)
        if outside.any():
            i = int(outside.nonzero()[0])
            raise ValueError(f"saveat[{i}] = {saveat[i].item():.6g} lies outside tspan ({t0}, {t1})")
    if tstops is not None:
        tstops = as_tensor("tstops", tstops, like=like).detach().reshape(-1)
        if not torch.isfinite(tstops).all():
            raise ValueError("tstops must be finite")
    # a 0-d tensor (or NumPy scalar) stands for its value
    reltol, abstol, dt, dtmin, dtmax = (
        v.item() if getattr(v, "ndim", None) == 0 else v for v in (reltol, abstol, dt, dtmin, dtmax)
    )
    for name, v in (("reltol", reltol), ("abstol", abstol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if reltol == 0 and abstol == 0:
        raise ValueError("reltol and abstol cannot both be 0")
    eps = torch.finfo(like.dtype).eps
    if alg.adaptive and 0 < reltol < 2 * eps:  # reltol = 0 is pure absolute error control, which is fine
        fix = "a looser reltol" if like.dtype == torch.float64 else "float64 or a looser reltol"
        raise ValueError(f"reltol={reltol:g} is below what {like.dtype} can resolve (2 eps = {2 * eps:.2g}); use {fix}")
    if not alg.adaptive and dt is None:
        raise ValueError(f"{alg.name}() is a fixed-step method: pass dt=..., e.g. solve(prob, {alg.name}(), dt=0.01)")
    for name, v in (("dt", dt), ("dtmin", dtmin), ("dtmax", dtmax)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number (its sign follows tspan), got {v!r}")
    if not (isinstance(maxiters, int) and maxiters > 0):
        raise ValueError(f"maxiters must be a positive integer, got {maxiters!r}")
    return SolveOptions(
        saveat=saveat,
        reltol=float(reltol),
        abstol=float(abstol),
        dt=dt,
        dtmin=dtmin,
        dtmax=dtmax,
        maxiters=maxiters,
        tstops=tstops,
        throw=bool(throw),
    )
