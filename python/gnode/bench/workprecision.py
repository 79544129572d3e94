"""The work-precision runner: trials → measured points (error, time, nf, ..., memory) → results.

    from gnode.bench import BenchConfig, ProblemSpec, plan, run_set
    trials = plan([ProblemSpec.of("gnode_critical", batch=16), "robertson"], gradients=True)
    results = run_set(trials, BenchConfig(repeats=3))
    results.write("bench-out")                  # results.json, results.csv, figures/*.png

For each trial (problem × solver × mode) and each tolerance, in order from loose to tight:
  1. `prepare` (problem objects, JIT compilation — its time is recorded as `compile_seconds`, not counted);
  2. a detailed, untimed run: the solution at the saved and dense times, per-trajectory return codes,
     statistics, the gradient; errors against the reference (`gnode.bench.errors`);
  3. if it succeeded: wall time = minimum over `repeats` runs after a warm-up (`gnode.bench.measure`), with
     torch on `threads` threads; then peak memory in one more run (optional);
  4. `overhead` (forward, torch solvers): time / (f_calls × the time of one bare f call on the batch) - 1,
     the share of the time not spent in the vector field;
  5. a failure (any trajectory without `Success`, or an exception) is recorded with its return code and
     message; the trial's tighter tolerances are then skipped (recorded as skipped), as they would fail too
     and could take long. So are they when one run took longer than `point_budget` seconds.

Nothing here is global: the runner reads no module state and restores torch's thread setting, so a trial can
run inside a Ray or torch.distributed worker (`run_trial` takes and returns plain data).
"""

from __future__ import annotations

import math
import platform
import time
import traceback
from dataclasses import asdict, dataclass, field

import numpy as np

from gnode.bench.cache import ReferenceCache
from gnode.bench.errors import gradient_error, solution_errors
from gnode.bench.measure import min_time, time_once, torch_threads
from gnode.bench.specs import ProblemSpec, Trial
from gnode.retcode import ReturnCode

METRIC_CHOICES = ("final", "l2", "L2", "linf", "Linf")
MEMORY_CHOICES = ("all", "gradient", "none")
MEMORY_PROBE_SECONDS = 2.0  # longer runs skip the peak-memory probe (see _measure_point)
STOPPING_CODES = {ReturnCode.MaxIters.name, ReturnCode.DtLessThanMin.name, ReturnCode.Unstable.name}


@dataclass(frozen=True)
class BenchConfig:
    """How points are measured.

    repeats:       timed runs per point (after one warm-up); the minimum is reported.
    threads:       torch intra-op threads during the trials (None: leave as is). 1 by default: the fair
                   setting on a shared machine, and the one the peers are measured with.
    maxiters:      step budget per trajectory for every solver.
    memory:        "all", "gradient" or "none": which points get their peak memory measured (one extra
                   untimed run per point, several times slower than a plain one under the torch profiler; points
                   whose run takes over MEMORY_PROBE_SECONDS are not probed).
    point_budget:  seconds; a point whose single run took longer ends its trial's tolerance sweep.
    metric:        the solution error the diagrams and matched-error comparisons use ("l2" by default;
                   gradient points always use the gradient error).
    cache_dir, use_cache: where reference solutions are cached (default: the user cache folder).
    extended_reference: also compute the mpmath reference for problems that have one.
    reference_rtol: rtol of the SciPy float64 reference.
    fd_directions, fd_steps: the finite-difference check of each reference gradient (random directions, relative
                   steps; see `gnode.bench.reference.reference_gradient`).
    """

    repeats: int = 3
    threads: int | None = 1
    maxiters: int = 100_000
    memory: str = "all"
    point_budget: float = 30.0
    metric: str = "l2"
    cache_dir: str | None = None
    use_cache: bool = True
    extended_reference: bool = True
    reference_rtol: float = 1e-13
    fd_directions: int = 2
    fd_steps: tuple[float, ...] = (1e-3, 1e-4, 1e-5)

    def __post_init__(self):
        if self.metric not in METRIC_CHOICES:
            raise ValueError(f"BenchConfig.metric must be one of {METRIC_CHOICES}, got {self.metric!r}")
        if isinstance(self.memory, bool):  # True / False as shorthands for "all" / "none"
            object.__setattr__(self, "memory", "all" if self.memory else "none")
        if self.memory not in MEMORY_CHOICES:
            raise ValueError(f"BenchConfig.memory must be one of {MEMORY_CHOICES}, got {self.memory!r}")
        if not (isinstance(self.repeats, int) and self.repeats >= 1):
            raise ValueError(f"BenchConfig.repeats must be an integer >= 1, got {self.repeats!r}")

    def cache(self) -> ReferenceCache:
        return ReferenceCache(self.cache_dir, enabled=self.use_cache)


@dataclass
class ProblemReferences:
    """The references of one problem (arrays stay out of the results file; their summaries go in)."""

    solution: object  # gnode.bench.reference.Reference
    extended: object | None = None
    gradient: object | None = None  # GradientReference
    notes: dict = field(default_factory=dict)

    def summary(self) -> dict:
        out = {"solution": self.solution.summary()}
        if self.extended is not None:
            ext, ref = self.extended, self.solution
            out["extended"] = ext.summary()
            out["float64_vs_extended"] = solution_errors(ref.u_save, ext.u_save, ref.u_dense, ext.u_dense)
        if self.gradient is not None:
            out["gradient"] = self.gradient.summary()
        out.update(self.notes)
        return out


def bare_f_seconds(problem, threads: int | None = 1, calls: int = 50, repeats: int = 5) -> float:
    """Seconds per call of the problem's vector field on the whole batch (no grad, min over repeats): the
    floor under any torch solver's cost, from which a point's `overhead` is measured."""
    import torch

    t = torch.full((problem.batch,), float(problem.tspan[0]), dtype=problem.u0.dtype)
    x = None if problem.inputs is None else problem.inputs.evaluate(t)
    f = problem.f

    def many():
        for _ in range(calls):
            f(t, problem.u0) if x is None else f(t, problem.u0, x)

    with torch_threads(threads), torch.no_grad():
        best, _ = min_time(many, repeats)
    return best / calls


def problem_info(problem, config: BenchConfig) -> dict:
    """What the results file says about a problem (sizes, description, bare f cost)."""
    return {"description": problem.description, "batch": problem.batch, "n": problem.n,
            "tspan": list(problem.tspan), "saves": int(problem.saveat.numel()), "stiff": problem.stiff,
            "atol_ratio": problem.atol_ratio, "n_params": int(sum(p.numel() for p in problem.params)),
            "f_seconds": bare_f_seconds(problem, config.threads), **problem.meta}


def problem_references(problem, config: BenchConfig, *, gradient: bool) -> ProblemReferences:
    """The float64 reference (cached), the extended-precision one when asked and available, and the reference
    gradient when `gradient`."""
    from gnode.bench.reference import mp_reference, reference_gradient, reference_solution

    cache = config.cache()
    refs = ProblemReferences(reference_solution(problem, rtol=config.reference_rtol, cache=cache))
    if config.extended_reference and problem.mp_f is not None and problem.inputs is None:
        refs.extended = mp_reference(problem, cache=cache)
    if gradient and problem.differentiable:
        with torch_threads(config.threads):
            refs.gradient = reference_gradient(problem, cache=cache, fd_directions=config.fd_directions,
                                               fd_steps=config.fd_steps)
    return refs


# --------------------------------------------------------------------------------------------------- a trial

def _base_row(problem, solver, trial: Trial, reltol: float, abstol: float) -> dict:
    return {"problem": problem.name, "solver": solver.label, "family": solver.family, "package": solver.package,
            "engine": solver.engine, "method": solver.method, "sensealg": solver.sensealg,
            "mode": "gradient" if trial.gradient else "forward", "reltol": reltol, "abstol": abstol,
            "batch": problem.batch, "n": problem.n}


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def run_trial(trial: Trial, config: BenchConfig, *, problem=None, references: ProblemReferences | None = None,
              on_point=None) -> list[dict]:
    """Measure one trial at each of its tolerances (module docstring); returns one row (a plain dict) per
    tolerance. `problem`/`references` may be passed in when the caller already built them."""
    problem = problem if problem is not None else trial.problem.build()
    solver = trial.solver.build()
    rows = []
    ok, why = solver.available()
    if ok:
        ok, why = solver.supports(problem, trial.gradient)
    if not ok:
        for r in trial.reltols:
            row = _base_row(problem, solver, trial, r, r * problem.atol_ratio)
            row.update(status="skipped", message=why)
            rows.append(row)
            if on_point is not None:
                on_point(row)
        return rows
    if references is None:
        references = problem_references(problem, config, gradient=trial.gradient)
    stop_reason = None
    with torch_threads(config.threads):
        for reltol in sorted(trial.reltols, reverse=True):
            abstol = reltol * problem.atol_ratio
            row = _base_row(problem, solver, trial, reltol, abstol)
            if stop_reason is not None:
                row.update(status="skipped", message=stop_reason)
            else:
                stop_reason = _measure_point(row, problem, solver, trial, config, references)
            rows.append(row)
            if on_point is not None:
                on_point(row)
    return rows


def _measure_point(row, problem, solver, trial, config, refs) -> str | None:
    """Fill `row`; return why the tighter tolerances should be skipped, or None."""
    try:
        prepared = solver.prepare(problem, row["reltol"], row["abstol"], gradient=trial.gradient,
                                  maxiters=config.maxiters)
        row["compile_seconds"] = prepared.compile_seconds
        start = time.perf_counter()
        outcome = prepared.detailed()
        detailed_seconds = time.perf_counter() - start
    except Exception as e:  # noqa: BLE001 - a solver that raises is a failed point, recorded, not a crash
        row.update(status="error", retcode=ReturnCode.Failure.name, message=_short(e),
                   traceback=traceback.format_exc(limit=3))
        return f"an exception at reltol {row['reltol']:.0e}"
    row.update(outcome.stats)
    row["retcode"] = outcome.retcode
    row["n_failed"] = int(np.sum(outcome.retcodes != int(ReturnCode.Success)))
    if outcome.message:
        row["message"] = outcome.message
    ref = refs.solution
    row.update(solution_errors(outcome.u_save, ref.u_save, outcome.u_dense,
                               ref.u_dense if outcome.u_dense is not None else None))
    if refs.extended is not None:
        ext = solution_errors(outcome.u_save, refs.extended.u_save)
        row["l2_extended"], row["final_extended"] = ext["l2"], ext["final"]
    if trial.gradient and refs.gradient is not None and outcome.grad is not None:
        row["grad_error"] = gradient_error(outcome.grad, refs.gradient.g)
    if not outcome.successful:
        row.update(status="failed", time_to_failure=detailed_seconds)
        return (f"failed with {outcome.retcode} at reltol {row['reltol']:.0e}"
                if outcome.retcode in STOPPING_CODES or row["n_failed"] == problem.batch else None)
    if detailed_seconds > config.point_budget:  # too slow to repeat: time it once, skip tighter tolerances
        row["time"] = time_once(prepared.run)
        row["times"] = [row["time"]]
    else:
        row["time"], row["times"] = min_time(prepared.run, config.repeats,
                                             budget=config.point_budget * config.repeats)
    if config.memory == "all" or (config.memory == "gradient" and trial.gradient):
        if row["time"] > MEMORY_PROBE_SECONDS:
            row["peak_memory_bytes"], row["memory_method"] = None, (
                f"not measured: a {row['time']:.1f} s run (> {MEMORY_PROBE_SECONDS:g} s) is too long for the torch "
                "profiler, whose event log grows with every op (it ran a 24 GB machine out of memory)")
        else:
            try:
                row["peak_memory_bytes"], row["memory_method"] = prepared.peak_memory()
            except Exception as e:  # noqa: BLE001 - a failed probe loses one number, not the point
                row["peak_memory_bytes"], row["memory_method"] = None, f"failed: {_short(e)}"
    row["status"] = "ok"
    if max(detailed_seconds, row["time"]) > config.point_budget:
        return f"the point at reltol {row['reltol']:.0e} took {max(detailed_seconds, row['time']):.1f} s " \
               f"(> point_budget {config.point_budget:g} s)"
    return None


# --------------------------------------------------------------------------------------------------- a set

@dataclass
class BenchResults:
    """Every measured point (`rows`), the references of each problem, the machine, and the configuration."""

    rows: list[dict]
    references: dict[str, dict]
    meta: dict
    config: dict
    problems: dict[str, dict] = field(default_factory=dict)

    def comparisons(self) -> dict:
        from gnode.bench.compare import compare_all
        return compare_all(self.rows, self.config.get("metric", "l2"))

    def write(self, folder, *, figures: bool = True) -> dict[str, str]:
        from gnode.bench.report import write_results
        return write_results(self, folder, figures=figures)


def machine_notes() -> dict:
    """The machine and software a run was measured on."""
    import os

    import torch

    notes = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
             "python": platform.python_version(), "cpu_count": os.cpu_count(),
             "torch": torch.__version__, "torch_threads_default": torch.get_num_threads(),
             "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        notes["load_average"] = os.getloadavg()
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    notes["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import importlib.metadata as md
    for pkg in ("gnode", "numpy", "scipy", "torchdiffeq", "torchode", "jax", "jaxlib", "diffrax", "equinox",
                "mpmath", "ray"):
        try:
            notes[f"version_{pkg}"] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return notes


def run_set(trials: list[Trial], config: BenchConfig | None = None, *, ray_address: str | None = None,
            use_ray: bool = False, progress: bool = True, journal=None, log=print) -> BenchResults:
    """Run every trial (locally, or as Ray tasks with `use_ray`) and collect the results. With `journal` (a
    path), each finished trial is recorded there at once and trials already recorded are not run again: an
    interrupted run resumes (`gnode.bench.journal`; a `JournalError` when the journal cannot be resumed)."""
    config = config or BenchConfig()
    meta = machine_notes()
    start = time.perf_counter()
    if journal is not None:
        from gnode.bench.journal import Journal
        machine = {k: meta.get(k) for k in ("cpu_model", "cpu_count", "platform", "python", "torch")}
        journal = Journal(journal, asdict(config), machine)
        if journal.trials:
            log(f"resuming from {journal.path}: {len(journal.trials)} trials already measured")
    if use_ray:
        from gnode.bench.distributed import run_on_ray
        rows, refs, probs = run_on_ray(trials, config, address=ray_address, journal=journal, log=log)
    else:
        rows, refs, probs = _run_local(trials, config, journal=journal, progress=progress, log=log)
    meta["wall_seconds"] = time.perf_counter() - start
    if journal is not None and journal.resumed:  # the sessions before this one, as the journal recorded them
        meta["resumed_trials"] = len(journal.resumed)
        meta["wall_seconds"] += journal.resumed_seconds()
    for r in rows:  # solver overhead over the bare f calls it made (forward, torch solvers that counted them)
        fs = probs.get(r.get("problem"), {}).get("f_seconds")
        if r.get("mode") == "forward" and r.get("status") == "ok" and r.get("f_calls") and fs:
            r["overhead"] = r["time"] / (r["f_calls"] * fs) - 1
    try:
        import os
        meta["load_average_end"] = os.getloadavg()
    except OSError:
        pass
    return BenchResults(rows, refs, meta, asdict(config), probs)


def _run_local(trials, config, *, journal, progress, log):
    from tqdm.auto import tqdm

    from gnode.bench.journal import problem_key, trial_key

    by_problem: dict[ProblemSpec, list[Trial]] = {}
    for t in trials:
        by_problem.setdefault(t.problem, []).append(t)

    def journaled(t):
        return journal.take(trial_key(t)) if journal is not None else None

    rows, refs, probs = [], {}, {}
    total = sum(len(t.reltols) for t in trials)
    bar = tqdm(total=total, disable=not progress, unit="point", dynamic_ncols=True)
    try:
        for spec, group in by_problem.items():
            if journal is not None and (finished := journal.finished(spec, group)):
                name, info, summary = finished
                probs[name], refs[name] = info, summary
                for t in group:
                    rows += journaled(t)
                    bar.update(len(t.reltols))
                continue
            try:
                problem = spec.build()
            except (FileNotFoundError, ImportError, ValueError) as e:
                log(f"skipping problem {spec.name}: {e}")
                for t in group:
                    if (done := journaled(t)) is not None:
                        rows += done
                        bar.update(len(t.reltols))
                        continue
                    for r in t.reltols:
                        rows.append({"problem": spec.name, "solver": _label(t.solver), "mode":
                                     "gradient" if t.gradient else "forward", "reltol": r,
                                     "status": "skipped", "message": f"problem unavailable: {e}"})
                    bar.update(len(t.reltols))
                continue
            # a resumed problem keeps its first bare-f timing, so its rows' overheads stay on one scale
            known = journal.problems.get(problem_key(spec)) if journal is not None else None
            probs[problem.name] = known[1] if known else problem_info(problem, config)
            bar.set_description(f"{problem.name}: references")
            t0 = time.perf_counter()
            ref = problem_references(problem, config, gradient=any(t.gradient for t in group))
            refs[problem.name] = {**ref.summary(), "seconds_here": time.perf_counter() - t0}
            if journal is not None:
                journal.add_problem(problem_key(spec), problem.name, probs[problem.name], refs[problem.name])
            for t in group:
                if (done := journaled(t)) is not None:
                    rows += done
                    bar.update(len(t.reltols))
                    continue
                bar.set_description(f"{problem.name}: {_label(t.solver)}"[:60])
                t0 = time.perf_counter()
                out = run_trial(t, config, problem=problem, references=ref, on_point=lambda r: bar.update(1))
                if journal is not None:
                    journal.add_trial(trial_key(t), out, time.perf_counter() - t0)
                rows += out
    finally:
        bar.close()
    return rows, refs, probs


def _label(spec) -> str:
    try:
        return spec.label
    except Exception:  # noqa: BLE001 - an unknown package still needs a name in the skipped rows
        return f"{spec.package} {spec.method}"


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
