"""Solvers as the benchmark sees them: one interface over gnode's engines (native "torch", "julia", "scipy")
and the peer libraries (`gnode.bench.peers`: torchdiffeq, torchode, diffrax).

A solver is one method of one package, with an optional way of differentiating it. `prepare(problem, reltol,
abstol, gradient=...)` builds everything that does not belong in the timed region (problem objects, JIT
compilation) and returns a `Prepared` run:

    run()          the timed work: the solve at the problem's saved times (and, for gradients, the backward
                   pass of L = sum(w * u(saveat)) with respect to the problem's parameters)
    detailed()     an untimed run that returns an `Outcome`: the solution at the saved and the 100 dense times,
                   per-trajectory return codes, statistics, the gradient
    peak_memory()  an untimed run under a memory probe (`gnode.bench.measure`)

Statistics (`Outcome.stats`), per trajectory and averaged over the batch unless named otherwise:
    nf        right-hand-side evaluations the solver spent on the trajectory (its own count; for libraries
              that solve the batch as one system, such as torchdiffeq, every trajectory shares the count)
    nf_max    the largest per-trajectory nf
    f_calls   calls of the vector field on the batch in the forward solve (what a batched solver pays;
              counted by a hook or wrapper)
    naccept, nreject, njacs, nw, nsolve   as in `gnode.SolveStats`, where the solver reports them
    nf_backward  (gradients) f or vector-Jacobian evaluations of a continuous adjoint's backward solve
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from gnode.bench.errors import dense_times
from gnode.bench.gnode_problems import BenchProblem
from gnode.retcode import ReturnCode


@dataclass
class Outcome:
    u_save: np.ndarray  # (B, T, n) at problem.saveat
    u_dense: np.ndarray | None  # (B, 100, n) at the dense times, None if the solver has no dense output
    retcodes: np.ndarray  # (B,) ReturnCode values
    stats: dict = field(default_factory=dict)
    grad: np.ndarray | None = None
    message: str = ""

    @property
    def retcode(self) -> str:
        bad = [int(c) for c in self.retcodes if int(c) != ReturnCode.Success]
        return ReturnCode.Success.name if not bad else ReturnCode(bad[0]).name

    @property
    def successful(self) -> bool:
        return bool(np.all(self.retcodes == int(ReturnCode.Success)))


class Prepared:
    """A solve ready to run (see the module docstring). `compile_seconds`: JIT time paid in `prepare`."""

    compile_seconds: float | None = None

    def run(self) -> None:
        raise NotImplementedError

    def detailed(self) -> Outcome:
        raise NotImplementedError

    def peak_memory(self) -> tuple[int | None, str]:
        return None, "not measured"


class AbstractSolver:
    """A method of a package (a gnode engine or a peer library), optionally with a sensitivity method."""

    package: str  # "gnode", "torchdiffeq", "torchode", "diffrax"
    engine: str  # the gnode engine, or the package for peers
    method: str  # as the package names it
    sensealg: str | None = None

    @property
    def label(self) -> str:
        base = f"{self.engine} {self.method}"
        return base if self.sensealg is None else f"{base} / {self.sensealg}"

    @property
    def family(self) -> str:
        """What the diagrams group by: "gnode[torch]", "torchdiffeq", ..."""
        return f"gnode[{self.engine}]" if self.package == "gnode" else self.package

    def available(self) -> tuple[bool, str]:
        return True, ""

    def supports(self, problem: BenchProblem, gradient: bool) -> tuple[bool, str]:
        if gradient and not problem.differentiable:
            return False, f"{problem.name} has no parameters to differentiate"
        if gradient and self.sensealg is None:
            return False, f"{self.label} is forward-only here"
        if not gradient and self.sensealg is not None:
            return False, "gradient solver"
        return True, ""

    def prepare(
        self, problem: BenchProblem, reltol: float, abstol: float, *, gradient: bool, maxiters: int
    ) -> Prepared:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


def save_and_dense_times(problem: BenchProblem) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(union of saved and dense times as a float64 tensor, index of each saved time, of each dense time)."""
    t_save = problem.saveat.detach().double().numpy()
    t_dense = dense_times(*problem.tspan)
    t_all = np.union1d(t_save, t_dense)
    return (
        torch.as_tensor(t_all, dtype=torch.float64),
        np.searchsorted(t_all, t_save),
        np.searchsorted(t_all, t_dense),
    )


class CallCounter:
    """Counts calls of a vector field and the rows they evaluate: a forward hook on a module (so the module,
    its `jacobian` and its parameters stay what the engine sees), or a wrapper around a function."""

    def __init__(self, f: Callable):
        self.calls = 0
        self.rows = 0
        self.f = f
        self._hook = None

    def _count(self, u):
        self.calls += 1
        self.rows += int(u.shape[0]) if getattr(u, "ndim", 0) >= 2 else 1

    def __enter__(self) -> Callable:
        if isinstance(self.f, torch.nn.Module):
            self._hook = self.f.register_forward_hook(lambda mod, args, out: self._count(args[1]))
            return self.f

        def counted(t, u, *rest):
            self._count(u)
            return self.f(t, u, *rest)

        return counted

    def __exit__(self, *exc):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


def flat_grad(grads) -> np.ndarray:
    flat = torch.cat([(g if g is not None else torch.zeros(0)).reshape(-1) for g in grads])
    return flat.detach().double().cpu().numpy()


# ----------------------------------------------------------------------------------------- gnode's engines


class EngineSolver(AbstractSolver):
    """A gnode algorithm on one of gnode's engines ("torch" is the native one; "julia", "scipy")."""

    package = "gnode"

    def __init__(self, alg, engine: str = "torch", sensealg=None, compile=False, controller=None):
        self.alg, self.engine, self.sens, self.compile = alg, engine, sensealg, compile
        self.controller = controller
        backend = "" if compile is True or not compile else f"[{compile}]"
        self.method = (
            repr(alg)
            + (f" compiled{backend}" if compile else "")
            + (f" {controller!r}" if controller is not None else "")
        )
        self.sensealg = None if sensealg is None else repr(sensealg)

    def available(self) -> tuple[bool, str]:
        from gnode.engines.registry import get_engine

        try:
            eng = get_engine(self.engine)
        except ValueError as e:
            return False, str(e)
        ok, why = eng.available()
        if not ok:
            return False, f"the {self.engine!r} engine is not available here: {why}"
        if not any(isinstance(self.alg, a) for a in eng.algorithms):
            return False, f"the {self.engine!r} engine has no {self.alg.name}()"
        if self.sens is not None and not any(isinstance(self.sens, s) for s in eng.sensealgs):
            return False, f"the {self.engine!r} engine has no {self.sens.name}()"
        return True, ""

    def supports(self, problem, gradient):
        ok, why = super().supports(problem, gradient)
        if not ok:
            return ok, why
        if self.engine == "julia" and not callable(getattr(problem.f, "spec", None)):
            return False, "the julia engine integrates gnODE-family models only"
        return True, ""

    def prepare(self, problem, reltol, abstol, *, gradient, maxiters):
        return _EngineRun(self, problem, reltol, abstol, gradient, maxiters)


class _EngineRun(Prepared):
    """One point of a gnode engine. Compiled (`solver.compile`): the first solve, which traces and compiles the
    step (or finds it cached), is timed as `compile_seconds`; every later one reuses the graph. Its f is called
    inside the graph, where a Python counter would count the tracing, so `detailed` counts f calls on an eager
    solve at the same tolerances and takes everything else from the compiled one."""

    def __init__(self, solver: EngineSolver, problem: BenchProblem, reltol, abstol, gradient, maxiters):
        self.s, self.p, self.gradient = solver, problem, gradient
        self.kw = {"reltol": reltol, "abstol": abstol, "maxiters": maxiters, "throw": False, "engine": solver.engine}
        if gradient:
            self.kw["sensealg"] = solver.sens
        if solver.controller is not None:
            self.kw["controller"] = solver.controller
        self.prob = problem.ode_problem()
        if solver.compile:
            self.kw["compile"] = solver.compile
            start = time.perf_counter()
            self.run()
            self.compile_seconds = time.perf_counter() - start

    def _solve(self, prob, saveat):
        import gnode

        return gnode.solve(prob, self.s.alg, saveat=saveat, **self.kw)

    def run(self) -> None:
        if not self.gradient:
            with torch.no_grad():
                self._solve(self.prob, self.p.saveat)
            return
        sol = self._solve(self.prob, self.p.saveat)
        torch.autograd.grad(self.p.loss(sol.u), self.p.params, allow_unused=True)

    def detailed(self) -> Outcome:
        if self.s.compile:
            eager = EngineSolver(self.s.alg, self.s.engine, self.s.sens, controller=self.s.controller)
            out = _EngineRun(
                eager, self.p, self.kw["reltol"], self.kw["abstol"], self.gradient, self.kw["maxiters"]
            )._detailed(None)
            eager_calls = out.stats["f_calls"], out.stats["f_rows"]
            out = self._detailed(self.prob)
            out.stats["f_calls"], out.stats["f_rows"] = eager_calls
            return out
        return self._detailed(None)

    def _detailed(self, fixed_prob) -> Outcome:
        t_all, i_save, i_dense = save_and_dense_times(self.p)
        counter = CallCounter(self.p.f)
        grad = None
        with counter as f:
            prob = fixed_prob or (self.prob if f is self.p.f else self.p.ode_problem(f))
            if self.gradient:
                sol = self._solve(prob, self.p.saveat)
                forward_calls, forward_rows = counter.calls, counter.rows  # the backward pass may call f too
                grads = torch.autograd.grad(self.p.loss(sol.u), self.p.params, allow_unused=True)
                grad = flat_grad([g if g is not None else torch.zeros_like(p) for g, p in zip(grads, self.p.params)])
                u_save = sol.u.detach().cpu().numpy()
                u_dense = None
                if sol.interp is not None and bool((sol.retcodes == int(ReturnCode.Success)).all()):
                    with torch.no_grad():
                        u_dense = sol(t_all)[:, i_dense].detach().cpu().numpy()
            else:
                with torch.no_grad():
                    sol = self._solve(prob, t_all)
                forward_calls, forward_rows = counter.calls, counter.rows
                u = sol.u.detach().cpu().numpy()
                u_save, u_dense = u[:, i_save], u[:, i_dense]
        st = sol.stats
        stats = {k: float(v.double().mean()) for k, v in st.as_dict().items()}
        stats["nf_max"] = float(st.nf.max())
        stats["f_calls"] = forward_calls or None  # forward solve only, in every mode
        stats["f_rows"] = forward_rows or None
        if self.gradient and sol.adjoint_stats is not None:
            stats["nf_backward"] = float(sol.adjoint_stats.nf.double().mean())
        return Outcome(u_save, u_dense, sol.retcodes.cpu().numpy(), stats, grad)

    def peak_memory(self):
        from gnode.bench.measure import torch_peak_memory, tracemalloc_peak

        if self.s.engine == "scipy":
            return tracemalloc_peak(self.run)
        if self.s.engine == "julia":
            return None, "not measured (julia engine)"
        return torch_peak_memory(self.run, self.p.u0.device)
