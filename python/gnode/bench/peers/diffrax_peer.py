"""The diffrax peer (Kidger, JAX): the same problem rebuilt in JAX (`gnode.bench.fields`), same weights, same
initial states and tolerances, float64, each trajectory with its own step size (`jax.vmap` over the batch).

Everything is compiled with `jax.jit` in `prepare`, before timing; the compile time is reported separately
(`compile_seconds`) and is paid once per problem, solver and mode (tolerances are traced arguments, so one
compilation serves them all). JAX's CPU backend is kept to one thread (`XLA_FLAGS` intra-op parallelism 1,
set only if JAX has not been imported yet) to match torch's single thread; float64 is switched on with
`jax_enable_x64` (JAX's only way to get float64; it is process-wide).

Methods: Tsit5, Dopri5, Dopri8, Bosh3 (explicit); Kvaerno3/4/5 (ESDIRK, for stiff problems), all with
diffrax's default `PIDController` (an I controller unless coefficients are given) and, for zero-order-hold
inputs, the input sample times as `jump_ts`. Gradients: "RecursiveCheckpointAdjoint" (diffrax's default,
backprop with checkpointing) and "BacksolveAdjoint".

nf is counted exactly by a `jax.debug.callback` in the vector field, in an untimed per-trajectory solve (the
timed, vmapped solve runs without it).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from gnode.bench.solvers import AbstractSolver, Outcome, Prepared, save_and_dense_times
from gnode.retcode import ReturnCode

_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def jax_modules():
    """Import jax and diffrax for the benchmark (single-threaded CPU when JAX is not yet loaded; float64)."""
    threads_pinned = "jax" not in sys.modules or _SINGLE_THREAD in os.environ.get("XLA_FLAGS", "")
    if "jax" not in sys.modules and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _SINGLE_THREAD).strip()
    import diffrax
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax, diffrax, threads_pinned


class DiffraxSolver(AbstractSolver):
    package = engine = "diffrax"
    EXPLICIT = ("Tsit5", "Dopri5", "Dopri8", "Bosh3")
    IMPLICIT = ("Kvaerno3", "Kvaerno4", "Kvaerno5")
    SENSEALGS = ("RecursiveCheckpointAdjoint", "BacksolveAdjoint")

    def __init__(self, method: str = "Tsit5", sensealg: str | None = None):
        if method not in self.EXPLICIT + self.IMPLICIT:
            raise ValueError(f"diffrax method must be one of {self.EXPLICIT + self.IMPLICIT}, got {method!r}")
        if sensealg not in (None, *self.SENSEALGS):
            raise ValueError(f"diffrax sensealg must be one of {self.SENSEALGS}, got {sensealg!r}")
        self.method, self.sensealg = method, sensealg
        self._compiled = {}  # (problem id, mode) → compiled functions: one compilation for all tolerances

    def available(self):
        try:
            import diffrax  # noqa: F401
            import jax  # noqa: F401
        except ImportError:
            return False, "diffrax is not installed (pip install jax diffrax equinox)"
        return True, ""

    def supports(self, problem, gradient):
        ok, why = super().supports(problem, gradient)
        if not ok:
            return ok, why
        if problem.jax_kind is None:
            return False, f"{problem.name} has no JAX version of its vector field"
        if problem.inputs is not None and problem.inputs.interpolation not in ("zoh", "linear"):
            return False, f"{problem.inputs.interpolation} inputs are not rebuilt in JAX"
        return True, ""

    def prepare(self, problem, reltol, abstol, *, gradient, maxiters):
        key = (id(problem), gradient, maxiters)
        if key not in self._compiled:
            self._compiled[key] = _Compiled(self, problem, gradient, maxiters)
            fresh = True
        else:
            fresh = False
        return _DiffraxRun(self._compiled[key], reltol, abstol, fresh)


class _Compiled:
    """The JAX functions of one (problem, solver, mode), compiled for any tolerance."""

    def __init__(self, s: DiffraxSolver, problem, gradient: bool, maxiters: int):
        jax, dx, self.threads_pinned = jax_modules()
        import jax.numpy as jnp

        self.s, self.p, self.gradient = s, problem, gradient
        self.jax, self.jnp = jax, jnp
        kind, what = problem.jax_kind
        if kind == "gnode":
            from gnode.bench.fields import jax_gnode

            fn, params = jax_gnode(what)
            self.param_names = list(problem.param_names)
            self.params = {k: params[k] for k in self.param_names}
            fixed = {k: v for k, v in params.items() if k not in self.params}
        else:
            from gnode.bench.fields import CLASSIC_JAX

            f = CLASSIC_JAX[what]
            fn = lambda h, p, x=None: f(h)  # autonomous: no parameters or inputs
            self.param_names, self.params, fixed = [], {}, {}

        inputs = problem.inputs
        self.xs = None
        if inputs is not None:
            vals = inputs.values.detach().double().numpy()
            if vals.shape[0] == 1:
                vals = np.broadcast_to(vals, (problem.batch,) + vals.shape[1:])
            self.xs = jnp.asarray(np.ascontiguousarray(vals))
            times = jnp.asarray(inputs.times.detach().double().numpy())
            zoh = inputs.interpolation == "zoh"

            def x_at(t, xv):
                k = jnp.clip(jnp.searchsorted(times, t, side="right") - 1, 0, times.shape[0] - 1)
                if zoh:
                    return xv[k]
                k = jnp.minimum(k, times.shape[0] - 2)
                s = jnp.clip((t - times[k]) / (times[k + 1] - times[k]), 0.0, 1.0)
                return xv[k] + s * (xv[k + 1] - xv[k])
        else:
            x_at = None

        def vector_field(t, y, args):
            p, xv = args
            x = None if x_at is None else x_at(t, xv)
            return fn(y, {**fixed, **p}, x)

        def counting_field(t, y, args):
            jax.debug.callback(self._tick)
            return vector_field(t, y, args)

        t0, t1 = problem.tspan
        solver = getattr(dx, s.method)()
        bp = problem.breakpoints()
        adjoint = getattr(dx, s.sensealg)() if gradient else dx.RecursiveCheckpointAdjoint()
        R = dx.RESULTS

        def solve_one(field, y0, xv, p, rtol, atol, ts):
            ctrl = dx.PIDController(rtol=rtol, atol=atol)
            if bp.size and inputs.interpolation == "zoh":
                ctrl = dx.ClipStepSizeController(ctrl, jump_ts=jnp.asarray(bp))
            sol = dx.diffeqsolve(
                dx.ODETerm(field),
                solver,
                t0,
                t1,
                None,
                y0,
                args=(p, xv),
                saveat=dx.SaveAt(ts=ts),
                stepsize_controller=ctrl,
                max_steps=maxiters,
                throw=False,
                adjoint=adjoint,
            )
            res = sol.result
            code = jnp.select(
                [res == R.successful, res == R.max_steps_reached, res == R.dt_min_reached, res == R.nonfinite],
                [
                    int(ReturnCode.Success),
                    int(ReturnCode.MaxIters),
                    int(ReturnCode.DtLessThanMin),
                    int(ReturnCode.Unstable),
                ],
                int(ReturnCode.Failure),
            )
            return sol.ys, code, sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"]

        x_axis = 0 if self.xs is not None else None
        self.y0 = jnp.asarray(problem.u0.detach().double().numpy())
        self.ts = jnp.asarray(problem.saveat.detach().double().numpy())
        w = jnp.asarray(problem.loss_weights.detach().double().numpy())

        def batched(p, rtol, atol):
            return jax.vmap(
                lambda y0, xv: solve_one(vector_field, y0, xv, p, rtol, atol, self.ts), in_axes=(0, x_axis)
            )(self.y0, self.xs)

        rtol0, atol0 = jnp.asarray(1e-6), jnp.asarray(1e-8)
        start = time.perf_counter()
        if gradient:

            def loss(p, rtol, atol):
                ys, code, na, nr = batched(p, rtol, atol)
                return jnp.sum(w * ys), (ys, code, na, nr)

            self.fn = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(self.params, rtol0, atol0).compile()
        else:
            self.fn = jax.jit(batched).lower(self.params, rtol0, atol0).compile()
        self.compile_seconds = time.perf_counter() - start

        t_all, self.i_save, self.i_dense = save_and_dense_times(problem)
        t_all = jnp.asarray(t_all.numpy())
        self._count = 0
        self._counting = None
        if not gradient:
            self._counting = jax.jit(
                lambda y0, xv, p, rtol, atol: solve_one(counting_field, y0, xv, p, rtol, atol, t_all)
            )

    def _tick(self):
        self._count += 1

    def memory(self) -> tuple[int | None, str]:
        try:
            m = self.fn.memory_analysis()
            return int(m.temp_size_in_bytes + m.output_size_in_bytes), "XLA memory_analysis (temp + output)"
        except Exception as e:  # noqa: BLE001 - not every backend reports it; a missing number is not an error
            return None, f"not available ({type(e).__name__})"


class _DiffraxRun(Prepared):
    def __init__(self, c: _Compiled, reltol, abstol, fresh: bool):
        self.c = c
        self.rtol, self.atol = c.jnp.asarray(reltol), c.jnp.asarray(abstol)
        self.compile_seconds = c.compile_seconds if fresh else 0.0

    def run(self):
        out = self.c.fn(self.c.params, self.rtol, self.atol)
        self.c.jax.block_until_ready(out)

    def detailed(self):
        c = self.c
        out = c.fn(c.params, self.rtol, self.atol)
        c.jax.block_until_ready(out)
        grad = None
        if c.gradient:
            (_, (ys, code, na, nr)), g = out
            grad = np.concatenate([np.asarray(g[k]).reshape(-1) for k in c.param_names])
        else:
            ys, code, na, nr = out
        u_save = np.asarray(ys)
        stats = {"naccept": float(np.mean(na)), "nreject": float(np.mean(nr))}
        u_dense = None
        if c._counting is not None:
            nfs, dense = [], []
            for b in range(c.p.batch):
                c._count = 0
                xv = None if c.xs is None else c.xs[b]
                yb = c._counting(c.y0[b], xv, c.params, self.rtol, self.atol)
                c.jax.block_until_ready(yb)
                c.jax.effects_barrier()  # every callback has run
                nfs.append(c._count)
                dense.append(np.asarray(yb[0])[c.i_dense])
            u_dense = np.stack(dense)
            stats.update(nf=float(np.mean(nfs)), nf_max=float(np.max(nfs)))
        return Outcome(u_save, u_dense, np.asarray(code).astype(int), stats, grad)

    def peak_memory(self):
        return self.c.memory()
