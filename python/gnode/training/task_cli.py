"""The command-line face of the real-data tasks: `gnode train TASK`, `gnode data walker2d`, and `gnode evaluate` /
`gnode plot` on their run folders.

The `gnode` command line (gnode/cli.py) wires it in with

    add_train_parsers(tasks, options)   # tasks = `gnode train`'s subparsers; options = the model/solver/train
                                        # option table of `gnode train flipflop`, so both take the same flags
    add_data_parser(sub)                # sub = the `gnode` subparsers
    if is_task_run(RUN): return evaluate_task_run(args) / plot_task_run(args)

Handlers print one line on stderr for bad options (exit status 2) and for failures (1); Ctrl-C during training
saves a checkpoint and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from dataclasses import asdict, replace
from pathlib import Path

EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130

# task options: (config field, flags, type, help); the UEA ones serve every UEA task
_UEA_OPTIONS = [
    ("val_fraction", ["--val-fraction"], float, "fraction of each class of the training split held out for validation"),
    ("dt", ["--sample-dt"], float, "time between (kept) samples in the model's time unit"),
    ("every", ["--every"], int, "keep every this many samples of each series"),
    ("max_train", ["--max-train"], int, "use at most this many training series (stratified; default: all)"),
    ("seed", ["--data-seed"], int, "seed of the validation hold-out"),
]
_TASK_OPTIONS = {
    "japanesevowels": _UEA_OPTIONS,
    "basicmotions": _UEA_OPTIONS,
    "charactertrajectories": [
        (
            "data",
            ["--data"],
            str,
            (
                "folder holding CharacterTrajectories_TRAIN.ts and _TEST.ts "
                "(or CharacterTrajectories/ with them); required"
            ),
        )
    ]
    + _UEA_OPTIONS,
    "speechcommands": [
        (
            "data",
            ["--data"],
            str,
            (
                "the extracted Speech Commands folder (one folder per word, validation_list.txt, "
                "testing_list.txt); required"
            ),
        ),
        ("words", ["--words"], str, "comma-separated words to classify"),
        ("n_mfcc", ["--n-mfcc"], int, "MFCC coefficients per frame"),
        ("hop_length", ["--hop-length"], int, "audio samples between frames (16 kHz; 100 gives 161 frames)"),
        ("n_fft", ["--n-fft"], int, "audio samples per analysis window (at least --hop-length)"),
        ("max_per_word", ["--max-per-word"], int, "training utterances per word (0: all)"),
        ("seed", ["--data-seed"], int, "seed of the training subset"),
    ],
    "walker2d": [
        (
            "data",
            ["--data"],
            str,
            (
                "folder of generated rollouts (gnode data walker2d), generated there if empty "
                "(default: data/walker2d-<episodes>x<steps>-seed<seed>)"
            ),
        ),
        ("generation.episodes", ["--episodes"], int, "episodes to generate"),
        ("generation.steps", ["--steps"], int, "control steps per episode (0.008 s each)"),
        ("generation.seed", ["--generation-seed"], int, "seed of the rollouts"),
        ("drop", ["--drop"], float, "fraction of time steps dropped at random (irregular sampling)"),
        ("window", ["--window"], int, "kept samples per sequence"),
        ("stride", ["--stride"], int, "samples between the starts of consecutive sequences"),
        ("seed", ["--data-seed"], int, "seed of the episode split and of the dropped steps"),
    ],
}
_ZERO_IS_NONE = ("grad_clip", "patience", "divergence_factor", "max_per_word", "max_train")


class _Usage(Exception):
    pass


def _fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def _task_default(config, path: str):
    """The default of a task option `path` ("drop", "generation.steps") in a task configuration object."""
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return ",".join(value) if isinstance(value, tuple) else value


def add_train_parsers(tasks, options: dict) -> None:
    """`gnode train TASK` for every task of `gnode.tasks.registry`; `options` is `gnode train flipflop`'s table
    {section: [(field, flags, type, choices, help)]}, whose model, solver and train sections are reused."""
    from gnode.tasks.registry import get_task, task_names
    from gnode.training.task_runs import default_run

    for name in task_names():
        entry = get_task(name)
        base = default_run(name)
        p = tasks.add_parser(
            name,
            help=entry.about,
            description=textwrap.fill(
                f"{entry.about}. Trains a model ({entry.kind}: "
                + (
                    "cross-entropy at each sequence's readout time, accuracy and confusion matrix"
                    if entry.kind == "classification"
                    else "MSE at every observed sample, predicted against true trajectories"
                )
                + ") into a run folder: config.json, standardization.json, checkpoint.pt, history.json/csv, "
                "summary.json, metrics.json and figures. The defaults train a small gnODE in a few minutes on a "
                "laptop CPU.",
                88,
            ),
            epilog=f"examples:\n  gnode train {name}{' --data DIR' if entry.needs_data else ''}\n"
            f"  gnode train {name}{' --data DIR' if entry.needs_data else ''} --model gru -N 24 --out runs/gru\n"
            f"  gnode train {name}{' --data DIR' if entry.needs_data else ''} --out runs/gru --resume\n"
            "  gnode evaluate RUN   |   gnode plot RUN",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            argument_default=argparse.SUPPRESS,
        )
        g = p.add_argument_group(f"task ({name})")
        task_config = base.task_config()
        for field_name, flags, typ, text in _TASK_OPTIONS[name]:
            default = _task_default(task_config, field_name)
            shown = "" if "default" in text or "required" in text else f" (default: {default})"
            g.add_argument(*flags, dest=f"task.{field_name}", type=typ, metavar=typ.__name__.upper(), help=text + shown)
        defaults = {"model": asdict(base.model), "solver": asdict(base.solver), "train": asdict(base.train)}
        for section in ("model", "solver", "train"):
            g = p.add_argument_group({"solver": "ODE solver (ODE models)", "train": "training"}.get(section, section))
            for field_name, flags, typ, choices, text in options[section]:
                if field_name not in defaults[section]:
                    continue
                default = defaults[section][field_name]
                shown = 0 if field_name in _ZERO_IS_NONE and default is None else default
                text = text.replace("(default: half the sampling step --dt)", "(default: half the sampling step)")
                g.add_argument(
                    *flags,
                    dest=f"{section}.{field_name}",
                    type=typ,
                    choices=choices,
                    metavar=None if choices else typ.__name__.upper(),
                    help=text if "default" in text else f"{text} (default: {shown})",
                )
        g = p.add_argument_group("run")
        g.add_argument("--out", type=Path, help=f"run folder (default: runs/{name}-<model>-<date-time>)")
        g.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
        g.add_argument("--threads", type=int, help="torch CPU threads (default: 1)")
        g.add_argument("--no-progress", action="store_true", help="no progress bars")
        g.add_argument("--no-figures", action="store_true", help="skip the figures")
        p.set_defaults(func=cmd_train_task, task_name=name)


def _given(args) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            if name in _ZERO_IS_NONE and value == 0:
                value = None
            if name == "words" and isinstance(value, str):
                value = tuple(w.strip() for w in value.split(",") if w.strip())
            out.setdefault(section, {})[name] = value
    return out


def _config_from(given: dict, base):
    """`base` (a TaskRunConfig) with the given options replaced; a ValueError/TypeError names a bad one."""
    from gnode.tasks.registry import get_task
    from gnode.training.task_runs import TaskRunConfig

    options = json.loads(json.dumps(asdict(base.task_config())))
    fixed = set(get_task(base.task).fixed)
    options = {k: v for k, v in options.items() if k not in fixed}
    for path, value in given.get("task", {}).items():
        *parents, leaf = path.split(".")
        d = options
        for part in parents:
            d = d.setdefault(part, {})
        d[leaf] = value
    parts = {s: replace(getattr(base, s), **given.get(s, {})) for s in ("model", "solver", "train")}
    return TaskRunConfig(base.task, options, **parts)


def cmd_train_task(args) -> int:
    import torch

    from gnode.tasks.sequences import DataFormatError
    from gnode.training.experiment import RunSetupError, config_differences
    from gnode.training.task_runs import CONFIG, default_run, read_task_config, run_task
    from gnode.training.trainer import TrainingDiverged

    name = args.task_name
    prog = f"gnode train {name}"
    given = _given(args)
    progress = not getattr(args, "no_progress", False)
    resume, out = getattr(args, "resume", False), getattr(args, "out", None)
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        return _fail(prog, f"--threads must be >= 1, got {threads}", EXIT_USAGE)
    if resume and out is None:
        return _fail(prog, "--resume needs --out RUN, the folder of the run to continue", EXIT_USAGE)
    torch.set_num_threads(threads or 1)
    try:
        base = default_run(name)
        if resume and (out / CONFIG).exists():
            saved = read_task_config(out)
            if saved.task != name:
                raise _Usage(f"{out} holds a {saved.task} run, not {name}")
            base = saved
        config = _config_from(given, base)
        config = replace(config, train=replace(config.train, progress=progress))
        if resume and (out / CONFIG).exists() and config.results_affecting() != base.results_affecting():
            diff = config_differences(base.results_affecting(), config.results_affecting())
            raise _Usage(f"options differ from the saved run ({diff}); resume with the same options (or none)")
    except (ValueError, TypeError, FileNotFoundError, _Usage) as e:
        return _fail(prog, str(e), EXIT_USAGE)
    if out is None:
        out = Path("runs") / f"{name}-{config.model.kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = run_task(
            config,
            out,
            resume=resume,
            figures=not getattr(args, "no_figures", False),
            log=lambda m: print(m, file=sys.stderr),
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: checkpoint saved in {out}; continue with\n  gnode train {name} --out {out} --resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (RunSetupError, DataFormatError) as e:
        return _fail(prog, str(e), EXIT_USAGE)
    except ImportError as e:
        return _fail(prog, f"{e} (the real-data tasks need the data extra: pip install -e '.[data]')", EXIT_FAILURE)
    except TrainingDiverged as e:
        return _fail(prog, f"{e}; start over in another --out with a lower --lr", EXIT_FAILURE)
    print(f"run folder: {out}")
    if result.already_finished:
        print("the run had already finished; nothing to do")
    print_summary(result.summary)
    return 0


def print_summary(s: dict) -> None:
    if not s:
        return
    rows = [("status", s.get("status")), ("epochs", f"{s.get('epochs_run')} (best {s.get('best_epoch')})")]
    if s.get("kind") == "classification":
        rows += [
            ("test accuracy", f"{s['test_accuracy']:.4f}"),
            ("validation accuracy", f"{s['val_accuracy']:.4f}"),
            ("test cross-entropy", f"{s['test_cross_entropy']:.4g}"),
        ]
    else:
        rows += [
            ("test MSE", f"{s['test_mse']:.4g} (standardised units)"),
            ("target variance", f"{s['target_variance_test']:.4g}"),
        ]
    rows += [
        ("parameters", s.get("n_params")),
        ("train time", f"{s.get('train_time_s', 0):.1f} s wall clock, {s.get('train_cpu_s', 0):.1f} s CPU"),
    ]
    if "test_nf_per_sequence" in s:
        rows.append(("mean nf per sequence (test)", f"{s['test_nf_per_sequence']:.0f}"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


# ----------------------------------------------------------------------------------------------------------
# gnode data walker2d


def add_data_parser(subparsers) -> argparse.ArgumentParser:
    from gnode.tasks.walker2d import ENV_ID, Walker2dGeneration

    d = Walker2dGeneration()
    p = subparsers.add_parser(
        "data",
        help="generate task data (Walker2d rollouts)",
        description="Generate the data of tasks that are simulated rather than downloaded.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="DATASET", parser_class=type(p))
    sub.required = True
    w = sub.add_parser(
        "walker2d",
        help=f"roll out {ENV_ID} (MuJoCo + Gymnasium) episodes",
        description=textwrap.fill(
            f"Roll out {ENV_ID} episodes under a mix of PD control toward periodic joint targets and "
            "Ornstein-Uhlenbeck action noise (see gnode.tasks.walker2d), recording the 17-d observations and 6-d "
            "actions at every control step, into OUT/walker2d.npz with OUT/manifest.json (versions, seeds, policy). "
            "The same seed gives the same data. Needs pip install 'gymnasium[mujoco]'.",
            88,
        ),
        epilog="example:\n  gnode data walker2d --episodes 64 --steps 256 --seed 0 --out data/walker2d\n"
        "  gnode train walker2d --data data/walker2d",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("--episodes", type=int, default=d.episodes, help=f"episodes (default: {d.episodes})")
    w.add_argument("--steps", type=int, default=d.steps, help=f"control steps per episode (default: {d.steps})")
    w.add_argument("--seed", type=int, default=d.seed, help=f"seed (default: {d.seed})")
    w.add_argument("--out", type=Path, help="output folder (default: data/walker2d-<episodes>x<steps>-seed<seed>)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.set_defaults(func=cmd_data_walker2d)
    return p


def cmd_data_walker2d(args) -> int:
    from gnode.tasks.sequences import DataFormatError
    from gnode.tasks.walker2d import DATA_FILE, MANIFEST, Walker2dGeneration, default_folder, generate_walker2d

    prog = "gnode data walker2d"
    try:
        gen = Walker2dGeneration(episodes=args.episodes, steps=args.steps, seed=args.seed)
    except (ValueError, TypeError) as e:
        return _fail(prog, str(e), EXIT_USAGE)
    out = args.out or default_folder(gen)
    if out.exists() and not out.is_dir():
        return _fail(prog, f"--out {out} is a file, not a folder", EXIT_USAGE)
    existed = (out / MANIFEST).exists()
    t0 = time.perf_counter()
    try:
        generate_walker2d(gen, out, progress=not args.no_progress)
    except DataFormatError as e:
        return _fail(prog, str(e), EXIT_USAGE)
    except ImportError as e:
        return _fail(prog, str(e), EXIT_FAILURE)
    what = "already there (same settings): kept" if existed else f"generated in {time.perf_counter() - t0:.1f} s"
    print(f"{out / DATA_FILE} and {out / MANIFEST}: {what}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# gnode evaluate / plot on task runs


def is_task_run(folder) -> bool:
    from gnode.training.task_runs import is_task_run as check

    return check(folder)


def evaluate_task_run(args) -> int:
    """`gnode evaluate RUN` for a task run: accuracy/cross-entropy or MSE, and nf, on the chosen splits, under the
    saved solver or one given by --solver/--reltol/--abstol/--solver-dt/--engine (and --dtype)."""
    import torch

    from gnode.tasks.sequences import DataFormatError
    from gnode.training.experiment import ODE_KINDS, RunSetupError, check_engine
    from gnode.training.task_runs import evaluate_run_model, load_task_run, read_task_config

    prog = "gnode evaluate"
    torch.set_num_threads(getattr(args, "threads", None) or 1)
    try:
        saved = read_task_config(args.run)
        changes = {
            k: getattr(args, k) for k in ("alg", "reltol", "abstol", "engine") if getattr(args, k, None) is not None
        }
        if getattr(args, "solver_dt", None) is not None:
            changes["dt"] = args.solver_dt
        solver = replace(saved.solver, **changes) if changes else None
        if solver is not None:
            if saved.model.kind not in ODE_KINDS:
                raise _Usage(f"the run's model ({saved.model.kind}) is discrete: it has no solver to override")
            check_engine(solver, gradients=False)
        run = load_task_run(args.run, solver=solver, dtype=getattr(args, "dtype", None), gradients=False)
    except (ValueError, TypeError, FileNotFoundError, _Usage, RunSetupError, DataFormatError) as e:
        return _fail(prog, str(e), EXIT_USAGE)
    kind = run.data.meta["kind"]
    metrics = evaluate_run_model(
        kind, run.model, run.data, splits=tuple(args.split), batch_size=run.config.train.eval_batch_size
    )
    result = {
        "run": str(args.run),
        "task": run.config.task,
        "kind": kind,
        "weights": run.weights,
        "dtype": run.config.model.dtype,
        "solver": asdict(run.config.solver) if run.config.model.kind in ODE_KINDS else None,
        **metrics,
    }
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"run {args.run} ({run.config.task}, {run.config.model.kind}, N = {run.config.model.latent}, "
        f"{run.weights} weights, {run.config.model.dtype})"
    )
    for split in args.split:
        m = metrics[split]
        nf = f", mean nf per sequence {m['nf_per_sequence']:.0f}" if "nf_per_sequence" in m else ""
        if kind == "classification":
            print(
                f"  {split:<5} accuracy {m['accuracy']:.4f}, cross-entropy {m['cross_entropy']:.4g} "
                f"({m['sequences']} sequences{nf})"
            )
        else:
            print(f"  {split:<5} MSE {m['mse']:.4g} in standardised units ({m['sequences']} sequences{nf})")
    return 0


def plot_task_run(args) -> int:
    """`gnode plot RUN` for a task run: redraw loss.png and confusion.png/.csv or predictions.png."""
    from gnode.tasks.sequences import DataFormatError
    from gnode.training.experiment import RunSetupError
    from gnode.training.task_runs import draw_task_figures, load_task_run

    try:
        run = load_task_run(args.run)
    except (ValueError, FileNotFoundError, RunSetupError, DataFormatError) as e:
        return _fail("gnode plot", str(e), EXIT_USAGE)
    for p in draw_task_figures(args.run, run.model, run.data, run.history, n_sequences=getattr(args, "sequences", 3)):
        print(p)
    return 0
