"""A flip-flop run end to end: its configuration, the model it builds, the run folder on disk.

A run folder holds

    config.json      the `RunConfig` (task, model, solver, training) and the package versions
    checkpoint.pt    the training state (see `gnode.training.checkpoint`), last and best weights
    history.json/csv per-epoch metrics
    summary.json     test MSE, target variance, wall time, ... (when training finished)
    loss.png, sequences.png, latents.png   figures (`gnode.training.figures`)

`run_flipflop(config, out)` trains and writes all of it; `load_run(folder)` rebuilds the task data and the
model with its best weights from the folder alone. Everything is seeded from the config: the same config
gives the same data, the same initial weights and the same mini-batch order.

The defaults (`RunConfig()`, what `gnode train flipflop` runs) and why, as measured on the project's
2-core CPU machines (one torch thread):
- Task: 3 channels, t in [0, 20] sampled every dt = 1 (T = 21), pulses one sample long (width 1 = tau),
  starting with probability 0.12 per quiet sample (about 2 pulses per channel per sequence); 512/128/256
  sequences. A pulse one sample long means the target switches exactly when the pulse has been seen
  (see `gnode.tasks.flipflop`); with longer pulses the output must hold the old value while the new one
  is being written, which an N = 3 model cannot do: at dt = 0.5 with pulses of 2 samples the same gnODE
  ended at 20% of the target variance against 12% here (same lr 2e-2, 40 epochs).
- Model: gnODE with N = 3 (the latent space can be drawn as is), F and G of depth 2 and width 32
  (658 parameters), critical initialisation, tau = 1. Width 64 or N = 5 gained ~12% in MSE.
- Solver: RK4 with dt = 0.5, two steps per sample (160 right-hand-side evaluations per sequence).
  Zero-order-hold inputs make every sample a breakpoint, so an adaptive method cannot step further than
  a sample anyway, and Tsit5 at reltol 1e-3 spent ~7x the evaluations (it rejects steps after the input
  jumps). Re-solving the trained default with Tsit5 at reltol 1e-8 in float64 changes the test MSE by
  ~6% (`gnode evaluate RUN --solver Tsit5 --reltol 1e-8 --abstol 1e-10 --dtype float64`), so the model
  learnt is the ODE's, not an artefact of the step.
- Training: Adam, lr 5e-2 with cosine decay to 5%, batch 32, 40 epochs (640 steps), gradient clipping
  at norm 1. lr 2e-2 ended 22% worse, 1e-1 trained erratically (3x worse at epoch 17), and 80 epochs
  at 2e-2 did not beat 40 at 5e-2.
Result: `gnode train flipflop` reaches a test MSE of 0.0186 against a target variance of 0.196 (9.5%) in
62 s end to end on the idle 2-core machine (56 s of training; 2 minutes when other jobs share the CPU);
over seeds 0, 1, 2 the test MSE is 0.0202 +- 0.0015 (benchmarks/flipflop_models.py). About a third of
the remaining error sits on pulses with |amplitude| < 0.1, which barely differ from no pulse
(`FlipFlopConfig.min_amplitude` removes them).
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import nn

from gnode.algorithms.parse import parse_algorithm, parse_sensealg
from gnode.atomic import atomic_write_json
from gnode.engines.registry import get_engine
from gnode.problem import INTERPOLATIONS
from gnode.tasks.flipflop import FlipFlopConfig, make_flipflop
from gnode.training.checkpoint import load_trained_weights
from gnode.training.distributed import World
from gnode.training.figures import LATENTS_PNG, LOSS_PNG, SEQUENCES_PNG, draw_run_figures
from gnode.training.metrics import HISTORY_CSV, HISTORY_JSON
from gnode.training.trainer import CHECKPOINT, SUMMARY, TrainConfig, Trainer, TrainResult

CONFIG = "config.json"
MODEL_KINDS = {
    "gnode": "gated neural ODE: tau dh/dt = G(h,x) * (-h + F(h,x)), F and G of depth depth_F, depth_G",
    "node": "neural ODE (no gate): tau dh/dt = -h + F(h,x)",
    "mgru": "minimal gated recurrent unit in continuous time (depth 1 F and G)",
    "elman": "Elman / vanilla rate network: tau dh/dt = -h + W tanh(h) + U x + b",
    "gru": "discrete-time GRU baseline (torch.nn.GRU, one step per sample)",
    "lstm": "discrete-time LSTM baseline (torch.nn.LSTM, one step per sample)",
}
ODE_KINDS = ("gnode", "node", "mgru", "elman")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class ModelConfig:
    """The model. `latent` is N (the hidden size for gru/lstm); depths and widths are F's and G's (gnode;
    node uses depth_F/width_F); `init` is the regime of `gnode.models.init` with optional `gain`."""

    kind: str = "gnode"
    latent: int = 3
    depth_F: int = 2
    depth_G: int = 2
    width_F: int = 32
    width_G: int = 32
    phi_h: str = "tanh"
    init: str = "critical"
    gain: float | None = None
    tau: float = 1.0
    h0: str = "zeros"
    dtype: str = "float32"

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}")
        for name in ("latent", "depth_F", "depth_G", "width_F", "width_G"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class SolverConfig:
    """How ODE models are solved: `alg`/`sensealg` as text (see `gnode.algorithms.parse`), the engine, the
    tolerances of adaptive methods, `dt` for fixed-step ones (None: half the task's sampling step, so two
    steps per sample interval), the input interpolation and the step budget per trajectory. Every value is
    checked here, so that a run is refused before anything is written rather than at its first solve."""

    alg: str = "RK4()"
    sensealg: str = "BackpropAdjoint()"
    engine: str = "torch"
    reltol: float = 1e-3
    abstol: float = 1e-5
    dt: float | None = None
    interpolation: str = "zoh"
    maxiters: int = 100_000
    compile: bool = False  # solve(..., compile=True): each step one compiled graph

    def __post_init__(self):
        get_engine(self.engine)  # an unknown engine fails here; loading one makes its own method names known
        parse_algorithm(self.alg)  # fail early, with the list of known names
        parse_sensealg(self.sensealg)
        for name in ("reltol", "abstol"):
            v = getattr(self, name)
            if not (_real(v) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.reltol == 0 and self.abstol == 0:
            raise ValueError("reltol and abstol cannot both be 0")
        if self.dt is not None and not (_real(self.dt) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"the solver's dt must be a positive number, got {self.dt!r}")
        if isinstance(self.maxiters, bool) or not isinstance(self.maxiters, int) or self.maxiters < 1:
            raise ValueError(f"maxiters must be an integer >= 1, got {self.maxiters!r}")
        if not isinstance(self.compile, bool):
            raise TypeError(f"compile must be True or False, got {self.compile!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")

    def algorithm(self):
        return parse_algorithm(self.alg)

    def sensitivity(self):
        return parse_sensealg(self.sensealg)


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def default_flipflop_training() -> TrainConfig:
    """The optimiser settings of `gnode train flipflop`, tuned so that the default gnODE learns the 3-bit task
    in a few minutes on a 2-core CPU (see the module docstring)."""
    return TrainConfig(epochs=40, batch_size=32, lr=5e-2)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a flip-flop run. The defaults are `gnode train flipflop`'s."""

    task: FlipFlopConfig = field(default_factory=FlipFlopConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    train: TrainConfig = field(default_factory=default_flipflop_training)

    def __post_init__(self):
        if self.model.kind in ODE_KINDS and self.solver.algorithm().adaptive:  # checked here, not at the 1st solve
            eps = torch.finfo(DTYPES[self.model.dtype]).eps
            if 0 < self.solver.reltol < 2 * eps:
                fix = "a looser reltol" if self.model.dtype == "float64" else "float64 (--dtype) or a looser reltol"
                raise ValueError(
                    f"reltol {self.solver.reltol:g} is below what {self.model.dtype} can resolve "
                    f"(2 eps = {2 * eps:.2g}); use {fix}"
                )

    def to_dict(self) -> dict:
        return {
            "task": asdict(self.task),
            "model": asdict(self.model),
            "solver": asdict(self.solver),
            "train": asdict(self.train),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        parts = {"task": FlipFlopConfig, "model": ModelConfig, "solver": SolverConfig, "train": TrainConfig}
        kwargs = {}
        for name, kind in parts.items():
            given = dict(d.get(name, {}))
            allowed = {f.name for f in fields(kind)}
            unknown = sorted(set(given) - allowed)
            if unknown:
                raise ValueError(f"config section {name!r} has unknown keys {unknown}; known: {sorted(allowed)}")
            kwargs[name] = kind(**given)
        return cls(**kwargs)

    def results_affecting(self) -> dict:
        d = self.to_dict()
        d["train"] = self.train.results_affecting()
        d["solver"].pop("compile", None)  # a speed switch: a run may be resumed with or without it
        return d


class RunSetupError(ValueError):
    """A run cannot start as asked (folder taken, options differ from the run to resume, engine unusable)."""


def build_model(
    model: ModelConfig,
    solver: SolverConfig,
    d_in: int,
    d_out: int,
    *,
    seed: int,
    sample_dt: float | None = None,
    gradients: bool = True,
    time_gaps: bool = False,
) -> nn.Module:
    """The model of `model.kind`, initialised from `seed` without touching the global RNG state.

    ODE kinds are wrapped in `gnode.models.SequenceModel` with the solver settings; fixed-step methods get
    dt = solver.dt, or half of `sample_dt`. `gradients=False` leaves the sensealg out (forward solves only),
    so that a model can be evaluated on an engine without sensitivities, such as "scipy". `time_gaps=True`
    gives the discrete kinds the gap to the next sample as an extra input (irregularly sampled tasks).
    """
    from gnode import models

    dtype = DTYPES[model.dtype]
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # for modules drawn from the global RNG (readouts)
        if model.kind in ("gru", "lstm"):
            cls = models.DiscreteGRU if model.kind == "gru" else models.DiscreteLSTM
            return cls(model.latent, d_in, d_out, h0=model.h0, time_gaps=time_gaps, dtype=dtype)
        common = {"tau": model.tau, "init": model.init, "gain": model.gain, "generator": gen, "dtype": dtype}
        if model.kind == "gnode":
            vf = models.GatedNODE(
                model.latent,
                d_in,
                depth_F=model.depth_F,
                depth_G=model.depth_G,
                width_F=_widths(model.width_F, model.depth_F),
                width_G=_widths(model.width_G, model.depth_G),
                phi_h=model.phi_h,
                **common,
            )
        elif model.kind == "node":
            vf = models.NeuralODE(
                model.latent,
                d_in,
                depth=model.depth_F,
                width=_widths(model.width_F, model.depth_F),
                phi_h=model.phi_h,
                **common,
            )
        elif model.kind == "mgru":
            vf = models.MinimalGRU(model.latent, d_in, phi_h=model.phi_h, **common)
        else:
            vf = models.ElmanRNN(model.latent, d_in, phi="tanh", form="rate", **common)
        alg = solver.algorithm()
        solve_kwargs = {"maxiters": solver.maxiters}
        if solver.compile:
            solve_kwargs["compile"] = True
        if not alg.adaptive:
            dt = solver.dt or (sample_dt / 2 if sample_dt else None)
            if dt is None:
                raise ValueError(f"{alg.name}() is a fixed-step method: give the solver a dt")
            solve_kwargs["dt"] = dt
        elif solver.dt is not None:
            solve_kwargs["dt"] = solver.dt  # the first step of an adaptive method
        sensealg = solver.sensitivity() if gradients else None
        return models.SequenceModel(
            vf,
            d_out,
            alg=alg,
            sensealg=sensealg,
            engine=solver.engine,
            reltol=solver.reltol,
            abstol=solver.abstol,
            interpolation=solver.interpolation,
            h0=model.h0,
            solve_kwargs=solve_kwargs,
        )


def _widths(width: int, depth: int):
    return [width] * (depth - 1) if depth > 1 else None


def check_engine(solver: SolverConfig, *, gradients: bool = True) -> None:
    """Raise a clear error now, rather than mid-training, when the engine is unknown, unavailable here, or
    lacks the algorithm or (with `gradients`, as training needs) the sensealg."""
    eng = get_engine(solver.engine)
    ok, why = eng.available()
    if not ok:
        raise ValueError(f"the {solver.engine!r} engine is not available here: {why}")
    alg, sens = solver.algorithm(), solver.sensitivity()
    if not any(isinstance(alg, a) for a in eng.algorithms):
        raise ValueError(
            f"the {solver.engine!r} engine has no {alg.name}(); it has {', '.join(a.__name__ for a in eng.algorithms)}"
        )
    if gradients and not any(isinstance(sens, s) for s in eng.sensealgs):
        if not eng.sensealgs:
            raise ValueError(
                f"the {solver.engine!r} engine computes no gradients (forward solves only), so it "
                "cannot train; train on another engine and evaluate on this one"
            )
        raise ValueError(
            f"the {solver.engine!r} engine has no {sens.name}(); it has {', '.join(s.__name__ for s in eng.sensealgs)}"
        )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def versions() -> dict:
    import gnode

    return {
        "gnode": gnode.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }


def _model_and_data(config: RunConfig, gradients: bool = True):
    dtype = DTYPES[config.model.dtype]
    data = make_flipflop(config.task, dtype=dtype)
    model = build_model(
        config.model,
        config.solver,
        data.d_in,
        data.d_out,
        seed=config.train.seed,
        sample_dt=config.task.dt,
        gradients=gradients,
    )
    return model, data


RUN_FILES = (CONFIG, CHECKPOINT, SUMMARY, HISTORY_JSON, HISTORY_CSV, LOSS_PNG, SEQUENCES_PNG, LATENTS_PNG)


def run_flipflop(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    figures: bool = True,
    on_step=None,
    log=print,
    world: World | None = None,
) -> TrainResult:
    """Train `config` into the folder `out`, then draw the figures.

    resume:    continue the run in `out` where its checkpoint stopped. A folder without a checkpoint (the run
               died before writing one, or it was deleted) starts its run from the beginning, and a folder
               without a run starts this one; `log` says which.
    overwrite: start afresh in a folder that holds a run, removing that run's files (`RUN_FILES`).
    Otherwise a folder that holds a run is an error (never overwritten). Raises `RunSetupError` before
    anything is written when the run cannot start as asked.
    world:     train data-parallel in this torch.distributed group (`gnode.training.distributed`): every rank
               calls run_flipflop alike; rank 0 decides whether to resume, writes the files and logs.
    """
    out = Path(out)
    world = world or World()
    log = log if world.is_primary else (lambda *_: None)
    if resume and overwrite:
        raise RunSetupError("resume and overwrite exclude each other")
    if (problem := folder_problem(out)) is not None:
        raise RunSetupError(f"{problem}; choose another folder for the run")
    if config.model.kind in ODE_KINDS:
        try:
            check_engine(config.solver)
        except ValueError as e:
            raise RunSetupError(str(e)) from None
    resume = _continues(config, out, resume, overwrite, log)
    model, data = _model_and_data(config)
    world.barrier()  # every rank has looked at the folder before rank 0 writes to it
    resume = world.from_primary(lambda r=resume: r)  # what rank 0 found there holds for every rank
    out.mkdir(parents=True, exist_ok=True)
    if overwrite and world.is_primary:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    if not resume and world.is_primary:
        atomic_write_json(
            out / CONFIG, {**config.to_dict(), "n_params": count_parameters(model), "versions": versions()}
        )
    world.barrier()  # the folder is ready before any rank trains
    trainer = Trainer(
        model, data, config.train, out, run_config=config.results_affecting(), on_step=on_step, world=world
    )
    result = trainer.fit(resume=resume)
    if figures and result.status != "stopped" and not result.already_finished and world.is_primary:
        draw_run_figures(out, trainer.model, data, result.history)
    return result


def _continues(config: RunConfig, out: Path, resume: bool, overwrite: bool, log) -> bool:
    """Whether the run in `out` continues from its checkpoint (else it starts from the beginning), or a
    `RunSetupError` when it can do neither as asked (see `run_flipflop`)."""
    if not resume:
        if ((out / CHECKPOINT).exists() or (out / CONFIG).exists()) and not overwrite:
            raise RunSetupError(
                f"{out} already holds a run; continue it (resume), start it over (overwrite), or choose another folder"
            )
        return False
    if not (out / CONFIG).exists():
        if (out / CHECKPOINT).exists():
            raise RunSetupError(f"cannot resume: {out} has a checkpoint but no {CONFIG}")
        log(f"{out} holds no run yet: starting a new one")
        return False
    try:
        saved = read_config(out)
    except (FileNotFoundError, ValueError) as e:
        raise RunSetupError(f"cannot resume: {e}") from None
    if saved.results_affecting() != config.results_affecting():
        diff = config_differences(saved.results_affecting(), config.results_affecting())
        raise RunSetupError(f"cannot resume {out}: the options differ from the run's config.json ({diff})")
    if not (out / CHECKPOINT).exists():
        log(f"{out} has no checkpoint yet (the run stopped before its first one): starting it from the beginning")
        return False
    return True


def folder_problem(path: str | Path) -> str | None:
    """Why `path` cannot serve as an output folder (a file, under a file, or not writable here), or None.
    Nothing is created, so that callers can check every option before they write anything."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} lies under {parent}, which is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {parent} (permission denied)"
    return None


def read_config(folder: str | Path) -> RunConfig:
    path = Path(folder) / CONFIG
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"no run folder at {folder}")
    if not path.exists():
        raise FileNotFoundError(
            f"{folder} has no {CONFIG}: not a gnode run folder (train one with `gnode train flipflop --out FOLDER`)"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from e
    raw = {k: v for k, v in raw.items() if k in ("task", "model", "solver", "train")}
    return RunConfig.from_dict(raw)


@dataclass
class LoadedRun:
    folder: Path
    config: RunConfig
    model: nn.Module
    data: object  # TaskData
    history: list[dict]
    summary: dict
    weights: str  # "best" or "last"


def load_run(
    folder: str | Path, *, solver: SolverConfig | None = None, dtype: str | None = None, gradients: bool = True
) -> LoadedRun:
    """The run in `folder` with its best weights (last ones if it never validated); `solver` overrides the
    saved solver settings and `dtype` the floating-point type (e.g. to evaluate a model trained in float32
    with RK4 under Tsit5 at tight tolerances in float64); `gradients=False` builds the model for forward
    solves only (see `build_model`)."""
    folder = Path(folder)
    config = read_config(folder)
    changes = {"solver": solver} if solver is not None else {}
    if dtype is not None:
        changes["model"] = replace(config.model, dtype=dtype)
    config = replace(config, **changes)  # at once: a tight reltol may need the new dtype
    model, data = _model_and_data(config, gradients)
    state, weights = load_trained_weights(model, folder, CHECKPOINT)
    summary_path = folder / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return LoadedRun(folder, config, model, data, list(state.get("history", [])), summary, weights)


def config_differences(a: dict, b: dict, prefix="") -> str:
    """ "section.key: saved A, now B; ..." for the leaves where two nested config dicts differ."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            sub = config_differences(va, vb, f"{prefix}{k}.")
            if sub:
                out.append(sub)
        elif va != vb:
            out.append(f"{prefix}{k}: saved {va!r}, now {vb!r}")
    return "; ".join(out)
