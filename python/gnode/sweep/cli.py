"""`gnode sweep SPEC`: run a sweep from its YAML/JSON specification.

`add_subparser` registers the "sweep" command on the `gnode` parser (gnode.cli) with `func=run_command`, which
returns the exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

EXAMPLE = """\
example sweep.yaml (a flip-flop comparison; see `gnode.sweep.spec` for every key):

  trial: flipflop                # gnode.sweep.trials:train_flipflop, or "package.module:function"
  base:
    train: {epochs: 10}
  grid:
    model.kind: [gnode, mgru, elman]
    train.seed: [0, 1, 2]

examples:
  gnode sweep sweep.yaml                          # local Ray on every CPU; results in sweeps/sweep
  gnode sweep sweep.yaml --num-cpus 2 --out sweeps/ff
  gnode sweep sweep.yaml --out sweeps/ff          # again: resumes, running only the missing trials
  gnode sweep sweep.yaml --address auto           # on the Ray cluster this machine joined
  gnode sweep sweep.yaml --list                   # the trials, without running them

a Ray cluster: `ray start --head --port 6379` on one machine, `ray start --address HEAD:6379` on the others
(each with gnode installed), then `gnode sweep SPEC --address auto` on any of them; --out must be on a
filesystem every node sees for the trials' own folders to land there (the table always does)."""


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add `gnode sweep` to `subparsers` (the gnode parser's `add_subparsers()` object)."""
    p = subparsers.add_parser(
        "sweep",
        help="run many independent trials (seeds, models, sizes, solvers) on Ray",
        description=textwrap.fill(
            "Run every trial of a sweep specification (a YAML or JSON grid over task, model, sizes, seeds and "
            "solver options) as a Ray task: on a local Ray by default, or on a cluster with --address. Each "
            "finished trial is journaled at once, so a sweep that is killed and started again with the same --out "
            "runs only the trials still missing; a trial that fails is run again once, then recorded with its "
            "error while the others go on. Writes results.json, results.csv and figures/<metric>.png into --out. "
            "Exit status 0 when every trial succeeded, 1 when some failed (their errors are in the table), 2 for "
            "a bad specification or option.",
            88,
        ),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", type=Path, metavar="SPEC", help="the sweep specification (.yaml, .yml or .json)")
    p.add_argument(
        "--out",
        type=Path,
        help="sweep folder (default: sweeps/<spec name>); a sweep started again with the same folder resumes there",
    )
    where = p.add_argument_group("where the trials run")
    where.add_argument(
        "--address",
        metavar="ADDRESS",
        help="join this Ray cluster ('auto', HOST:PORT or ray://HOST:10001) instead of starting a local Ray",
    )
    where.add_argument(
        "--num-cpus",
        type=int,
        metavar="N",
        help="CPUs of the local Ray (default: all of this machine's); each trial takes the spec's "
        "cpus_per_trial (default 1)",
    )
    where.add_argument(
        "--local", action="store_true", help="no Ray: run the trials one after the other in this process"
    )
    p.add_argument("--retry-failed", action="store_true", help="run the trials recorded as failed again")
    p.add_argument("--list", action="store_true", help="print the trials and exit")
    p.add_argument("--no-figures", action="store_true", help="write no figures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_command)
    return p


def _usage(message: str) -> int:
    print(f"gnode sweep: error: {message}", file=sys.stderr)
    return 2


def run_command(args) -> int:
    from gnode.jobs import JournalError, LocalExecutor, RayExecutor, ray_missing_message
    from gnode.sweep.runner import run_sweep
    from gnode.sweep.spec import SweepSpec, SweepSpecError

    if os.getcwd() not in sys.path:  # a study's own trial module in the current folder, as `python -m` finds it
        sys.path.insert(0, os.getcwd())
    try:
        spec = SweepSpec.load(args.spec)
    except SweepSpecError as e:
        return _usage(str(e))
    trials = spec.expand()
    if args.list:
        print(f"{spec.name}: {len(trials)} trials of {spec.function_path}")
        for t in trials:
            print(f"  {t.index:4d}  {t.slug}  {t.point}")
        return 0
    if args.num_cpus is not None and args.num_cpus < 1:
        return _usage(f"--num-cpus must be >= 1, got {args.num_cpus}")
    if args.local and (args.address or args.num_cpus):
        return _usage("--local runs the trials in this process: leave out --address and --num-cpus")
    if args.local:
        executor = LocalExecutor()
    else:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            return _usage(
                ray_missing_message("gnode sweep") + ", or pass --local to run the trials one after the "
                "other in this process"
            )
        executor = RayExecutor(args.address, num_cpus=args.num_cpus, cpus_per_task=spec.cpus_per_trial)
    out = args.out or Path("sweeps") / spec.name
    if out.exists() and not out.is_dir():
        return _usage(f"--out {out} is a file; choose a folder for the sweep")
    print(f"gnode sweep: {len(trials)} trials of {spec.function_path} on {executor.describe()}; folder {out}")
    try:
        results = run_sweep(
            spec,
            out,
            executor=executor,
            retry_failed=args.retry_failed,
            progress=not args.quiet,
            figures=not args.no_figures,
        )
    except (SweepSpecError, JournalError) as e:
        return _usage(str(e))
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the finished trials are in {out / 'journal.jsonl'}; continue with\n"
            f"  gnode sweep {args.spec} --out {out}",
            file=sys.stderr,
        )
        return 130
    m = results.meta
    print(f"{m['ok']} of {m['trials']} trials succeeded ({m['ran_now']} run now, {m['wall_seconds_now']:.0f} s)")
    for r in results.rows:
        if r["status"] != "ok":
            print(f"  failed: trial {r['trial']} ({r['folder']}): {r['error']}")
    for what, path in m["written"].items():
        print(f"wrote {what}: {path}")
    return 0 if m["failed"] == 0 else 1
