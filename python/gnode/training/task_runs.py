"""A run on a real-data task (`gnode.tasks.registry`) end to end: its configuration, the model it builds,
training, the task's metrics and figures, and the run folder on disk.

A run folder holds what a flip-flop run folder holds (config.json, checkpoint.pt, history.json/csv,
summary.json, loss.png) plus

    standardization.json   the training split's per-channel statistics the inputs were scaled with
    metrics.json           test and validation metrics: accuracy and confusion matrix (classification),
                           MSE per channel (regression), mean nf per sequence (ODE models)
    confusion.png/.csv     the test confusion matrix (classification)
    predictions.png        predicted against true observations on test sequences (regression)

Classification reads each sequence out at its readout time (one sampling step after its last sample,
`gnode.tasks.sequences`) with cross-entropy; regression reads out at every observed sample with MSE. The
model, solver and optimiser options are those of the flip-flop runs (`gnode.training.experiment`); discrete
baselines get the time gap to the next sample as an extra input channel.

Defaults (`default_run(task)`, what `gnode train TASK` runs) were chosen on the project's 2-core machines so
that each trains in a few minutes and reaches a useful accuracy; benchmarks/results/realworld/ records the
comparison of the model families at matched parameter counts.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gnode.atomic import atomic_write_json, atomic_write_text
from gnode.tasks.data import SequenceSplit, TaskData
from gnode.tasks.registry import get_task, make_task
from gnode.training.checkpoint import load_trained_weights
from gnode.training.experiment import (
    CONFIG,
    DTYPES,
    ODE_KINDS,
    ModelConfig,
    RunSetupError,
    SolverConfig,
    build_model,
    check_engine,
    config_differences,
    count_parameters,
    folder_problem,
    versions,
)
from gnode.training.task_figures import plot_confusion, plot_predictions, plot_task_loss
from gnode.training.trainer import CHECKPOINT, SUMMARY, TrainConfig, Trainer, TrainResult

STANDARDIZATION, METRICS = "standardization.json", "metrics.json"
CONFUSION_PNG, CONFUSION_CSV, PREDICTIONS_PNG, LOSS_PNG = (
    "confusion.png",
    "confusion.csv",
    "predictions.png",
    "loss.png",
)


@dataclass(frozen=True)
class TaskRunConfig:
    """Everything that defines a run on a real-data task: the task's name and options (fields of its
    configuration class, e.g. `gnode.tasks.uea.UEAConfig`), model, solver and training."""

    task: str
    options: dict = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        get_task(self.task).make_config(dict(self.options))  # unknown task or option: fail now

    def task_config(self):
        return get_task(self.task).make_config(dict(self.options))

    def to_dict(self) -> dict:
        return {
            "task_name": self.task,
            "task": asdict(self.task_config()),
            "model": asdict(self.model),
            "solver": asdict(self.solver),
            "train": asdict(self.train),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TaskRunConfig:
        entry = get_task(d["task_name"])
        options = {k: v for k, v in dict(d.get("task", {})).items() if k not in entry.fixed}
        parts = {}
        for name, kind in (("model", ModelConfig), ("solver", SolverConfig), ("train", TrainConfig)):
            given = dict(d.get(name, {}))
            unknown = sorted(set(given) - {f.name for f in fields(kind)})
            if unknown:
                raise ValueError(f"config section {name!r} has unknown keys {unknown}")
            parts[name] = kind(**given)
        return cls(d["task_name"], options, **parts)

    def results_affecting(self) -> dict:
        d = self.to_dict()
        d["train"] = self.train.results_affecting()
        d["solver"].pop("compile", None)  # a speed switch: a run may be resumed with or without it
        return d


def default_run(task: str) -> TaskRunConfig:
    """The defaults of `gnode train TASK`: a gnODE (N = 16, F and G of depth 2 and width 32: 3065 parameters on
    JapaneseVowels; N = 32 on Walker2d, whose readout predicts 17 observations) solved by RK4 at two steps per
    sampling step (Walker2d: one per control step), Adam at lr 1e-2 with cosine decay, batch 32 (BasicMotions,
    32 training series: 8).

    Measured on the project's 2-core machines (one thread, other jobs running): JapaneseVowels reaches 0.96
    test accuracy in about a minute (30 epochs; 20 are the default); BasicMotions, its 100 samples thinned to
    25, and Walker2d (64 episodes of 256 steps cut into windows of 32 kept samples) train in a few minutes;
    benchmarks/results/realworld/ has the numbers over seeds and model families. CharacterTrajectories (200 Hz,
    lengths 60-182) is thinned to 50 Hz and Speech Commands uses 41 MFCC frames (25 ms windows and hops) and 200
    training utterances per word, so that their defaults also fit minutes; neither was run here (no download)."""
    get_task(task)  # an unknown name fails here
    model = ModelConfig(kind="gnode", latent=16, depth_F=2, depth_G=2, width_F=32, width_G=32)
    options, solver, train = {}, SolverConfig(), TrainConfig(epochs=20, batch_size=32, lr=1e-2)
    if task == "basicmotions":
        options = {"every": 4}  # 25 samples over the 10 s: a quarter of the solves' cost
        train = TrainConfig(epochs=30, batch_size=8, lr=1e-2)
    elif task == "walker2d":
        model = replace(model, latent=32)  # at least as wide as the 17 observations it predicts
        options = {"window": 32, "stride": 32}
        solver = SolverConfig(dt=1.0)  # one RK4 step per control step (8 ms); tau = 1 step
        train = TrainConfig(epochs=15, batch_size=32, lr=1e-2)
    elif task == "charactertrajectories":
        options = {"every": 4}
        train = TrainConfig(epochs=10, batch_size=32, lr=1e-2)
    elif task == "speechcommands":
        options = {"max_per_word": 200, "hop_length": 400, "n_fft": 400}  # 41 frames of 25 ms; the full set: hours
        train = TrainConfig(epochs=10, batch_size=32, lr=1e-2)
    return TaskRunConfig(task, options, model, solver, train)


def class_cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits `outputs` (M, classes) against class indices stored as floats in `targets` (M, 1)."""
    return nn.functional.cross_entropy(outputs, targets[:, 0].round().long())


def _outputs(out) -> torch.Tensor:
    """The outputs (B, T, d_out) of a model's forward: a tensor, or a `SequenceOutput`'s y."""
    return out if isinstance(out, torch.Tensor) else out.y


def loss_for(kind: str):
    return class_cross_entropy if kind == "classification" else nn.functional.mse_loss


def build_task_model(config: TaskRunConfig, data: TaskData, *, gradients: bool = True) -> nn.Module:
    d_out = len(data.meta["classes"]) if data.meta["kind"] == "classification" else data.d_out
    return build_model(
        config.model,
        config.solver,
        data.d_in,
        d_out,
        seed=config.train.seed,
        sample_dt=_sample_dt(data),
        gradients=gradients,
        time_gaps=True,
    )


def _sample_dt(data: TaskData) -> float:
    """The smallest gap between samples of the training sequences (fixed-step solvers take half of it)."""
    t = data.train.times
    gaps = torch.diff(t, dim=-1)
    return float(gaps[gaps > 0].min())


def load_data(config: TaskRunConfig, *, progress: bool = True) -> TaskData:
    return make_task(config.task, config.options, dtype=DTYPES[config.model.dtype], progress=progress)


# ----------------------------------------------------------------------------------------------------------
# metrics


def predict(model: nn.Module, split: SequenceSplit, *, batch_size: int = 256) -> dict:
    """The model's outputs and the targets at the entries the loss reads, (M, d) each, and the solver's nf per
    sequence (None for discrete models), in eval mode without gradients."""
    was = model.training
    model.eval()
    outs, targets, nf = [], [], []
    try:
        with torch.no_grad():
            for i in range(0, len(split), batch_size):
                b = split.take(slice(i, i + batch_size))
                out = model(b.inputs, b.times)
                p, y = b.observed(_outputs(out))
                outs.append(p)
                targets.append(y)
                sol = getattr(out, "sol", None)
                if sol is not None:
                    nf.append(sol.stats.nf.double())
    finally:
        model.train(was)
    return {"outputs": torch.cat(outs), "targets": torch.cat(targets), "nf": torch.cat(nf) if nf else None}


def split_metrics(
    kind: str, model: nn.Module, split: SequenceSplit, *, batch_size: int = 256, classes: list[str] | None = None
) -> dict:
    """classification: cross_entropy, accuracy, confusion (rows: true class, columns: predicted);
    regression: mse, mse_per_channel. Both: sequences, and nf_per_sequence (mean) for ODE models."""
    r = predict(model, split, batch_size=batch_size)
    out, y = r["outputs"].double(), r["targets"].double()
    m = {"sequences": len(split)}
    if kind == "classification":
        truth = y[:, 0].round().long()
        guess = out.argmax(dim=-1)
        c = len(classes) if classes else out.shape[-1]
        confusion = torch.zeros(c, c, dtype=torch.long)
        confusion.index_put_((truth, guess), torch.ones_like(truth), accumulate=True)
        m.update(
            cross_entropy=float(nn.functional.cross_entropy(out, truth)),
            accuracy=float((guess == truth).double().mean()),
            confusion=confusion.tolist(),
        )
    else:
        per = (out - y).pow(2).mean(dim=0)
        m.update(mse=float(per.mean()), mse_per_channel=per.tolist())
    if r["nf"] is not None:
        m["nf_per_sequence"] = float(r["nf"].mean())
    return m


def _task_summary(kind: str, trainer_summary: dict, metrics: dict) -> dict:
    """The trainer's summary in the task's own terms: for classification its "mse" entries are the
    cross-entropy, so they are renamed, and accuracy is added."""
    s = dict(trainer_summary)
    if kind == "classification":
        for k in ("test_mse", "val_mse", "test_mse_per_channel", "target_variance_test", "normalized_test_mse"):
            s.pop(k, None)
        s.update(
            test_cross_entropy=metrics["test"]["cross_entropy"],
            val_cross_entropy=metrics["val"]["cross_entropy"],
            test_accuracy=metrics["test"]["accuracy"],
            val_accuracy=metrics["val"]["accuracy"],
        )
    if "nf_per_sequence" in metrics["test"]:
        s["test_nf_per_sequence"] = metrics["test"]["nf_per_sequence"]
    return {"task": metrics["task"], "kind": kind, **s}


# ----------------------------------------------------------------------------------------------------------
# the run folder


def is_task_run(folder: str | Path) -> bool:
    """Whether `folder` holds a run made by `run_task` (its config.json names a task)."""
    try:
        return "task_name" in json.loads((Path(folder) / CONFIG).read_text())
    except (OSError, ValueError):
        return False


def read_task_config(folder: str | Path) -> TaskRunConfig:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG}: not a gnode run folder")
    try:
        return TaskRunConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a task run's configuration ({e})") from e


def run_task(
    config: TaskRunConfig, out: str | Path, *, resume: bool = False, figures: bool = True, on_step=None, log=print
) -> TrainResult:
    """Train `config` into the folder `out` (or continue the run there with `resume=True`), then evaluate
    the best weights on the validation and test splits and draw the figures. A folder holding a run is
    never overwritten without `resume`; a resumed run must have the same options."""
    out = Path(out)
    if (problem := folder_problem(out)) is not None:
        raise RunSetupError(f"{problem}; choose another folder for the run")
    if config.model.kind in ODE_KINDS:
        try:
            check_engine(config.solver)
        except ValueError as e:
            raise RunSetupError(str(e)) from None
    has_config = (out / CONFIG).exists()
    if resume and has_config:
        try:
            saved = read_task_config(out)
        except (FileNotFoundError, ValueError) as e:
            raise RunSetupError(f"cannot resume: {e}") from None
        if saved.results_affecting() != config.results_affecting():
            diff = config_differences(saved.results_affecting(), config.results_affecting())
            raise RunSetupError(f"cannot resume {out}: the options differ from the run's config.json ({diff})")
        if not (out / CHECKPOINT).exists():
            log(f"{out} has no checkpoint yet: starting the run from the beginning")
            resume = False
    elif resume:
        log(f"{out} holds no run yet: starting a new one")
        resume = False
    elif has_config or (out / CHECKPOINT).exists():
        raise RunSetupError(f"{out} already holds a run; continue it with --resume or choose another --out")
    data = load_data(config, progress=config.train.progress)
    if resume:
        _check_standardization(out, data)
    model = build_task_model(config, data)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_json(
            out / CONFIG, {**config.to_dict(), "n_params": count_parameters(model), "versions": versions()}
        )
        atomic_write_json(out / STANDARDIZATION, _standardization_record(data))
    kind = data.meta["kind"]
    trainer = Trainer(
        model, data, config.train, out, run_config=config.results_affecting(), loss=loss_for(kind), on_step=on_step
    )
    result = trainer.fit(resume=resume)
    if result.status == "stopped" or result.already_finished:
        return result
    metrics = evaluate_run_model(kind, trainer.model, data, batch_size=config.train.eval_batch_size)
    metrics["task"] = config.task
    summary = _task_summary(kind, result.summary, metrics)
    atomic_write_json(out / METRICS, metrics)
    atomic_write_json(out / SUMMARY, summary)
    result.summary = summary
    if figures:
        draw_task_figures(out, trainer.model, data, result.history)
    return result


def evaluate_run_model(
    kind: str, model: nn.Module, data: TaskData, *, splits=("test", "val"), batch_size: int = 256
) -> dict:
    out = {}
    for s in splits:
        t0 = time.perf_counter()
        out[s] = split_metrics(kind, model, data.split(s), batch_size=batch_size, classes=data.meta.get("classes"))
        out[s]["seconds"] = time.perf_counter() - t0
    if kind == "classification":
        out["classes"] = data.meta["classes"]
    else:
        out["channels"] = data.meta.get("targets")
    return out


def _standardization_record(data: TaskData) -> dict:
    return {
        "task": data.meta["task"],
        "statistics": data.meta["standardization"],
        "from": "the training split only",
        "sizes": data.meta.get("sizes"),
    }


def _check_standardization(folder: Path, data: TaskData) -> None:
    """The data rebuilt for a saved run must be scaled as the run was: otherwise the files changed since."""
    path = folder / STANDARDIZATION
    if not path.exists():
        return
    saved = json.loads(path.read_text())["statistics"]
    now = json.loads(json.dumps(data.meta["standardization"]))
    if not _close(saved, now):
        raise RunSetupError(
            f"the data rebuilt for {folder} is not the data the run was trained on: its training "
            f"statistics differ from {path}; point --data at the files the run used"
        )


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


@dataclass
class LoadedTaskRun:
    folder: Path
    config: TaskRunConfig
    model: nn.Module
    data: TaskData
    history: list[dict]
    summary: dict
    weights: str  # "best" or "last"


def load_task_run(
    folder: str | Path,
    *,
    solver: SolverConfig | None = None,
    dtype: str | None = None,
    gradients: bool = True,
    progress: bool = False,
) -> LoadedTaskRun:
    """The run in `folder` with its best weights, its data rebuilt (and checked against the saved
    standardisation); `solver` and `dtype` override the saved ones (as `gnode.training.experiment.load_run`)."""
    folder = Path(folder)
    config = read_task_config(folder)
    if solver is not None:
        config = replace(config, solver=solver)
    if dtype is not None:
        config = replace(config, model=replace(config.model, dtype=dtype))
    data = load_data(config, progress=progress)
    _check_standardization(folder, data)
    model = build_task_model(config, data, gradients=gradients)
    state, weights = load_trained_weights(model, folder, CHECKPOINT)
    summary = json.loads((folder / SUMMARY).read_text()) if (folder / SUMMARY).exists() else {}
    return LoadedTaskRun(folder, config, model, data, list(state.get("history", [])), summary, weights)


# ----------------------------------------------------------------------------------------------------------
# figures


def draw_task_figures(
    folder: str | Path, model: nn.Module, data: TaskData, history: list[dict], *, n_sequences: int = 3
) -> list[Path]:
    """loss.png, and confusion.png/.csv (classification) or predictions.png (regression)."""
    folder = Path(folder)
    kind = data.meta["kind"]
    paths = [
        plot_task_loss(
            history,
            folder / LOSS_PNG,
            ylabel="cross-entropy" if kind == "classification" else "MSE (standardised units)",
        )
    ]
    if kind == "classification":
        m = split_metrics(kind, model, data.test, classes=data.meta["classes"])
        conf = np.array(m["confusion"])
        rows = ["true \\ predicted," + ",".join(data.meta["classes"])]
        rows += [f"{c}," + ",".join(str(v) for v in conf[i]) for i, c in enumerate(data.meta["classes"])]
        atomic_write_text(folder / CONFUSION_CSV, "\n".join(rows) + "\n")
        paths += [
            folder / CONFUSION_CSV,
            plot_confusion(
                conf,
                data.meta["classes"],
                folder / CONFUSION_PNG,
                title=f"{data.meta['task']}: test accuracy {m['accuracy']:.3f}",
            ),
        ]
    else:
        test = data.test.take(slice(0, n_sequences))
        was = model.training
        model.eval()
        with torch.no_grad():
            pred = _outputs(model(test.inputs, test.times))
        model.train(was)
        paths.append(
            plot_predictions(
                test.times, test.targets, pred, test.mask, folder / PREDICTIONS_PNG, channels=data.meta.get("targets")
            )
        )
    return paths
