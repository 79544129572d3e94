"""Data-parallel training on torch.distributed: where a step's time goes (solver compute against gradient
communication), and the speed-up of 2 processes over 1 on a larger batch, measured on this machine.

    python benchmarks/data_parallel.py                # about 2 minutes of CPU
    python benchmarks/data_parallel.py --batches 1024 8192

Three measurements, each with torch on one thread per process:
  1. compute: one training step (forward solve + backward + Adam) of `gnode train flipflop`'s default gnODE
     (N = 3, 658 parameters, RK4 with 40 steps per sequence) at growing batch sizes b, in one process, in CPU
     seconds (what the step costs a core of its own, however loaded the machine); fitted as t(b) = a + c b (a:
     the per-step cost that does not shrink with the batch, c: the cost per sequence); and the number of aten
     operations a step runs (each one kernel launch on a GPU);
  2. communication: `all_reduce` of float32 tensors from the gradient's size (658 values) to 1e6 values in a
     2-process gloo group (latency and bandwidth of a collective here);
  3. end to end: the default flip-flop run at the default batch and a larger one (--batches, each on twice as many
     sequences), trained by 1 and
     by 2 processes (`gnode.training.distributed`): wall-clock and CPU training time, and the largest parameter
     difference. On an idle machine a rank's CPU time is its wall time, so CPU(1) / (CPU(2) / 2) is the speed-up
     2 processes give there, which a loaded machine's wall clock cannot show.
Results go to benchmarks/results/data_parallel.json and .txt; docs/scaling.md turns them into an estimate
for 8-64 GPUs. Absolute times depend on the load of the machine (recorded with them); the ratios are what carry.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

SIZES = (658, 10_000, 100_000, 1_000_000)


def step_seconds(batch_sizes, repeats: int) -> dict[int, float]:
    """Median CPU seconds of one training step of the default flip-flop gnODE at each batch size (one process,
    one thread)."""
    from gnode.tasks.flipflop import make_flipflop
    from gnode.training.experiment import RunConfig, build_model

    run = RunConfig()
    data = make_flipflop(replace(run.task, n_train=max(batch_sizes), n_val=1, n_test=1))
    model = build_model(run.model, run.solver, data.d_in, data.d_out, seed=0, sample_dt=run.task.dt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = {}
    for b in batch_sizes:
        batch = data.train.take(slice(0, b))
        times = []
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.process_time()
            loss = torch.nn.functional.mse_loss(model(batch.inputs, batch.times).y, batch.targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.process_time() - start)
        out[b] = statistics.median(times[1:])
    return out


def ops_per_step(batch: int = 32) -> int:
    """The aten operations one training step runs (each a kernel launch on a GPU), counted by a dispatch mode."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from gnode.tasks.flipflop import make_flipflop
    from gnode.training.experiment import RunConfig, build_model

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    run = RunConfig()
    data = make_flipflop(replace(run.task, n_train=batch, n_val=1, n_test=1))
    model = build_model(run.model, run.solver, data.d_in, data.d_out, seed=0, sample_dt=run.task.dt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Count():
        loss = torch.nn.functional.mse_loss(model(data.train.inputs, data.train.times).y, data.train.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return Count.n


def allreduce_worker(sizes, repeats: int) -> dict[int, float]:
    """In each of the ranks: median seconds of an all_reduce of float32 tensors of `sizes` values."""
    import torch.distributed as dist

    from gnode.training.distributed import World

    torch.set_num_threads(1)
    with World.from_env():
        out = {}
        for n in sizes:
            t = torch.ones(n)
            times = []
            for _ in range(repeats + 2):
                dist.barrier()
                start = time.perf_counter()
                dist.all_reduce(t)
                times.append(time.perf_counter() - start)
            out[n] = statistics.median(times[2:])
        return out


def train_worker(config: dict, out: str) -> dict:
    """Train the run `config` into `out` in the group the launcher set up; returns the summary and parameters."""
    from gnode.training.distributed import World
    from gnode.training.experiment import RunConfig, run_flipflop

    torch.set_num_threads(1)
    with World.from_env() as world:
        result = run_flipflop(RunConfig.from_dict(config), out, figures=False, world=world)
        return {
            "summary": result.summary,
            "params": torch.load(Path(out) / "checkpoint.pt", weights_only=True)["model"],
        }


def end_to_end(batch: int, n_train: int, epochs: int, a: float, c: float, allreduce: float) -> dict:
    """The default flip-flop run at `batch`, trained by 1 and by 2 processes: times, CPU, parameter agreement."""
    from gnode.training.distributed import launch
    from gnode.training.experiment import RunConfig, run_flipflop

    base = RunConfig()
    config = replace(
        base,
        task=replace(base.task, n_train=n_train),
        train=replace(base.train, batch_size=batch, epochs=epochs, progress=False, checkpoint_every=0),
    ).to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        one = run_flipflop(RunConfig.from_dict(config), Path(tmp) / "one", figures=False)
        ones = torch.load(Path(tmp) / "one" / "checkpoint.pt", weights_only=True)["model"]
        two = launch(2, train_worker, (config, str(Path(tmp) / "two")))[0]
    diff = max(float((ones[k] - two["params"][k]).abs().max()) for k in ones)
    t1, t2 = one.summary["train_time_s"], two["summary"]["train_time_s"]
    c1, c2 = one.summary["train_cpu_s"], two["summary"]["train_cpu_s"]  # c2: summed over the 2 ranks
    model = (a + c * batch) / (a + c * batch / 2 + allreduce)
    print(
        f"   batch {batch}: wall 1 process {t1:.1f} s, 2 processes {t2:.1f} s (under load {os.getloadavg()[0]:.1f}); "
        f"CPU {c1:.1f} s and 2 x {c2 / 2:.1f} s: idle-machine speed-up {c1 / (c2 / 2):.2f} (step model {model:.2f}); "
        f"largest parameter difference {diff:.2g}",
        flush=True,
    )
    return {
        "batch": batch,
        "n_train": n_train,
        "epochs": epochs,
        "train_time_1": t1,
        "train_time_2": t2,
        "train_cpu_1": c1,
        "train_cpu_2_summed": c2,
        "cpu_speedup": c1 / (c2 / 2),
        "model_speedup": model,
        "max_param_difference": diff,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[256, 4096],
        help="global batches of the end-to-end runs, each on 2 x batch sequences (default 256 4096)",
    )
    p.add_argument("--epochs", type=int, default=2, help="epochs of the end-to-end runs (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="where results go")
    args = p.parse_args(argv)

    from gnode.training.distributed import launch

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    print("1. compute: one training step at batch sizes 8 .. 8192 (CPU seconds)", flush=True)
    steps = step_seconds((8, 32, 128, 512, 2048, 8192), args.repeats)
    bs = list(steps)
    mean_b, mean_t = statistics.fmean(bs), statistics.fmean(steps.values())
    c = sum((b - mean_b) * (steps[b] - mean_t) for b in bs) / sum((b - mean_b) ** 2 for b in bs)
    a = mean_t - c * mean_b
    for b, s in steps.items():
        print(f"   b = {b:4d}: {s * 1e3:8.1f} ms   (fit a + c b: {(a + c * b) * 1e3:8.1f} ms)")
    ops = ops_per_step()
    print(
        f"   a = {a * 1e3:.1f} ms per step, c = {c * 1e3:.3f} ms per sequence; {ops} aten operations per step "
        f"(b = 32), {steps[32] / ops * 1e6:.1f} us of CPU each",
        flush=True,
    )

    print("2. communication: all_reduce in a 2-process gloo group", flush=True)
    comm = launch(2, allreduce_worker, (SIZES, args.repeats * 4))
    allreduce = {n: max(comm[r][n] for r in comm) for n in SIZES}
    for n, s in allreduce.items():
        print(f"   {n:8d} float32: {s * 1e6:9.1f} us")

    print(
        f"3. end to end: batches {args.batches} of 2 x batch sequences, {args.epochs} epochs, 1 and 2 processes",
        flush=True,
    )
    ends = [end_to_end(b, 2 * b, args.epochs, a, c, allreduce[SIZES[0]]) for b in args.batches]
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
        },
        "step_seconds": steps,
        "fit": {"a_seconds": a, "c_seconds_per_sequence": c},
        "aten_ops_per_step": ops,
        "allreduce_seconds_2_gloo": allreduce,
        "end_to_end": ends,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_parallel.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [
        (
            f"step t(b) = a + c b: a = {a * 1e3:.1f} ms, c = {c * 1e3:.3f} ms/sequence (CPU), {ops} aten operations "
            f"per step; allreduce of the gradient (658 float32, 2 gloo ranks): {allreduce[SIZES[0]] * 1e6:.0f} us"
        )
    ]
    for e in ends:
        lines.append(
            f"batch {e['batch']}, {e['epochs']} epochs of {e['n_train']} sequences: CPU per rank "
            f"{e['train_cpu_1']:.1f} s (1 process), {e['train_cpu_2_summed'] / 2:.1f} s (2): speed-up "
            f"{e['cpu_speedup']:.2f} on an idle machine (step model {e['model_speedup']:.2f}); wall clock "
            f"here {e['train_time_1']:.1f} s and {e['train_time_2']:.1f} s; parameters agree to "
            f"{e['max_param_difference']:.1g}"
        )
    lines.append(
        f"load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} CPUs"
    )
    text = "\n".join(lines) + "\n"
    (args.out / "data_parallel.txt").write_text(text)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
