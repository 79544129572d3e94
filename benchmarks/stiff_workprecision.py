"""Work-precision of explicit vs stiff methods on the stiff problems: error vs wall time and vs f evaluations.

    python benchmarks/stiff_workprecision.py            # every problem, reltol 1e-3 .. 1e-9 (the `gnode bench`
                                                        # stiff tolerances), 3 timed repeats
    python benchmarks/stiff_workprecision.py --quick    # reltol 1e-4, 1e-6, 1e-8, one repeat

Problems (`gnode.bench.gnode_problems`): Robertson (to 1e5), Van der Pol mu = 1e3, HIRES, Oregonator, and the
stiff gnODE batch (gate timescales 1e-4..1). Methods: the native engine's explicit Tsit5 and Vern7, the
automatic switches AutoTsit5/AutoVern7(Rodas5P()), the Rosenbrock methods Rosenbrock23, Rodas4, Rodas5P, the
ESDIRK methods TRBDF2, KenCarp4, Kvaerno5 — and SciPy's Radau and BDF (the "scipy" engine) as the reference
peers. Errors are against SciPy Radau at rtol 1e-13 (`gnode.bench.reference`), "l2" as DiffEqDevTools defines
it, at the problem's saved times. Times: minimum over repeats after a warm-up, torch on one thread. A solver
that fails (MaxIters after `--maxiters` steps, DtLessThanMin) is recorded with its return code and its tighter
tolerances skipped. The matched-error comparisons read each curve at the same errors (never extrapolated).

Writes benchmarks/results/stiff_workprecision/ (results.json, results.csv, comparisons.txt, figures) and
benchmarks/results/stiff_workprecision.txt (the table printed here, with machine notes).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import gnode
from gnode.bench import BenchConfig, ProblemSpec, SolverSpec, plan, run_set
from gnode.engines import scipy as sp

PROBLEMS = ("robertson", "vanderpol", "hires", "oregonator", "gnode_stiff")
EXPLICIT = (gnode.Tsit5(), gnode.Vern7())
STIFF = (
    gnode.AutoTsit5(gnode.Rodas5P()),
    gnode.AutoVern7(gnode.Rodas5P()),
    gnode.Rosenbrock23(),
    gnode.Rodas4(),
    gnode.Rodas5P(),
    gnode.TRBDF2(),
    gnode.KenCarp4(),
    gnode.Kvaerno5(),
)
PEERS = (sp.ScipyRadau(), sp.ScipyBDF())
OUT = Path(__file__).resolve().parent / "results"


def solvers() -> list[SolverSpec]:
    return [SolverSpec("gnode", a) for a in EXPLICIT + STIFF] + [SolverSpec("gnode", a, engine="scipy") for a in PEERS]


def table(rows) -> str:
    """Per problem: one line per solver and tolerance — status, error, time, nf, steps, Jacobians."""
    lines = []
    rows = [r for r in rows if r["mode"] == "forward"]
    for problem in dict.fromkeys(r["problem"] for r in rows):
        lines.append(f"\n== {problem} ==")
        lines.append(
            f"{'solver':34s} {'reltol':>7s} {'status':>13s} {'l2 error':>10s} {'time s':>9s} {'nf':>9s} "
            f"{'steps':>7s} {'njacs':>7s}"
        )
        for r in (r for r in rows if r["problem"] == problem):
            status = r.get("retcode", r["status"]) if r["status"] != "ok" else "ok"

            def fmt(key, spec, r=r):
                v = r.get(key)
                return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"

            steps = (r.get("naccept") or 0) + (r.get("nreject") or 0) if r.get("naccept") is not None else None
            lines.append(
                f"{r['solver'][:34]:34s} {r['reltol']:7.0e} {status[:13]:>13s} {fmt('l2', '10.2e')} "
                f"{fmt('time', '9.4f')} {fmt('nf', '9.0f')} "
                f"{(format(steps, '7.0f') if steps is not None else '-'):>7s} {fmt('njacs', '7.0f')}"
            )
    return "\n".join(lines)


def stiff_vs_explicit(rows, metric: str = "l2") -> str:
    """cost(explicit) / cost(stiff) at matched error, where the explicit method finished; else how it failed."""
    from gnode.bench.compare import compare_pair, curves

    lines = [
        (
            "Explicit vs stiff at matched error (ratio = explicit cost / stiff cost, geometric mean over the "
            "common error range; > 1: the stiff method is cheaper):"
        ),
        f"  {'problem':12s} {'explicit':10s} {'stiff':24s} {'time':>7s} {'nf':>7s}  errors",
    ]
    by_problem = curves([r for r in rows if r["mode"] == "forward"], metric)
    for (problem, _), solvers_ in by_problem.items():
        for ex in ("torch Tsit5()", "torch Vern7()"):
            failed = [r for r in rows if r["problem"] == problem and r["solver"] == ex and r["status"] == "failed"]
            if ex not in solvers_:
                if failed:
                    r = failed[0]
                    lines.append(
                        f"  {problem:12s} {ex[6:]:10s} {'-':24s} {'-':>7s} {'-':>7s}  {r.get('retcode')} at "
                        f"reltol {r['reltol']:.0e} after {r.get('naccept', 0) + r.get('nreject', 0):.0f} "
                        f"steps ({r.get('time_to_failure', float('nan')):.1f} s)"
                    )
                continue
            for st in ("torch Rodas5P()", "torch AutoTsit5(Rodas5P())", "torch KenCarp4()", "torch Kvaerno5()"):
                if st not in solvers_:
                    continue
                c = compare_pair(solvers_[st], solvers_[ex])
                if c is None:
                    lines.append(
                        f"  {problem:12s} {ex[6:]:10s} {st[6:]:24s} {'-':>7s} {'-':>7s}  no common error range"
                    )
                    continue
                lines.append(
                    f"  {problem:12s} {ex[6:]:10s} {st[6:]:24s} {c['time_ratio']:7.2f} {c['nf_ratio']:7.2f}  "
                    f"{min(c['errors']):.0e}..{max(c['errors']):.0e}"
                )
    return "\n".join(lines)


def render(rows, comparisons_text: str) -> str:
    return table(rows) + "\n\n" + stiff_vs_explicit(rows) + "\n\n" + comparisons_text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reltol 1e-4, 1e-6, 1e-8 and one timed repeat")
    ap.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    ap.add_argument(
        "--maxiters",
        type=int,
        default=20_000,
        help="step budget per trajectory (explicit methods "
        "on the classic stiff problems run into it: that is the point)",
    )
    ap.add_argument("--point-budget", type=float, default=20.0, help="seconds; a slower point ends its sweep")
    ap.add_argument("--out", default=str(OUT / "stiff_workprecision"))
    ap.add_argument("--report", action="store_true", help="only re-render the tables from the results in --out")
    args = ap.parse_args(argv)
    from gnode.bench.compare import compare_all, format_comparisons

    if args.report:
        from gnode.bench.report import read_results

        doc = read_results(args.out)
        write_table(
            header(doc["meta"], doc["config"])
            + render(doc["rows"], format_comparisons(compare_all(doc["rows"], doc["config"].get("metric", "l2"))))
        )
        return 0

    reltols = (1e-4, 1e-6, 1e-8) if args.quick else tuple(10.0**-k for k in range(3, 10))
    trials = plan([ProblemSpec.of(p) for p in args.problems], solvers=solvers(), reltols=reltols)
    config = BenchConfig(
        repeats=1 if args.quick else 3,
        maxiters=args.maxiters,
        memory=False,
        point_budget=args.point_budget,
        extended_reference=False,
    )
    results = run_set(trials, config)
    written = results.write(args.out)
    write_table(header(results.meta, results.config) + render(results.rows, format_comparisons(results.comparisons())))
    print("\nwritten:", ", ".join(str(v) for v in written.values()))
    return 0


def header(meta: dict, config: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in meta.get("load_average", ()))
    return (
        f"# stiff work-precision — {meta.get('date')}, {meta.get('cpu_model', meta.get('processor'))}, "
        f"{meta.get('cpu_count')} cores (load {load}), torch {meta.get('torch')} on {config.get('threads')} "
        f"thread(s); {config.get('repeats')} timed repeat(s); maxiters {config.get('maxiters')}\n"
    )


def write_table(text: str) -> None:
    print(text)
    (OUT / "stiff_workprecision.txt").write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
