"""`gnode analyze RUN`: the analysis of a trained run folder (`gnode.analysis.analyze_model` on its best weights).

It lives here, with the code that reads run folders (`gnode.training.experiment`), so that imports go one way:
training uses analysis (the trainer logs stiffness telemetry), analysis never imports training.

    analyze_run("runs/ff", config=AnalysisConfig(initial_states=2048))   # figures and JSON in runs/ff/analysis

The `gnode` command line (gnode/cli.py) adds the command with `add_subparser(sub)`. Bad options, a missing
or unusable folder end with one line on stderr and exit status 2; a run that cannot be analysed (a damaged
checkpoint) with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

from gnode.analysis.fixed_points import FixedPointConfig
from gnode.analysis.report import AnalysisConfig, analyze_model, write_json
from gnode.training.checkpoint import CheckpointError
from gnode.training.experiment import ODE_KINDS, folder_problem, load_run

EXIT_USAGE, EXIT_FAILURE = 2, 1


def analyze_run(
    folder: str | Path,
    out_dir: str | Path | None = None,
    *,
    config: AnalysisConfig | None = None,
    progress: bool = False,
) -> dict:
    """`analyze_model` on the run in `folder` (its best weights and its task data); figures and JSON go to
    `out_dir` (default `folder/analysis`). Returns the summary, with "run" and "weights" added."""
    config = config or AnalysisConfig()
    run = load_run(folder, gradients=False)
    if run.config.model.kind not in ODE_KINDS:
        raise ValueError(
            f"the run's model is {run.config.model.kind!r}, a discrete-time RNN: fixed points of a "
            f"vector field and stiffness need an ODE model ({', '.join(ODE_KINDS)})"
        )
    split = run.data.split(config.split)
    out_dir = Path(out_dir) if out_dir is not None else Path(folder) / "analysis"
    task = run.config.task
    summary = analyze_model(
        run.model,
        split.inputs,
        split.times,
        out_dir,
        config=config,
        progress=progress,
        duration=float(getattr(task, "duration", split.times[-1] - split.times[0])),
    )
    summary["run"] = str(folder)
    summary["weights"] = run.weights
    on_disk = json.loads((out_dir / "summary.json").read_text())
    on_disk.update(run=os.path.relpath(folder, out_dir), weights=run.weights)  # relative: the folder can move
    write_json(out_dir / "summary.json", on_disk)
    return summary


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add `analyze` to an argparse subparsers object; its handler is `run_analyze` (in `func`)."""
    d = FixedPointConfig()
    p = subparsers.add_parser(
        "analyze",
        help="fixed points, attractor views and stiffness telemetry of a trained run",
        description=textwrap.fill(
            "Analyse a trained ODE run: find its fixed and slow points with the input held at x* (Sussillo & "
            "Barak's method: minimise |f(h, x*)|^2/2 from states sampled along the run's trajectories, then "
            "Newton polish), classify them by their Jacobian eigenvalues (stable, marginally stable, saddle, "
            "unstable), draw them over the trajectories (3-D for N = 3, principal components for N > 3) and "
            "the flow with nullclines on 2-D slices, and measure stiffness along the solve (spectral radius of "
            "the Jacobian, dt*rho against the method's stability bound, gate timescales tau/G, stiffness "
            "ratio). Writes PNG figures, summary.json and fixed_points.json into RUN/analysis (or --out).",
            88,
        ),
        epilog="examples:\n  gnode analyze runs/flipflop-gnode-20240101-120000\n"
        "  gnode analyze RUN --marginal-tol 0.01 --initial-states 2048 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", type=Path, metavar="RUN", help="run folder (written by `gnode train`)")
    p.add_argument("--out", type=Path, help="folder for the figures and JSON (default: RUN/analysis)")
    p.add_argument(
        "--split",
        choices=("train", "val", "test"),
        default="test",
        help="split whose sequences drive the trajectories (default: test)",
    )
    p.add_argument("--sequences", type=int, default=64, help="trajectories to solve and draw (default: 64)")
    p.add_argument(
        "--initial-states",
        type=int,
        default=1024,
        help="fixed-point searches, started along the trajectories (default: 1024)",
    )
    p.add_argument("--noise", type=float, default=0.05, help="relative noise on the starting states (default: 0.05)")
    p.add_argument(
        "--input",
        type=float,
        nargs="+",
        metavar="X",
        help="the constant input x*, one number per model input (default: all zeros)",
    )
    p.add_argument(
        "--marginal-tol",
        type=float,
        help="|Re lambda| at most this counts as a marginal direction (default: 1 / the sequences' duration)",
    )
    p.add_argument(
        "--fixed-tol",
        type=float,
        default=d.fixed_tol,
        help=f"q = |f|^2/2 at most this is a fixed point, else a slow point (default: {d.fixed_tol:g})",
    )
    p.add_argument(
        "--slow-tol",
        type=float,
        default=d.slow_tol,
        help=f"candidates with q above this are dropped (default: {d.slow_tol:g})",
    )
    p.add_argument(
        "--dedup-tol",
        type=float,
        default=d.dedup_tol,
        help=f"points closer than this are one point (default: {d.dedup_tol:g})",
    )
    p.add_argument(
        "--outlier-scale",
        type=float,
        default=d.outlier_scale,
        help="drop points farther than this times the states' spread from every starting state; "
        f"0 keeps all (default: {d.outlier_scale:g})",
    )
    p.add_argument("--opt-steps", type=int, default=d.opt_steps, help=f"Adam steps on q (default: {d.opt_steps})")
    p.add_argument(
        "--newton-steps",
        type=int,
        default=d.newton_steps,
        help=f"Newton (Levenberg-Marquardt) polish steps (default: {d.newton_steps})",
    )
    p.add_argument(
        "--grid",
        type=int,
        default=AnalysisConfig.grid,
        help=f"points per side of the flow-slice grids (default: {AnalysisConfig.grid})",
    )
    p.add_argument(
        "--telemetry-method",
        choices=("auto", "exact", "krylov"),
        default="auto",
        help="spectral radius from exact eigenvalues or from JVP power iterates (default: auto = exact for N <= 64)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the starting states (default: 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_analyze)
    return p


def run_analyze(args) -> int:
    """Handler of `gnode analyze`: returns the exit status."""
    import torch

    prog = "gnode analyze"

    def usage(message: str) -> int:
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    if args.threads is not None and args.threads < 1:
        return usage(f"--threads must be >= 1, got {args.threads}")
    try:
        finder = FixedPointConfig(
            opt_steps=args.opt_steps,
            newton_steps=args.newton_steps,
            fixed_tol=args.fixed_tol,
            slow_tol=args.slow_tol,
            dedup_tol=args.dedup_tol,
            outlier_scale=args.outlier_scale or None,
        )
        config = AnalysisConfig(
            split=args.split,
            sequences=args.sequences,
            initial_states=args.initial_states,
            noise=args.noise,
            input=tuple(args.input) if args.input else None,
            marginal_tol=args.marginal_tol,
            finder=finder,
            grid=args.grid,
            telemetry_method=args.telemetry_method,
            seed=args.seed,
        )
    except ValueError as e:
        return usage(str(e))
    if not args.run.is_dir():
        return usage(f"no run folder at {args.run}")
    out = args.out if args.out is not None else args.run / "analysis"
    if (problem := folder_problem(out)) is not None:
        return usage(
            f"{'--out ' if args.out is not None else ''}{out}: {problem}; choose a folder you can write to with --out"
        )
    torch.set_num_threads(args.threads or 1)
    try:
        summary = analyze_run(args.run, out, config=config, progress=not args.no_progress)
    except ValueError as e:  # e.g. --input of the wrong length, a discrete-time run
        return usage(str(e))
    except FileNotFoundError as e:  # no config.json: not a run folder
        return usage(str(e))
    except CheckpointError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    plain = {k: v for k, v in summary.items() if not k.endswith("_object")}
    if args.json:
        print(json.dumps(plain, indent=2))
        return 0
    _print_summary(plain, out)
    return 0


def _print_summary(s: dict, out: Path) -> None:
    fp, tel = s["fixed_points"], s["telemetry"]
    m = s["model"]
    print(f"run {s.get('run')} ({m['family']}, N = {m['n']}, {s.get('weights')} weights), input x* = {s['input']}")
    print(f"fixed points: {fp['n_fixed']} (+ {fp['n_slow']} slow points) from {fp['n_candidates']} searches")
    for kind in ("fixed", "slow"):
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fp["counts"][kind].items() if v)
        if counts:
            print(f"  {kind}: {counts}")
    print(
        f"  marginal: |Re lambda| <= {s['marginal_tol']:.3g}; marginally stable fixed points: "
        f"{fp['n_marginally_stable_fixed']}"
    )
    bound = tel["bound"]
    print(
        f"stiffness along the solve ({tel['alg']}, stability bound "
        f"{bound if isinstance(bound, str) else f'{bound:.4g}'}):"
    )
    print(
        f"  rho(J) max {tel['rho_max']:.4g}, dt*rho/bound max {tel['ratio_max']:.3g}, stability-limited "
        f"steps {100 * tel['stability_limited_fraction']:.1f}%"
    )
    if "tau_min" in tel:
        print(
            f"  gate timescales tau/G: min {tel['tau_min']:.3g}, max {tel['tau_max']:.3g}, spread max "
            f"{tel['tau_spread_max']:.3g}"
        )
    if tel.get("stiffness_ratio_median") is not None:
        print(f"  stiffness ratio median {tel['stiffness_ratio_median']:.3g} (large near marginal directions)")
    print(f"figures and JSON in {out}:")
    for name in (*s["figures"].values(), "summary.json", "fixed_points.json"):
        print(f"  {out / name}")
