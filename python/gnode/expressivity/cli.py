"""`gnode expressivity`: the expressivity sweep from the command line.

The `gnode` command line (gnode/cli.py) wires it in with

    from gnode.expressivity.cli import add_subparser
    add_subparser(sub)          # sub = the `gnode` subparsers; adds "expressivity" with func=run_cli

Bad options print one line on stderr and return 2; a sweep that cannot run (a journal of other settings in
--out, Ray missing) returns 1.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

EXIT_USAGE, EXIT_FAILURE = 2, 1

# The two presets. --quick shows the trends on a small grid within minutes on a 2-core CPU; --full is the
# issue's grid (hours to days on such a machine: run it on Ray with --ray / --address).
PRESETS = {
    "quick": {
        "families": ("gnode", "node"),
        "latents": (2, 4),
        "depths": (1, 2),
        "widths": (16,),
        "matched": (),
        "grid": (1, 2, 4, 8),
        "per_round": 2,
        "refine": 3,
        "steps": 300,
    },
    "full": {
        "families": ("gnode", "node"),
        "latents": (2, 4, 8, 16, 32),
        "depths": (1, 2, 3),
        "widths": (32,),
        "matched": ("mgru", "elman", "gru", "lstm"),
        "grid": (1, 2, 4, 8, 16, 32),
        "per_round": 3,
        "refine": 7,
        "steps": 1500,
    },
}


def add_subparser(subparsers) -> argparse.ArgumentParser:
    from gnode.expressivity.families import FAMILIES
    from gnode.expressivity.fit import FitConfig
    from gnode.expressivity.measure import MeasureConfig

    m, f = MeasureConfig(), FitConfig()
    q = PRESETS["quick"]

    def words(values) -> str:
        return " ".join(map(str, values))

    p = subparsers.add_parser(
        "expressivity",
        help="how complex a trajectory each model configuration can generate (paper sec. 4)",
        description=textwrap.fill(
            "Measure expressivity: for each configuration (model family, phase-space dimension N, flow-field "
            "depth L and width W), the largest number K of random Fourier features that an autonomous model "
            "reproduces (median NMSE over seeds <= epsilon after fitting), found on a geometric grid of K and "
            "refined between the last success and the first failure. Writes results.json, points.csv, "
            "fits.csv, table.txt and figures (K* against N per depth, K* against parameter count per family, "
            "example fits at the edge of capacity) into --out. A sweep that is interrupted resumes when "
            "started again with the same --out and settings. The measure is defined in "
            "gnode.expressivity.measure (the paper's own definition was not at hand; this one tests the same "
            "claim).",
            88,
        ),
        epilog=textwrap.dedent(f"""\
            presets:
              --quick (default)  families {words(q["families"])}, N {words(q["latents"])}, L {words(q["depths"])}, \
W {q["widths"][0]}, no matched families,
                                 K grid {words(q["grid"])}, {q["steps"]} steps per fit: under 10 minutes on a 2-core CPU
              --full             families gnode node, N 2 4 8 16 32, L 1 2 3, W 32, matched mgru elman gru lstm,
                                 K grid 1 2 4 8 16 32, 1500 steps per fit: days on one laptop; use --ray
            families: {"; ".join(f"{k}: {v}" for k, v in FAMILIES.items())}

            examples:
              gnode expressivity
              gnode expressivity --full --ray --out runs/expressivity-full
              gnode expressivity --families gnode node --latent 2 3 4 --depth 1 2 3 --matched none"""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--quick", dest="preset", action="store_const", const="quick", help="the small grid (default)")
    preset.add_argument("--full", dest="preset", action="store_const", const="full", help="the issue's full grid")
    g = p.add_argument_group("configurations (override the preset)")
    g.add_argument("--families", nargs="+", metavar="FAMILY", help="families on the full grid")
    g.add_argument("--latent", "-N", nargs="+", type=int, metavar="N", help="phase-space dimensions")
    g.add_argument("--depth", nargs="+", type=int, metavar="L", help="flow-field depths (gnode, node)")
    g.add_argument("--width", nargs="+", type=int, metavar="W", help="hidden widths of F and G (L > 1)")
    g.add_argument(
        "--matched",
        nargs="+",
        metavar="FAMILY",
        help="families sized by N alone, measured at each gnode configuration's parameter count "
        "('none' for no matched families)",
    )
    g.add_argument("--d-out", type=int, default=m.d_out, help=f"outputs of the target (default {m.d_out})")
    g = p.add_argument_group("the measure")
    g.add_argument(
        "--epsilon", type=float, default=m.epsilon, help=f"largest NMSE that counts as reproduced (default {m.epsilon})"
    )
    g.add_argument("--grid", nargs="+", type=int, metavar="K", help="the geometric grid of K (increasing)")
    g.add_argument("--seeds", type=int, default=m.seeds, help=f"fits per K; the median decides (default {m.seeds})")
    g.add_argument("--refine", type=int, help="K values per refinement round (1: bisection)")
    g.add_argument("--steps", type=int, help="Adam steps per fit at most")
    g.add_argument("--lr", type=float, default=f.lr, help=f"Adam learning rate (default {f.lr})")
    g.add_argument("--seed", type=int, default=m.seed, help="base seed of weights and targets (default 0)")
    g = p.add_argument_group("running")
    g.add_argument("--out", type=Path, help="output folder (default runs/expressivity-<preset>)")
    g.add_argument(
        "--ray", action="store_true", help="run the configurations as Ray tasks (a local Ray unless --address)"
    )
    g.add_argument("--address", help="join this Ray cluster ('auto', HOST:PORT); implies --ray")
    g.add_argument("--cpus", type=int, help="CPUs of a local Ray (default: all)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.set_defaults(func=run_cli)
    return p


class _Usage(Exception):
    pass


def _settings(args):
    """(SweepGrid, MeasureConfig, preset name) from the options; _Usage for bad ones (one line)."""
    from gnode.expressivity.fit import FitConfig
    from gnode.expressivity.measure import MeasureConfig
    from gnode.expressivity.sweep import SweepGrid

    name = args.preset or "quick"
    pre = PRESETS[name]
    matched = pre["matched"] if args.matched is None else tuple(x for x in args.matched if x != "none")
    try:
        grid = SweepGrid(
            families=tuple(args.families or pre["families"]),
            latents=tuple(args.latent or pre["latents"]),
            depths=tuple(args.depth or pre["depths"]),
            widths=tuple(args.width or pre["widths"]),
            matched=matched,
            d_out=args.d_out,
        )
        fit = replace(FitConfig(), steps=args.steps or pre["steps"], lr=args.lr)
        measure = MeasureConfig(
            epsilon=args.epsilon,
            seeds=args.seeds,
            grid=tuple(args.grid or pre["grid"]),
            per_round=pre["per_round"],
            refine=args.refine or pre["refine"],
            d_out=args.d_out,
            fit=fit,
            seed=args.seed,
        )
    except (ValueError, TypeError) as e:
        raise _Usage(str(e)) from None
    return grid, measure, name


def run_cli(args) -> int:
    prog = "gnode expressivity"
    try:
        grid, measure, name = _settings(args)
    except _Usage as e:
        print(f"{prog}: error: {e} (see `{prog} --help`)", file=sys.stderr)
        return EXIT_USAGE
    from gnode.expressivity.report import format_table, write_results
    from gnode.expressivity.sweep import machine, plan_points, run_points
    from gnode.jobs import JournalError, LocalExecutor, RayExecutor

    out = args.out or Path("runs") / f"expressivity-{args.preset or 'quick'}"
    use_ray = args.ray or args.address is not None
    executor = RayExecutor(args.address, num_cpus=args.cpus) if use_ray else LocalExecutor()
    points = plan_points(grid)
    changed = [
        k
        for k in ("families", "latent", "depth", "width", "matched", "grid", "steps", "refine")
        if getattr(args, k) is not None
    ]
    if changed:
        name = f"{name}, with {', '.join(changed)} set"
    print(f"{len(points)} configurations ({name} preset) into {out}, {executor.describe()}", file=sys.stderr)
    start = time.perf_counter()
    try:
        results, failures = run_points(
            points,
            measure,
            out,
            executor=executor,
            progress=not args.no_progress,
            log=lambda s: print(s, file=sys.stderr),
        )
    except (JournalError, ImportError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    meta = {
        **machine(),
        "preset": name,
        "configurations": len(points),
        "executor": executor.describe(),
        "wall_seconds_this_session": time.perf_counter() - start,
        "cpu_seconds_all_configurations": sum(r.get("cpu_seconds", 0.0) for r in results),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    written = write_results(results, failures, measure.as_dict(), meta, out, figures=not args.no_figures)
    print(format_table(results, failures))
    print(f"\nwrote {', '.join(str(p) for p in written.values())}", file=sys.stderr)
    return EXIT_FAILURE if failures else 0
