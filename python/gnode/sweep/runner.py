"""Running a sweep: each trial a job (a Ray task, or in this process), journaled as it finishes; then one
table and a figure per metric.

    results = run_sweep(SweepSpec.load("sweep.yaml"), "sweeps/mine", executor=RayExecutor(num_cpus=4))
    results.rows          # one dict per trial: its dotted parameters, status, error, seconds, results

The sweep folder holds `journal.jsonl` (every finished trial, so a killed sweep started again with the same
folder runs only the trials still missing), `trials/<values>-<key>/` (each trial's own folder, where a trial
function keeps its run: a flip-flop run there resumes from its checkpoint), `results.json`, `results.csv` and
`figures/<metric>.png`. A trial that raises is run again `spec.retries` times; if it still fails it is
recorded with its error (and its traceback in its folder's error.txt) and the sweep goes on. Recorded
failures stay recorded when the sweep is resumed, unless `retry_failed`.
"""

from __future__ import annotations

import importlib
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from gnode.atomic import atomic_write_text
from gnode.jobs import AbstractExecutor, Journal, LocalExecutor
from gnode.sweep.report import write_results
from gnode.sweep.spec import SweepSpec, SweepSpecError, SweepTrial

JOURNAL = "journal.jsonl"
SWEEP_COLUMNS = ("trial", "status", "error", "seconds", "attempts", "folder", "key")


def resolve(path: str):
    """The function at "package.module:function"."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise SweepSpecError(f"a trial function's path is 'package.module:function', got {path!r}")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise SweepSpecError(f"cannot import {module_name!r} for the trial function {path!r}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SweepSpecError(f"{module_name!r} has no {attr!r} (the trial function {path!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SweepSpecError(f"the trial function {path!r} is not callable")
    return obj


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass(frozen=True)
class TrialTask:
    """What a worker runs for one trial: the trial function (by its path, imported where it runs), called in the
    trial's folder under `out` with `threads` torch threads (restored after); returns its results as plain JSON
    values. It carries everything the trial needs, so nothing is read from the worker's global state."""

    function_path: str
    out: str
    threads: int = 1

    def __call__(self, trial: SweepTrial) -> dict:
        import torch

        fn = resolve(self.function_path)
        folder = Path(self.out) / "trials" / trial.slug
        folder.mkdir(parents=True, exist_ok=True)
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            result = fn(folder, **trial.params)
        finally:
            torch.set_num_threads(before)
        if not isinstance(result, dict):
            raise TypeError(
                f"the trial function {self.function_path} returned {type(result).__name__}; a trial "
                "function returns a dict of results"
            )
        return json.loads(json.dumps(_flat(result), default=_plain))


def _plain(x):
    try:
        return x.item()
    except (AttributeError, ValueError, RuntimeError):
        return repr(x)


@dataclass
class SweepResults:
    """Every trial's row (`rows`, in trial order), the spec, and notes on the session (`meta`)."""

    spec: SweepSpec
    rows: list[dict]
    meta: dict = field(default_factory=dict)

    @property
    def parameters(self) -> list[str]:
        return list(dict.fromkeys(k for t in self.spec.expand() for k in t.point))

    def metrics(self) -> list[str]:
        """The spec's metrics, else the trial function's own list (its `metrics` attribute), else every result
        field that is a number in some successful trial."""
        if self.spec.metrics is not None:
            return list(self.spec.metrics)
        declared = getattr(resolve(self.spec.function_path), "metrics", None)
        if declared is not None:
            return list(declared)
        skip = set(SWEEP_COLUMNS) | set(self.parameters)
        names = dict.fromkeys(
            k for r in self.rows if r["status"] == "ok" for k, v in r.items() if k not in skip and _number(v)
        )
        return list(names)

    def write(self, folder, *, figures: bool = True) -> dict[str, Path]:
        """results.json, results.csv and figures/<metric>.png in `folder`; returns what was written."""
        return write_results(self, Path(folder), figures=figures)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def run_sweep(
    spec: SweepSpec,
    out,
    *,
    executor: AbstractExecutor | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    figures: bool = True,
    log=print,
    on_result=None,
) -> SweepResults:
    """Run every trial of `spec` not yet in the journal of the sweep folder `out`, then write the results there.

    executor:     `LocalExecutor()` (default: one trial after the other in this process) or `RayExecutor(...)`.
    retry_failed: run the trials the journal records as failed again.
    on_result:    called with each finished trial's row, after it is journaled.
    Raises `SweepSpecError` when the trial function cannot be found, `JournalError` when `out` holds another
    sweep's journal.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    executor = executor or LocalExecutor()
    resolve(spec.function_path)  # a wrong path fails here, not in every worker
    trials = spec.expand()
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out / JOURNAL, {"format": "gnode-sweep", "trial": spec.function_path})
    done: dict[str, dict] = {}
    for t in trials:
        rows = journal.take(t.key)
        if rows and (rows[0]["status"] == "ok" or not retry_failed):
            done[t.key] = rows[0]
    pending = [t for t in trials if t.key not in done]
    if done:
        log(f"resuming {out}: {len(done)} of {len(trials)} trials already in its journal")
    task = TrialTask(spec.function_path, str(out.resolve()), threads=max(1, math.ceil(spec.cpus_per_trial)))
    start = time.perf_counter()
    bar = tqdm(total=len(trials), initial=len(done), disable=not progress, unit="trial", dynamic_ncols=True)
    try:
        with executor:
            for outcome in executor.map_unordered(task, pending, retries=spec.retries):
                t = pending[outcome.index]
                row = _row(t, outcome)
                if not outcome.ok:
                    _write_error(out / "trials" / t.slug, outcome)
                    bar.write(f"trial {t.index} {t.point} failed after {outcome.attempts} attempts: {outcome.error}")
                journal.add_trial(t.key, [row], outcome.seconds)
                done[t.key] = row
                bar.update(1)
                if on_result is not None:
                    on_result(row)
    finally:
        bar.close()
    rows = [{**done[t.key], "trial": t.index} for t in trials]
    meta = {
        "executor": executor.describe(),
        "trials": len(trials),
        "ran_now": len(pending),
        "ok": sum(r["status"] == "ok" for r in rows),
        "failed": sum(r["status"] != "ok" for r in rows),
        "wall_seconds_now": time.perf_counter() - start,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    results = SweepResults(spec, rows, meta)
    written = results.write(out, figures=figures)
    results.meta["written"] = {k: str(v) for k, v in written.items()}
    return results


def _row(t: SweepTrial, outcome) -> dict:
    row = {
        "trial": t.index,
        **t.point,
        "status": "ok" if outcome.ok else "failed",
        "error": outcome.error,
        "seconds": outcome.seconds,
        "attempts": outcome.attempts,
        "folder": f"trials/{t.slug}",
        "key": t.key,
    }
    for k, v in (outcome.value or {}).items():
        row[f"result.{k}" if k in row else k] = v
    return row


def _write_error(folder: Path, outcome) -> None:
    atomic_write_text(folder / "error.txt", f"{outcome.error}\n\n{outcome.traceback or ''}")
