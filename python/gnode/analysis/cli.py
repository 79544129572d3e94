"""`gnode analyze RUN`: the command-line face of `gnode.analysis.report.analyze_run`.

The `gnode` command line (gnode/cli.py) wires it in with

    from gnode.analysis.cli import add_subparser
    add_subparser(sub)          # sub = the `gnode` subparsers; adds "analyze" with func=run_analyze

Bad options print one line on stderr and return 2; a run that cannot be analysed returns 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

EXIT_USAGE, EXIT_FAILURE = 2, 1


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add `analyze` to an argparse subparsers object; its handler is `run_analyze` (in `func`)."""
    from gnode.analysis.fixed_points import FixedPointConfig

    d = FixedPointConfig()
    p = subparsers.add_parser(
        "analyze", help="fixed points, attractor views and stiffness telemetry of a trained run",
        description=textwrap.fill(
            "Analyse a trained ODE run: find its fixed and slow points with the input held at x* (Sussillo & "
            "Barak's method: minimise |f(h, x*)|^2/2 from states sampled along the run's trajectories, then "
            "Newton polish), classify them by their Jacobian eigenvalues (stable, marginally stable, saddle, "
            "unstable), draw them over the trajectories (3-D for N = 3, principal components for N > 3) and "
            "the flow with nullclines on 2-D slices, and measure stiffness along the solve (spectral radius of "
            "the Jacobian, dt*rho against the method's stability bound, gate timescales tau/G, stiffness "
            "ratio). Writes PNG figures, summary.json and fixed_points.json into RUN/analysis (or --out).", 88),
        epilog="examples:\n  gnode analyze runs/flipflop-gnode-20240101-120000\n"
               "  gnode analyze RUN --marginal-tol 0.01 --initial-states 2048 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, metavar="RUN", help="run folder (written by `gnode train`)")
    p.add_argument("--out", type=Path, help="folder for the figures and JSON (default: RUN/analysis)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="split whose sequences drive the trajectories (default: test)")
    p.add_argument("--sequences", type=int, default=64, help="trajectories to solve and draw (default: 64)")
    p.add_argument("--initial-states", type=int, default=1024,
                   help="fixed-point searches, started along the trajectories (default: 1024)")
    p.add_argument("--noise", type=float, default=0.05,
                   help="relative noise on the starting states (default: 0.05)")
    p.add_argument("--input", type=float, nargs="+", metavar="X",
                   help="the constant input x*, one number per model input (default: all zeros)")
    p.add_argument("--marginal-tol", type=float,
                   help="|Re lambda| at most this counts as a marginal direction (default: 1 / the sequences' "
                        "duration)")
    p.add_argument("--fixed-tol", type=float, default=d.fixed_tol,
                   help=f"q = |f|^2/2 at most this is a fixed point, else a slow point (default: {d.fixed_tol:g})")
    p.add_argument("--slow-tol", type=float, default=d.slow_tol,
                   help=f"candidates with q above this are dropped (default: {d.slow_tol:g})")
    p.add_argument("--dedup-tol", type=float, default=d.dedup_tol,
                   help=f"points closer than this are one point (default: {d.dedup_tol:g})")
    p.add_argument("--outlier-scale", type=float, default=d.outlier_scale,
                   help="drop points farther than this times the states' spread from every starting state; "
                        f"0 keeps all (default: {d.outlier_scale:g})")
    p.add_argument("--opt-steps", type=int, default=d.opt_steps, help=f"Adam steps on q (default: {d.opt_steps})")
    p.add_argument("--newton-steps", type=int, default=d.newton_steps,
                   help=f"Newton (Levenberg-Marquardt) polish steps (default: {d.newton_steps})")
    p.add_argument("--telemetry-method", choices=("auto", "exact", "krylov"), default="auto",
                   help="spectral radius from exact eigenvalues or from JVP power iterates (default: auto = "
                        "exact for N <= 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting states (default: 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: 1)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_analyze)
    return p


def run_analyze(args) -> int:
    """Handler of `gnode analyze`: returns the exit status."""
    import torch

    from gnode.analysis.fixed_points import FixedPointConfig
    from gnode.analysis.report import AnalysisConfig, analyze_run

    prog = "gnode analyze"
    if args.threads is not None and args.threads < 1:
        print(f"{prog}: error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return EXIT_USAGE
    torch.set_num_threads(args.threads or 1)
    try:
        finder = FixedPointConfig(opt_steps=args.opt_steps, newton_steps=args.newton_steps,
                                  fixed_tol=args.fixed_tol, slow_tol=args.slow_tol, dedup_tol=args.dedup_tol,
                                  outlier_scale=args.outlier_scale or None)
        config = AnalysisConfig(split=args.split, sequences=args.sequences, initial_states=args.initial_states,
                                noise=args.noise, input=tuple(args.input) if args.input else None,
                                marginal_tol=args.marginal_tol, finder=finder,
                                telemetry_method=args.telemetry_method, seed=args.seed)
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not args.run.is_dir():
        print(f"{prog}: error: no run folder at {args.run}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        summary = analyze_run(args.run, args.out, config=config)
    except ValueError as e:  # e.g. --input of the wrong length, a discrete-time run
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    plain = {k: v for k, v in summary.items() if not k.endswith("_object")}
    if args.json:
        print(json.dumps(plain, indent=2))
        return 0
    _print_summary(plain)
    return 0


def _print_summary(s: dict) -> None:
    fp, tel = s["fixed_points"], s["telemetry"]
    m = s["model"]
    print(f"run {s.get('run')} ({m['family']}, N = {m['n']}, {s.get('weights')} weights), input x* = {s['input']}")
    print(f"fixed points: {fp['n_fixed']} (+ {fp['n_slow']} slow points) from {fp['n_candidates']} searches")
    for kind in ("fixed", "slow"):
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in fp["counts"][kind].items() if v)
        if counts:
            print(f"  {kind}: {counts}")
    print(f"  marginal: |Re lambda| <= {s['marginal_tol']:.3g}; marginally stable fixed points: "
          f"{fp['n_marginally_stable_fixed']}")
    bound = tel["bound"]
    print(f"stiffness along the solve ({tel['alg']}, stability bound {bound if isinstance(bound, str) else f'{bound:.4g}'}):")
    print(f"  rho(J) max {tel['rho_max']:.4g}, dt*rho/bound max {tel['ratio_max']:.3g}, stability-limited "
          f"steps {100 * tel['stability_limited_fraction']:.1f}%")
    if "tau_min" in tel:
        print(f"  gate timescales tau/G: min {tel['tau_min']:.3g}, max {tel['tau_max']:.3g}, spread max "
              f"{tel['tau_spread_max']:.3g}")
    if tel.get("stiffness_ratio_median") is not None:
        print(f"  stiffness ratio median {tel['stiffness_ratio_median']:.3g} (large near marginal directions)")
    print("figures:")
    for path in s["figures"].values():
        print(f"  {path}")
