"""gnODE against nODE, mGRU, GRU and LSTM on real-data tasks, at matched parameter counts, over seeds
(Kim, Can & Krishnamurthy, ICML 2023, sec. 5.4-5.5: does gating help on real data?).

Every run is a `gnode train TASK` run (`gnode.training.task_runs.run_task`) with the task's default data,
solver and training settings; only the model family, its latent size N and the seed change. N of each family
is the one whose parameter count is closest to the default gnODE's on that task (`matched_latent`). Runs land
in OUT/runs/<task>/<model>-seed<seed>; a finished run is read back instead of retrained, so an interrupted
comparison continues where it stopped. `compare` is a plain function so that a sweep runner (Ray) can call it
per task.

    python benchmarks/realworld.py                       # the recorded comparison (hours on a busy 2-core machine)
    python benchmarks/realworld.py --tasks japanesevowels --seeds 0 --models gnode gru   # a quick look

Writes OUT/results.json and results.csv (one row per run), summary.csv (mean +- std per task and model),
comparison.png, and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from gnode.training.experiment import count_parameters, versions
from gnode.training.task_runs import build_task_model, default_run, load_data, run_task

TASKS = ("japanesevowels", "basicmotions", "walker2d")
MODELS = ("gnode", "node", "mgru", "gru", "lstm")
HERE = Path(__file__).resolve().parent


def matched_latent(task: str, kind: str, target: int, data) -> tuple[int, int]:
    """(N, parameter count) of model family `kind` on `task` whose count is closest to `target`."""
    base = default_run(task)
    best = None
    for n in range(2, 129):
        config = replace(base, model=replace(base.model, kind=kind, latent=n))
        count = count_parameters(build_task_model(config, data))
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (n, count)
        if count > target:
            break
    return best


def compare(
    task: str, models=MODELS, seeds=(0, 1, 2), out: str | Path = HERE / "results" / "realworld", log=print
) -> list[dict]:
    """Train (or read back) every model family x seed on `task`; one result row per run."""
    out = Path(out)
    base = default_run(task)
    data = load_data(base, progress=False)
    target = count_parameters(build_task_model(base, data))
    rows = []
    if data.meta["kind"] == "regression":
        rows.append(persistence_row(task, data))
    for kind in models:
        latent = base.model.latent if kind == base.model.kind else matched_latent(task, kind, target, data)[0]
        for seed in seeds:
            config = replace(
                base,
                model=replace(base.model, kind=kind, latent=latent),
                train=replace(base.train, seed=seed, progress=False),
            )
            folder = out / "runs" / task / f"{kind}-seed{seed}"
            summary_path = folder / "summary.json"
            t0 = time.perf_counter()
            if summary_path.exists():
                summary = json.loads(summary_path.read_text())
            else:
                summary = run_task(config, folder, resume=(folder / "checkpoint.pt").exists(), log=log).summary
            row = {
                "task": task,
                "model": kind,
                "seed": seed,
                "latent": latent,
                "n_params": summary["n_params"],
                "train_time_s": summary["train_time_s"],
                "train_cpu_s": summary.get("train_cpu_s"),
                "epochs": summary["epochs_run"],
                "best_epoch": summary["best_epoch"],
                "nf_per_sequence": summary.get("test_nf_per_sequence"),
                "folder": str(folder.relative_to(out)),
            }
            if "test_accuracy" in summary:
                row.update(metric="accuracy", test=summary["test_accuracy"], val=summary["val_accuracy"])
            else:
                row.update(metric="mse", test=summary["test_mse"], val=summary["val_mse"])
            rows.append(row)
            log(
                f"{task:<15} {kind:<6} seed {seed}  N={latent:<3} params {row['n_params']:<5} "
                f"test {row['metric']} {row['test']:.4f}  ({row['train_time_s']:.0f} s training"
                f"{', read back' if time.perf_counter() - t0 < 1 else ''})"
            )
    return rows


def persistence_row(task: str, data) -> dict:
    """The MSE of predicting each observation by the previous one (no model): the scale a model must beat."""
    row = {
        "task": task,
        "model": "persistence",
        "seed": None,
        "latent": None,
        "n_params": 0,
        "train_time_s": 0.0,
        "train_cpu_s": 0.0,
        "epochs": 0,
        "best_epoch": 0,
        "nf_per_sequence": None,
        "folder": None,
        "metric": "mse",
    }
    for name in ("test", "val"):
        s = data.split(name)
        d = s.targets.shape[-1]
        previous = torch.cat([s.inputs[:, :1, :d], s.inputs[:, :-1, :d]], dim=1)  # the observation one sample back
        row[name] = float(torch.nn.functional.mse_loss(*s.observed(previous)))
    return row


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and (sample) standard deviation over seeds per task and model."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["model"]), []).append(r)
    out = []
    for (task, model), rs in groups.items():
        test, test_sd = _mean_std(rs, "test")
        t, t_sd = _mean_std(rs, "train_time_s")
        nf, _ = _mean_std(rs, "nf_per_sequence")
        out.append(
            {
                "task": task,
                "model": model,
                "metric": rs[0]["metric"],
                "seeds": len(rs),
                "n_params": rs[0]["n_params"],
                "latent": rs[0]["latent"],
                "test_mean": test,
                "test_std": test_sd,
                "train_time_s_mean": t,
                "train_time_s_std": t_sd,
                "nf_per_sequence": nf,
            }
        )
    return out


def _mean_std(rows: list[dict], key: str) -> tuple[float | None, float | None]:
    v = [r[key] for r in rows if r.get(key) is not None]
    if not v:
        return None, None
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(s["task"] for s in summary))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False, constrained_layout=True)
    for ax, task in zip(axes[0], tasks):
        rows = [s for s in summary if s["task"] == task]
        x = range(len(rows))
        ax.bar(
            x,
            [r["test_mean"] for r in rows],
            yerr=[r["test_std"] or 0 for r in rows],
            capsize=4,
            color=[f"C{MODELS.index(r['model']) if r['model'] in MODELS else 7}" for r in rows],
        )
        ax.set_xticks(list(x), [f"{r['model']}\n{r['n_params']}" for r in rows], fontsize=8)
        metric = rows[0]["metric"]
        ax.set_ylabel("test accuracy" if metric == "accuracy" else "test MSE (standardised)")
        if metric == "accuracy":
            lo = min(r["test_mean"] - (r["test_std"] or 0) for r in rows)
            ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.set_title(f"{task} (mean +- std, {max(r['seeds'] for r in rows)} seeds)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: list[dict], out: Path, seconds: float) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    machine = {
        **versions(),
        "processor": platform.processor() or platform.machine(),
        "cpus": _cpus(),
        "this_invocation_wall_time_s": seconds,
    }  # runs read back cost nothing; see each run's train_time_s
    (out / "results.json").write_text(
        json.dumps({"machine": machine, "runs": rows, "summary": summary}, indent=2) + "\n"
    )
    for name, table in (("results.csv", rows), ("summary.csv", summary)):
        with open(out / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    plot(summary, out / "comparison.png")
    return summary


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=HERE / "results" / "realworld")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = []
    for task in args.tasks:
        rows += compare(task, args.models, args.seeds, args.out, log=lambda m: print(m, flush=True))
        write(rows, args.out, time.perf_counter() - t0)  # after each task, so partial results are kept
    summary = write(rows, args.out, time.perf_counter() - t0)
    print(
        f"\n{'task':<15} {'model':<6} {'params':>6} {'N':>3}  {'test (mean +- std)':<22} {'train s':>8} {'nf/seq':>7}"
    )
    for s in summary:
        nf = f"{s['nf_per_sequence']:.0f}" if s["nf_per_sequence"] is not None else "-"
        print(
            f"{s['task']:<15} {s['model']:<6} {s['n_params']:>6} {s['latent'] or '-':>3}  "
            f"{s['metric']} {s['test_mean']:.4f} +- {s['test_std']:.4f}  {s['train_time_s_mean']:>8.0f} {nf:>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
