"""The recorded work-precision run: the native engine's methods, the installed peers and SciPy on random gnODEs
(stable / critical / chaotic initialisation), the stiff gnODE and the classic stiff set, with gradients on the
critical and the stiff gnODE.

    python benchmarks/workprecision.py                   # everything (an hour or more on 2 cores; the recorded
                                                         # run is in three parts: the command in each NOTES.md)
    python benchmarks/workprecision.py --quick           # minutes: small problems, 3 tolerances
    python benchmarks/workprecision.py --run RUN         # also the trained flip-flop gnODE of a run folder
                                                         # (the recorded run: --run experiments/flipflop-3d)
    python benchmarks/workprecision.py --problems gnode_critical robertson --out /tmp/wp

A front end to `gnode.bench` (the same runner as `gnode bench`). Writes into --out (default
benchmarks/results/workprecision/): results.json (every point, the references, the machine), results.csv,
comparisons.txt (time and nf ratios at matched error), figures/<problem>_<mode>.png, and NOTES.md (the
machine, how it was measured, and the headline ratios). While it runs, journal.jsonl holds every finished
trial: the same command started again after an interruption resumes from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gnode.bench import BenchConfig, ProblemSpec, format_comparisons, plan, run_set

FORWARD = (
    "gnode_stable",
    "gnode_critical",
    "gnode_chaotic",
    "gnode_small",
    "gnode_stiff",
    "robertson",
    "vanderpol",
    "hires",
)
GRADIENTS = ("gnode_critical", "gnode_stiff")


def specs(names, quick: bool, run: str | None):
    out = []
    for name in names:
        opts = {}
        if quick and name in ("gnode_stable", "gnode_critical", "gnode_chaotic"):
            opts = {"batch": 8, "n": 8, "hidden": 16, "t1": 5.0}
        if quick and name == "gnode_stiff":
            opts = {"batch": 4}
        if name == "flipflop":
            opts = {"run": run}
        out.append(ProblemSpec.of(name, **opts))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small problems, 3 tolerances, 1 repeat")
    p.add_argument("--problems", nargs="+", help=f"forward problems (default: {' '.join(FORWARD)})")
    p.add_argument("--gradient-problems", nargs="*", help=f"gradient problems (default: {' '.join(GRADIENTS)})")
    p.add_argument("--run", help="a trained flip-flop run folder: adds the flipflop problem")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reltols", nargs="+", type=float, help="tolerances (default: gnode.bench's per kind of problem)")
    p.add_argument(
        "--point-budget",
        type=float,
        default=30.0,
        help="seconds; a slower point ends its solver's tolerance sweep (default 30)",
    )
    p.add_argument(
        "--memory",
        choices=("all", "gradient", "none"),
        default="all",
        help="which points get a peak-memory run (default: all)",
    )
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "workprecision"))
    argv = sys.argv[1:] if argv is None else argv  # NOTES.md records the command
    args = p.parse_args(argv)
    forward = list(args.problems or FORWARD)
    gradient = list(GRADIENTS if args.gradient_problems is None else args.gradient_problems)
    if args.run and "flipflop" not in forward:
        forward.append("flipflop")
    if args.run and args.gradient_problems is None:
        gradient.append("flipflop")
    reltols = (1e-3, 1e-5, 1e-7) if args.quick else args.reltols
    trials = plan(specs(forward, args.quick, args.run), reltols=reltols)
    trials += plan(specs(gradient, args.quick, args.run), forward=False, gradients=True, reltols=reltols)
    config = BenchConfig(
        repeats=1 if args.quick else args.repeats, threads=1, memory=args.memory, point_budget=args.point_budget
    )
    journal = Path(args.out) / "journal.jsonl"  # a killed run resumes from it; removed once the results are written
    results = run_set(trials, config, journal=journal)
    files = results.write(args.out)
    journal.unlink()
    comparisons = results.comparisons()
    table = format_comparisons(comparisons)
    print(table)
    notes = Path(args.out) / "NOTES.md"
    notes.write_text(_notes(results, comparisons, table, argv))
    print(f"\nwrote {', '.join(files.values())}, {notes}")


def _notes(results, comparisons, table, argv) -> str:
    m = results.meta
    lines = [
        "# Work-precision run",
        "",
        f"Command: `python benchmarks/workprecision.py {' '.join(argv)}`  ",
        f"Date: {m.get('date')}; wall time {m.get('wall_seconds', float('nan')) / 60:.1f} min"
        + (
            f" ({m['resumed_trials']} trials measured in earlier sessions, resumed from the journal)"
            if m.get("resumed_trials")
            else ""
        ),
        "",
        "## Machine",
        "",
        f"- {m.get('cpu_model', m.get('processor'))}, {m.get('cpu_count')} logical CPUs; {m.get('platform')}",
        (
            f"- load average at start {m.get('load_average')}, at end {m.get('load_average_end')} "
            "(a shared machine: other work ran alongside; compare ratios measured in this run, and nf)"
        ),
        f"- Python {m.get('python')}, torch {m.get('torch')} (1 thread), "
        + ", ".join(f"{k[8:]} {v}" for k, v in m.items() if k.startswith("version_")),
        "",
        "## How it was measured",
        "",
        (
            "- errors: DiffEqDevTools' `l2` (RMS over the saved times, batch and components) against SciPy "
            "float64 references at rtol 1e-13 (DOP853 non-stiff, Radau stiff); gradients: relative error of "
            "dL/dθ against a reference gradient at rtol 1e-12 (below), checked with finite differences"
        ),
        (
            "- time: minimum over repeats after a warm-up; torch on one thread; diffrax jit-compiled before "
            "timing (compile time in `compile_seconds`), XLA on one thread"
        ),
        "- nf: right-hand-side evaluations per trajectory; f_calls: batched calls (torch solvers)",
        ("- ratios: other / native at matched error, geometric mean over the common error range (> 1: native cheaper)"),
        "",
        "## Problems",
        "",
    ]
    for name, info in results.problems.items():
        lines.append(
            f"- **{name}**: {info.get('description')}; bare f call on the batch "
            f"{info.get('f_seconds', float('nan')) * 1e6:.0f} µs"
        )
    lines += ["", "## References", ""]
    for name, ref in results.references.items():
        sol = ref["solution"]
        extra = ""
        if "float64_vs_extended" in ref:
            extra = f"; float64 vs mpmath (30 digits): l2 {ref['float64_vs_extended']['l2']:.1e}"
        if "gradient" in ref:
            g = ref["gradient"]
            extra += (
                f"; gradient: {g['method']}, spread vs rtol 1e-10 {g['spread_vs_rtol_1e-10']:.1e}, "
                f"finite differences agree to {g['fd_rel_diff']:.1e}"
            )
        lines.append(f"- {name}: SciPy {sol['method']} rtol {sol['rtol']:g}{extra}")
    counts = {}
    for r in results.rows:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    lines += ["", "## Points", "", ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=str)), ""]
    failed = [r for r in results.rows if r.get("status") in ("failed", "error")]
    for r in failed:
        lines.append(
            f"- {r['status']}: {r['problem']} {r['solver']} reltol {r['reltol']:.0e}: "
            f"{r.get('retcode')} {r.get('message', '')}".rstrip()
        )
    lines += ["", "## Matched-error comparison", "", "```", table, "```", ""]
    lines += ["Figures: `figures/<problem>_<mode>.png`. Every point: `results.json` / `results.csv`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
