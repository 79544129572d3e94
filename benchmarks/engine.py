"""The native engine, eager and compiled, against the peers and SciPy: the targets of issue 14, measured in one run.

    python benchmarks/engine.py                    # every part, full tolerance sweeps
    python benchmarks/engine.py --quick            # 3 tolerances, 2 repeats
    python benchmarks/engine.py --parts stiff      # batch, stiff, ensemble (comma-separated)

Parts:
  batch     the design's random gnODE batch (batch 64, n 32, hidden 64, float64, t in [0, 20]; benchmarks/
            gnode_batch.py) at gain 1.5, and the critical initialisation (`gnode_critical`), forward and with
            gradients: Tsit5 eager and compiled (and compiled with the batch-wide error norm) against torchdiffeq
            dopri5, torchode Tsit5 and diffrax Tsit5 (JAX on the CPU, jit-compiled, vmapped).
  stiff     single small stiff systems (Robertson, Van der Pol mu = 1e3, HIRES, Oregonator): Rodas5P and
            RadauIIA5, eager and compiled, against SciPy's Radau with the exact Jacobian, in one lean loop.
  ensemble  256 Robertson systems with different rate constants as one batch (compiled Rodas5P) against SciPy Radau
            solving them one by one, at the same tolerances, with both errors against tight references.

Errors: max abs ("linf") and DiffEqDevTools' l2 against SciPy float64 references (`gnode.bench`). Times: minimum
over repeats after a warm-up, one torch thread; compiled solves report the compile ("time to first solution") as
`compile_seconds` apart from the time per solve, as diffrax's jit does. Ratios at matched error read each
work-precision curve at common errors, never extrapolated (`gnode.bench.compare`). `overhead` = time / (batched
f calls × one bare f call) - 1.

Writes benchmarks/results/engine/<part>/ (results.json, results.csv, comparisons, figures) and
benchmarks/results/engine/<part>.txt (what is printed here).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import gnode
from gnode.bench import BenchConfig, ProblemSpec, SolverSpec, Trial, compare_all, format_comparisons, run_set

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gnode_batch import random_gnode

OUT = Path(__file__).resolve().parent / "results" / "engine"
BATCH_NORM = gnode.PIController(norm="batch")


def native(alg, sensealg=None, *, compile=False):
    return SolverSpec("gnode", alg, sensealg, compile=compile)


def batch_problems(batch: int) -> dict:
    return {
        "gain15": ProblemSpec.of("gnode_batch", factory=random_gnode, batch=batch),
        "critical": ProblemSpec.of("gnode_critical", batch=batch),
    }


def batch_trials(tols, problems, modes, batch: int = 64):
    tsit = gnode.Tsit5()
    forward = [
        native(tsit),
        native(tsit, compile=True),
        SolverSpec("gnode", tsit, compile=True, controller=BATCH_NORM),
        SolverSpec("torchdiffeq", "dopri5"),
        SolverSpec("torchode", "Tsit5"),
        SolverSpec("diffrax", "Tsit5"),
    ]
    gradient = [
        native(tsit, gnode.BackpropAdjoint()),
        native(tsit, gnode.BackpropAdjoint(), compile=True),
        native(tsit, gnode.InterpolatingAdjoint()),
        SolverSpec("torchdiffeq", "dopri5", "backprop"),
        SolverSpec("torchdiffeq", "dopri5", "adjoint"),
        SolverSpec("torchode", "Tsit5", "AutoDiffAdjoint"),
        SolverSpec("diffrax", "Tsit5", "RecursiveCheckpointAdjoint"),
    ]
    specs = [batch_problems(batch)[p] for p in problems]
    out = [Trial(p, s, tols) for p in specs for s in forward] if "forward" in modes else []
    if "gradient" in modes:
        out += [Trial(p, s, tols, True) for p in specs for s in gradient]
    return out


def _fmt(v, spec) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def table(rows) -> str:
    lines = [
        (
            f"{'problem':16s} {'solver':46s} {'mode':8s} {'reltol':>7s} {'linf':>9s} {'l2':>9s} {'grad err':>9s} "
            f"{'time s':>8s} {'compile s':>9s} {'nf max':>7s} {'f calls':>7s} {'overhead':>8s}"
        )
    ]
    for r in rows:
        status = "" if r["status"] == "ok" else f"  {r.get('retcode') or r['status']}: {r.get('message', '')[:60]}"
        cells = [
            _fmt(r.get(k), spec)
            for k, spec in (
                ("linf", "9.2e"),
                ("l2", "9.2e"),
                ("grad_error", "9.2e"),
                ("time", "8.4f"),
                ("compile_seconds", "9.1f"),
                ("nf_max", "7.0f"),
                ("f_calls", "7.0f"),
                ("overhead", "8.2f"),
            )
        ]
        widths = (9, 9, 9, 8, 9, 7, 7, 8)
        lines.append(
            f"{r['problem'][:16]:16s} {r['solver'][:46]:46s} {r['mode']:8s} {r['reltol']:7.0e} "
            + " ".join(f"{c:>{w}s}" for c, w in zip(cells, widths))
            + status
        )
    return "\n".join(lines)


def run_part(name, trials, config, out: Path) -> str:
    results = run_set(trials, config)
    results.write(out / name)
    text = [table(results.rows)]
    for metric in ("linf", "l2"):
        text += ["", f"-- at matched {metric} error --", format_comparisons(compare_all(results.rows, metric))]
    return "\n".join(text)


def stiff(tols, repeats: int) -> str:
    """Single small stiff systems: each native method eager (Rodas5P also compiled) and SciPy's Radau with the exact
    Jacobian, at each tolerance; errors (max relative, at 11 saved times) against SciPy Radau at rtol 1e-12. The
    ratios read each curve at SciPy's errors (log-log interpolation, never extrapolated)."""
    from gnode.bench import problems

    algs = [gnode.Rodas5P()] + ([gnode.RadauIIA5()] if hasattr(gnode, "RadauIIA5") else [])
    head = (
        f"{'problem':11s} {'solver':30s} {'reltol':>7s} {'max rel':>9s} {'time s':>9s} {'first s':>9s} "
        f"{'nf':>7s} {'steps':>6s}"
    )
    lines = [head]
    for sp_ in problems.CLASSIC:
        t1 = sp_.tspan[1]
        times = (
            np.concatenate([[0.0], np.logspace(-5, np.log10(t1), 10)])
            if sp_.name == "robertson"
            else np.linspace(sp_.tspan[0], t1, 11)
        )
        ref = sp_.reference(times)[0]
        curves: dict = {}
        for rtol in tols:
            atol = rtol * sp_.atol_scale
            for name, run in _stiff_runs(sp_, algs, times, rtol, atol).items():
                start = time.perf_counter()
                out = run()  # warm-up (and compile)
                first = time.perf_counter() - start
                best = min(_timed(run) for _ in range(repeats))
                if name == "SciPy Radau":
                    u, nf, steps = out.y.T, out.nfev, len(out.t)
                else:
                    u, nf, steps = out.u[0].numpy(), int(out.stats.nf[0]), int(out.stats.naccept[0])
                err = float(np.max(np.abs(u - ref) / (np.abs(ref) + atol)))
                curves.setdefault(name, []).append((err, best, nf))
                lines.append(
                    f"{sp_.name:11s} {name:30s} {rtol:7.0e} {err:9.2e} {best:9.4f} {first:9.2f} {nf:7d} {steps:6d}"
                )
        radau = curves.pop("SciPy Radau")
        for name, pts in curves.items():
            t_ratio, nf_ratio = _matched(pts, radau)
            lines.append(
                f"{sp_.name:11s} {name:30s} at Radau's errors: time x{t_ratio:.2f}, nf x{nf_ratio:.2f} "
                "(ours / SciPy Radau)"
            )
    return "\n".join(lines)


def _stiff_runs(sp_, algs, times, rtol, atol) -> dict:
    """name → a function that solves the problem once."""
    from scipy.integrate import solve_ivp

    prob, saveat = sp_.problem(), torch.as_tensor(times)
    runs = {}
    for alg in algs:
        for compile in (False, True) if alg.name == "Rodas5P" else (False,):  # RadauIIA5: Newton, not traced
            runs[f"{alg!r}{' compiled' if compile else ''}"] = partial(
                _solve_no_grad, prob, alg, saveat=saveat, reltol=rtol, abstol=atol, compile=compile
            )
    runs["SciPy Radau"] = partial(
        solve_ivp,
        partial(_numpy_rhs, sp_.f_np),
        sp_.tspan,
        sp_.u0,
        "Radau",
        t_eval=times,
        rtol=rtol,
        atol=atol,
        jac=partial(_numpy_rhs, sp_.jac_np),
    )
    return runs


def _solve_no_grad(prob, alg, **kw):
    with torch.no_grad():
        return gnode.solve(prob, alg, **kw)


def _numpy_rhs(fn, t, y):
    return fn(t, y, 0)


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _matched(points, reference) -> tuple[float, float]:
    """Geometric-mean ratios (time, nf) of `points` to `reference` at the reference's errors inside both ranges."""

    def at(pts, e, i):
        pts = sorted(pts)
        le = [math.log(p[0]) for p in pts]
        if not (le[0] <= math.log(e) <= le[-1]):
            return float("nan")
        return math.exp(np.interp(math.log(e), le, [math.log(p[i]) for p in pts]))

    ratios = [(at(points, e, 1) / t, at(points, e, 2) / nf) for e, t, nf in reference]
    ratios = [r for r in ratios if all(math.isfinite(x) for x in r)]
    if not ratios:
        return float("nan"), float("nan")
    return tuple(math.exp(np.mean([math.log(r[i]) for r in ratios])) for i in range(2))


def ensemble(tols, repeats: int) -> str:
    """256 Robertson systems, k1 (the slow rate) log-spread over a decade, batched (compiled Rodas5P) vs SciPy's
    Radau one by one. Errors are max relative errors at t = 1e4 against SciPy Radau at rtol 1e-12."""
    from scipy.integrate import solve_ivp

    k1 = torch.logspace(-2.0, -1.0, 256, dtype=torch.float64)

    def rober(t, u):
        y1, y2, y3, k = u.unbind(1)
        r1, r2, r3 = k * y1, 1e4 * y2 * y3, 3e7 * y2 * y2
        return torch.stack([-r1 + r2, r1 - r2 - r3, r3, torch.zeros_like(k)], dim=1)

    def rober_np(t, y, k):
        r1, r2, r3 = k * y[0], 1e4 * y[1] * y[2], 3e7 * y[1] ** 2
        return [-r1 + r2, r1 - r2 - r3, r3]

    def jac_np(t, y, k):
        return [[-k, 1e4 * y[2], 1e4 * y[1]], [k, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]], [0.0, 6e7 * y[1], 0.0]]

    t1 = 1e4
    u0 = torch.stack([torch.ones_like(k1), torch.zeros_like(k1), torch.zeros_like(k1), k1], dim=1)
    prob = gnode.ODEProblem(rober, u0, (0.0, t1))

    def scipy_all(rtol, atol):
        return np.stack(
            [
                solve_ivp(
                    rober_np, (0, t1), [1.0, 0, 0], method="Radau", rtol=rtol, atol=atol, jac=jac_np, args=(float(k),)
                ).y[:, -1]
                for k in k1
            ]
        )

    ref = scipy_all(1e-12, 1e-16)
    lines = [
        (
            f"{'reltol':>7s} {'gnode batch s':>13s} {'compile s':>9s} {'scipy 1-by-1 s':>14s} {'speed-up':>8s} "
            f"{'gnode err':>9s} {'scipy err':>9s}"
        )
    ]
    for rtol in tols:
        atol = rtol * 1e-4
        with torch.no_grad():
            start = time.perf_counter()
            gnode.solve(prob, gnode.Rodas5P(), reltol=rtol, abstol=atol, compile=True)
            compile_s = time.perf_counter() - start
            g_times, s_times = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                sol = gnode.solve(prob, gnode.Rodas5P(), reltol=rtol, abstol=atol, compile=True)
                g_times.append(time.perf_counter() - start)
        for _ in range(repeats):
            start = time.perf_counter()
            ys = scipy_all(rtol, atol)
            s_times.append(time.perf_counter() - start)
        g_err = float(np.max(np.abs(sol.u[:, -1, :3].numpy() - ref) / (np.abs(ref) + atol)))
        s_err = float(np.max(np.abs(ys - ref) / (np.abs(ref) + atol)))
        lines.append(
            f"{rtol:7.0e} {min(g_times):13.3f} {compile_s:9.1f} {min(s_times):14.3f} "
            f"{min(s_times) / min(g_times):8.2f} {g_err:9.2e} {s_err:9.2e}"
        )
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{platform.platform()}; {platform.processor() or platform.machine()}; python {platform.python_version()}; "
        f"torch {torch.__version__}; torch threads 1"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 tolerances, 2 repeats")
    p.add_argument("--parts", default="batch,stiff,ensemble", help="comma-separated: batch, stiff, ensemble")
    p.add_argument("--problems", default="gain15,critical", help="batch part: gain15, critical (comma-separated)")
    p.add_argument("--modes", default="forward,gradient", help="batch part: forward, gradient (comma-separated)")
    p.add_argument("--batch", type=int, default=64, help="batch part: trajectories per batch (default 64)")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = set(parts) - {"batch", "stiff", "ensemble"}
    if unknown:
        p.error(f"unknown part(s) {sorted(unknown)}; choose from batch, stiff, ensemble")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    repeats = 2 if args.quick else 3
    config = BenchConfig(repeats=repeats, threads=1, memory="none", extended_reference=False)
    summary = {"machine": machine(), "command": "python benchmarks/engine.py " + " ".join(argv or sys.argv[1:])}
    for part in parts:
        start = time.perf_counter()
        if part == "batch":
            tols = (1e-4, 1e-6, 1e-8) if args.quick else tuple(10.0**-k for k in range(3, 10))
            problems, modes = args.problems.split(","), args.modes.split(",")
            if set(problems) - {"gain15", "critical"} or set(modes) - {"forward", "gradient"}:
                p.error("--problems takes gain15, critical; --modes takes forward, gradient")
            text = run_part("batch", batch_trials(tols, problems, modes, args.batch), config, out)
        elif part == "stiff":
            tols = (1e-5, 1e-7, 1e-9) if args.quick else tuple(10.0**-k for k in range(4, 11))
            text = stiff(tols, repeats)
        else:
            text = ensemble((1e-5, 1e-7) if args.quick else (1e-4, 1e-6, 1e-8), repeats)
        text = f"{summary['machine']}\n{summary['command']}\n\n{text}\n\n({time.perf_counter() - start:.0f} s)"
        (out / f"{part}.txt").write_text(text + "\n")
        print(text, flush=True)
    (out / "machine.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
