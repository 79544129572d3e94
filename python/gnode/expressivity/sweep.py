"""The expressivity sweep: many configurations, each measured independently, journaled, locally or on Ray.

    points = plan_points(SweepGrid(families=("gnode", "node"), latents=(2, 4, 8), depths=(1, 2, 3)))
    results = run_points(points, MeasureConfig(), "runs/expressivity", executor=LocalExecutor())

One configuration (`FamilySpec`) is one job: `run_point` measures it (`measure_expressivity`) and returns a
plain dict, so a job runs the same in this process or as a Ray task (`gnode.jobs.RayExecutor`). Every finished
job is appended to the journal of the output folder (`gnode.jobs.Journal`), so a sweep that is killed resumes
where it stopped when started again with the same folder and settings; a job that raises is run once more,
then recorded as failed and left out of the figures.

`expressivity_trial(out, **params)` is the same measurement behind `gnode sweep`'s trial-function interface
(`gnode.sweep`), for sweeps written as a spec file: trial "gnode.expressivity.sweep:expressivity_trial",
with params {"model": FamilySpec fields, "measure": MeasureConfig fields}.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from gnode.atomic import atomic_write_json
from gnode.expressivity.families import DEPTH_FAMILIES, FAMILIES, FamilySpec, matched_latent
from gnode.expressivity.measure import MeasureConfig, measure_expressivity

JOURNAL = "journal.jsonl"


@dataclass(frozen=True)
class SweepGrid:
    """The configurations of a sweep.

    families: the families measured on the full grid: gnode and node on latents x depths x widths, the others
              (sized by N alone) on latents.
    matched:  families sized by N alone measured at the parameter count of every gnode configuration (the
              N whose count is nearest), for the comparison at matched parameter counts.
    """

    families: tuple[str, ...] = ("gnode", "node")
    latents: tuple[int, ...] = (2, 4, 8, 16, 32)
    depths: tuple[int, ...] = (1, 2, 3)
    widths: tuple[int, ...] = (32,)
    matched: tuple[str, ...] = ("mgru", "elman", "gru", "lstm")
    d_out: int = 1

    def __post_init__(self):
        for name in ("families", "latents", "depths", "widths", "matched"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("families", "latents", "depths", "widths"):
            if not getattr(self, name):
                raise ValueError(f"the sweep's {name} list is empty; give at least one value")
        for fam in (*self.families, *self.matched):
            if fam not in FAMILIES:
                raise ValueError(f"unknown model family {fam!r}; choose from {', '.join(FAMILIES)}")
        bad = [f for f in self.matched if f in DEPTH_FAMILIES]
        if bad:
            raise ValueError(f"matched families must be sized by N alone; {', '.join(bad)} also have a depth")
        if self.matched and "gnode" not in self.families:
            raise ValueError("matched families are sized to the gnode configurations; add gnode to the families")
        for name in ("latents", "depths", "widths"):
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in getattr(self, name)):
                raise ValueError(f"the sweep's {name} must be integers >= 1, got {list(getattr(self, name))}")


def plan_points(grid: SweepGrid) -> list[FamilySpec]:
    """The configurations of `grid`, each once, in a stable order (module docstring)."""
    points: list[FamilySpec] = []

    def add(spec: FamilySpec) -> None:
        if spec not in points:
            points.append(spec)

    for fam in grid.families:
        for n in grid.latents:
            if fam in DEPTH_FAMILIES:
                for depth in grid.depths:
                    for width in grid.widths if depth > 1 else grid.widths[:1]:  # L = 1 has no hidden width
                        add(FamilySpec(fam, n, depth=depth, width=width, d_out=grid.d_out))
            else:
                add(FamilySpec(fam, n, d_out=grid.d_out))
    gnode_points = [p for p in points if p.family == "gnode"]
    for fam in grid.matched:
        for p in gnode_points:
            add(FamilySpec(fam, matched_latent(fam, p.parameter_count(), d_out=grid.d_out), d_out=grid.d_out))
    return points


def point_key(spec: FamilySpec) -> str:
    return json.dumps(spec.as_dict(), sort_keys=True)


@dataclass(frozen=True)
class PointJob:
    """One job: measure `spec` under `config` (both plain data, so that the job pickles for Ray)."""

    spec: dict
    config: dict
    progress: bool = False


def run_point(job: PointJob) -> dict:
    """Measure one configuration (the function each job runs; see `measure_expressivity`). Sets torch to one
    thread inside the job (these models are far too small to gain from more) and restores it."""
    import torch

    spec, config = FamilySpec(**job.spec), MeasureConfig.from_dict(job.config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    bar = None
    try:
        if job.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.fit.steps, desc=spec.label, unit="step", leave=False, dynamic_ncols=True)

            def progress(label, step, best):
                if step == 1:
                    bar.reset()
                    bar.set_description(f"{spec.label}: {label}")
                bar.update(1)
        else:
            progress = None
        cpu = time.process_time()
        result = measure_expressivity(spec, config, progress=progress)
        result["cpu_seconds"] = time.process_time() - cpu  # robust to other load on a shared machine
        return result
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(threads)


def machine() -> dict:
    """What a journal is headed with: results from another machine are not comparable in seconds."""
    import os

    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def run_points(
    points: list[FamilySpec], config: MeasureConfig, out, *, executor=None, progress: bool = True, log=print
) -> tuple[list[dict], list[dict]]:
    """Measure every point not yet in `out`'s journal; returns (results, failures) in the order of `points`.

    executor: a `gnode.jobs` executor (default `LocalExecutor()`: one point after the other in this process,
              with a progress bar per point; `RayExecutor(...)` runs them as Ray tasks).
    A `gnode.jobs.JournalError` is raised when `out` holds a journal written with other settings.
    """
    from tqdm.auto import tqdm

    from gnode.jobs import Journal, LocalExecutor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    executor = executor or LocalExecutor()
    journal = Journal(out / JOURNAL, {"format": "gnode-expressivity", "measure": config.as_dict()}, machine())
    keys = [point_key(p) for p in points]
    done = {k for k in keys if journal.take(k) is not None and journal.trials[k][0].get("status") == "ok"}
    pending = [(k, p) for k, p in zip(keys, points) if k not in done]
    if done:
        log(f"resuming {out}: {len(done)} of {len(points)} configurations already in {JOURNAL}")
    jobs = [PointJob(p.as_dict(), config.as_dict(), progress=progress and executor.in_process) for _, p in pending]
    bar = tqdm(
        total=len(points),
        initial=len(done),
        desc="expressivity",
        unit="config",
        disable=not progress,
        dynamic_ncols=True,
    )
    start = time.perf_counter()
    try:
        with executor:
            for outcome in executor.map_unordered(run_point, jobs, retries=1):
                key, spec = pending[outcome.index]
                if outcome.ok:
                    row = {"status": "ok", **outcome.value}
                    bar.write(
                        f"{spec.label}: expressivity {row['expressivity']}{'+' if row['censored'] else ''} "
                        f"({row['parameters']} parameters, {outcome.seconds:.0f} s)"
                    )
                else:
                    row = {"status": "failed", **spec.as_dict(), "label": spec.label, "error": outcome.error}
                    bar.write(f"{spec.label}: failed after {outcome.attempts} attempts: {outcome.error}")
                journal.add_trial(key, [row], outcome.seconds)
                bar.update(1)
    finally:
        bar.close()
    log(f"{len(pending)} configurations measured in {time.perf_counter() - start:.0f} s")
    rows = [journal.trials[k][0] for k in keys]
    return [r for r in rows if r["status"] == "ok"], [r for r in rows if r["status"] != "ok"]


def expressivity_trial(out: Path, **params) -> dict:
    """`gnode sweep`'s trial-function interface (`gnode.sweep`): params {"model": FamilySpec fields,
    "measure": MeasureConfig fields}. Writes the full result (every fit) to out/result.json and returns the
    flat summary: expressivity, censored, upper, parameters, rounds, seconds."""
    unknown = sorted(set(params) - {"model", "measure"})
    if unknown:
        raise ValueError(f"expressivity_trial: unknown sections {unknown}; known: model, measure")
    result = run_point(
        PointJob(dict(params.get("model", {})), MeasureConfig.from_dict(params.get("measure", {})).as_dict())
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "result.json", result)
    return {k: result[k] for k in ("expressivity", "censored", "upper", "parameters", "rounds", "seconds")}
