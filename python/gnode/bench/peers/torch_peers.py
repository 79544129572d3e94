"""Peer adapters for the PyTorch ODE libraries: torchdiffeq and torchode, used when installed.

Both integrate the very same torch vector field (the problem's `f`, same weights, float64) from the same
states with the same reltol/abstol, and save at the same times; each with its own defaults otherwise (step
size controller, initial step), as a user of the library would run it.

torchdiffeq (Chen et al.) solves the batch as one system: one step size for all trajectories, so its `nf` is
the number of calls and every trajectory shares it. Methods: dopri5, bosh3, dopri8 (and any other adaptive
name it knows). Gradients: "backprop" (`odeint`, autograd through the solver) and "adjoint" (`odeint_adjoint`).
Input breakpoints are passed as `jump_t`. Failures (its assertions) map to return codes by their message.

torchode (Lienen & Günnemann 2022) solves each trajectory with its own step size, like gnode's native engine.
Methods: Dopri5, Tsit5, Heun; `IntegralController`; gradients: "AutoDiffAdjoint" (backprop through the
solver, with `backprop_through_step_size_control=False`: see `_TorchodeRun._solver`). It has no notion of
breakpoints, so on problems with zero-order-hold inputs its steps straddle the jumps (what a user of it
would get).
"""

from __future__ import annotations

import numpy as np
import torch

from gnode.bench.solvers import (
    AbstractSolver,
    CallCounter,
    Outcome,
    Prepared,
    flat_grad,
    save_and_dense_times,
)
from gnode.retcode import ReturnCode


class _InputField(torch.nn.Module):
    """f(t, y) = problem.f(t, y, x(t)) for libraries that know nothing of inputs; t scalar or (B,)."""

    def __init__(self, problem):
        super().__init__()
        self.f, self.control = problem.f, problem.inputs  # a module f is registered, so its parameters show

    def forward(self, t, y):
        tb = t.expand(y.shape[0]) if t.ndim == 0 else t
        if self.control is None:
            return self.f(tb, y)
        return self.f(tb, y, self.control.evaluate(tb.contiguous()))


def _vector_field(problem):
    """The callable a torch library gets: the model itself when it needs no adapting (gnODE models and the
    classic problems ignore t's shape), else an `_InputField`."""
    return problem.f if problem.inputs is None else _InputField(problem)


def _retcode_from_message(msg: str) -> ReturnCode:
    if "max_num_steps" in msg:
        return ReturnCode.MaxIters
    if "underflow" in msg:
        return ReturnCode.DtLessThanMin
    if "non-finite" in msg:
        return ReturnCode.Unstable
    return ReturnCode.Failure


class _StepCounter(torch.nn.Module):
    """A torchdiffeq vector field that counts calls and accepted/rejected steps through torchdiffeq's
    `callback_accept_step`/`callback_reject_step` hooks (detailed runs only)."""

    def __init__(self, f, counter: CallCounter):
        super().__init__()
        self.f, self.counter = f, counter
        self.accepted = self.rejected = 0

    def forward(self, t, y):
        self.counter._count(y)
        return self.f(t, y)

    def callback_accept_step(self, t0, y0, dt):
        self.accepted += 1

    def callback_reject_step(self, t0, y0, dt):
        self.rejected += 1


# ---------------------------------------------------------------------------------------------- torchdiffeq


class TorchdiffeqSolver(AbstractSolver):
    package = engine = "torchdiffeq"
    SENSEALGS = ("backprop", "adjoint")

    def __init__(self, method: str = "dopri5", sensealg: str | None = None):
        if sensealg not in (None, *self.SENSEALGS):
            raise ValueError(f"torchdiffeq sensealg must be one of {self.SENSEALGS}, got {sensealg!r}")
        self.method, self.sensealg = method, sensealg

    def available(self):
        try:
            import torchdiffeq  # noqa: F401
        except ImportError:
            return False, "torchdiffeq is not installed (pip install torchdiffeq, or gnode[bench])"
        return True, ""

    def prepare(self, problem, reltol, abstol, *, gradient, maxiters):
        return _TorchdiffeqRun(self, problem, reltol, abstol, gradient, maxiters)


class _TorchdiffeqRun(Prepared):
    def __init__(self, s, problem, reltol, abstol, gradient, maxiters):
        self.s, self.p, self.gradient = s, problem, gradient
        self.f = _vector_field(problem)
        opts = {"max_num_steps": maxiters}
        bp = problem.breakpoints()
        if bp.size:
            opts["jump_t"] = torch.as_tensor(bp, dtype=torch.float64)
        self.kw = {"rtol": reltol, "atol": abstol, "method": s.method, "options": opts}

    def _odeint(self, f, t):
        import torchdiffeq

        if self.gradient and self.s.sensealg == "adjoint":
            return torchdiffeq.odeint_adjoint(f, self.p.u0, t, adjoint_params=self.p.params, **self.kw)
        return torchdiffeq.odeint(f, self.p.u0, t, **self.kw)

    def run(self):
        if not self.gradient:
            with torch.no_grad():
                self._odeint(self.f, self.p.saveat)
            return
        u = self._odeint(self.f, self.p.saveat).transpose(0, 1)
        torch.autograd.grad(self.p.loss(u), self.p.params, allow_unused=True)

    def detailed(self):
        t_all, i_save, i_dense = save_and_dense_times(self.p)
        counter = CallCounter(self.f)
        f = _StepCounter(self.f, counter)
        B = self.p.batch
        grad, u_dense = None, None
        try:
            if self.gradient:
                u = self._odeint(f, self.p.saveat).transpose(0, 1)
                forward_calls = counter.calls
                grads = torch.autograd.grad(self.p.loss(u), self.p.params, allow_unused=True)
                grad = flat_grad([g if g is not None else torch.zeros_like(p) for g, p in zip(grads, self.p.params)])
                u_save = u.detach().numpy()
            else:
                with torch.no_grad():
                    u = self._odeint(f, t_all).transpose(0, 1).numpy()
                u_save, u_dense = u[:, i_save], u[:, i_dense]
        except (AssertionError, RuntimeError) as e:
            code = _retcode_from_message(str(e))
            nan = np.full((B, self.p.saveat.numel(), self.p.n), np.nan)
            return Outcome(
                nan,
                None,
                np.full(B, int(code)),
                {"nf": float(counter.calls)},
                None,
                f"torchdiffeq: {str(e).splitlines()[0][:200]}",
            )
        calls = float(counter.calls if not self.gradient else forward_calls)
        stats = {
            "nf": calls,
            "nf_max": calls,
            "f_calls": int(calls),
            "naccept": float(f.accepted),
            "nreject": float(f.rejected),
        }
        if self.gradient:
            stats["nf_backward"] = float(counter.calls - forward_calls)  # the adjoint's f/vjp calls
            if self.s.sensealg == "adjoint":
                stats["naccept"] = stats["nreject"] = None  # the hooks also fire in the backward solve
        return Outcome(u_save, u_dense, np.full(B, int(ReturnCode.Success)), stats, grad)

    def peak_memory(self):
        from gnode.bench.measure import torch_peak_memory

        return torch_peak_memory(self.run, self.p.u0.device)


# ------------------------------------------------------------------------------------------------- torchode

_TORCHODE_STATUS = {
    0: ReturnCode.Success,
    1: ReturnCode.Failure,
    2: ReturnCode.DtLessThanMin,
    3: ReturnCode.MaxIters,
    4: ReturnCode.Unstable,
}


class TorchodeSolver(AbstractSolver):
    package = engine = "torchode"
    METHODS = ("Dopri5", "Tsit5", "Heun")
    SENSEALGS = ("AutoDiffAdjoint",)

    def __init__(self, method: str = "Tsit5", sensealg: str | None = None):
        if method not in self.METHODS:
            raise ValueError(f"torchode method must be one of {self.METHODS}, got {method!r}")
        if sensealg not in (None, *self.SENSEALGS):
            raise ValueError(f"torchode sensealg must be one of {self.SENSEALGS}, got {sensealg!r}")
        self.method, self.sensealg = method, sensealg

    def available(self):
        try:
            import torchode  # noqa: F401
        except ImportError:
            return False, "torchode is not installed (pip install torchode, or gnode[bench])"
        return True, ""

    def prepare(self, problem, reltol, abstol, *, gradient, maxiters):
        return _TorchodeRun(self, problem, reltol, abstol, gradient, maxiters)


class _TorchodeRun(Prepared):
    def __init__(self, s, problem, reltol, abstol, gradient, maxiters):
        self.s, self.p, self.gradient = s, problem, gradient
        self.reltol, self.abstol, self.maxiters = reltol, abstol, maxiters
        self.f = _vector_field(problem)
        self.solver = self._solver(self.f)

    def _solver(self, f):
        import torchode

        term = torchode.ODETerm(f)
        step = getattr(torchode, self.s.method)(term=term)
        ctrl = torchode.IntegralController(atol=self.abstol, rtol=self.reltol, term=term)
        # step sizes as constants of the backward pass, as gnode's BackpropAdjoint treats them: torchode's
        # default (backprop through the controller too) gave relative gradient errors of 1e1..1e16 on the
        # random gnODEs (measured), which no user would want
        return torchode.AutoDiffAdjoint(step, ctrl, max_steps=self.maxiters, backprop_through_step_size_control=False)

    def _solve(self, solver, t):
        import torchode

        t_eval = t.expand(self.p.batch, -1)
        return solver.solve(torchode.InitialValueProblem(y0=self.p.u0, t_eval=t_eval))

    def run(self):
        if not self.gradient:
            with torch.no_grad():
                self._solve(self.solver, self.p.saveat)
            return
        sol = self._solve(self.solver, self.p.saveat)
        torch.autograd.grad(self.p.loss(sol.ys), self.p.params, allow_unused=True)

    def detailed(self):
        t_all, i_save, i_dense = save_and_dense_times(self.p)
        counter = CallCounter(self.f)
        grad, u_dense = None, None
        with counter as f:
            solver = self.solver if f is self.f else self._solver(f)
            if self.gradient:
                sol = self._solve(solver, self.p.saveat)
                calls = counter.calls
                grads = torch.autograd.grad(self.p.loss(sol.ys), self.p.params, allow_unused=True)
                grad = flat_grad([g if g is not None else torch.zeros_like(p) for g, p in zip(grads, self.p.params)])
                u_save = sol.ys.detach().numpy()
            else:
                with torch.no_grad():
                    sol = self._solve(solver, t_all)
                calls = counter.calls
                u = sol.ys.numpy()
                u_save, u_dense = u[:, i_save], u[:, i_dense]
        st = {k: v.double() for k, v in sol.stats.items()}
        stats = {
            "nf": float(st["n_f_evals"].mean()),
            "nf_max": float(st["n_f_evals"].max()),
            "naccept": float(st["n_accepted"].mean()),
            "nreject": float((st["n_steps"] - st["n_accepted"]).mean()),
            "f_calls": calls or None,
        }
        codes = np.array([int(_TORCHODE_STATUS.get(int(c), ReturnCode.Failure)) for c in sol.status.tolist()])
        return Outcome(u_save, u_dense, codes, stats, grad)

    def peak_memory(self):
        from gnode.bench.measure import torch_peak_memory

        return torch_peak_memory(self.run, self.p.u0.device)
