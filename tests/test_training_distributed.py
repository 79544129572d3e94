"""Data-parallel training on real gloo groups. In the default run, a group of one process (DDP, the collectives,
the command line's error policy) trains exactly what a plain process trains. Marked slow (start-up of worker
processes: 16 s of CPU when they must be spawned): a 2-process group gives the same parameters as one process
(uneven and empty shards included), resumes across world sizes (2 -> 1, 1 -> 2) and reports an error once, from
the rank that failed; `gnode train flipflop --nproc 2` survives a killed worker and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gnode.tasks.flipflop import FlipFlopConfig, make_flipflop
from gnode.training import TrainConfig, Trainer
from gnode.training.distributed import LaunchFailed, PeerFailed, RankError, WorkerFailure, World, launch

# 7 sequences in batches of 3: 3, 3, 1 -> on 2 ranks uneven shards (2 + 1), and an empty one in the last batch
CONFIG = TrainConfig(epochs=2, batch_size=3, lr=0.05, progress=False, checkpoint_every=1, seed=3)
STOP_AT = 4  # global steps before a run is stopped (mid-epoch: 3 steps per epoch)


def tiny():
    """A float64 gnODE (N = 2, width 4) on a 2-channel flip-flop of 7 training sequences."""
    from gnode.training.experiment import ModelConfig, SolverConfig, build_model

    data = make_flipflop(
        FlipFlopConfig(channels=2, duration=4.0, n_train=7, n_val=3, n_test=3, seed=5), dtype=torch.float64
    )
    model = build_model(
        ModelConfig(latent=2, width_F=4, width_G=4, dtype="float64"),
        SolverConfig(),
        data.d_in,
        data.d_out,
        seed=1,
        sample_dt=1.0,
    )
    return model, data


def train(out, world=None, *, resume=False, stop_at=None, loss=None):
    """Train the tiny model into `out`, stopping after `stop_at` global steps; returns (result, parameters)."""
    model, data = tiny()

    def stop(trainer):
        if stop_at is not None and trainer.progress.global_step == stop_at:
            trainer.request_stop()

    trainer = Trainer(model, data, CONFIG, out, on_step=stop, world=world, loss=loss)
    result = trainer.fit(resume=resume)
    return result, {k: v.clone() for k, v in model.state_dict().items()}


def _fails_on_rank_1(pred, target):
    if int(os.environ["RANK"]) == 1:
        raise ValueError("the loss cannot be computed here")
    return torch.nn.functional.mse_loss(pred, target)


def worker(folder: str) -> dict:
    """Runs in each of the 2 processes: a whole run, a run stopped part-way (resumed by one process later), the
    continuation of a run one process stopped, and a loss that fails on rank 1 only."""
    folder = Path(folder)
    out = {}
    with World.from_env() as world:
        result, out["whole"] = train(folder / "whole", world)
        out["summary"] = result.summary
        result, _ = train(folder / "stopped_by_2", world, stop_at=STOP_AT)
        out["stopped_status"] = result.status
        _, out["resumed_by_2"] = train(folder / "stopped_by_1", world, resume=True)
        try:
            train(folder / "failing", world, loss=_fails_on_rank_1)
        except (RankError, PeerFailed) as e:
            out["error"] = (type(e).__name__, str(e))
    return out


@pytest.fixture
def gloo_env(monkeypatch):
    """The environment torchrun gives a group of one process (a free port on this machine)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {
        "WORLD_SIZE": "1",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }.items():
        monkeypatch.setenv(k, v)


def test_a_gloo_group_of_one_trains_exactly_what_a_plain_process_trains(gloo_env, tmp_path):
    with World.from_env() as world:
        assert (world.backend, world.size, world.distributed) == ("gloo", 1, True)
        result, grouped = train(tmp_path / "group", world)
    _, plain = train(tmp_path / "plain")
    _close(grouped, plain, tol=1e-13)  # DDP over one rank, the loss weight 1, the sums: no change
    assert result.summary["processes"] == 1 and (tmp_path / "group" / "summary.json").exists()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """One launch of 2 gloo workers (process start-up dominates the cost), after one process stopped a run."""
    folder = tmp_path_factory.mktemp("dp")
    result, _ = train(folder / "stopped_by_1", stop_at=STOP_AT)
    assert result.status == "stopped"
    # fork costs no start-up and is safe while torch runs one thread (conftest); once a runtime with threads of its
    # own is loaded in this session (JAX by the bench peers' tests, Ray by the slow tests), spawn instead
    fork = not any(m in sys.modules for m in ("jax", "ray"))
    by_rank = launch(2, worker, (str(folder),), start_method="fork" if fork else "spawn")
    return folder, by_rank


def _close(a: dict, b: dict, tol=1e-10):
    assert a.keys() == b.keys()
    for k, v in a.items():
        torch.testing.assert_close(v, b[k], rtol=tol, atol=tol, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.slow
def test_two_processes_train_the_parameters_of_one(two_processes, tmp_path):
    folder, by_rank = two_processes
    result, single = train(tmp_path / "single")
    _close(by_rank[0]["whole"], single)
    _close(by_rank[1]["whole"], single)  # every rank holds the same model
    for key in ("test_mse", "val_mse", "test_nf"):  # the evaluation, split across the ranks, combined
        assert by_rank[0]["summary"][key] == pytest.approx(result.summary[key], rel=1e-9)
    assert by_rank[0]["summary"]["processes"] == 2
    history = torch.load(folder / "whole" / "checkpoint.pt", weights_only=True)["history"]
    for mine, theirs in zip(history, result.history, strict=True):  # losses and solver statistics summed
        for key in ("train_loss", "train_nf", "val_loss", "grad_norm", "stiff_rho_max"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-8), key


@pytest.mark.slow
def test_a_run_resumes_across_world_sizes(two_processes, tmp_path):
    folder, by_rank = two_processes
    _, uninterrupted = train(tmp_path / "single")
    assert by_rank[0]["stopped_status"] == "stopped"
    _, resumed_by_1 = train(folder / "stopped_by_2", resume=True)  # 2 processes stopped it, 1 finishes it
    _close(resumed_by_1, uninterrupted)
    _close(by_rank[0]["resumed_by_2"], uninterrupted)  # 1 process stopped it, 2 finished it


@pytest.mark.slow
def test_an_error_on_one_rank_is_reported_once_by_that_rank(two_processes):
    _, by_rank = two_processes
    assert by_rank[1]["error"] == ("RankError", "on rank 1 of 2: ValueError: the loss cannot be computed here")
    assert by_rank[0]["error"][0] == "PeerFailed"  # which the command line keeps quiet


def test_one_process_is_a_world_of_its_own():
    w = World()
    assert not w.distributed and w.is_primary and w.any(True) and not w.any(False)
    assert w.sum({"a": 1.5}) == {"a": 1.5} and w.gather(3) == [3] and w.from_primary(lambda: 7) == 7
    with pytest.raises(KeyError):
        w.agree(KeyError("raised as it is"))
    assert World(rank=1, size=3).shard(range(8)) == [1, 4, 7]
    assert World(rank=2, size=3).shard_batch([5, 6]) == ([5], False)  # nothing left: a row of weight zero
    killed = LaunchFailed([WorkerFailure(0, -15, "SIGTERM"), WorkerFailure(1, -9, "SIGKILL")])
    assert str(killed) == "rank 1 was killed by SIGKILL, and the launcher stopped the other rank"
    assert not killed.reported and not killed.interrupted
    assert LaunchFailed([WorkerFailure(0, 130, None), WorkerFailure(1, 130, None)]).interrupted


def test_world_from_env_explains_a_half_set_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(
        RuntimeError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not: start the workers with torchrun"
    ):
        World.from_env()


# ------------------------------------------------------------------------------------------ the command line


def test_a_worker_of_the_command_line_reports_its_own_error_once(gloo_env, capsys):
    """In a process group (here a real one of 1 gloo process), an error raised on this rank is printed as one line
    naming the rank; a peer's failure leaves this rank silent; each exits with status 1."""
    import argparse

    from gnode import cli

    args = argparse.Namespace(command="train", task="flipflop", out="runs/x", command_line=["gnode", "train"])

    def solve_fails(a):
        assert a.world.distributed and a.world.backend == "gloo"
        raise RankError(0, 1, ValueError("the solve failed at t = 3"))

    def peer_fails(a):
        raise PeerFailed("rank 0 stops: another rank failed")

    assert cli._data_parallel(solve_fails, lambda a: "runs/x")(args) == 1
    assert (
        capsys.readouterr().err == "gnode train flipflop: error on rank 0 of 1: ValueError: the solve failed at t = 3\n"
    )
    assert cli._data_parallel(peer_fails, lambda a: "runs/x")(args) == 1
    assert capsys.readouterr().err == ""


TINY = [
    "--channels",
    "2",
    "--duration",
    "4",
    "--n-train",
    "24",
    "--n-val",
    "4",
    "--n-test",
    "4",
    "--latent",
    "2",
    "--width-F",
    "4",
    "--width-G",
    "4",
    "--dtype",
    "float64",
    "--batch-size",
    "4",
    "--epochs",
    "6",
    "--checkpoint-every",
    "1",
    "--no-figures",
    "--no-progress",
]


def _gnode(*args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "gnode.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _workers_of(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids]


@pytest.mark.slow
def test_gnode_train_nproc_2_survives_a_killed_worker_and_resumes(tmp_path):
    """`--nproc 2` trains like one process; a worker killed mid-run stops the run with one message naming it and
    the command that continues; continued (with 1 process) it ends where an uninterrupted run ends."""
    from gnode.training.checkpoint import load_checkpoint

    single = _gnode("train", "flipflop", *TINY, "--out", str(tmp_path / "single"))
    assert single.wait(timeout=300) == 0, single.stderr.read()
    two = _gnode("train", "flipflop", *TINY, "--out", str(tmp_path / "two"), "--nproc", "2")
    assert two.wait(timeout=300) == 0, two.stderr.read()
    a = load_checkpoint(tmp_path / "single" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "two" / "checkpoint.pt")["model"]
    _close(a, b, tol=1e-9)

    run = _gnode(
        "train",
        "flipflop",
        *TINY,
        "--epochs",
        "6",
        "--out",
        str(tmp_path / "killed"),
        "--nproc",
        "2",
        "--lr",
        "0.02",
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while not (tmp_path / "killed" / "checkpoint.pt").exists():
            assert run.poll() is None and time.time() < deadline, run.stderr.read()
            time.sleep(0.05)
        workers = _workers_of(run.pid)
        assert len(workers) == 2
        os.kill(max(workers), signal.SIGKILL)  # rank 1 (started second)
        code = run.wait(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    err = run.stderr.read()
    assert code == 1, err
    assert "was killed by SIGKILL" in err and "the run stopped at its last checkpoint" in err
    assert "--resume --nproc 2" in err and "Traceback" not in err
    stopped = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["progress"]["global_step"]
    resumed = _gnode(
        "train", "flipflop", *TINY, "--epochs", "6", "--lr", "0.02", "--out", str(tmp_path / "killed"), "--resume"
    )
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    full = _gnode("train", "flipflop", *TINY, "--epochs", "6", "--lr", "0.02", "--out", str(tmp_path / "full"))
    assert full.wait(timeout=300) == 0
    assert 0 < stopped < load_checkpoint(tmp_path / "full" / "checkpoint.pt")["progress"]["global_step"]
    _close(
        load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["model"],
        load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"],
        tol=1e-9,
    )
