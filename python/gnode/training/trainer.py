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
from gnode.atomic import atomic_write_json
from gnode.solution import ODESolution
from gnode.tasks.data import SequenceSplit, TaskData
from gnode.training.checkpoint import load_checkpoint, save_checkpoint
from gnode.training.distributed import World
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
    divergence_factor: stop with `TrainingDiverged` when a batch's loss exceeds this many times the first
                      batch's (None: only on a non-finite loss). A diverging run can stay finite for its whole
                      length (lr 1e4 on the flip-flop ends at 1e8 times the target variance), while a healthy
                      one stays within a few times its first loss; the factor has wide margins both ways.
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
    divergence_factor: float | None = 100.0

    def __post_init__(self):
        def need(ok, what):
            if not ok:
                raise ValueError(f"TrainConfig: {what}")

        for name in ("epochs", "batch_size", "val_every", "eval_batch_size"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        need(
            isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0,
            f"checkpoint_every must be an integer >= 0, got {self.checkpoint_every!r}",
        )
        need(_pos(self.lr), f"lr must be a positive number, got {self.lr!r}")
        need(self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        need(
            isinstance(self.lr_min, (int, float)) and 0 <= self.lr_min <= 1,
            f"lr_min must lie in [0, 1], got {self.lr_min!r}",
        )
        need(
            isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0,
            f"weight_decay must be >= 0, got {self.weight_decay!r}",
        )
        need(
            self.grad_clip is None or _pos(self.grad_clip),
            f"grad_clip must be a positive number or None, got {self.grad_clip!r}",
        )
        need(
            self.patience is None or (isinstance(self.patience, int) and self.patience >= 1),
            f"patience must be an integer >= 1 or None, got {self.patience!r}",
        )
        need(
            isinstance(self.min_delta, (int, float)) and self.min_delta >= 0,
            f"min_delta must be >= 0, got {self.min_delta!r}",
        )
        need(isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}")
        need(
            self.divergence_factor is None or (_pos(self.divergence_factor) and self.divergence_factor > 1),
            f"divergence_factor must be a number > 1 or None, got {self.divergence_factor!r}",
        )

    def results_affecting(self) -> dict:
        """The fields that change what training computes (all but `progress`, `checkpoint_every` and
        `divergence_factor`, which only stops a run): a resumed run must match them."""
        neutral = ("progress", "checkpoint_every", "divergence_factor")
        return {k: v for k, v in asdict(self).items() if k not in neutral}


def _pos(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite, or grew past `TrainConfig.divergence_factor` times its start.
    The checkpoint then holds the state before the failing step."""


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

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # completed batches of the current epoch
    perm: list[int] | None = None  # the current epoch's sequence order
    global_step: int = 0
    sums: dict = field(default_factory=dict)  # running sums over the current epoch's batches
    best_val: float = math.inf
    best_epoch: int = 0
    bad_validations: int = 0
    wall_time: float = 0.0  # seconds of training (and validation), summed over resumptions
    cpu_time: float = 0.0  # CPU seconds of this process over the same spans (robust to a busy machine)
    status: str = "running"
    first_loss: float | None = None  # the first batch's loss: the scale divergence is measured against


class Trainer:
    """Trains `model` on `data` (see the module docstring for what a model must provide).

    out_dir:    where checkpoints, metrics and the summary go (None: keep everything in memory).
    run_config: a JSON-able description of the whole run (model, task, solver), stored in checkpoints and
                checked on resumption.
    loss:       loss(prediction, target) → scalar; default mean squared error.
    on_step:    called as on_step(trainer) after every optimiser step (for custom logging, or to call
                `request_stop`).
    world:      the torch.distributed group to train in, data-parallel (`gnode.training.distributed.World`;
                default: this process alone). `batch_size` stays the global batch, so the result does not depend
                on the number of processes; rank 0 writes the files.
    """

    def __init__(
        self,
        model: nn.Module,
        data: TaskData,
        config: TrainConfig | None = None,
        out_dir: str | Path | None = None,
        *,
        run_config: dict | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        on_step: Callable[[Trainer], None] | None = None,
        world: World | None = None,
    ):
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
        self.world = world or World()
        self._forward = self.world.wrap(model)  # DistributedDataParallel in a group: gradients are averaged
        ref = params[0]
        self.data = TaskData(
            *(s.to(device=ref.device, dtype=ref.dtype) for s in (data.train, data.val, data.test)), meta=data.meta
        )
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
            where = self.data.train.times.device if not self.world.distributed else "cpu"
            self.load_state_dict(
                self.world.from_primary(lambda: load_checkpoint(self.checkpoint_path, map_location=where))
            )
            if self.progress.status != "running":
                return TrainResult(
                    self.progress.status, self._read_summary(), list(self.log.rows), already_finished=True
                )
        elif self.checkpoint_path is not None and self.progress.global_step == 0:
            self.world.from_primary(self._check_fresh)
        if self.out_dir is not None and self.world.is_primary:
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
        one) on a split, in eval mode without gradients. In a process group every rank calls it: each evaluates
        its share of the sequences, and all get the combined means."""
        if isinstance(split, str):
            split = self.data.split(split)
        if not self.world.distributed:
            return evaluate_model(model or self.model, split, batch_size=self.config.eval_batch_size, loss=self.loss)
        mine = split.take(self.world.shard(range(len(split))))  # each rank its share; the means are combined
        ev = (
            evaluate_model(model or self.model, mine, batch_size=self.config.eval_batch_size, loss=self.loss)
            if len(mine)
            else None
        )
        return self.world.mean(ev, len(mine))

    def _check_fresh(self) -> None:
        if self.checkpoint_path.exists():
            raise ValueError(
                f"{self.out_dir} already holds a checkpoint; continue it with fit(resume=True) or "
                "train into another out_dir"
            )

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
            keys = sorted(
                k for k in set(saved_run) | set(self.run_config) if saved_run.get(k) != self.run_config.get(k)
            )
            raise ValueError(
                f"cannot resume: the checkpoint was made for another run configuration (differs in {keys})"
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ValueError(
                f"cannot resume: the checkpoint's model does not fit this model: {str(e).splitlines()[0]}"
            ) from e
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
                if self.world.any(self._stop_requested):  # every rank stops after the same step
                    p.wall_time += time.perf_counter() - t_start
                    p.cpu_time += self._cpu_seconds(c_start)
                    return True
                s = p.step_in_epoch
                mine, counted = self.world.shard_batch(p.perm[s * cfg.batch_size : (s + 1) * cfg.batch_size])
                idx = torch.tensor(mine, device=train.inputs.device)
                row = self._train_step(train.take(idx), counted=counted)
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
            p.cpu_time += self._cpu_seconds(c_start)
            self._mid_update = True  # epoch counter, validation, schedule and log change together
            self._end_epoch(bar)
            self._mid_update = False
            if p.status == "early_stopping":
                return False
        p.status = "finished"
        return False

    def _train_step(self, batch: SequenceSplit, counted: bool = True) -> dict:
        """One optimiser step on `batch` (this rank's share of the global batch; `counted` False: a stand-in row
        of weight zero). Returns the step's sums over every rank: loss x sequences, sequences, statistics."""
        self.model.train()
        try:
            out = self._forward(batch.inputs, batch.times)
            pred, stats = _unpack(out)
            pred, target = batch.observed(pred)  # under a mask: only the entries the loss reads
            loss = self.loss(pred, target)
        except Exception as e:  # in a group, every rank must hear of it before the gradient allreduce
            if not self.world.distributed:
                raise
            self.world.agree(e)
        self.world.agree(None)
        n = len(batch) if counted else 0
        local = {
            "loss": float(loss.detach()) * n,
            "seqs": n,
            "weight": target.numel() if counted else 0,
            "loss_w": float(loss.detach()) * target.numel() if counted else 0.0,
            **{k: v * n for k, v in (stats or {}).items()},
        }
        total = self.world.sum(local)  # the whole batch's sums, on every rank
        self._check_divergence(
            float(loss.detach()) if not self.world.distributed else total["loss_w"] / max(total["weight"], 1)
        )
        self.optimizer.zero_grad(set_to_none=True)
        if self.world.distributed:  # DDP averages over ranks: weigh each by its share of the loss's entries
            loss = loss * (local["weight"] * self.world.size / max(total["weight"], 1))
        try:
            loss.backward()
        except RuntimeError as e:  # in a group: this rank's failure, or the gradient allreduce's (a peer died)
            if not self.world.distributed:
                raise
            raise self.world.failure(e) from e
        params = [q for g in self.optimizer.param_groups for q in g["params"]]
        clip = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        gnorm = float(nn.utils.clip_grad_norm_(params, clip))
        self._mid_update = True
        self.optimizer.step()
        self._mid_update = False
        sol = getattr(out, "sol", None)  # the epoch's stiffness telemetry reads the last batch's solve
        self._last_sol = sol if isinstance(sol, ODESolution) else None
        total.pop("weight"), total.pop("loss_w")
        return {**total, "grad_norm": gnorm}

    def _check_divergence(self, loss: float) -> None:
        p, factor = self.progress, self.config.divergence_factor
        if p.first_loss is None and math.isfinite(loss):
            p.first_loss = loss
        grown = factor is not None and p.first_loss and loss > factor * p.first_loss
        if math.isfinite(loss) and not grown:
            return
        what = (
            f"became {loss}"
            if not math.isfinite(loss)
            else f"grew to {loss:.4g}, {loss / p.first_loss:.3g} times the first batch's {p.first_loss:.4g}"
        )
        saved = f"; the checkpoint in {self.out_dir} holds the state before this step" if self.out_dir else ""
        raise TrainingDiverged(
            f"training diverged: the loss {what} at epoch {p.epoch + 1}, step {p.step_in_epoch + 1}{saved}. "
            f"Try a lower lr (now {self.config.lr:g}), stronger gradient clipping or tighter solver tolerances"
        )

    def _end_epoch(self, bar) -> None:
        cfg, p = self.config, self.progress
        s = p.sums
        seqs = max(s.get("seqs", 0), 1)
        row = {
            "epoch": p.epoch + 1,
            "train_loss": s.get("loss", math.nan) / seqs,
            "lr": self.optimizer.param_groups[0]["lr"],
            "grad_norm": s.get("grad_norm", math.nan) / max(s.get("batches", 0), 1),
        }
        for k in ("nf", "naccept", "nreject"):
            if k in s:
                row[f"train_{k}"] = s[k] / seqs
        with torch.no_grad():  # stiffness of the last batch: rho(J), dt*rho/bound, gate timescales (stiff_*)
            row.update(self.world.merge_telemetry(telemetry_summary(self.model, getattr(self, "_last_sol", None))))
        p.epoch += 1
        p.perm, p.step_in_epoch, p.sums = None, 0, {}
        val = None
        if p.epoch % cfg.val_every == 0 or p.epoch == cfg.epochs:
            t0, c0 = time.perf_counter(), time.process_time()
            ev = self.evaluate("val")
            p.wall_time += time.perf_counter() - t0
            p.cpu_time += self._cpu_seconds(c0)
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
        bar.set_postfix(
            _postfix(
                p.epoch,
                {"loss": row["train_loss"], "seqs": 1, **({"nf": row["train_nf"]} if "train_nf" in row else {})},
                p.best_val,
            )
        )
        if cfg.patience is not None and p.bad_validations >= cfg.patience:
            p.status = "early_stopping"
        periodic = cfg.checkpoint_every and p.epoch % cfg.checkpoint_every == 0
        if self.out_dir is not None and self.world.is_primary:
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
            "status": p.status,
            "epochs_run": p.epoch,
            "best_epoch": p.best_epoch,
            "test_mse": test["loss"],
            "test_mse_per_channel": test["per_channel"],
            "val_mse": val["loss"],
            "target_variance_test": var,
            "normalized_test_mse": test["loss"] / var if var > 0 else None,
            "train_time_s": p.wall_time,
            "train_cpu_s": p.cpu_time,
            "eval_time_s": eval_time,
            "n_params": sum(q.numel() for q in self.model.parameters()),
            "steps": p.global_step,
        }
        if "nf" in test:
            summary["test_nf"] = test["nf"]
        if self.world.distributed:
            summary["processes"] = self.world.size  # train_cpu_s sums over them
        if self.out_dir is not None and self.world.is_primary:
            state = self.state_dict()
            state["model"] = last_state  # the checkpoint keeps the last weights; best_model the best
            save_checkpoint(self.checkpoint_path, state)
            self.log.write(self.out_dir)
            atomic_write_json(self.out_dir / SUMMARY, summary)
        self.world.barrier()  # every rank returns once the run's files are written
        return summary

    def _read_summary(self) -> dict:
        import json

        path = self.out_dir / SUMMARY
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self) -> None:
        if self.out_dir is None or not self.world.is_primary:
            return
        save_checkpoint(self.checkpoint_path, self.state_dict())
        self.log.write(self.out_dir)

    def _make_scheduler(self):
        cfg = self.config
        if cfg.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=cfg.epochs, eta_min=cfg.lr * cfg.lr_min
            )
        if cfg.lr_schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=0.5, patience=2, min_lr=cfg.lr * cfg.lr_min
            )
        return torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)

    def _progress_bar(self):
        from tqdm.auto import tqdm

        n_batches = math.ceil(len(self.data.train) / self.config.batch_size)
        done = self.progress.epoch * n_batches + self.progress.step_in_epoch
        return tqdm(
            total=self.config.epochs * n_batches,
            initial=done,
            desc="train",
            unit="batch",
            disable=not (self.config.progress and self.world.is_primary),
            dynamic_ncols=True,
            file=sys.stderr,
            leave=True,
        )

    def _cpu_seconds(self, since: float) -> float:
        """CPU seconds of this process since `since` (a `time.process_time()`), summed over the ranks."""
        return self.world.sum({"cpu": time.process_time() - since})["cpu"]


def evaluate_model(
    model: nn.Module, split: SequenceSplit, *, batch_size: int = 256, loss: Callable | None = None
) -> dict:
    """{"loss", "per_channel" (MSE per output channel over the entries under the split's mask; None when
    outputs and targets differ in shape, as in classification), and, for ODE models, mean "nf"/"naccept"/"nreject"
    per trajectory} of `model` on `split`, batched, in eval mode without gradients."""
    loss = loss or nn.functional.mse_loss
    was_training = model.training
    model.eval()
    total, sq, n, entries, stat_sums = 0.0, None, 0, 0, {}
    try:
        with torch.no_grad():
            for i in range(0, len(split), batch_size):
                b = split.take(slice(i, i + batch_size))
                pred, stats = _unpack(model(b.inputs, b.times))
                p, y = b.observed(pred)
                total += float(loss(p, y)) * len(b)
                if p.shape == y.shape:  # regression: squared error per output channel
                    e = (p - y).double().pow(2).reshape(-1, y.shape[-1]).sum(dim=0)
                    sq = e if sq is None else sq + e
                    entries += y.numel() // y.shape[-1]
                n += len(b)
                for k, v in (stats or {}).items():
                    stat_sums[k] = stat_sums.get(k, 0.0) + v * len(b)
    finally:
        model.train(was_training)
    out = {"loss": total / n, "per_channel": (sq / entries).tolist() if sq is not None else None}
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
