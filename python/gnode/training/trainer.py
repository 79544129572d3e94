"""Training a sequence model on a task: Adam, a learning-rate schedule, clipping, validation, early
stopping, metrics, checkpoints and exact resumption.

The trainer holds no global state: no global RNG is seeded or read (mini-batch order comes from its own
`torch.Generator`), no default dtype or thread count is changed, and a SIGINT handler is installed only
while `fit` runs in the main thread (and the previous one restored), so that it can run inside a
`torch.distributed` or Ray worker. Models must not draw from the global RNG in `forward` (none in gnode
do); if one does, resumption is exact only up to that randomness.

Any model works whose `forward(inputs (B, T, d_in), times (T,))` returns either the outputs (B, T, d_out)
or an object with `.y` (the outputs) and optionally `.sol` (an `ODESolution`, whose `stats` feed the
solver statistics in the progress bar and the metrics). The solver (`alg`, `sensealg`, `engine`,
tolerances) belongs to the model (`SequenceModel`), so whatever it was built with is what trains.
"""

from __future__ import annotations

import copy
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from gnode.analysis.telemetry import telemetry_summary
from gnode.solution import ODESolution
from gnode.tasks.data import SequenceSplit, TaskData
from gnode.training.checkpoint import (
    atomic_write_json,
    load_checkpoint,
    save_checkpoint,
)
from gnode.training.metrics import MetricsLog

CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
SCHEDULES = ("cosine", "constant", "plateau")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    epochs:           passes over the training split.
    batch_size:       sequences per optimiser step (the last batch of an epoch may be smaller).
    lr:               Adam's learning rate at the start.
    lr_schedule:      "cosine" (anneal to lr * lr_min over `epochs`, stepped per epoch), "constant", or
                      "plateau" (halve when the validation loss stalls for 3 validations, floor lr * lr_min).
    lr_min:           see `lr_schedule`, as a fraction of `lr`.
    weight_decay:     Adam's (L2) weight decay.
    grad_clip:        clip the global gradient norm to this (None: no clipping; the norm is still logged).
    val_every:        validate every this many epochs (and after the last one).
    patience:         stop after this many validations without an improvement of at least `min_delta`
                      (None: never stop early).
    checkpoint_every: write a checkpoint every this many epochs (0: only at the end and on interrupt).
    eval_batch_size:  sequences per forward pass in validation and test.
    seed:             seeds the trainer's generator (mini-batch order). Model initialisation is seeded by
                      whoever builds the model (see `gnode.training.experiment`).
    progress:         show a tqdm progress bar (display only: does not affect results or resumption).
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-2
    lr_schedule: str = "cosine"
    lr_min: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    val_every: int = 1
    patience: int | None = None
    min_delta: float = 0.0
    checkpoint_every: int = 5
    eval_batch_size: int = 256
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        def need(ok, what):
            if not ok:
                raise ValueError(f"TrainConfig: {what}")

        for name in ("epochs", "batch_size", "val_every", "eval_batch_size"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        need(isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0,
             f"checkpoint_every must be an integer >= 0, got {self.checkpoint_every!r}")
        need(_pos(self.lr), f"lr must be a positive number, got {self.lr!r}")
        need(self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        need(isinstance(self.lr_min, (int, float)) and 0 <= self.lr_min <= 1, f"lr_min must lie in [0, 1], got {self.lr_min!r}")
        need(isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0,
             f"weight_decay must be >= 0, got {self.weight_decay!r}")
        need(self.grad_clip is None or _pos(self.grad_clip), f"grad_clip must be a positive number or None, got {self.grad_clip!r}")
        need(self.patience is None or (isinstance(self.patience, int) and self.patience >= 1),
             f"patience must be an integer >= 1 or None, got {self.patience!r}")
        need(isinstance(self.min_delta, (int, float)) and self.min_delta >= 0, f"min_delta must be >= 0, got {self.min_delta!r}")
        need(isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}")

    def results_affecting(self) -> dict:
        """The fields that change what training computes (all but `progress` and `checkpoint_every`): a
        resumed run must match them."""
        return {k: v for k, v in asdict(self).items() if k not in ("progress", "checkpoint_every")}


def _pos(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What `fit` returns. `status` is "finished", "early_stopping" or "stopped" (by `request_stop`)."""

    status: str
    summary: dict
    history: list[dict]
    already_finished: bool = False  # fit(resume=True) found a finished run and did nothing


@dataclass
class _Progress:
    """Where the loop stands; everything needed to continue exactly (saved in checkpoints)."""

    epoch: int = 0                      # completed epochs
    step_in_epoch: int = 0              # completed batches of the current epoch
    perm: list[int] | None = None       # the current epoch's sequence order
    global_step: int = 0
    sums: dict = field(default_factory=dict)  # running sums over the current epoch's batches
    best_val: float = math.inf
    best_epoch: int = 0
    bad_validations: int = 0
    wall_time: float = 0.0              # seconds of training (and validation), summed over resumptions
    cpu_time: float = 0.0               # CPU seconds of this process over the same spans (robust to a busy machine)
    status: str = "running"


class Trainer:
    """Trains `model` on `data` (see the module docstring for what a model must provide).

    out_dir:    where checkpoints, metrics and the summary go (None: keep everything in memory).
    run_config: a JSON-able description of the whole run (model, task, solver), stored in checkpoints and
                checked on resumption.
    loss:       loss(prediction, target) → scalar; default mean squared error.
    on_step:    called as on_step(trainer) after every optimiser step (for custom logging, or to call
                `request_stop`).
    """

    def __init__(self, model: nn.Module, data: TaskData, config: TrainConfig | None = None,
                 out_dir: str | Path | None = None, *, run_config: dict | None = None,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 on_step: Callable[[Trainer], None] | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"Trainer: model must be a torch.nn.Module, got {type(model).__name__}")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("Trainer: the model has no trainable parameters")
        self.model = model
        self.config = config or TrainConfig()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_config = dict(run_config or {})
        self.loss = loss or nn.functional.mse_loss
        self.on_step = on_step
        ref = params[0]
        self.data = TaskData(*(s.to(device=ref.device, dtype=ref.dtype) for s in (data.train, data.val, data.test)),
                             meta=data.meta)
        self.optimizer = torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        self.scheduler = self._make_scheduler()
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.log = MetricsLog()
        self.progress = _Progress()
        self.best_state: dict | None = None
        self._stop_requested = False
        self._mid_update = False  # True while parameters/optimiser/progress are being changed together

    # ---------------------------------------------------------------- public API
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / CHECKPOINT if self.out_dir is not None else None

    def request_stop(self) -> None:
        """Stop after the current optimiser step, saving a checkpoint (`fit` then returns status "stopped")."""
        self._stop_requested = True

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train until `epochs` are done or early stopping triggers; then evaluate the best model (by
        validation loss) on the test split and leave those weights in the model.

        resume: continue from `out_dir/checkpoint.pt` exactly where it stopped (an interrupted epoch goes on
        from its next batch). Raises `CheckpointError` when the file is missing or damaged, and
        `ValueError` when it was made with other settings.
        On Ctrl-C a checkpoint is written before `KeyboardInterrupt` propagates.
        """
        if resume:
            if self.checkpoint_path is None:
                raise ValueError("Trainer.fit(resume=True) needs an out_dir holding a checkpoint")
            self.load_state_dict(load_checkpoint(self.checkpoint_path, map_location=self.data.train.times.device))
            if self.progress.status != "running":
                return TrainResult(self.progress.status, self._read_summary(), list(self.log.rows),
                                   already_finished=True)
        elif self.checkpoint_path is not None and self.checkpoint_path.exists() and self.progress.global_step == 0:
            raise ValueError(f"{self.out_dir} already holds a checkpoint; continue it with fit(resume=True) or "
                             "train into another out_dir")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._stop_requested = False
        with _StopOnSigint(self), self._progress_bar() as bar:
            try:
                stopped = self._loop(bar)
            except KeyboardInterrupt:  # a second Ctrl-C (the first one stops cleanly after the step)
                if not self._mid_update:  # the state is consistent: keep the work done
                    self._save()
                raise
            except TrainingDiverged:
                self._save()  # the state before the failing step
                raise
            if stopped:
                self._save()
                return TrainResult("stopped", {}, list(self.log.rows))
        summary = self._finish()
        return TrainResult(self.progress.status, summary, list(self.log.rows))

    def evaluate(self, split: SequenceSplit | str = "test", *, model: nn.Module | None = None) -> dict:
        """Loss (MSE by default), per-channel MSE and solver statistics of `model` (default: the trained
        one) on a split, in eval mode without gradients."""
        if isinstance(split, str):
            split = self.data.split(split)
        return evaluate_model(model or self.model, split, batch_size=self.config.eval_batch_size, loss=self.loss)

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: model, optimiser, scheduler, RNG, loop position, metrics."""
        return {
            "model": self.model.state_dict(),
            "best_model": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"trainer_generator": self.generator.get_state()},
            "progress": asdict(self.progress),
            "history": list(self.log.rows),
            "config": {"train": self.config.results_affecting(), "run": self.run_config},
        }

    def load_state_dict(self, state: dict) -> None:
        mine = self.config.results_affecting()
        saved = state["config"].get("train", {})
        diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if diff:
            what = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume: the checkpoint was made with other training settings ({what})")
        saved_run = state["config"].get("run", {})
        if self.run_config and saved_run and _jsonish(saved_run) != _jsonish(self.run_config):
            keys = sorted(k for k in set(saved_run) | set(self.run_config) if saved_run.get(k) != self.run_config.get(k))
            raise ValueError(f"cannot resume: the checkpoint was made for another run configuration "
                             f"(differs in {keys})")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ValueError(f"cannot resume: the checkpoint's model does not fit this model: "
                             f"{str(e).splitlines()[0]}") from e
        self.best_state = state.get("best_model")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["rng"]["trainer_generator"])
        self.progress = _Progress(**state["progress"])
        self.log = MetricsLog(state.get("history", []))

    # ---------------------------------------------------------------- the loop
    def _loop(self, bar) -> bool:
        """Run epochs until done (status "finished"/"early_stopping"); True when stopped on request."""
        cfg, p = self.config, self.progress
        train = self.data.train
        n_batches = math.ceil(len(train) / cfg.batch_size)
        while p.epoch < cfg.epochs:
            if p.perm is None:
                p.perm = torch.randperm(len(train), generator=self.generator).tolist()
                p.step_in_epoch, p.sums = 0, {}
            t_start, c_start = time.perf_counter(), time.process_time()
            while p.step_in_epoch < n_batches:
                if self._stop_requested:
                    p.wall_time += time.perf_counter() - t_start
                    p.cpu_time += time.process_time() - c_start
                    return True
                s = p.step_in_epoch
                idx = torch.tensor(p.perm[s * cfg.batch_size:(s + 1) * cfg.batch_size], device=train.inputs.device)
                row = self._train_step(train.take(idx))
                for k, v in row.items():
                    p.sums[k] = p.sums.get(k, 0.0) + v
                p.sums["batches"] = p.sums.get("batches", 0) + 1
                p.step_in_epoch += 1
                p.global_step += 1
                bar.update(1)
                bar.set_postfix(_postfix(p.epoch + 1, row, p.best_val), refresh=False)
                if self.on_step is not None:
                    self.on_step(self)
            p.wall_time += time.perf_counter() - t_start
            p.cpu_time += time.process_time() - c_start
            self._mid_update = True  # epoch counter, validation, schedule and log change together
            self._end_epoch(bar)
            self._mid_update = False
            if p.status == "early_stopping":
                return False
        p.status = "finished"
        return False

    def _train_step(self, batch: SequenceSplit) -> dict:
        self.model.train()
        out = self.model(batch.inputs, batch.times)
        pred, stats = _unpack(out)
        loss = self.loss(pred, batch.targets)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"the training loss became {loss.item()} at epoch {self.progress.epoch + 1}, step "
                f"{self.progress.step_in_epoch + 1}; try a lower lr (now {self.config.lr}), stronger gradient "
                "clipping, or tighter solver tolerances")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [q for g in self.optimizer.param_groups for q in g["params"]]
        clip = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        gnorm = float(nn.utils.clip_grad_norm_(params, clip))
        self._mid_update = True
        self.optimizer.step()
        self._mid_update = False
        sol = getattr(out, "sol", None)  # the epoch's stiffness telemetry reads the last batch's solve
        self._last_sol = sol if isinstance(sol, ODESolution) else None
        row = {"loss": float(loss.detach()) * len(batch), "seqs": len(batch), "grad_norm": gnorm}
        if stats is not None:
            row.update({k: v * len(batch) for k, v in stats.items()})
        return row

    def _end_epoch(self, bar) -> None:
        cfg, p = self.config, self.progress
        s = p.sums
        seqs = max(s.get("seqs", 0), 1)
        row = {"epoch": p.epoch + 1, "train_loss": s.get("loss", math.nan) / seqs,
               "lr": self.optimizer.param_groups[0]["lr"],
               "grad_norm": s.get("grad_norm", math.nan) / max(s.get("batches", 0), 1)}
        for k in ("nf", "naccept", "nreject"):
            if k in s:
                row[f"train_{k}"] = s[k] / seqs
        with torch.no_grad():  # stiffness of the last batch: rho(J), dt*rho/bound, gate timescales (stiff_*)
            row.update(telemetry_summary(self.model, getattr(self, "_last_sol", None)))
        p.epoch += 1
        p.perm, p.step_in_epoch, p.sums = None, 0, {}
        val = None
        if p.epoch % cfg.val_every == 0 or p.epoch == cfg.epochs:
            t0, c0 = time.perf_counter(), time.process_time()
            ev = self.evaluate("val")
            p.wall_time += time.perf_counter() - t0
            p.cpu_time += time.process_time() - c0
            val = ev["loss"]
            row["val_loss"] = val
            if "nf" in ev:
                row["val_nf"] = ev["nf"]
            if val < p.best_val - cfg.min_delta:
                p.best_val, p.best_epoch, p.bad_validations = val, p.epoch, 0
                self.best_state = copy.deepcopy(self.model.state_dict())
            else:
                p.bad_validations += 1
        if cfg.lr_schedule == "plateau":
            if val is not None:
                self.scheduler.step(val)
        else:
            self.scheduler.step()
        row["wall_time"] = p.wall_time
        row["cpu_time"] = p.cpu_time
        self.log.append(row)
        bar.set_postfix(_postfix(p.epoch, {"loss": row["train_loss"], "seqs": 1,
                                           **({"nf": row["train_nf"]} if "train_nf" in row else {})}, p.best_val))
        if cfg.patience is not None and p.bad_validations >= cfg.patience:
            p.status = "early_stopping"
        periodic = cfg.checkpoint_every and p.epoch % cfg.checkpoint_every == 0
        if self.out_dir is not None:
            self.log.write(self.out_dir)
            if periodic and p.epoch < cfg.epochs and p.status == "running":
                self._save()

    def _finish(self) -> dict:
        """Put the best weights in the model, evaluate on the test split, write summary and final checkpoint."""
        p = self.progress
        last_state = copy.deepcopy(self.model.state_dict())
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        t0 = time.perf_counter()
        test = self.evaluate("test")
        val = self.evaluate("val")
        eval_time = time.perf_counter() - t0
        var = self.data.test.target_variance()
        summary = {
            "status": p.status, "epochs_run": p.epoch, "best_epoch": p.best_epoch,
            "test_mse": test["loss"], "test_mse_per_channel": test["per_channel"],
            "val_mse": val["loss"], "target_variance_test": var,
            "normalized_test_mse": test["loss"] / var if var > 0 else None,
            "train_time_s": p.wall_time, "train_cpu_s": p.cpu_time, "eval_time_s": eval_time,
            "n_params": sum(q.numel() for q in self.model.parameters()),
            "steps": p.global_step,
        }
        if "nf" in test:
            summary["test_nf"] = test["nf"]
        if self.out_dir is not None:
            state = self.state_dict()
            state["model"] = last_state  # the checkpoint keeps the last weights; best_model the best
            save_checkpoint(self.checkpoint_path, state)
            self.log.write(self.out_dir)
            atomic_write_json(self.out_dir / SUMMARY, summary)
        return summary

    def _read_summary(self) -> dict:
        import json
        path = self.out_dir / SUMMARY
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self) -> None:
        if self.out_dir is None:
            return
        save_checkpoint(self.checkpoint_path, self.state_dict())
        self.log.write(self.out_dir)

    def _make_scheduler(self):
        cfg = self.config
        if cfg.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs, eta_min=cfg.lr * cfg.lr_min)
        if cfg.lr_schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="min", factor=0.5, patience=2,
                                                              min_lr=cfg.lr * cfg.lr_min)
        return torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)

    def _progress_bar(self):
        from tqdm.auto import tqdm
        n_batches = math.ceil(len(self.data.train) / self.config.batch_size)
        done = self.progress.epoch * n_batches + self.progress.step_in_epoch
        return tqdm(total=self.config.epochs * n_batches, initial=done, desc="train", unit="batch",
                    disable=not self.config.progress, dynamic_ncols=True, file=sys.stderr, leave=True)


def evaluate_model(model: nn.Module, split: SequenceSplit, *, batch_size: int = 256,
                   loss: Callable | None = None) -> dict:
    """{"loss", "per_channel" (MSE per output channel), and, for ODE models, mean "nf"/"naccept"/"nreject"
    per trajectory} of `model` on `split`, batched, in eval mode without gradients."""
    loss = loss or nn.functional.mse_loss
    was_training = model.training
    model.eval()
    total, sq, n, stat_sums = 0.0, None, 0, {}
    try:
        with torch.no_grad():
            for i in range(0, len(split), batch_size):
                b = split.take(slice(i, i + batch_size))
                pred, stats = _unpack(model(b.inputs, b.times))
                total += float(loss(pred, b.targets)) * len(b)
                e = (pred - b.targets).double().pow(2).sum(dim=(0, 1))
                sq = e if sq is None else sq + e
                n += len(b)
                for k, v in (stats or {}).items():
                    stat_sums[k] = stat_sums.get(k, 0.0) + v * len(b)
    finally:
        model.train(was_training)
    out = {"loss": total / n, "per_channel": (sq / (n * split.times.numel())).tolist()}
    out.update({k: v / n for k, v in stat_sums.items()})
    return out


def _unpack(out) -> tuple[torch.Tensor, dict | None]:
    """(prediction, mean solver statistics or None) from a model's output."""
    if isinstance(out, torch.Tensor):
        return out, None
    pred = getattr(out, "y", None)
    if not isinstance(pred, torch.Tensor):
        raise TypeError(f"the model returned {type(out).__name__}; expected a tensor or an object with a tensor `.y`")
    sol = getattr(out, "sol", None)
    stats = getattr(sol, "stats", None) if sol is not None else None
    if stats is None:
        return pred, None
    return pred, {k: float(getattr(stats, k).double().mean()) for k in ("nf", "naccept", "nreject")}


def _postfix(epoch: int, row: dict, best_val: float) -> dict:
    d = {"ep": epoch, "loss": f"{row['loss'] / max(row.get('seqs', 1), 1):.4g}"}
    if "nf" in row:
        d["nf"] = f"{row['nf'] / max(row.get('seqs', 1), 1):.0f}"
    if math.isfinite(best_val):
        d["best_val"] = f"{best_val:.4g}"
    return d


def _jsonish(obj):
    import json
    return json.loads(json.dumps(obj, default=str))


class _StopOnSigint:
    """While active in the main thread, the first Ctrl-C asks the trainer to stop after the current step
    (it then saves and raises KeyboardInterrupt); a second one interrupts at once. Elsewhere a no-op."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.previous = None
        self.hit = False

    def _handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True
        self.trainer.request_stop()
        print("\ninterrupt: saving a checkpoint after this step (Ctrl-C again to abort at once)", file=sys.stderr)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.hit and exc[0] is None:  # `fit` has saved the checkpoint by now
            raise KeyboardInterrupt
        return False
