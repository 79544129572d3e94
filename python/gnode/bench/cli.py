"""`gnode bench`: run a work-precision set from the command line.

`add_subparser` registers the "bench" command on the `gnode` parser (gnode.cli) with `func=run_command`,
which returns the exit status; `python -m gnode.bench.cli` runs the same command on its own.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

DEFAULT_PROBLEMS = ("gnode_stable", "gnode_critical", "gnode_chaotic", "gnode_stiff", "robertson", "vanderpol", "hires")
# --quick: one random gnODE, the stiff gnODE batch and Robertson, each by a few native methods and the closest
# method of each peer, at 3 tolerances, once, without the memory probe (the torch profiler costs seconds a
# point). diffrax compiles each method on each problem first (20-30 s here), so it gets one method a problem;
# explicit methods, which crawl on the stiff problems (up to minutes a point), are left to the full set.
# The stiff gnODE batch has 4 trajectories: its float64 reference alone took a minute of CPU for 8. KenCarp4 is
# left to the full set too (3-5x Rodas5P's time at 1e-7 on both stiff problems).
QUICK = {
    "problems": ("gnode_critical", "gnode_stiff", "robertson"),
    "reltols": (1e-3, 1e-5, 1e-7),
    "repeats": 1,
    "batch": 8,
    "stiff_batch": 4,
    "n": 8,
    "hidden": 16,
    "t1": 5.0,
    "memory": "none",
}
QUICK_METHODS = {  # by the problem's stiffness, then by package
    False: {"gnode": {"DP5", "Tsit5", "Vern7"}, "torchdiffeq": {"dopri5"}, "torchode": {"Tsit5"}, "diffrax": {"Tsit5"}},
    True: {"gnode": {"Rodas5P", "AutoTsit5", "ScipyRadau"}, "diffrax": {"Kvaerno5"}},
}


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add `gnode bench` to `subparsers` (the gnode parser's `add_subparsers()` object)."""
    from gnode.bench.gnode_problems import PROBLEMS

    names = "\n".join(f"  {k:15s} {d}" for k, (_, d) in PROBLEMS.items())
    p = subparsers.add_parser(
        "bench",
        help="work-precision benchmarks of solvers, engines and peers",
        description=textwrap.fill(
            "Measure work-precision sets: each problem solved by many methods, engines (gnode's native torch "
            "engine, julia when available, scipy) and peer libraries (torchdiffeq, torchode, diffrax, when "
            "installed) at many tolerances, recording error (final, l2, L2 as DiffEqDevTools defines them; "
            "the relative gradient error with --gradients), wall time (min of repeats after a warm-up, torch on "
            "one thread), f evaluations, steps, Jacobians and peak memory. Errors are against SciPy float64 "
            "references at rtol 1e-13, cached in the user cache folder. Writes results.json, results.csv, "
            "comparisons.txt and figures/*.png into --out and prints the matched-error comparison.",
            88,
        ),
        epilog="problems:\n" + names + "\n\nexamples:\n"
        "  gnode bench --quick\n"
        "  gnode bench --problems gnode_critical robertson --gradients --out bench-out\n"
        "  gnode bench --problems gnode_critical --solvers Tsit5 dopri5 --reltols 1e-4 1e-6 1e-8\n"
        "  gnode bench --problems flipflop --run runs/ff3\n"
        "  gnode bench --list",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to measure")
    what.add_argument(
        "--problems",
        nargs="+",
        metavar="NAME",
        choices=list(PROBLEMS),
        help=f"problems (default: {' '.join(DEFAULT_PROBLEMS)})",
    )
    what.add_argument("--gradients", action="store_true", help="also measure gradients (problems with parameters)")
    what.add_argument("--no-forward", action="store_true", help="measure gradients only")
    what.add_argument(
        "--engines",
        nargs="+",
        default=["torch", "julia"],
        metavar="ENGINE",
        help="gnode engines (default: torch julia; julia is skipped with its reason when not "
        "available; add scipy for SciPy's solvers on every problem)",
    )
    what.add_argument(
        "--peers",
        nargs="*",
        default=["torchdiffeq", "torchode", "diffrax"],
        metavar="PEER",
        help="peer libraries (default: torchdiffeq torchode diffrax; none: --peers)",
    )
    what.add_argument(
        "--solvers",
        nargs="+",
        metavar="TEXT",
        help="keep only solvers whose label contains one of these (e.g. Tsit5 dopri5 Rodas5P)",
    )
    what.add_argument(
        "--reltols",
        nargs="+",
        type=float,
        metavar="RTOL",
        help="tolerances (default: 1e-3..1e-10 non-stiff, 1e-3..1e-9 stiff, 1e-3..1e-8 gradients); "
        "abstol = reltol * the problem's atol ratio",
    )
    what.add_argument(
        "--quick",
        action="store_true",
        help="a small set in a few minutes: gnode_critical, gnode_stiff and robertson, a few methods "
        "each, 3 tolerances, 1 repeat, no memory probe, batch 8 (4 for gnode_stiff), n 8, "
        "hidden 16, t1 5",
    )
    what.add_argument(
        "--list",
        action="store_true",
        help="list the problems, their default solvers and which engines and peers are available here, then exit",
    )
    size = p.add_argument_group("problem sizes")
    size.add_argument("--batch", type=int, help="trajectories per problem (random/stiff gnODEs, flipflop)")
    size.add_argument("--n", type=int, help="latent size of the random gnODEs (default 32)")
    size.add_argument("--hidden", type=int, help="hidden width of the random gnODEs (default 64)")
    size.add_argument("--t1", type=float, help="end time of the random gnODEs (default 20)")
    size.add_argument("--run", metavar="FOLDER", help="trained flip-flop run folder for the flipflop problem")
    how = p.add_argument_group("how to measure")
    how.add_argument("--repeats", type=int, help="timed runs per point after a warm-up (default 3)")
    how.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    how.add_argument("--maxiters", type=int, default=100_000, help="step budget per trajectory (default 100000)")
    how.add_argument(
        "--memory",
        choices=("all", "gradient", "none"),
        help="which points get a peak-memory run (default: all; none with --quick)",
    )
    how.add_argument(
        "--point-budget",
        type=float,
        default=30.0,
        help="seconds; a slower point ends its solver's tolerance sweep (default 30)",
    )
    how.add_argument(
        "--metric",
        choices=("l2", "final", "L2", "linf", "Linf"),
        default="l2",
        help="solution error of the diagrams and comparisons (default l2)",
    )
    how.add_argument("--cache-dir", help="reference cache folder (default: $GNODE_CACHE_DIR or the user cache)")
    how.add_argument("--no-cache", action="store_true", help="recompute every reference")
    how.add_argument("--no-extended", action="store_true", help="skip the mpmath reference of small problems")
    how.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run trials as Ray tasks (local Ray, or the cluster at ADDRESS); default: locally",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        default="bench-results",
        help="output folder (default: bench-results); an interrupted run started again resumes there",
    )
    out.add_argument("--no-figures", action="store_true", help="write no figures")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_command)
    return p


def _problem_specs(args):
    from gnode.bench.specs import ProblemSpec

    quick = QUICK if args.quick else {}
    names = args.problems or list(quick.get("problems", DEFAULT_PROBLEMS))
    specs = []
    for name in names:
        opts = {}
        if name.startswith("gnode_") and name not in ("gnode_small", "gnode_stiff"):
            for k in ("batch", "n", "hidden", "t1"):
                v = getattr(args, k) if getattr(args, k) is not None else quick.get(k)
                if v is not None:
                    opts[k] = v
        elif name in ("gnode_stiff", "flipflop"):
            v = args.batch if args.batch is not None else quick.get("stiff_batch" if name == "gnode_stiff" else "batch")
            if v is not None:
                opts["batch"] = v
        if name == "flipflop":
            opts["run"] = args.run
        specs.append(ProblemSpec.of(name, **opts))
    return specs


def _available_line(solver_spec) -> str:
    s = solver_spec.build()
    ok, why = s.available()
    return f"{s.label}" + ("" if ok else f"   [not available: {why}]")


def run_command(args) -> int:
    """The `gnode bench` handler: plan, run, write, print. Returns the exit status."""
    import sys

    from gnode.bench.compare import format_comparisons
    from gnode.bench.workprecision import BenchConfig, run_set
    from gnode.jobs import JournalError

    if (problem := _bad_options(args)) is not None:
        return _usage(problem)
    specs = _problem_specs(args)
    if args.list:
        _list(specs, args)
        return 0
    trials = _trials(specs, args)
    if not trials:
        print("gnode bench: nothing to measure (check --problems, --solvers, --peers, --engines)")
        return 2
    quick = QUICK if args.quick else {}
    repeats = args.repeats or quick.get("repeats", 3)
    config = BenchConfig(
        repeats=repeats,
        threads=args.threads,
        maxiters=args.maxiters,
        memory=args.memory or quick.get("memory", "all"),
        point_budget=args.point_budget,
        metric=args.metric,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        extended_reference=not args.no_extended,
    )
    points = sum(len(t.reltols) for t in trials)
    print(
        f"gnode bench: {len(trials)} trials, {points} points, {len({t.problem for t in trials})} problems; "
        f"torch threads {args.threads}, {repeats} repeats" + (", on Ray" if args.ray is not None else "")
    )
    print(
        f"  expect about {_minutes(estimate_seconds(trials, config))} on one core of a 2-core laptop CPU (a rough "
        "estimate; a first run also computes the references, which are cached for later runs)"
    )
    journal = Path(args.out) / "journal.jsonl"  # an interrupted run resumes from it; gone once results are written
    try:
        results = run_set(
            trials,
            config,
            use_ray=args.ray is not None,
            ray_address=args.ray or None,
            progress=not args.quiet,
            journal=journal,
        )
    except JournalError as e:
        return _usage(str(e))
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the trials measured so far are kept in {journal}; resume with\n  {resume_command(args)}",
            file=sys.stderr,
        )
        return 130
    files = results.write(args.out, figures=not args.no_figures)
    journal.unlink(missing_ok=True)
    _print_summary(results)
    print()
    print(format_comparisons(results.comparisons()))
    print()
    for what, path in files.items():
        print(f"wrote {what}: {path}")
    return 0


def _bad_options(args) -> str | None:
    """What is wrong with the options, before anything runs (None: nothing)."""
    for name, v in (
        ("--batch", args.batch),
        ("--n", args.n),
        ("--hidden", args.hidden),
        ("--repeats", args.repeats),
        ("--threads", args.threads),
        ("--maxiters", args.maxiters),
    ):
        if v is not None and v < 1:
            return f"{name} must be >= 1, got {v}"
    if args.reltols is not None and not all(0 < r < 1 for r in args.reltols):
        return f"--reltols must lie in (0, 1), got {args.reltols}"
    if args.problems and "flipflop" in args.problems and not args.run:
        return "the flipflop problem needs --run FOLDER (a run trained with `gnode train flipflop --out FOLDER`)"
    from gnode.training.experiment import folder_problem

    if not args.list and (problem := folder_problem(args.out)) is not None:
        return f"--out {args.out}: {problem}; choose a folder you can write to"
    if args.ray is not None:
        import importlib.util

        from gnode.jobs import ray_missing_message

        if importlib.util.find_spec("ray") is None:
            return ray_missing_message("--ray") + " (or leave out --ray: trials run locally)"
    return None


def _list(specs, args) -> None:
    from gnode.bench.specs import default_solvers

    for spec in specs:
        try:
            problem = spec.build()
        except Exception as e:  # noqa: BLE001 - a listing reports any problem that cannot be built
            print(f"{spec.name}: unavailable ({e})")
            continue
        print(f"{problem.name}: {problem.description}")
        for gradient in (False, True):
            if gradient and not problem.differentiable:
                continue
            print(f"  {'gradient' if gradient else 'forward'}:")
            for s in default_solvers(problem, gradient, engines=tuple(args.engines), peers=tuple(args.peers)):
                print(f"    {_available_line(s)}")


def _trials(specs, args) -> list:
    """The planned trials, cut to --quick's methods and to --solvers."""
    from gnode.bench.specs import plan

    reltols = args.reltols or (QUICK["reltols"] if args.quick else None)
    trials = plan(
        specs,
        gradients=args.gradients or args.no_forward,
        forward=not args.no_forward,
        reltols=reltols,
        engines=tuple(args.engines),
        peers=tuple(args.peers),
    )
    if args.quick and not args.solvers:
        stiff = {spec: spec.build().stiff for spec in specs}
        trials = [
            t for t in trials if _method_name(t.solver) in QUICK_METHODS[stiff[t.problem]].get(t.solver.package, ())
        ]
    if args.solvers:
        trials = [t for t in trials if any(k.lower() in t.solver.label.lower() for k in args.solvers)]
    return trials


def _method_name(solver_spec) -> str:
    m = solver_spec.method
    return m if isinstance(m, str) else type(m).__name__


# The estimate printed before a run starts, from CPU seconds measured with --quick on the project's 2-core
# machine (one torch thread): a point (detailed run, warm-up, one timed repeat) at reltol 1e-3 with --quick's
# sizes, by package and by whether the problem is stiff; it grows by (1e-3 / reltol)^0.2 (the growth of nf
# measured for Tsit5 and Rodas5P), as sqrt(batch * n / 64) with the problem's size, with the repeats, 3x for
# gradients. Plus diffrax's JIT compilation once a trial, and each problem's SciPy reference at rtol 1e-13
# (cached: a second run skips it), which takes about 7 s a trajectory on a stiff problem.
POINT_SECONDS = {
    False: {"gnode": 0.3, "torchdiffeq": 0.3, "torchode": 0.5, "diffrax": 0.1},
    True: {"gnode": 1.5, "torchdiffeq": 3.0, "torchode": 3.0, "diffrax": 0.3},
}
COMPILE_SECONDS = {"diffrax": 15.0}
REFERENCE_SECONDS = (3.0, 7.0)  # a problem, and a trajectory of a stiff one
PROBE_SECONDS = 3.0  # a peak-memory run under the torch profiler


def estimate_seconds(trials, config) -> float:
    """A rough estimate of a run's seconds (see POINT_SECONDS), for the line printed before it starts."""
    import math

    problems = {spec: spec.build() for spec in {t.problem for t in trials}}
    total = sum(REFERENCE_SECONDS[0] + (REFERENCE_SECONDS[1] * p.batch if p.stiff else 0) for p in problems.values())
    for t in trials:
        if not t.solver.build().available()[0]:  # skipped at once (Julia or a peer missing)
            continue
        p = problems[t.problem]
        base = POINT_SECONDS[p.stiff].get(t.solver.package, 1.0) * math.sqrt(p.batch * p.n / 64)
        base *= (2 + config.repeats) / 3 * (3 if t.gradient else 1)
        probe = PROBE_SECONDS if config.memory == "all" or (config.memory == "gradient" and t.gradient) else 0.0
        total += COMPILE_SECONDS.get(t.solver.package, 0.0)
        total += sum(base * (1e-3 / r) ** 0.2 + probe for r in t.reltols)
    return total


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} minutes"


def _usage(message: str) -> int:
    import sys

    print(f"gnode bench: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """`python -m gnode.bench.cli ...`: the same command without the rest of `gnode`."""
    parser = argparse.ArgumentParser(prog="gnode")
    add_subparser(parser.add_subparsers(dest="command", required=True))
    import sys

    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    args.command_line = ["gnode", "bench", *(sys.argv[1:] if argv is None else argv)]
    return args.func(args)


def resume_command(args) -> str:
    """The command that resumes this run: the same command line, with its output folder named."""
    import shlex

    words = list(getattr(args, "command_line", None) or ["gnode", "bench"])
    if "--out" not in words and not any(w.startswith("--out=") for w in words):
        words += ["--out", str(args.out)]
    return shlex.join(words)


def _print_summary(results) -> None:
    rows = results.rows
    counts = {}
    for r in rows:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    print("\npoints: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    print(skipped_lines(rows), end="")
    for r in rows:
        if r.get("status") in ("failed", "error"):
            print(
                f"  {r['status']}: {r['problem']} {r['solver']} reltol {r['reltol']:.0e}: {r.get('retcode')} "
                f"{r.get('message', '')}".rstrip()
            )


def skipped_lines(rows) -> str:
    """The skipped points, one line per cause (Julia missing, a peer not installed, ...) naming the solvers it
    hit, rather than a line per solver and tolerance."""
    by_cause: dict[str, list] = {}
    for r in rows:
        if r.get("status") == "skipped":
            by_cause.setdefault(r.get("message") or "no reason recorded", []).append(r["solver"])
    lines = []
    for why, hit in sorted(by_cause.items(), key=lambda kv: -len(kv[1])):
        names = sorted(set(hit))
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"  skipped {len(hit)} point{'s' * (len(hit) > 1)} of {shown}: {why}\n")
    return "".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
