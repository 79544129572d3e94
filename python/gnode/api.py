"""`solve`: one entry point for every engine."""

from __future__ import annotations

import math

import torch

from gnode._types import as_tensor, check_increasing
from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.sensealg import AbstractSensitivityAlgorithm
from gnode.engines.registry import SolveOptions, get_engine
from gnode.problem import ODEProblem
from gnode.solution import ODESolution


def solve(prob: ODEProblem, alg: AbstractAlgorithm | None = None, *, saveat=None, reltol: float = 1e-6,
          abstol: float = 1e-8, dt: float | None = None, dtmin: float | None = None,
          dtmax: float | None = None, maxiters: int = 100_000, tstops=None,
          sensealg: AbstractSensitivityAlgorithm | None = None, engine: str = "torch",
          throw: bool = True) -> ODESolution:
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
        raise TypeError(f"solve: sensealg must be a gnode sensitivity algorithm such as "
                        f"gnode.InterpolatingAdjoint(), got {sensealg!r}")
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
    opts = _options(prob, alg, saveat, reltol, abstol, dt, dtmin, dtmax, maxiters, tstops, throw)
    return eng.solve(prob, alg, sensealg, opts)


def _options(prob, alg, saveat, reltol, abstol, dt, dtmin, dtmax, maxiters, tstops, throw) -> SolveOptions:
    t0, t1 = prob.tspan
    like = prob.u0.detach()
    direction = 1.0 if t1 > t0 else -1.0
    if saveat is None:
        saveat = torch.tensor([t0, t1], dtype=like.dtype, device=like.device)
    else:
        saveat = as_tensor("saveat", saveat, like=like).detach().reshape(-1)
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
    for name, v in (("reltol", reltol), ("abstol", abstol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if reltol == 0 and abstol == 0:
        raise ValueError("reltol and abstol cannot both be 0")
    if alg.adaptive and reltol < 2 * torch.finfo(like.dtype).eps:
        raise ValueError(f"reltol={reltol:g} is below what {like.dtype} can resolve "
                         f"(eps = {torch.finfo(like.dtype).eps:.2g}); use float64 or a looser reltol")
    if not alg.adaptive and dt is None:
        raise ValueError(f"{alg.name}() is a fixed-step method: pass dt=..., e.g. solve(prob, {alg.name}(), dt=0.01)")
    for name, v in (("dt", dt), ("dtmin", dtmin), ("dtmax", dtmax)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number (its sign follows tspan), got {v!r}")
    if not (isinstance(maxiters, int) and maxiters > 0):
        raise ValueError(f"maxiters must be a positive integer, got {maxiters!r}")
    return SolveOptions(saveat=saveat, reltol=float(reltol), abstol=float(abstol), dt=dt, dtmin=dtmin,
                        dtmax=dtmax, maxiters=maxiters, tstops=tstops, throw=bool(throw))
