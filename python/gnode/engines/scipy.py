"""The "scipy" reference engine: SciPy's `solve_ivp` solvers, one trajectory at a time, forward only.

Each trajectory is integrated by one of SciPy's `OdeSolver`s (the steppers behind `scipy.integrate.solve_ivp`),
stepped here the way `solve_ivp` steps them so that `maxiters` and `dtmin` can be honoured. The integration
runs in float64 (SciPy's arithmetic); `f` is called with tensors of `u0`'s dtype and device, so pass a float64
`u0` and a float64 `f` for a float64 reference. Results come back in `u0`'s dtype and device, detached: this
engine computes no gradients (`sensealg` must be None), and it refuses a solve whose result would need them
(grad mode on and u0, the input values or f's parameters requiring grad), which would otherwise hand a loss
zero gradients without a word. Evaluate under `torch.no_grad()`.

Algorithms (`gnode.engines.scipy`): `ScipyRadau()`, `ScipyBDF()`, `ScipyLSODA()` (stiff; given an autograd
Jacobian of `f` unless `jac=False`), `ScipyDOP853()`, `ScipyRK45()`, `ScipyRK23()`; the common explicit ones
are also understood by their OrdinaryDiffEq.jl names: `DP5()` runs SciPy's RK45 (the same Dormand–Prince 5(4)
pair) and `BS3()` its RK23 (the same Bogacki–Shampine 3(2) pair).

Breakpoints (`tstops` and the inputs' sample times) are handled by restarting the solver on each piece
between them, with the input's segment fixed on the piece (so a zero-order hold is never straddled).
`saveat` and `sol(t)` use the solvers' dense output. Statistics: `nf` (SciPy's nfev, which leaves out the
evaluations spent on finite-difference Jacobians), `njacs` (njev), `nw` (LU factorisations, nlu), `naccept`
(steps taken); SciPy does not report rejected steps, so `nreject` stays 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gnode.algorithms.base import AbstractAlgorithm
from gnode.algorithms.explicit import BS3, DP5
from gnode.engines.registry import AbstractEngine
from gnode.retcode import ReturnCode, SolveError
from gnode.solution import ODESolution, SolveStats


class AbstractScipyAlgorithm(AbstractAlgorithm):
    """A SciPy `OdeSolver` by name (`method`, as `solve_ivp` spells it). All are adaptive."""

    method: str
    adaptive = True
    implicit = False


@dataclass(frozen=True, repr=False)
class AbstractScipyImplicit(AbstractScipyAlgorithm):
    """jac: give SciPy the exact Jacobian ∂f/∂u from autograd (True) or let it difference f (False)."""

    jac: bool = True
    implicit = True


@dataclass(frozen=True, repr=False)
class ScipyRadau(AbstractScipyImplicit):
    """Radau IIA, 3 stages, order 5 (Hairer & Wanner II, IV.8; SciPy `Radau`). Implicit, for stiff problems;
    the dense output is the collocation polynomial."""

    method = "Radau"
    order = 5
    error_order = 3


@dataclass(frozen=True, repr=False)
class ScipyBDF(AbstractScipyImplicit):
    """Variable-order (1-5) backward differentiation formulas in quasi-constant step form (Shampine &
    Reichelt 1997; SciPy `BDF`). Implicit, for stiff problems. `order` is the largest order used."""

    method = "BDF"
    order = 5
    error_order = 5


@dataclass(frozen=True, repr=False)
class ScipyLSODA(AbstractScipyImplicit):
    """ODEPACK's LSODA (Petzold 1983): Adams (order <= 12) with automatic switching to BDF (order <= 5) when
    stiffness is detected. `order` is the largest order used."""

    method = "LSODA"
    order = 12
    error_order = 12


@dataclass(frozen=True, repr=False)
class ScipyDOP853(AbstractScipyAlgorithm):
    """Hairer's DOP853: explicit Runge–Kutta of order 8, error estimators of orders 5 and 3, order-7 dense output."""

    method = "DOP853"
    order = 8
    error_order = 5


@dataclass(frozen=True, repr=False)
class ScipyRK45(AbstractScipyAlgorithm):
    """Dormand–Prince 5(4) (SciPy `RK45`), quartic dense output. The same pair as `DP5()`."""

    method = "RK45"
    order = 5
    error_order = 4


@dataclass(frozen=True, repr=False)
class ScipyRK23(AbstractScipyAlgorithm):
    """Bogacki–Shampine 3(2) (SciPy `RK23`), cubic Hermite dense output. The same pair as `BS3()`."""

    method = "RK23"
    order = 3
    error_order = 2


SCIPY_ALGORITHMS = (ScipyRadau, ScipyBDF, ScipyLSODA, ScipyDOP853, ScipyRK45, ScipyRK23)
_SAME_PAIR = {DP5: "RK45", BS3: "RK23"}  # gnode algorithms that are SciPy solvers under another name


def method_of(alg) -> str:
    """The `solve_ivp` method name that runs `alg`."""
    if isinstance(alg, AbstractScipyAlgorithm):
        return alg.method
    for kind, method in _SAME_PAIR.items():
        if isinstance(alg, kind):
            return method
    raise ValueError(f"the scipy engine has no {alg.name}()")


class ScipyEngine(AbstractEngine):
    name = "scipy"
    algorithms = SCIPY_ALGORITHMS + tuple(_SAME_PAIR)
    sensealgs = ()

    def available(self) -> tuple[bool, str]:
        try:
            import scipy.integrate  # noqa: F401
        except ImportError as e:
            return False, f"scipy cannot be imported ({e}); pip install scipy"
        return True, ""

    def solve(self, prob, alg, sensealg, opts) -> ODESolution:
        refuse_gradients(prob)
        controller = getattr(opts, "controller", None)
        if controller is not None and controller != type(controller)():
            raise ValueError(
                f"the scipy engine does not take controller={controller!r}: SciPy's solvers control "
                "their steps themselves. Leave controller unset or use engine='torch'"
            )
        u0 = prob.u0.detach()
        B = u0.shape[0]
        stops = _breakpoints(prob, opts)
        runs = [_Trajectory(prob, alg, opts, b, stops).run() for b in range(B)]
        stats = SolveStats.zeros(B, u0.device)
        for b, r in enumerate(runs):
            for name, v in r.counts.items():
                getattr(stats, name)[b] = v
        retcodes = torch.tensor([int(r.retcode) for r in runs], dtype=torch.long, device=u0.device)
        t_final = torch.tensor([r.t for r in runs], dtype=u0.dtype, device=u0.device)

        def interp(tq: torch.Tensor) -> torch.Tensor:
            tq_np = tq.detach().cpu().numpy().astype(np.float64)
            out = np.stack([r.evaluate(tq_np) for r in runs])
            return torch.as_tensor(out, dtype=u0.dtype, device=u0.device)

        sol = ODESolution(
            t=opts.saveat,
            u=interp(opts.saveat),
            retcodes=retcodes,
            stats=stats,
            alg=alg,
            engine="scipy",
            t_final=t_final,
            interp=interp,
        )
        if opts.throw:
            failed = [b for b, r in enumerate(runs) if r.retcode is not ReturnCode.Success]
            if failed:
                r = runs[failed[0]]
                others = f"; {len(failed) - 1} other trajectories failed too" if len(failed) > 1 else ""
                raise SolveError(r.retcode, failed[0], r.t, "scipy", alg.name, r.message + others)
        return sol


def refuse_gradients(prob) -> None:
    """One clear error when grad mode is on and something the solution depends on requires grad: u0, the input
    values, f's parameters (`prob.params`) or a tensor f captures. The solution would come back detached."""
    if not torch.is_grad_enabled():
        return
    names = {id(p): name for name, p in prob.f.named_parameters()} if isinstance(prob.f, torch.nn.Module) else {}
    wanted = ["u0"] if prob.u0.requires_grad else []
    if prob.inputs is not None and prob.inputs.values.requires_grad:
        wanted.append("inputs.values")
    wanted += [
        f"f's parameter {names.get(id(p), f'prob.params[{i}]')}" for i, p in enumerate(prob.params) if p.requires_grad
    ]
    wanted += [f"the tensor {name!r} that f captures" for name in prob.closure_tensors_requiring_grad()]
    if wanted:
        more = f" (and {len(wanted) - 1} more)" if len(wanted) > 1 else ""
        raise ValueError(
            f"the scipy engine computes no gradients, but {wanted[0]}{more} requires grad, so a loss of "
            "this solution would get zero gradients: to evaluate, solve inside `with torch.no_grad():` "
            "(or pass detached tensors); to differentiate, use engine='torch'"
        )


def _breakpoints(prob, opts) -> np.ndarray:
    """Times strictly inside tspan the solver restarts at (tstops, input sample times), in solve order."""
    t0, t1 = prob.tspan
    parts = [np.empty(0)]
    if opts.tstops is not None:
        parts.append(opts.tstops.detach().cpu().double().numpy())
    if prob.inputs is not None:
        parts.append(prob.inputs.times.detach().cpu().double().numpy())
    s = np.unique(np.concatenate(parts))
    s = s[(s > min(t0, t1)) & (s < max(t0, t1))]
    return s if t1 > t0 else s[::-1]


class _Trajectory:
    """One trajectory's solve: pieces between breakpoints, each by a fresh SciPy solver."""

    def __init__(self, prob, alg, opts, b: int, stops: np.ndarray):
        self.prob, self.alg, self.opts, self.b = prob, alg, opts, b
        self.stops = stops
        self.like = prob.u0.detach()
        shared = prob.inputs is not None and prob.inputs.batch == 1  # one input for the whole batch
        self.row = torch.tensor([0 if shared else b], device=self.like.device)
        self.retcode = ReturnCode.Default
        self.message = ""
        self.t = prob.tspan[0]
        self.counts = {"nf": 0, "njacs": 0, "nw": 0, "naccept": 0}
        self.ts = [prob.tspan[0]]
        self.interpolants = []
        self.y_start = self.like[b].cpu().double().numpy()

    # -- f and its Jacobian as SciPy wants them -------------------------------------------------------

    def _x(self, tt, seg):
        inputs = self.prob.inputs
        return None if inputs is None else inputs.evaluate(tt, seg, self.row).detach()

    def _fun(self, seg):
        f, like = self.prob.f, self.like

        def fun(t, y):
            tt = torch.full((1,), t, dtype=like.dtype, device=like.device)
            yt = torch.as_tensor(y, dtype=like.dtype, device=like.device)[None]
            with torch.no_grad():
                x = self._x(tt, seg)
                out = f(tt, yt) if x is None else f(tt, yt, x)
            return out[0].detach().cpu().double().numpy()

        return fun

    def _jac(self, seg):
        f, like = self.prob.f, self.like

        def jac(t, y):
            tt = torch.full((1,), t, dtype=like.dtype, device=like.device)
            yt = torch.as_tensor(y, dtype=like.dtype, device=like.device)
            x = self._x(tt, seg)
            with torch.enable_grad():
                J = torch.autograd.functional.jacobian(
                    lambda v: (f(tt, v[None]) if x is None else f(tt, v[None], x))[0], yt
                )
            return J.detach().cpu().double().numpy()

        return jac

    # -- the solve ------------------------------------------------------------------------------------

    def run(self) -> _Trajectory:
        import scipy.integrate

        solver_class = getattr(scipy.integrate, method_of(self.alg))
        opts, (t0, t1) = self.opts, self.prob.tspan
        ends = list(self.stops) + [t1]
        y, a, iters = self.y_start, t0, 0
        for end in ends:
            seg = None
            if self.prob.inputs is not None:
                mid = torch.tensor([0.5 * (a + end)], dtype=self.like.dtype, device=self.like.device)
                seg = self.prob.inputs.segment(mid)
            kwargs = {
                "rtol": opts.reltol,
                "atol": opts.abstol,
                "max_step": opts.dtmax if opts.dtmax is not None else math.inf,
            }
            if opts.dt is not None:
                kwargs["first_step"] = min(opts.dt, abs(end - a))
            if getattr(self.alg, "implicit", False) and getattr(self.alg, "jac", False):
                kwargs["jac"] = self._jac(seg)
            try:
                solver = solver_class(self._fun(seg), a, y, end, **kwargs)
            except ValueError as e:
                self._fail(ReturnCode.Failure, a, f"SciPy refused to start: {e}")
                break
            while solver.status == "running":
                if iters >= opts.maxiters:
                    self._fail(ReturnCode.MaxIters, solver.t, f"{iters} steps taken (maxiters = {opts.maxiters})")
                    break
                message = solver.step()
                iters += 1
                if solver.status == "failed":
                    code = ReturnCode.DtLessThanMin if "step size" in (message or "") else ReturnCode.Failure
                    self._fail(code, solver.t, f"SciPy {method_of(self.alg)}: {message}")
                    break
                self.counts["naccept"] += 1
                self.ts.append(solver.t)
                self.interpolants.append(solver.dense_output())
                if not np.isfinite(solver.y).all():
                    self._fail(ReturnCode.Unstable, solver.t, "the state became non-finite")
                    break
                if (
                    opts.dtmin is not None
                    and solver.status == "running"
                    and solver.step_size is not None
                    and solver.step_size < opts.dtmin
                ):
                    self._fail(
                        ReturnCode.DtLessThanMin,
                        solver.t,
                        f"step size {solver.step_size:.3g} < dtmin = {opts.dtmin:.3g}",
                    )
                    break
            self.counts["nf"] += solver.nfev
            self.counts["njacs"] += solver.njev
            self.counts["nw"] += solver.nlu
            if self.retcode is not ReturnCode.Default:
                break
            y, a = solver.y, end
            self.t = end
        if self.retcode is ReturnCode.Default:
            self.retcode = ReturnCode.Success
        return self

    def _fail(self, code: ReturnCode, t: float, message: str) -> None:
        self.retcode, self.t, self.message = code, float(t), message

    def evaluate(self, tq: np.ndarray) -> np.ndarray:
        """u at times tq (Q,) → (Q, n); NaN past where the trajectory stopped."""
        from scipy.integrate import OdeSolution

        n = self.y_start.shape[0]
        out = np.full((tq.shape[0], n), np.nan)
        t0 = self.prob.tspan[0]
        if not self.interpolants:
            out[tq == t0] = self.y_start
            return out
        sol = OdeSolution(self.ts, self.interpolants)
        lo, hi = min(t0, self.t), max(t0, self.t)
        slack = 64 * np.finfo(np.float64).eps * max(abs(lo), abs(hi), 1.0)
        inside = (tq >= lo - slack) & (tq <= hi + slack)
        if inside.any():
            out[inside] = sol(np.clip(tq[inside], lo, hi)).T
        return out


def make_engine() -> ScipyEngine:
    return ScipyEngine()
