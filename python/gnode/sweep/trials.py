"""Trial functions that ship with gnode (their short names are in `gnode.sweep.spec.TRIAL_FUNCTIONS`).

A trial function is called as `fn(out, **params)` (see `gnode.sweep`): `out` is the trial's own folder and
`params` the sweep's nested arguments. It returns a flat dict of results.
"""

from __future__ import annotations

import json
from pathlib import Path


def train_flipflop(out: Path, **sections) -> dict:
    """Train one flip-flop run (`gnode.training.experiment.run_flipflop`) into `out` and return its summary.

    `sections` are the run configuration's sections, each a dict of overrides of `gnode train flipflop`'s
    defaults: task (`FlipFlopConfig`), model (`ModelConfig`), solver (`SolverConfig`), train (`TrainConfig`);
    e.g. {"model": {"kind": "mgru", "latent": 16}, "train": {"seed": 1, "lr": 0.01}}. A run already finished in
    `out` is read back, and one stopped part-way resumes from its checkpoint."""
    from gnode.training.experiment import CONFIG, RunConfig, run_flipflop
    from gnode.training.trainer import CHECKPOINT, SUMMARY

    out = Path(out)
    unknown = sorted(set(sections) - {"task", "model", "solver", "train"})
    if unknown:
        raise ValueError(f"train_flipflop: unknown sections {unknown}; known: task, model, solver, train")
    merged = RunConfig().to_dict()
    for name, overrides in sections.items():
        if not isinstance(overrides, dict):
            raise TypeError(f"train_flipflop: section {name!r} must be a mapping of options, got {overrides!r}")
        merged[name].update(overrides)
    merged["train"]["progress"] = False
    config = RunConfig.from_dict(merged)
    summary_path = out / SUMMARY
    if not summary_path.exists():
        resume = (out / CHECKPOINT).exists()
        if not resume and (out / CONFIG).exists():  # stopped before its first checkpoint: start over
            (out / CONFIG).unlink()
        run_flipflop(config, out, resume=resume, figures=False)
    summary = json.loads(summary_path.read_text())
    saved = json.loads((out / CONFIG).read_text())
    result = {k: v for k, v in summary.items() if not isinstance(v, (list, dict)) and k != "status"}
    result["run_status"] = summary.get("status")  # "finished" or "early_stopping"
    result["latent"] = saved["model"]["latent"]
    return result


train_flipflop.metrics = ("normalized_test_mse", "test_mse", "train_cpu_s", "test_nf")  # the sweep's figures
