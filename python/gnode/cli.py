"""The `gnode` command line.

    gnode train flipflop [options]   train a model on the continuous flip-flop into a run folder
    gnode train TASK [options]       train on a real-data task: japanesevowels, basicmotions, walker2d,
                                     charactertrajectories, speechcommands (gnode.training.task_cli)
    gnode data walker2d [options]    generate Walker2d-v5 rollouts (MuJoCo + Gymnasium)
    gnode evaluate RUN               test (and validation) MSE of a trained run, optionally under another solver
    gnode plot RUN                   (re)draw a run's figures
    gnode analyze RUN                fixed points, attractor views and stiffness telemetry (gnode.analysis)
    gnode bench [options]            work-precision sets: methods, engines and peers (gnode.bench)
    gnode sweep SPEC                 many independent trials (seeds, models, solvers) on Ray (gnode.sweep)
    gnode expressivity [options]     the largest trajectory complexity each model reproduces (gnode.expressivity)
    gnode info                       versions, device, engines and whether each is available here
    gnode julia setup                install/precompile the Julia side of the "julia" engine

Bad options end with one line on stderr and exit status 2; failures while running (a damaged checkpoint,
a failed solve) with one line and status 1; Ctrl-C during training saves a checkpoint and exits with 130.
Nothing imports this module.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from dataclasses import asdict, fields
from pathlib import Path

EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130


class UsageError(Exception):
    """A bad option or argument: reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line (plus where to find help) instead of usage + error."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# ----------------------------------------------------------------------------------------------------------
# gnode train flipflop: options map 1:1 onto the fields of the run's config dataclasses.


def _train_options():
    """(section, field, flags, type, choices, help) for every option of `gnode train flipflop`."""
    from gnode.models.init import REGIMES
    from gnode.tasks.flipflop import AMPLITUDES
    from gnode.training.experiment import DTYPES, MODEL_KINDS
    from gnode.training.trainer import SCHEDULES

    kinds = "; ".join(f"{k}: {v}" for k, v in MODEL_KINDS.items())
    return {
        "task": [
            ("channels", ["--channels"], int, None, "number of bits n (inputs = outputs)"),
            ("duration", ["--duration"], float, None, "length of each sequence (time units; tau = 1)"),
            ("dt", ["--dt"], float, None, "sampling step of the sequences"),
            (
                "pulse_prob",
                ["--pulse-prob"],
                float,
                None,
                "probability that a pulse starts on a quiet channel at a sample",
            ),
            ("pulse_width", ["--pulse-width"], float, None, "pulse duration (rounded to whole samples)"),
            ("amplitude", ["--amplitude"], str, AMPLITUDES, "pulse amplitudes: uniform in [-1, 1] (continuous) or +-1"),
            ("min_amplitude", ["--min-amplitude"], float, None, "smallest |amplitude| of uniform pulses"),
            ("input_noise", ["--input-noise"], float, None, "std of Gaussian noise added to the inputs"),
            ("n_train", ["--n-train"], int, None, "training sequences"),
            ("n_val", ["--n-val"], int, None, "validation sequences"),
            ("n_test", ["--n-test"], int, None, "test sequences"),
            ("seed", ["--data-seed"], int, None, "seed of the task data"),
        ],
        "model": [
            ("kind", ["--model"], str, tuple(MODEL_KINDS), f"model kind ({kinds})"),
            ("latent", ["--latent", "-N"], int, None, "latent dimension N (hidden size for gru/lstm)"),
            ("depth_F", ["--depth-F"], int, None, "layers of the flow network F (gnode, node)"),
            ("depth_G", ["--depth-G"], int, None, "layers of the gate network G (gnode)"),
            ("width_F", ["--width-F"], int, None, "hidden width of F"),
            ("width_G", ["--width-G"], int, None, "hidden width of G"),
            ("phi_h", ["--phi-h"], str, ("tanh", "identity"), "output activation of F"),
            ("init", ["--init"], str, REGIMES, "initialisation regime of F (see gnode.models.init)"),
            ("gain", ["--gain"], float, None, "gain of the regime (default: the regime's own, 0.5, 1 or 2)"),
            ("tau", ["--tau"], float, None, "time constant tau"),
            ("h0", ["--h0"], str, ("zeros", "learnable"), "initial state"),
            ("dtype", ["--dtype"], str, tuple(DTYPES), "floating-point type of model and data"),
        ],
        "solver": [
            (
                "alg",
                ["--solver"],
                str,
                None,
                ("ODE method by name, e.g. Tsit5, RK4, DP5 or a call such as Tsit5() (gnode info lists them)"),
            ),
            (
                "sensealg",
                ["--sensealg"],
                str,
                None,
                ("gradient method, e.g. BackpropAdjoint, BacksolveAdjoint, 'InterpolatingAdjoint(checkpointing=True)'"),
            ),
            ("engine", ["--engine"], str, None, "ODE engine (gnode info lists them)"),
            ("reltol", ["--reltol"], float, None, "relative tolerance (adaptive methods)"),
            ("abstol", ["--abstol"], float, None, "absolute tolerance (adaptive methods)"),
            ("dt", ["--solver-dt"], float, None, "step of fixed-step methods (default: half the sampling step --dt)"),
            ("interpolation", ["--interpolation"], str, ("zoh", "linear", "cubic"), "how input samples become x(t)"),
            ("maxiters", ["--maxiters"], int, None, "step budget per trajectory"),
            (
                "compile",
                ["--compile"],
                bool,
                None,
                (
                    "trace each solver step into one compiled graph (explicit and "
                    "Rosenbrock methods; the first epoch pays about a minute of "
                    "compiling, later steps run 2-3x faster)"
                ),
            ),
        ],
        "train": [
            ("epochs", ["--epochs"], int, None, "passes over the training sequences"),
            ("batch_size", ["--batch-size"], int, None, "sequences per step"),
            ("lr", ["--lr"], float, None, "Adam learning rate"),
            ("lr_schedule", ["--lr-schedule"], str, SCHEDULES, "learning-rate schedule"),
            ("lr_min", ["--lr-min"], float, None, "final (cosine) or smallest (plateau) lr, as a fraction of --lr"),
            ("weight_decay", ["--weight-decay"], float, None, "Adam weight decay"),
            ("grad_clip", ["--grad-clip"], float, None, "clip the gradient norm to this (0: no clipping)"),
            ("val_every", ["--val-every"], int, None, "validate every this many epochs"),
            (
                "patience",
                ["--patience"],
                int,
                None,
                ("stop after this many validations without improvement (0: never)"),
            ),
            (
                "checkpoint_every",
                ["--checkpoint-every"],
                int,
                None,
                ("checkpoint every this many epochs (0: only at the end and on Ctrl-C)"),
            ),
            ("seed", ["--seed"], int, None, "seed of the initial weights and the mini-batch order"),
            (
                "divergence_factor",
                ["--divergence-factor"],
                float,
                None,
                (
                    "stop (exit status 1) when a batch's loss "
                    "exceeds this many times the first one's "
                    "(0: only on NaN/inf)"
                ),
            ),
        ],
    }


_SECTION_TITLES = {
    "task": "task (continuous flip-flop)",
    "model": "model",
    "solver": "ODE solver (ODE models)",
    "train": "training",
}


def _section_defaults():
    """The config class of each section and the values of `gnode train flipflop`'s defaults (RunConfig())."""
    from gnode.tasks.flipflop import FlipFlopConfig
    from gnode.training.experiment import ModelConfig, RunConfig, SolverConfig
    from gnode.training.trainer import TrainConfig

    classes = {"task": FlipFlopConfig, "model": ModelConfig, "solver": SolverConfig, "train": TrainConfig}
    run = RunConfig()
    return classes, {s: {f.name: getattr(getattr(run, s), f.name) for f in fields(c)} for s, c in classes.items()}


def _add_train_flipflop(sub):
    p = sub.add_parser(
        "flipflop",
        help="the continuous n-bit flip-flop memory task",
        description=textwrap.fill(
            "Train a model on the continuous n-bit flip-flop: each channel receives sparse pulses with a "
            "random amplitude and the output must hold the last amplitude per channel. Writes config.json, "
            "checkpoint.pt, history.json/csv, summary.json and figures into the run folder. With no options it "
            "trains a small gnODE (N = 3) on 3 channels in a few minutes on a laptop CPU.",
            88,
        ),
        epilog="examples:\n  gnode train flipflop\n  gnode train flipflop --model gru -N 16 --epochs 20\n"
        "  gnode train flipflop --solver Tsit5 --reltol 1e-4 --out runs/tsit5\n"
        "  gnode train flipflop --out runs/tsit5 --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    _, defaults = _section_defaults()
    for section, opts in _train_options().items():
        g = p.add_argument_group(_SECTION_TITLES[section])
        for field_name, flags, typ, choices, text in opts:
            default = defaults[section][field_name]
            shown = 0 if field_name in _ZERO_IS_NONE and default is None else default  # 0 means "never" there
            if typ is bool:  # --flag / --no-flag
                g.add_argument(
                    *flags,
                    dest=f"{section}.{field_name}",
                    action=argparse.BooleanOptionalAction,
                    help=f"{text} (default: {'on' if default else 'off'})",
                )
                continue
            g.add_argument(
                *flags,
                dest=f"{section}.{field_name}",
                type=typ,
                choices=choices,
                metavar=None if choices else typ.__name__.upper(),
                help=text if "default" in text else f"{text} (default: {shown})",
            )
    g = p.add_argument_group("run")
    g.add_argument(
        "--out",
        type=Path,
        help="run folder (default: runs/flipflop-<model>-<date>-<time>; must not "
        "hold a run unless --resume or --overwrite)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out exactly where it stopped (from "
        "its beginning if it stopped before its first checkpoint)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds a run, removing that run's checkpoint, config, metrics and figures",
    )
    g.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: 1; these models are small, so more threads mostly add synchronisation)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-figures", action="store_true", help="skip the figures")
    _add_launch_options(g)
    p.set_defaults(func=_data_parallel(_cmd_train_flipflop, _flipflop_out))
    return p


def _given_options(args) -> dict[str, dict]:
    """The options given on the command line, by section (argparse leaves the others out: SUPPRESS)."""
    out: dict[str, dict] = {}
    for key, value in vars(args).items():
        if "." in key:
            section, name = key.split(".", 1)
            if name in _ZERO_IS_NONE and value == 0:
                value = None
            out.setdefault(section, {})[name] = value
    return out


_ZERO_IS_NONE = ("grad_clip", "patience", "divergence_factor")  # on the command line, 0 stands for None (off)


def _build_config(given: dict[str, dict], base=None, progress: bool = True):
    from dataclasses import replace

    from gnode.training.experiment import RunConfig

    classes, _ = _section_defaults()
    base = base or RunConfig()
    parts = {}
    for section in classes:
        current = getattr(base, section)
        changes = dict(given.get(section, {}))
        if section == "train":
            changes["progress"] = progress
        try:
            parts[section] = replace(current, **changes)
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    try:
        return RunConfig(**parts)
    except ValueError as e:  # options that conflict across sections, e.g. a reltol the dtype cannot resolve
        raise UsageError(str(e)) from None


def check_out_folder(path: Path, flag: str = "--out") -> None:
    """A one-line `UsageError` unless `path` is, or can be made, a folder this process can write in."""
    from gnode.training.experiment import folder_problem

    if (problem := folder_problem(path)) is not None:
        raise UsageError(f"{flag} {path}: {problem}; choose a folder you can write to")


def _cmd_train_flipflop(args) -> int:
    import torch

    from gnode.training.checkpoint import CheckpointError
    from gnode.training.experiment import (
        CONFIG,
        RunSetupError,
        config_differences,
        read_config,
        run_flipflop,
    )
    from gnode.training.trainer import CHECKPOINT, TrainingDiverged

    given = _given_options(args)
    progress = not getattr(args, "no_progress", False)
    resume = getattr(args, "resume", False)
    overwrite = getattr(args, "overwrite", False)
    out = getattr(args, "out", None)
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    if resume and overwrite:
        raise UsageError("--resume continues a run and --overwrite starts it afresh: give one of them")
    if resume and out is None:
        raise UsageError("--resume needs --out RUN, the folder of the run to continue")
    if out is not None:
        check_out_folder(out)
    torch.set_num_threads(threads or 1)
    if resume and (out / CONFIG).exists():
        try:
            saved = read_config(out)
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(f"cannot resume: {e}") from None
        config = _build_config(given, saved, progress)
        if config.results_affecting() != saved.results_affecting():
            diff = config_differences(saved.results_affecting(), config.results_affecting())
            raise UsageError(
                f"options differ from the saved run ({diff}); resume with the same options (or none), "
                f"or start it over with `gnode train flipflop --out {out} --overwrite` and the new ones"
            )
    else:
        config = _build_config(given, None, progress)
        if out is None:
            out = _flipflop_out(args)
        elif not resume and not overwrite and ((out / CONFIG).exists() or (out / CHECKPOINT).exists()):
            raise UsageError(
                f"{out} already holds a run; continue it with `gnode train flipflop --out {out} --resume`, "
                f"or start it over with `gnode train flipflop --out {out} --overwrite` (removes its "
                "checkpoint, config, metrics and figures)"
            )
    try:
        result = run_flipflop(
            config,
            out,
            resume=resume,
            overwrite=overwrite,
            figures=not getattr(args, "no_figures", False),
            log=_note,
            world=getattr(args, "world", None),
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: checkpoint saved in {out}; continue with\n  gnode train flipflop --out {out} --resume"
            f"{_nproc_hint(args)}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except RunSetupError as e:  # options that only turn out wrong when the run is set up
        raise UsageError(str(e)) from None
    except TrainingDiverged as e:
        print(
            f"gnode train flipflop: error: {e}.\nStart over with other options, e.g.\n"
            f"  gnode train flipflop --out {out} --overwrite --lr {config.train.lr / 10:g}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except CheckpointError as e:  # a damaged checkpoint is never replaced unasked: say how to get out
        print(
            f"gnode train flipflop: error: {e}; once it is deleted, `gnode train flipflop --out {out} --resume` "
            "starts the run over from its config.json",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    s = result.summary
    print(f"run folder: {out}")
    if result.already_finished:
        print("the run had already finished; nothing to do")
    _print_summary(s)
    return 0


def _note(message: str) -> None:
    """A one-line notice on stderr (stdout carries results)."""
    print(message, file=sys.stderr)


def _print_summary(s: dict) -> None:
    if not s:
        return
    rows = [
        ("status", s.get("status")),
        ("epochs", f"{s.get('epochs_run')} (best {s.get('best_epoch')})"),
        ("test MSE", f"{s['test_mse']:.4g}"),
        ("target variance", f"{s['target_variance_test']:.4g}"),
        ("test MSE / variance", f"{s['normalized_test_mse']:.3g}" if s.get("normalized_test_mse") is not None else "-"),
        ("parameters", s.get("n_params")),
        ("train time", f"{s.get('train_time_s', 0):.1f} s wall clock, {s.get('train_cpu_s', 0):.1f} s CPU"),
    ]
    if "test_nf" in s:
        rows.append(("mean nf per trajectory (test)", f"{s['test_nf']:.0f}"))
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


# ----------------------------------------------------------------------------------------------------------
# gnode train TASK --nproc N: data-parallel training on torch.distributed (gnode.training.distributed)


def _add_launch_options(group) -> None:
    """`--nproc N` for a `gnode train TASK` parser (wrap its handler in `_data_parallel`)."""
    group.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train data-parallel in N processes on this machine (torch.distributed, gloo on CPU): "
        "each solves its share of every batch, the trained parameters are those of one process "
        "to round-off; across machines run `torchrun ... -m gnode.cli train TASK` instead (see "
        "the README). Default: 1",
    )


def _data_parallel(command, default_out):
    """`command(args)` as a `gnode train TASK` handler that also runs data-parallel.

    With --nproc N > 1 (and not already a worker) this process launches N workers running the same command
    line (with --out fixed, so that they agree on it) and reports how they ended. In a worker (RANK and
    WORLD_SIZE set, by the launcher or torchrun) the command runs in the process group (`args.world`); only
    rank 0 prints, except for an error raised on one rank, which that rank reports ("on rank r of N: ...")."""
    import contextlib
    import io
    import os

    def handler(args) -> int:
        from gnode.training.distributed import PeerFailed, RankError, World

        nproc = getattr(args, "nproc", None)
        if nproc is not None and nproc < 1:
            raise UsageError(f"--nproc must be >= 1, got {nproc}")
        if "WORLD_SIZE" not in os.environ:
            return _launch_workers(args, nproc, default_out) if nproc and nproc > 1 else command(args)
        try:
            world = World.from_env()
        except RuntimeError as e:
            raise UsageError(str(e)) from None
        args.world = world
        stderr = sys.stderr
        try:
            if getattr(args, "out", None) is None:  # every rank takes rank 0's default folder (its time stamp)
                args.out = world.from_primary(lambda: default_out(args))
            with contextlib.ExitStack() as quiet:
                if not world.is_primary:
                    quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
                    quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
                return command(args)
        except PeerFailed:  # the rank that failed (or the launcher, for a killed one) says why
            return EXIT_FAILURE
        except RankError as e:
            print(f"{_prog_of(args)}: error {e}", file=stderr)
            return EXIT_FAILURE
        except UsageError:  # the same on every rank: rank 0 reports it
            if world.is_primary:
                raise
            return EXIT_USAGE
        except Exception:
            if world.is_primary:
                raise
            return EXIT_FAILURE
        finally:
            world.close()

    return handler


def _launch_workers(args, nproc: int, default_out) -> int:
    from gnode.training.distributed import LaunchFailed, launch_module

    out = getattr(args, "out", None) or default_out(args)
    argv, skip = [], False
    for a in args.command_line[1:]:  # the same command line, without --nproc
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            argv.append(a)
    if getattr(args, "out", None) is None:
        argv += ["--out", str(out)]
    prog = _prog_of(args)
    print(f"{prog}: {nproc} processes (torch.distributed, gloo); run folder {out}", file=sys.stderr)
    try:
        launch_module(nproc, "gnode.cli", argv)
    except KeyboardInterrupt:  # the workers got it too: they stopped after their step, and rank 0 saved
        return EXIT_INTERRUPTED
    except LaunchFailed as e:
        if e.interrupted:
            return EXIT_INTERRUPTED
        if e.reported:  # the worker that failed said why
            return max(f.exitcode for f in e.causes)
        print(
            f"{prog}: error: {e}; the run stopped at its last checkpoint in {out}; continue it with\n"
            f"  {' '.join(_argv_to_resume(argv, out))} --nproc {nproc}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return 0


def _argv_to_resume(argv: list[str], out) -> list[str]:
    """`gnode` + `argv` with --resume (and --out), as a hint for continuing a run."""
    words = ["gnode", *(a for a in argv if a not in ("--resume", "--overwrite"))]
    if "--out" not in words:
        words += ["--out", str(out)]
    return [*words, "--resume"]


def _flipflop_out(args) -> Path:
    """`gnode train flipflop`'s default run folder: runs/flipflop-<model>-<date-time>."""
    from gnode.training.experiment import ModelConfig

    kind = getattr(args, "model.kind", None) or ModelConfig().kind
    return Path("runs") / f"flipflop-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def _nproc_hint(args) -> str:
    """ " --nproc N" when running data-parallel (for the hints that say how to continue), else ""."""
    world = getattr(args, "world", None)
    return f" --nproc {world.size}" if world is not None and world.size > 1 else ""


# ----------------------------------------------------------------------------------------------------------
# gnode evaluate / plot


def _solver_override(args, saved):
    from dataclasses import replace

    changes = {k: getattr(args, k) for k in ("alg", "reltol", "abstol", "engine") if getattr(args, k, None) is not None}
    if getattr(args, "solver_dt", None) is not None:
        changes["dt"] = args.solver_dt
    if not changes:
        return None
    try:
        return replace(saved.solver, **changes)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from None


def _cmd_evaluate(args) -> int:
    import torch

    from gnode.training.experiment import ODE_KINDS, check_engine, load_run
    from gnode.training.task_cli import evaluate_task_run, is_task_run
    from gnode.training.trainer import evaluate_model

    if is_task_run(args.run):  # a real-data task run (gnode train TASK)
        return evaluate_task_run(args)
    torch.set_num_threads(args.threads or 1)
    saved = _read_run_config(args.run)
    solver = _solver_override(args, saved)
    if solver is not None:
        if saved.model.kind not in ODE_KINDS:
            raise UsageError(f"the run's model ({saved.model.kind}) is discrete: it has no solver to override")
        try:
            check_engine(solver, gradients=False)  # evaluating needs no sensealg: any engine can re-solve
        except ValueError as e:
            raise UsageError(str(e)) from None
    try:
        run = load_run(args.run, solver=solver, dtype=args.dtype, gradients=False)
    except ValueError as e:
        raise UsageError(str(e)) from None
    out = {
        "run": str(args.run),
        "weights": run.weights,
        "dtype": run.config.model.dtype,
        "solver": asdict(run.config.solver) if run.config.model.kind in ODE_KINDS else None,
    }
    for split in args.split:
        s = run.data.split(split)
        t0 = time.perf_counter()
        try:
            ev = evaluate_model(run.model, s, batch_size=run.config.train.eval_batch_size)
        except ValueError as e:  # e.g. a tolerance the dtype cannot resolve
            raise UsageError(str(e)) from None
        var = s.target_variance()
        out[split] = {
            "mse": ev["loss"],
            "target_variance": var,
            "normalized_mse": ev["loss"] / var if var else None,
            "mse_per_channel": ev["per_channel"],
            "seconds": time.perf_counter() - t0,
            **{k: ev[k] for k in ("nf", "naccept", "nreject") if k in ev},
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"run {args.run} ({run.config.model.kind}, N = {run.config.model.latent}, {run.weights} weights, "
        f"{run.config.model.dtype})"
    )
    if out["solver"]:
        sv = out["solver"]
        fixed = not run.config.solver.algorithm().adaptive
        print(
            f"solver {sv['alg']} on {sv['engine']}, "
            + (f"dt {run.model.solve_kwargs['dt']:g}" if fixed else f"reltol {sv['reltol']:g}, abstol {sv['abstol']:g}")
        )
    for split in args.split:
        r = out[split]
        extra = f", mean nf {r['nf']:.0f}" if "nf" in r else ""
        print(
            f"  {split:<5} MSE {r['mse']:.4g}  (variance {r['target_variance']:.4g}, "
            f"ratio {r['normalized_mse']:.3g}{extra})"
        )
    return 0


def _read_run_config(run):
    from gnode.training.experiment import read_config

    try:
        return read_config(run)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None


def _cmd_plot(args) -> int:
    from gnode.training.experiment import load_run
    from gnode.training.figures import draw_run_figures
    from gnode.training.task_cli import is_task_run, plot_task_run

    if is_task_run(args.run):  # a real-data task run (gnode train TASK)
        return plot_task_run(args)
    _read_run_config(args.run)
    check_out_folder(args.run, "RUN")  # the figures go into the run folder
    run = load_run(args.run, gradients=False)
    paths = draw_run_figures(args.run, run.model, run.data, run.history, n_sequences=args.sequences)
    for p in paths:
        print(p)
    return 0


# ----------------------------------------------------------------------------------------------------------
# gnode info / julia setup


def _cmd_info(args) -> int:
    import platform

    import torch

    import gnode
    from gnode.algorithms.base import AbstractAlgorithm
    from gnode.algorithms.parse import known
    from gnode.algorithms.sensealg import AbstractSensitivityAlgorithm
    from gnode.engines import registry

    print(f"gnode {gnode.__version__}")
    print(f"python {platform.python_version()} ({platform.machine()}, {platform.system()})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"device: CUDA available ({names})")
    else:
        print("device: CPU (CUDA not available)")
    print("engines:")
    engines = {}
    for name in registry.engine_names():
        try:
            engines[name] = eng = registry.get_engine(name)
            ok, why = eng.available()
        except Exception as e:  # noqa: BLE001 - whatever breaks an engine's construction makes it unavailable
            ok, why = False, f"{type(e).__name__}: {e}"
        print(f"  {name:<8} {'available' if ok else 'NOT available: ' + (why or 'no reason given')}")
    # after every engine is loaded, so that engine-specific methods (the scipy engine's ScipyRadau, ...) are known
    for title, base, attr in (
        ("solvers (--solver)", AbstractAlgorithm, "algorithms"),
        ("sensealgs (--sensealg)", AbstractSensitivityAlgorithm, "sensealgs"),
    ):
        print(f"{title}, by the engines that have them:")
        groups: dict[str, list[str]] = {}
        for cls_name, cls in known(base).items():
            having = [n for n, e in engines.items() if issubclass(cls, tuple(getattr(e, attr, ())) or ())]
            groups.setdefault(", ".join(having) or "no engine", []).append(cls_name)
        for having, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"  {having}: {', '.join(names)}")
    return 0


def _cmd_julia_setup(args) -> int:
    try:
        import gnode_bridge
    except ImportError as e:
        print(f"gnode julia setup: the gnode_bridge package is not installed ({e})", file=sys.stderr)
        return EXIT_FAILURE
    setup = getattr(gnode_bridge, "setup", None)
    if setup is None or not callable(setup):
        print(
            "gnode julia setup: gnode_bridge provides no setup() function in this version, so there is nothing "
            "to run; see bridge/gnode_bridge for how the Julia environment is prepared",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        result = setup()
    except Exception as e:  # noqa: BLE001 - Julia missing, no network, ...: report, no traceback
        print(
            f"gnode julia setup: failed: {type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if result not in (None, True):
        print(result)
    print("julia setup done")
    return 0


# ----------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    import gnode

    p = _Parser(
        prog="gnode",
        description="Gated neural ODEs (Kim, Can & Krishnamurthy, ICML 2023): train, "
        "evaluate and plot models; check the solver engines.",
    )
    p.add_argument("--version", action="version", version=f"gnode {gnode.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    train = sub.add_parser(
        "train",
        help="train a model on a task",
        description="Train a model on a task; each task has its own options (gnode train TASK --help).",
    )
    tasks = train.add_subparsers(dest="task", metavar="TASK", parser_class=_Parser)
    tasks.required = True
    _add_train_flipflop(tasks)
    from gnode.training.task_cli import add_data_parser, add_train_parsers  # real-data tasks (gnode.tasks.registry)

    add_train_parsers(tasks, _train_options())

    ev = sub.add_parser(
        "evaluate",
        help="test MSE of a trained run",
        description="Evaluate a run's best weights on its test split (and others with --split). "
        "--solver/--reltol/--abstol/--solver-dt/--engine re-solve the trained ODE model "
        "with other settings, e.g. to check that it does not depend on the training "
        "discretisation.",
    )
    ev.add_argument("run", type=Path, metavar="RUN", help="run folder")
    ev.add_argument(
        "--split", nargs="+", choices=("train", "val", "test"), default=["test"], help="splits (default: test)"
    )
    ev.add_argument("--solver", dest="alg", help="ODE method, e.g. Tsit5")
    ev.add_argument("--reltol", type=float, help="relative tolerance")
    ev.add_argument("--abstol", type=float, help="absolute tolerance")
    ev.add_argument("--solver-dt", type=float, help="step of a fixed-step method")
    ev.add_argument("--engine", help="ODE engine")
    ev.add_argument(
        "--dtype", choices=("float32", "float64"), help="evaluate in this floating-point type (default: the run's)"
    )
    ev.add_argument("--threads", type=int, help="torch CPU threads (default 1)")
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.set_defaults(func=_cmd_evaluate)

    pl = sub.add_parser(
        "plot",
        help="draw a run's figures",
        description="Draw loss.png, sequences.png and latents.png into the run folder from its checkpoint and history.",
    )
    pl.add_argument("run", type=Path, metavar="RUN", help="run folder")
    pl.add_argument("--sequences", type=int, default=3, help="test sequences to show (default 3)")
    pl.set_defaults(func=_cmd_plot)

    from gnode.bench.cli import add_subparser as add_bench  # `gnode bench` (work-precision sets)
    from gnode.expressivity.cli import add_subparser as add_expressivity  # `gnode expressivity` (paper sec. 4)
    from gnode.sweep.cli import add_subparser as add_sweep  # `gnode sweep SPEC` (trials on Ray)
    from gnode.training.analyze import add_subparser as add_analyze  # `gnode analyze RUN`

    add_analyze(sub)
    add_bench(sub)
    add_sweep(sub)
    add_expressivity(sub)
    add_data_parser(sub)  # `gnode data walker2d`

    info = sub.add_parser(
        "info",
        help="versions, device and available engines",
        description="Print the gnode, Python and torch versions, the device, and every ODE engine "
        "with whether it is available here (and if not, why).",
    )
    info.set_defaults(func=_cmd_info)

    jl = sub.add_parser("julia", help="the Julia engine", description="Manage the Julia side of the 'julia' engine.")
    jl_sub = jl.add_subparsers(dest="julia_command", metavar="COMMAND", parser_class=_Parser)
    jl_sub.required = True
    jl_setup = jl_sub.add_parser(
        "setup",
        help="install and precompile the Julia packages",
        description="Install and precompile the Julia environment of the julia engine (calls gnode_bridge.setup()).",
    )
    jl_setup.set_defaults(func=_cmd_julia_setup)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["gnode", *(sys.argv[1:] if argv is None else argv)]  # for "resume with: ..." hints
    prog = _prog_of(args)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        from gnode.retcode import SolveError
        from gnode.training.checkpoint import CheckpointError
        from gnode.training.trainer import TrainingDiverged

        if isinstance(e, (CheckpointError, SolveError, TrainingDiverged, FileNotFoundError)):
            print(f"{prog}: error: {e}", file=sys.stderr)
            return EXIT_FAILURE
        raise


def _prog_of(args) -> str:
    parts = ["gnode", getattr(args, "command", None), getattr(args, "task", None), getattr(args, "julia_command", None)]
    return " ".join(p for p in parts if p)


if __name__ == "__main__":
    sys.exit(main())
