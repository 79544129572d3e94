"""Reference solutions and gradients that the benchmark's errors are measured against.

Solutions (`reference_solution`): SciPy's `DOP853` (non-stiff problems) or `Radau` (stiff ones, with the exact
Jacobian) in float64 at rtol 1e-13, one trajectory at a time on a NumPy copy of the vector field (so the
reference shares no code with the engines under test). Each trajectory is integrated piece by piece between
consecutive output times and input breakpoints, so every reference value is a step end point (no dense-output
interpolation error) and a zero-order-hold input is never straddled. Results are cached on disk
(`gnode.bench.cache`), keyed by the problem's fingerprint, the method and the tolerances.

Extended precision (`mp_reference`): mpmath's Taylor-series `odefun` at `dps` significant digits, for small
analytic problems. Comparing it with the float64 reference shows how far down a float64 reference can be
trusted: below that level the measured "error" of a solver is the reference's own.

Gradients (`reference_gradient`): dL/dθ of L = sum(w * u(saveat)) from the native engine at the tightest
tolerance it runs well at (Vern7, or Rodas5P for stiff problems, reltol 1e-12), differentiated by backprop
through the solve (the gradient of the discrete solution, which converges to the exact one with the
tolerance), checked on a sub-batch against central finite differences of L computed with the SciPy reference
(along random directions, at several steps: the random gnODEs have ReLU kinks, across which the differences
converge only to first order in the step).
Backprop rather than a continuous adjoint: every ReLU kink the trajectory crosses is a jump in the adjoint's
vector field, which made InterpolatingAdjoint 4-10x slower here (measured on gnode_critical: 200 s at reltol
1e-8, against 17 s for backprop). Trajectories are independent (per-trajectory step control), so the batch is
differentiated in chunks, whose gradients add up, to bound the memory of the backprop graph.

Its stated accuracy is `spread`, ‖g(rtol) - g(100 rtol)‖ / ‖g(rtol)‖ (2-norm, relative): the reference is taken
to be that close to the exact gradient. A trajectory's gradient depends a little on which trajectories share its
chunk: BLAS sums the batched products in an order that depends on the batch size, the embedded error estimate
cancels heavily and passes that round-off on to the step sizes, and a changed step sequence moves the discrete
gradient by its discretisation error, which across ReLU kinks shrinks only slowly with the tolerance. Measured
with `_tight_gradient` (n 8, hidden 16, batch 16, t1 5, reltol 1e-12) on gnode_critical, two runs: chunks of 16,
4 and 1 differ by 0.6-1.1e-5 relative, their distance to a per-trajectory reltol 1e-13 gradient is 0.5-1.0e-5,
and the spread is 4.8-6.5e-5; on gnode_chaotic: 0.6-0.7e-5, 0.4-0.6e-5 and 5.9e-5. So the chunking stays inside
the stated accuracy, and tightening to 1e-13 would not remove it (chunks still differ by 2-4e-6 there).
tests/test_bench_reference.py checks the chunking against `spread`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from gnode.bench.cache import Digest, ReferenceCache
from gnode.bench.errors import dense_times
from gnode.bench.gnode_problems import BenchProblem

REFERENCE_RTOL = 1e-13
GRADIENT_RTOL = 1e-12  # the reference gradient's tolerance; its spread is measured against 100x looser


@dataclass
class Reference:
    """A reference trajectory set: values at the saved times (batch, T, n) and at the 100 dense times."""

    t_save: np.ndarray
    u_save: np.ndarray
    t_dense: np.ndarray
    u_dense: np.ndarray
    method: str
    rtol: float
    atol: float
    seconds: float = float("nan")
    nf: float = float("nan")
    cached: bool = False

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {
            "t_save": self.t_save,
            "u_save": self.u_save,
            "t_dense": self.t_dense,
            "u_dense": self.u_dense,
            "method": np.array(self.method),
            "rtol": np.array(self.rtol),
            "atol": np.array(self.atol),
            "seconds": np.array(self.seconds),
            "nf": np.array(self.nf),
        }

    @classmethod
    def from_arrays(cls, a: dict) -> Reference:
        return cls(
            a["t_save"],
            a["u_save"],
            a["t_dense"],
            a["u_dense"],
            str(a["method"]),
            float(a["rtol"]),
            float(a["atol"]),
            float(a["seconds"]),
            float(a["nf"]),
            cached=True,
        )

    def summary(self) -> dict:
        return {
            "method": self.method,
            "rtol": self.rtol,
            "atol": self.atol,
            "seconds": self.seconds,
            "nf_mean": self.nf,
            "cached": self.cached,
        }


def default_method(problem: BenchProblem) -> str:
    return "Radau" if problem.stiff else "DOP853"


def _output_times(problem: BenchProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t_save = problem.saveat.detach().double().numpy()
    t_dense = dense_times(*problem.tspan)
    return t_save, t_dense, np.union1d(t_save, t_dense)


def reference_solution(
    problem: BenchProblem,
    *,
    method: str | None = None,
    rtol: float = REFERENCE_RTOL,
    atol: float | None = None,
    cache: ReferenceCache | None = None,
) -> Reference:
    """The float64 SciPy reference of `problem` at its saved and dense times (module docstring), cached."""
    if problem.numpy_f is None:
        raise ValueError(f"problem {problem.name} has no NumPy vector field, so it has no SciPy reference")
    method = method or default_method(problem)
    atol = rtol * problem.atol_ratio if atol is None else atol
    key = (
        Digest("reference")
        .add("problem", problem.fingerprint())
        .add("method", method)
        .add("rtol", float(rtol))
        .add("atol", float(atol))
        .hexdigest()
    )
    if cache is not None and (hit := cache.get(key)) is not None:
        return Reference.from_arrays(hit)
    t_save, t_dense, t_all = _output_times(problem)
    start = time.perf_counter()
    values, nfs = [], []
    for b in range(problem.batch):
        u, nf = _scipy_trajectory(problem, b, t_all, method, rtol, atol)
        values.append(u)
        nfs.append(nf)
    u_all = np.stack(values)
    ref = Reference(
        t_save,
        u_all[:, np.searchsorted(t_all, t_save)],
        t_dense,
        u_all[:, np.searchsorted(t_all, t_dense)],
        method,
        rtol,
        atol,
        time.perf_counter() - start,
        float(np.mean(nfs)),
    )
    if cache is not None:
        cache.put(key, ref.as_arrays())
    return ref


def _scipy_trajectory(problem: BenchProblem, b: int, t_out: np.ndarray, method: str, rtol: float, atol: float):
    """u of trajectory b at times t_out (sorted, within tspan), integrating between consecutive stops."""
    from scipy.integrate import solve_ivp

    t0, t1 = problem.tspan
    stops = np.union1d(np.union1d(t_out, problem.breakpoints()), [t0, t1])
    stops = stops[(stops >= t0) & (stops <= t1)]
    y = problem.u0[b].detach().double().numpy().copy()
    values = {t0: y.copy()}
    first_step, nf = None, 0
    for a, e in itertools.pairwise(stops):
        x = problem.input_at(0.5 * (a + e), b)  # constant-segment input (zoh) or the interpolated one below
        if problem.inputs is not None and problem.inputs.interpolation != "zoh":
            fun = lambda t, yy: problem.numpy_f(t, yy, b, problem.input_at(t, b))
            jac = (lambda t, yy: problem.numpy_jac(t, yy, b, problem.input_at(t, b))) if problem.numpy_jac else None
        else:
            fun = lambda t, yy, x=x: problem.numpy_f(t, yy, b, x)
            jac = (lambda t, yy, x=x: problem.numpy_jac(t, yy, b, x)) if problem.numpy_jac else None
        kw = {"rtol": rtol, "atol": atol}
        if method in ("Radau", "BDF", "LSODA") and jac is not None:
            kw["jac"] = jac
        if first_step is not None:
            kw["first_step"] = min(first_step, e - a)
        sol = solve_ivp(fun, (a, e), y, method=method, **kw)
        if sol.status != 0:
            raise RuntimeError(
                f"reference for {problem.name}: SciPy {method} failed on trajectory {b} in "
                f"[{a:g}, {e:g}]: {sol.message}"
            )
        nf += sol.nfev
        y = sol.y[:, -1]
        values[e] = y.copy()
        if sol.t.size >= 2:
            first_step = float(sol.t[-1] - sol.t[-2])  # continue with the last step size, not a cold start
    return np.stack([values[t] for t in t_out]), nf


# ------------------------------------------------------------------------------------- extended precision


def mp_reference(problem: BenchProblem, *, dps: int = 30, cache: ReferenceCache | None = None) -> Reference:
    """The extended-precision (mpmath Taylor series, `dps` digits) reference of a small analytic problem."""
    import mpmath

    if problem.mp_f is None:
        raise ValueError(f"problem {problem.name} has no mpmath vector field (only small analytic gnODEs do)")
    if problem.inputs is not None:
        raise ValueError(f"problem {problem.name} has inputs; the mpmath reference handles autonomous fields only")
    key = Digest("mp_reference").add("problem", problem.fingerprint()).add("dps", dps).hexdigest()
    if cache is not None and (hit := cache.get(key)) is not None:
        return Reference.from_arrays(hit)
    t_save, t_dense, t_all = _output_times(problem)
    t0 = problem.tspan[0]
    start = time.perf_counter()
    out = []
    with mpmath.workdps(dps):
        for b in range(problem.batch):
            y0 = [mpmath.mpf(float(v)) for v in problem.u0[b].tolist()]
            sol = mpmath.odefun(lambda t, y, b=b: problem.mp_f(t, y, b), mpmath.mpf(t0), y0)
            # odefun steps forward from t0; evaluating in increasing t reuses its series
            out.append(np.array([[float(v) for v in (sol(mpmath.mpf(float(t))) if t != t0 else y0)] for t in t_all]))
    u_all = np.stack(out)
    ref = Reference(
        t_save,
        u_all[:, np.searchsorted(t_all, t_save)],
        t_dense,
        u_all[:, np.searchsorted(t_all, t_dense)],
        f"mpmath odefun ({dps} digits)",
        10.0**-dps,
        0.0,
        time.perf_counter() - start,
    )
    if cache is not None:
        cache.put(key, ref.as_arrays())
    return ref


# ------------------------------------------------------------------------------------------------- gradients


@dataclass
class GradientReference:
    """dL/dθ (flat, in `problem.params` order) and how it was checked."""

    g: np.ndarray
    method: str
    spread: float  # ‖g(rtol) - g(100 rtol)‖ / ‖g(rtol)‖: the stated accuracy (module docstring)
    fd_checks: list = field(default_factory=list)  # [{"direction", "adjoint", "fd", "rel_diff"}] on a sub-batch
    seconds: float = float("nan")
    cached: bool = False

    def summary(self) -> dict:
        best = {}
        for c in self.fd_checks:  # per direction, the best-agreeing step
            best[c["direction"]] = min(best.get(c["direction"], float("inf")), c["rel_diff"])
        return {
            "method": self.method,
            "spread_vs_rtol_1e-10": self.spread,
            "fd_checks": self.fd_checks,
            "seconds": self.seconds,
            "cached": self.cached,
            "fd_rel_diff": max(best.values()) if best else None,
        }


def _tight_gradient(problem: BenchProblem, rtol: float, chunk: int = 16) -> np.ndarray:
    import gnode

    alg = gnode.Rodas5P() if problem.stiff else gnode.Vern7()
    total = 0.0
    for start in range(0, problem.batch, chunk):
        part = subproblem(problem, start + chunk, start)
        sol = gnode.solve(
            part.ode_problem(),
            alg,
            saveat=part.saveat,
            reltol=rtol,
            abstol=rtol * part.atol_ratio,
            sensealg=gnode.BackpropAdjoint(),
            maxiters=10_000_000,
        )
        g = torch.autograd.grad(part.loss(sol.u), part.params)
        total = total + torch.cat([x.reshape(-1) for x in g]).detach().double().numpy()
    return total


def reference_gradient(
    problem: BenchProblem,
    *,
    cache: ReferenceCache | None = None,
    fd_batch: int = 2,
    fd_directions: int = 2,
    fd_steps=(1e-3, 1e-4, 1e-5),
    check: bool = True,
    rtol: float = GRADIENT_RTOL,
    chunk: int = 16,
) -> GradientReference:
    """The reference gradient of `problem`'s loss at reltol `rtol`, differentiated `chunk` trajectories at a
    time, with its stated accuracy `spread` (module docstring); cached with its checks. The chunking is not part
    of the cache key: it changes the result only within `spread`."""
    if not problem.differentiable:
        raise ValueError(f"problem {problem.name} has no parameters to differentiate")
    key = (
        Digest("gradient")
        .add("problem", problem.fingerprint())
        .add("fd", (fd_batch, fd_directions, tuple(map(float, fd_steps)), check))
    )
    key = (key.add("rtol", float(rtol)) if rtol != GRADIENT_RTOL else key).hexdigest()
    if cache is not None and (hit := cache.get(key)) is not None:
        import json

        return GradientReference(
            hit["g"],
            str(hit["method"]),
            float(hit["spread"]),
            json.loads(str(hit["fd_checks"])),
            float(hit["seconds"]),
            cached=True,
        )
    start = time.perf_counter()
    method = f"torch {'Rodas5P' if problem.stiff else 'Vern7'} BackpropAdjoint reltol {rtol:g}"
    with torch.enable_grad():
        g = _tight_gradient(problem, rtol, chunk)
        g_loose = _tight_gradient(problem, 100 * rtol, chunk)
    spread = float(np.linalg.norm(g - g_loose) / max(np.linalg.norm(g), 1e-300))
    checks = _fd_checks(problem, fd_batch, fd_directions, fd_steps, rtol) if check else []
    ref = GradientReference(g, method, spread, checks, time.perf_counter() - start)
    if cache is not None:
        import json

        cache.put(
            key,
            {
                "g": g,
                "method": np.array(method),
                "spread": np.array(spread),
                "fd_checks": np.array(json.dumps(checks)),
                "seconds": np.array(ref.seconds),
            },
        )
    return ref


def _fd_checks(problem: BenchProblem, batch: int, directions: int, steps, rtol: float) -> list[dict]:
    """Directional derivatives g·v of the adjoint reference vs central differences (L(θ+hv) - L(θ-hv)) / 2h
    of L computed with the SciPy reference, on the first `batch` trajectories, at several relative steps h.
    Error of the difference: O(h^2) for a smooth field, O(h) across ReLU kinks (the solution is C^1 but not
    C^2 in θ there), plus O(eps_ref / h); the smallest difference over the steps is the one to read."""
    from gnode.bench.gnode_problems import with_parameters

    sub = subproblem(problem, batch)
    with torch.enable_grad():
        g = _tight_gradient(sub, rtol)
    theta = torch.cat([p.detach().reshape(-1) for p in sub.params])
    gen = torch.Generator().manual_seed(7)
    w = sub.loss_weights.numpy()
    out = []

    def loss_at(delta):
        return float((w * reference_solution(with_parameters(sub, theta + delta)).u_save).sum())

    for k in range(directions):
        v = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
        v = v / v.norm() * theta.norm()  # a relative step: θ moves by h ‖θ‖
        ad = float(g @ v.numpy())
        for h in steps:
            fd = (loss_at(h * v) - loss_at(-h * v)) / (2 * h)
            out.append(
                {"direction": k, "step": h, "adjoint": ad, "fd": fd, "rel_diff": abs(ad - fd) / max(abs(fd), 1e-300)}
            )
    return out


def subproblem(problem: BenchProblem, stop: int, start: int = 0) -> BenchProblem:
    """The same problem restricted to trajectories start:stop (inputs and loss weights sliced too)."""
    rows = slice(start, min(stop, problem.batch))
    inputs = problem.inputs
    if inputs is not None and inputs.batch > 1:
        inputs = inputs.with_values(inputs.values[rows])
    return replace(
        problem,
        u0=problem.u0[rows],
        inputs=inputs,
        loss_weights=problem.loss_weights[rows],
        name=f"{problem.name}[{rows.start}:{rows.stop}]",
    )
