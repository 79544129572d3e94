"""Work-precision of the Radau IIA methods: RadauIIA5 against SciPy's Radau (the same method and algorithm,
Hairer & Wanner's RADAU5) at matched accuracy, and RadauIIA5/RadauIIA9 against the native engine's default stiff
method Rodas5P, to say which stiff method to pick for which accuracy. (The ESDIRK methods are left out: Rodas5P
needs less time and fewer evaluations than each of them at every matched error of
benchmarks/results/stiff_workprecision.txt, and they are the slowest points here.)

    python benchmarks/radau_workprecision.py            # reltol 1e-4 .. 1e-11, 3 timed repeats (--repeats)
    python benchmarks/radau_workprecision.py --quick    # reltol 1e-5, 1e-7, 1e-9, one timed repeat

Problems (`gnode.bench.gnode_problems`): Robertson (to 1e5), Van der Pol mu = 1e3, HIRES, Oregonator, and the
stiff gnODE batch (gate timescales 1e-4..1). Errors are against SciPy Radau at rtol 1e-13 with the exact
Jacobian (`gnode.bench.reference`), "l2" and "linf" as DiffEqDevTools defines them, at the problem's saved times;
below ~1e-11 they reach the reference's own accuracy, hence the tightest tolerance 1e-11. SciPy's Radau gets the
exact Jacobian too (autograd), so its nf, like the native engine's, counts no finite-difference evaluations.
Times: minimum over repeats after a warm-up, torch on one thread. A point slower than --point-budget ends its
method's sweep. The run is journaled: an interrupted run resumes where it stopped.

Matched accuracy: each curve's cost is read at the same errors, log-log interpolated inside the range both
curves cover (never extrapolated); the ratio is the geometric mean over those errors. RadauIIA5 transforms its
tolerances as RADAU5 does (rtol' = 0.1 rtol^(2/3)) and SciPy's Radau does not, so at equal reltol they reach
different accuracies: only matched-accuracy ratios compare them.

Writes benchmarks/results/radau_workprecision/ (results.json, results.csv, comparisons.txt, figures, journal) and
benchmarks/results/radau_workprecision.txt (the tables printed here, with machine notes).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

import gnode
from gnode.bench import BenchConfig, ProblemSpec, SolverSpec, plan, run_set
from gnode.bench.compare import compare_pair, curves
from gnode.engines import scipy as sp

PROBLEMS = ("robertson", "vanderpol", "hires", "oregonator", "gnode_stiff")
NATIVE = (gnode.RadauIIA5(), gnode.RadauIIA9(), gnode.Rodas5P())
OUT = Path(__file__).resolve().parent / "results"
TARGETS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)  # errors at which the cheapest method is named


def solvers() -> list[SolverSpec]:
    return [SolverSpec("gnode", a) for a in NATIVE] + [SolverSpec("gnode", sp.ScipyRadau(), engine="scipy")]


def table(rows) -> str:
    """Per problem: one line per solver and tolerance — status, errors (l2 and max), time, nf, steps, Jacobians,
    Newton iterations."""
    lines = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        lines.append(f"\n== {problem} ==")
        lines.append(
            f"{'solver':24s} {'reltol':>7s} {'status':>9s} {'l2 error':>10s} {'max error':>10s} "
            f"{'time s':>9s} {'nf':>8s} {'steps':>7s} {'njacs':>6s} {'newton':>7s}"
        )
        for r in (r for r in rows if r["problem"] == problem):
            status = r.get("retcode", r["status"]) if r["status"] != "ok" else "ok"

            def fmt(key, spec, r=r):
                v = r.get(key)
                return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"

            steps = (r.get("naccept") or 0) + (r.get("nreject") or 0)
            lines.append(
                f"{r['solver'][:24]:24s} {r['reltol']:7.0e} {status[:9]:>9s} {fmt('l2', '10.2e')} "
                f"{fmt('linf', '10.2e')} {fmt('time', '9.4f')} {fmt('nf', '8.0f')} {steps:7.0f} "
                f"{fmt('njacs', '6.0f')} {fmt('nnonliniter', '7.0f')}"
            )
    return "\n".join(lines)


def against_scipy(rows) -> str:
    """RadauIIA5 (and RadauIIA9) against SciPy's Radau at matched l2 and at matched max error: cost(native) /
    cost(SciPy) (< 1: the native engine needs less)."""
    lines = [
        "At matched error, native / SciPy Radau (geometric mean over the common error range; < 1: less):",
        f"  {'problem':12s} {'native':16s} {'metric':6s} {'nf':>6s} {'time':>6s}  errors",
    ]
    for metric in ("l2", "linf"):
        for (problem, _), cs in curves(rows, metric).items():
            ref = next((c for k, c in cs.items() if "ScipyRadau" in k), None)
            for label in ("torch RadauIIA5()", "torch RadauIIA9()"):
                if ref is None or label not in cs:
                    continue
                c = compare_pair(cs[label], ref)
                if c is None:
                    lines.append(f"  {problem:12s} {label[6:]:16s} {metric:6s}  no common error range")
                    continue
                lines.append(
                    f"  {problem:12s} {label[6:]:16s} {metric:6s} {1 / c['nf_ratio']:6.2f} "
                    f"{1 / c['time_ratio']:6.2f}  {min(c['errors']):.0e}..{max(c['errors']):.0e}"
                )
    return "\n".join(lines)


def cheapest(rows, metric: str = "l2") -> str:
    """Per problem and target error: the native method with the least time (and the least nf) to reach it."""
    lines = [
        (
            f"Cheapest native method at each {metric} error (by time; by nf where it differs); '-': no native "
            "curve reaches it:"
        ),
        f"  {'problem':12s} " + " ".join(f"{t:>20.0e}" for t in TARGETS),
    ]
    for (problem, _), cs in curves(rows, metric).items():
        native = {k[6:]: c for k, c in cs.items() if k.startswith("torch ")}
        cells = []
        for target in TARGETS:
            best = {}
            for cost, index in (("time", 1), ("nf", 2)):
                costs = {k: cost_at(c["points"], index, target) for k, c in native.items()}
                costs = {k: v for k, v in costs.items() if math.isfinite(v)}
                best[cost] = min(costs, key=costs.get).rstrip("()") if costs else "-"
            cell = best["time"] if best["time"] == best["nf"] else f"{best['time']}/{best['nf']}"
            cells.append(f"{cell:>20s}")
        lines.append(f"  {problem:12s} " + " ".join(cells))
    return "\n".join(lines)


def cost_at(points, index: int, error: float) -> float:
    """A curve's cost (points: (error, time, nf, ...)) at `error`, log-log interpolated; NaN outside its range."""
    pts = sorted((math.log10(p[0]), math.log10(p[index])) for p in points if p[index])
    if not pts or not pts[0][0] <= math.log10(error) <= pts[-1][0]:
        return float("nan")
    return float(10 ** np.interp(math.log10(error), [p[0] for p in pts], [p[1] for p in pts]))


def render(rows) -> str:
    rows = [r for r in rows if r["mode"] == "forward"]
    return "\n\n".join([table(rows), against_scipy(rows), cheapest(rows, "l2"), cheapest(rows, "linf")])


def header(meta: dict, config: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in meta.get("load_average", ()))
    end = ", ".join(f"{x:.1f}" for x in meta.get("load_average_end", ()))
    return (
        f"# Radau IIA work-precision — {meta.get('date')}, {meta.get('cpu_model', meta.get('processor'))}, "
        f"{meta.get('cpu_count')} cores (load {load} at the start, {end} at the end), torch {meta.get('torch')} "
        f"on {config.get('threads')} thread(s); {config.get('repeats')} timed repeat(s); maxiters "
        f"{config.get('maxiters')}; {meta.get('wall_seconds', float('nan')) / 60:.0f} minutes\n"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reltol 1e-5, 1e-7, 1e-9 and one timed repeat")
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    ap.add_argument("--point-budget", type=float, default=60.0, help="seconds; a slower point ends its sweep")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per point (the minimum is reported)")
    ap.add_argument("--out", default=str(OUT / "radau_workprecision"))
    ap.add_argument("--report", action="store_true", help="only re-render the tables from the results in --out")
    args = ap.parse_args(argv)
    if args.report:
        from gnode.bench.report import read_results

        doc = read_results(args.out)
        write_table(header(doc["meta"], doc["config"]) + render(doc["rows"]))
        return 0
    reltols = (1e-5, 1e-7, 1e-9) if args.quick else tuple(10.0**-k for k in range(4, 12))
    trials = plan([ProblemSpec.of(p) for p in args.problems], solvers=solvers(), reltols=reltols)
    config = BenchConfig(
        repeats=1 if args.quick else args.repeats,
        maxiters=200_000,
        memory="none",
        point_budget=args.point_budget,
        extended_reference=False,
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = run_set(trials, config, journal=Path(args.out) / "journal.jsonl")
    written = results.write(args.out)
    write_table(header(results.meta, results.config) + render(results.rows))
    print("\nwritten:", ", ".join(str(v) for v in written.values()))
    return 0


def write_table(text: str) -> None:
    print(text)
    (OUT / "radau_workprecision.txt").write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
