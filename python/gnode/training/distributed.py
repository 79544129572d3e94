"""Data-parallel training on torch.distributed: the process group a trainer runs in, and the launcher.

    gnode train flipflop --nproc 2 --out runs/dp             # N local workers (torch's elastic launcher)
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m gnode.cli train flipflop --out /shared/runs/dp    # the same, across machines

    with World.from_env() as world:                          # in each worker (torchrun sets the environment)
        Trainer(model, data, config, out_dir, world=world).fit()

How a step is split, and why N workers train the same parameters as one process. Every rank draws the same
epoch permutation from the trainer's seeded generator (saved in checkpoints), takes the same global batch of
`batch_size` sequences from it, and solves its own stride of that batch (`World.shard_batch`): the ODE solver
works per trajectory, so the rows split cleanly. The model is wrapped in `DistributedDataParallel`, whose
allreduce averages the ranks' gradients; each rank's loss is scaled by (its loss entries) x N / (the batch's), so
the average is the gradient of the whole batch's mean loss, as one process computes it, whatever the split
(uneven strides, or an empty one: that rank solves one row with weight zero so that it still joins the
allreduce). Gradient clipping and Adam then act on identical gradients on every rank. The results agree with
one process to round-off (the order of the sums), and a checkpoint does not depend on the world size: `--resume`
works from 2 processes to 1 and back. This departs from `DistributedSampler` on purpose: that sampler pads an
epoch with repeated sequences when N does not divide it and splits the epoch rather than each batch, so N
workers would see other batches than one process.

Checkpoints and files: rank 0 writes them (atomically, as always); on resume rank 0 reads the checkpoint and
broadcasts it, so every rank restores the same state (nodes need not share a filesystem for that). Validation
and test are split across the ranks too, and the solver statistics, losses, CPU time and stiffness telemetry of
the log are reduced across ranks (sums; max/min/mean for the telemetry).

Failures: each step the ranks agree on whether one of them failed (`World.agree`): the rank where an error
happened raises it as `RankError` ("on rank r of N: ..."), the others `PeerFailed`, so the user reads one
message, not N tracebacks. A rank that dies (killed, out of memory) makes the others' next collective fail; they
raise `PeerFailed` and the launcher names the rank and its signal. Nothing is lost beyond the last checkpoint.

Backends: gloo on CPU, NCCL on CUDA (`World.from_env(device="cuda")`: rank r on GPU LOCAL_RANK).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Self

import torch
from torch import nn

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class PeerFailed(RuntimeError):
    """Another rank failed (it reports its error itself) or was lost; this rank stops without a message of
    its own."""


class RankError(RuntimeError):
    """An error raised on one rank of a group (`error`, also the `__cause__`), reported once, by that rank."""

    def __init__(self, rank: int, size: int, error: BaseException):
        text = str(error).strip()
        super().__init__(
            f"on rank {rank} of {size}: {type(error).__name__}: {text}"
            if text
            else f"on rank {rank} of {size}: {type(error).__name__}"
        )
        self.rank, self.size, self.error = rank, size, error


@dataclass(frozen=True)
class World:
    """The process group a trainer runs in. `World()` is one process without a group: every method is then
    the identity, at no cost. `backend` is None there, "gloo" or "nccl" in a group; `device` is where this
    rank's model and tensors live ("cpu" or "cuda:LOCAL_RANK")."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: str = "cpu"

    @classmethod
    def from_env(cls, *, device: str = "cpu", timeout_s: float = 1800.0) -> World:
        """The group torchrun (or `launch`) set up through the environment (RANK, WORLD_SIZE, LOCAL_RANK,
        MASTER_ADDR, MASTER_PORT), joined with gloo on "cpu" or NCCL on "cuda"; `World()` when those are not
        set (a plain process). `timeout_s` bounds a collective that waits on a rank that hangs."""
        if "WORLD_SIZE" not in os.environ:
            return cls()
        missing = [v for v in ENV_VARS if v not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE is set but {', '.join(missing)} are not: start the workers with torchrun "
                "(or `gnode train TASK --nproc N`), which sets all of them"
            )
        rank, size, local = (int(os.environ[v]) for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
        if device not in ("cpu", "cuda"):
            raise ValueError(f"World.from_env: device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda":
            if not torch.cuda.is_available() or local >= torch.cuda.device_count():
                raise RuntimeError(
                    f"rank {rank} needs CUDA device {local}, but this machine has "
                    f"{torch.cuda.device_count()}; start at most that many processes per node"
                )
            torch.cuda.set_device(local)
        backend = "nccl" if device == "cuda" else "gloo"
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
        return cls(rank, size, local, backend, f"cuda:{local}" if device == "cuda" else "cpu")

    # ------------------------------------------------------------------ basics
    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_primary(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` in `DistributedDataParallel` (its parameters are broadcast from rank 0, so every rank starts
        from the same weights); the model itself in one process."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ref = next(model.parameters())
        if ref.device != torch.device(self.device):
            raise ValueError(
                f"rank {self.rank}: the model is on {ref.device} but this rank trains on {self.device}; "
                "move it there first (model.to(world.device))"
            )
        return DistributedDataParallel(model, device_ids=[self.local_rank] if self.device != "cpu" else None)

    def shard(self, indices: Sequence[int]) -> list[int]:
        """This rank's stride of `indices`: rank r takes positions r, r + N, r + 2N, ..."""
        return list(indices[self.rank :: self.size])

    def shard_batch(self, indices: Sequence[int]) -> tuple[list[int], bool]:
        """(the rows this rank solves, whether they count): its stride of the global batch, or, when that is
        empty (a last batch smaller than N), the batch's first row with weight zero, so that the rank still
        joins the gradient allreduce."""
        mine = self.shard(indices)
        return (mine, True) if mine else (list(indices[:1]), False)

    # ------------------------------------------------------------------ collectives (identities in one process)
    def failure(self, error: BaseException) -> Exception:
        """What to raise for `error`, caught around a step that communicates (DDP's gradient allreduce): `PeerFailed`
        when the communication itself failed (gloo and NCCL raise RuntimeErrors that name themselves when a peer
        closed its connection or the group timed out), else `RankError`: this rank's own failure."""
        import torch.distributed as dist

        text = str(error)
        if isinstance(error, dist.DistError) or any(
            w in text for w in ("gloo", "NCCL", "Connection reset", "Connection closed")
        ):
            return PeerFailed(
                f"rank {self.rank} lost contact with the other ranks ({text.splitlines()[0][:200]}); "
                "one of them stopped or was killed"
            )
        return RankError(self.rank, self.size, error)

    def _collective(self, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as e:  # in a collective, a RuntimeError is the communication's
            raise PeerFailed(
                f"rank {self.rank} lost contact with the other ranks ({str(e).splitlines()[0][:200]}); "
                "one of them stopped or was killed"
            ) from e

    def _tensor(self, values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=self.device)

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on some rank."""
        if not self.distributed:
            return bool(flag)
        import torch.distributed as dist

        t = self._tensor([1.0 if flag else 0.0])
        self._collective(dist.all_reduce, t, dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum(self, values: dict[str, float]) -> dict[str, float]:
        """The sum over ranks of each value (every rank passes the same keys, in the same order)."""
        if not self.distributed:
            return dict(values)
        import torch.distributed as dist

        t = self._tensor(list(values.values()))
        self._collective(dist.all_reduce, t, dist.ReduceOp.SUM)
        return dict(zip(values, t.tolist()))

    def gather(self, obj) -> list:
        """Every rank's `obj` (picklable), in rank order."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.size
        self._collective(dist.all_gather_object, out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            self._collective(dist.barrier)

    def agree(self, error: BaseException | None) -> None:
        """Called by every rank at the same point: returns when no rank had an error; else raises everywhere,
        `RankError` (from the error) on the ranks that had one and `PeerFailed` on the others."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        if self.any(error is not None):
            if error is not None:
                raise RankError(self.rank, self.size, error) from error
            raise PeerFailed(f"rank {self.rank} stops: another rank failed")

    def from_primary(self, fn: Callable[[], object]):
        """fn() run on rank 0 and its value broadcast to every rank (reading a checkpoint once, for nodes that
        may not share a filesystem). If it raises, rank 0 raises the error and the others `PeerFailed`."""
        if not self.distributed:
            return fn()
        import torch.distributed as dist

        box: list = [None]
        error = None
        if self.is_primary:
            try:
                box[0] = ("ok", fn())
            except Exception as e:  # noqa: BLE001 - re-raised below, after the others are told
                error, box[0] = e, ("error", None)
        self._collective(dist.broadcast_object_list, box, 0)
        if error is not None:
            raise error
        if box[0][0] != "ok":
            raise PeerFailed(f"rank {self.rank} stops: rank 0 failed")
        return box[0][1]

    def mean(self, values: dict | None, weight: float) -> dict | None:
        """The `weight`-weighted mean over ranks of each number (and, elementwise, of each list of numbers) in
        `values`; a rank with nothing to add passes None with weight 0. None if every rank did."""
        if not self.distributed:
            return values
        parts = [(v, w) for v, w in self.gather((values, weight)) if v is not None and w > 0]
        if not parts:
            return None
        total = sum(w for _, w in parts)
        out = {}
        for k, first in parts[0][0].items():
            if isinstance(first, (int, float)) and not isinstance(first, bool):
                out[k] = sum(v[k] * w for v, w in parts) / total
            elif isinstance(first, list) and all(isinstance(x, (int, float)) for x in first):
                out[k] = [sum(v[k][i] * w for v, w in parts) / total for i in range(len(first))]
            else:
                out[k] = first
        return out

    def merge_telemetry(self, summary: dict[str, float]) -> dict[str, float]:
        """The stiffness telemetry of every rank's last batch as one: maxima (`*max*`) by max, minima (`*min*`) by
        min, the rest (fractions, medians) by the mean over ranks; NaN where no rank has a finite value."""
        if not self.distributed:
            return summary
        parts = self.gather(summary)
        out = {}
        for k in parts[0]:
            vals = [p[k] for p in parts if k in p and p[k] is not None and math.isfinite(p[k])]
            if not vals:
                out[k] = math.nan
            elif "max" in k:
                out[k] = max(vals)
            elif "min" in k:
                out[k] = min(vals)
            else:
                out[k] = sum(vals) / len(vals)
        return out


# ---------------------------------------------------------------------------------------------- the launcher


@dataclass(frozen=True)
class WorkerFailure:
    """How a worker ended: its rank, exit code, the signal that killed it (None when it exited), and the error
    a function worker raised (None for a command, which reports its own)."""

    rank: int
    exitcode: int
    signal: str | None
    error: str | None = None

    def describe(self) -> str:
        if self.signal:
            return f"rank {self.rank} was killed by {self.signal}"
        return (
            f"rank {self.rank} failed: {self.error}"
            if self.error
            else f"rank {self.rank} exited with status {self.exitcode}"
        )


class LaunchFailed(RuntimeError):
    """Workers of a launch failed. `failures` (rank order) includes the workers the launcher stopped with SIGTERM
    once another had failed; `causes` leaves those out (unless SIGTERM is all there is), and names the message."""

    def __init__(self, failures: list[WorkerFailure]):
        self.failures = failures
        self.causes = [f for f in failures if f.signal != "SIGTERM"] or failures
        stopped = len(self.failures) - len(self.causes)
        others = "the other rank" if stopped == 1 else f"the {stopped} other ranks"
        super().__init__(
            "; ".join(f.describe() for f in self.causes) + (f", and the launcher stopped {others}" if stopped else "")
        )

    @property
    def interrupted(self) -> bool:
        """The workers stopped on Ctrl-C (exit status 130)."""
        return all(f.exitcode == 130 for f in self.causes)

    @property
    def reported(self) -> bool:
        """The workers that failed exited by themselves (so they printed their own message), none was killed."""
        return all(f.signal is None for f in self.causes)


def launch(
    nproc: int,
    entrypoint: Callable | str,
    args: Sequence = (),
    *,
    max_restarts: int = 0,
    start_method: str = "spawn",
    quiet: bool = True,
) -> dict[int, object]:
    """Run `nproc` workers on this machine through torch's elastic launcher (what `torchrun --standalone
    --nproc-per-node N` does) and wait for them.

    entrypoint: a module-level function, called as entrypoint(*args) in each worker (returns its values by
                rank), or an executable run with `args` (e.g. sys.executable with ("-m", "gnode.cli", ...)).
    start_method: how a function's workers start: "spawn" (a fresh interpreter, the safe default) or "fork" (a
                copy of this process: no start-up cost, safe only while this process runs no threads of its own,
                e.g. torch limited to one thread).
    Each worker finds RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in its environment
    (`World.from_env`). Ctrl-C reaches every worker once (the launcher forwards it), so a trainer stops after its
    step and saves. Raises `LaunchFailed` naming how each failed worker ended; with `quiet`, the launcher's own
    log lines stay out of the way of the workers' messages.
    """
    import logging

    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an integer >= 1, got {nproc!r}")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=max_restarts,
        monitor_interval=0.1,
        start_method=start_method,
    )
    loggers = [
        logging.getLogger(n)
        for n in list(logging.root.manager.loggerDict)  # each sets its own level
        if n.startswith(("torch.distributed.elastic", "torch.distributed.launcher", "torch.multiprocessing"))
    ]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
    try:
        return elastic_launch(config, entrypoint)(*args)
    except SignalException as e:  # the launcher got Ctrl-C (or SIGTERM) and passed it on to the workers
        if e.sigval == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise
    except ChildFailedError as e:
        failures = []
        for rank, f in sorted(e.failures.items()):
            failures.append(
                WorkerFailure(rank, f.exitcode, f.signal_name() if f.exitcode < 0 else None, _recorded_error(f))
            )
        raise LaunchFailed(failures) from None
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _recorded_error(failure) -> str | None:
    """The error a function worker raised, as torch's elastic error handler recorded it ("Type: message"), or
    None (a command, or a worker killed before it could record one)."""
    if not os.path.isfile(str(failure.error_file)):
        return None
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message")
    text = message.strip().splitlines() if isinstance(message, str) else []
    return text[-1][:500] if text else None


def launch_module(nproc: int, module: str, argv: Sequence[str]) -> dict[int, object]:
    """`python -m module *argv` in `nproc` workers (see `launch`)."""
    return launch(nproc, sys.executable, ("-m", module, *argv))
