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
from gnode.bench.specs import ProblemSpec, Trial, problem_key, solver_label, trial_key
from gnode.jobs import AbstractExecutor, Journal, LocalExecutor, RayExecutor
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
    return {
        "description": problem.description,
        "batch": problem.batch,
        "n": problem.n,
        "tspan": list(problem.tspan),
        "saves": int(problem.saveat.numel()),
        "stiff": problem.stiff,
        "atol_ratio": problem.atol_ratio,
        "n_params": int(sum(p.numel() for p in problem.params)),
        "f_seconds": bare_f_seconds(problem, config.threads),
        **problem.meta,
    }


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
            refs.gradient = reference_gradient(
                problem, cache=cache, fd_directions=config.fd_directions, fd_steps=config.fd_steps
            )
    return refs


# --------------------------------------------------------------------------------------------------- a trial


def _base_row(problem, solver, trial: Trial, reltol: float, abstol: float) -> dict:
    return {
        "problem": problem.name,
        "solver": solver.label,
        "family": solver.family,
        "package": solver.package,
        "engine": solver.engine,
        "method": solver.method,
        "sensealg": solver.sensealg,
        "mode": "gradient" if trial.gradient else "forward",
        "reltol": reltol,
        "abstol": abstol,
        "batch": problem.batch,
        "n": problem.n,
    }


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


def run_trial(
    trial: Trial, config: BenchConfig, *, problem=None, references: ProblemReferences | None = None, on_point=None
) -> list[dict]:
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
        prepared = solver.prepare(
            problem, row["reltol"], row["abstol"], gradient=trial.gradient, maxiters=config.maxiters
        )
        row["compile_seconds"] = prepared.compile_seconds
        start = time.perf_counter()
        outcome = prepared.detailed()
        detailed_seconds = time.perf_counter() - start
    except Exception as e:  # noqa: BLE001 - a solver that raises is a failed point, recorded, not a crash
        row.update(
            status="error", retcode=ReturnCode.Failure.name, message=_short(e), traceback=traceback.format_exc(limit=3)
        )
        return f"an exception at reltol {row['reltol']:.0e}"
    row.update(outcome.stats)
    row["retcode"] = outcome.retcode
    row["n_failed"] = int(np.sum(outcome.retcodes != int(ReturnCode.Success)))
    if outcome.message:
        row["message"] = outcome.message
    ref = refs.solution
    row.update(
        solution_errors(
            outcome.u_save, ref.u_save, outcome.u_dense, ref.u_dense if outcome.u_dense is not None else None
        )
    )
    if refs.extended is not None:
        ext = solution_errors(outcome.u_save, refs.extended.u_save)
        row["l2_extended"], row["final_extended"] = ext["l2"], ext["final"]
    if trial.gradient and refs.gradient is not None and outcome.grad is not None:
        row["grad_error"] = gradient_error(outcome.grad, refs.gradient.g)
    if not outcome.successful:
        row.update(status="failed", time_to_failure=detailed_seconds)
        return (
            f"failed with {outcome.retcode} at reltol {row['reltol']:.0e}"
            if outcome.retcode in STOPPING_CODES or row["n_failed"] == problem.batch
            else None
        )
    if detailed_seconds > config.point_budget:  # too slow to repeat: time it once, skip tighter tolerances
        row["time"] = time_once(prepared.run)
        row["times"] = [row["time"]]
    else:
        row["time"], row["times"] = min_time(prepared.run, config.repeats, budget=config.point_budget * config.repeats)
    if config.memory == "all" or (config.memory == "gradient" and trial.gradient):
        if row["time"] > MEMORY_PROBE_SECONDS:
            row["peak_memory_bytes"], row["memory_method"] = (
                None,
                (
                    f"not measured: a {row['time']:.1f} s run (> {MEMORY_PROBE_SECONDS:g} s) is too long for the torch "
                    "profiler, whose event log grows with every op (it ran a 24 GB machine out of memory)"
                ),
            )
        else:
            try:
                row["peak_memory_bytes"], row["memory_method"] = prepared.peak_memory()
            except Exception as e:  # noqa: BLE001 - a failed probe loses one number, not the point
                row["peak_memory_bytes"], row["memory_method"] = None, f"failed: {_short(e)}"
    row["status"] = "ok"
    if max(detailed_seconds, row["time"]) > config.point_budget:
        return (
            f"the point at reltol {row['reltol']:.0e} took {max(detailed_seconds, row['time']):.1f} s "
            f"(> point_budget {config.point_budget:g} s)"
        )
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

    notes = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
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

    for pkg in (
        "gnode",
        "numpy",
        "scipy",
        "torchdiffeq",
        "torchode",
        "jax",
        "jaxlib",
        "diffrax",
        "equinox",
        "mpmath",
        "ray",
    ):
        try:
            notes[f"version_{pkg}"] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return notes


def run_set(
    trials: list[Trial],
    config: BenchConfig | None = None,
    *,
    executor: AbstractExecutor | None = None,
    use_ray: bool = False,
    ray_address: str | None = None,
    progress: bool = True,
    journal=None,
    log=print,
) -> BenchResults:
    """Run every trial and collect the results.

    executor: where the trials run (`gnode.jobs`): `LocalExecutor()` (the default: one after the other in this
              process) or `RayExecutor(...)` (Ray tasks of one CPU each, so that trials do not share cores and their
              times stay comparable). `use_ray=True` (with `ray_address`, None for a local Ray) is a shorthand for
              the latter. Either way the references of each problem are computed first, one job per problem; on
              Ray its trials then find them in the on-disk reference cache when the workers share it (else each
              worker computes and caches them).
    journal:  a path: each finished trial is recorded there at once and trials already recorded are not run
              again, so an interrupted run resumes (`gnode.jobs.journal`; a `JournalError` when the journal
              cannot be resumed).
    """
    config = config or BenchConfig()
    if executor is None:
        executor = RayExecutor(ray_address, cpus_per_task=1) if use_ray else LocalExecutor()
    meta = machine_notes()
    start = time.perf_counter()
    if journal is not None:
        machine = {k: meta.get(k) for k in ("cpu_model", "cpu_count", "platform", "python", "torch")}
        journal = Journal(journal, asdict(config), machine)
        if journal.trials:
            log(f"resuming from {journal.path}: {len(journal.trials)} trials already measured")
    with executor:
        rows, refs, probs = _SetRun(trials, config, executor, journal, progress, log).run()
    meta["wall_seconds"] = time.perf_counter() - start
    meta["executor"] = executor.describe()
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


class TrialRunner:
    """The two kinds of job of a set, as methods of one picklable object: `references((spec, gradient))` builds a
    problem and its references, `run(trial)` measures a trial. With `keep` (jobs in this process, a
    `LocalExecutor`) the problems and references built by the first are kept for the second, and
    `on_start`/`on_point` report progress; a Ray worker gets a copy without them and rebuilds what it needs (the
    references from the on-disk cache)."""

    def __init__(self, config: BenchConfig, *, keep: bool = False, on_start=None, on_point=None):
        self.config, self.keep = config, keep
        self.on_start, self.on_point = on_start, on_point
        self._built: dict[ProblemSpec, tuple[object, ProblemReferences]] = {}

    def __getstate__(self):
        return {"config": self.config, "keep": False, "on_start": None, "on_point": None, "_built": {}}

    def references(self, job: tuple[ProblemSpec, bool]) -> dict:
        """{"name", "info", "references" (summary)}, or {"unavailable": why} when the problem cannot be built
        here (a missing run folder, an optional dependency)."""
        spec, gradient = job
        try:
            problem = spec.build()
        except (FileNotFoundError, ImportError, ValueError) as e:
            return {"unavailable": str(e)}
        if self.on_start is not None:
            self.on_start(f"{problem.name}: references")
        start = time.perf_counter()
        refs = problem_references(problem, self.config, gradient=gradient)
        if self.keep:  # in this process: kept for the problem's trials
            self._built[spec] = (problem, refs)
        return {
            "name": problem.name,
            "info": problem_info(problem, self.config),
            "references": {**refs.summary(), "seconds_here": time.perf_counter() - start},
        }

    def run(self, trial: Trial) -> list[dict]:
        problem, refs = self._built.get(trial.problem, (None, None))
        if self.on_start is not None:
            self.on_start(f"{trial.problem.name}: {solver_label(trial.solver)}")
        return run_trial(trial, self.config, problem=problem, references=refs, on_point=self.on_point)

    def forget(self, spec: ProblemSpec) -> None:
        """Drop what was kept for `spec` (its trials are done)."""
        self._built.pop(spec, None)


def _unmeasured_rows(trial: Trial, status: str, message: str) -> list[dict]:
    """The rows of a trial that was not measured: "skipped" (its problem is unavailable) or "error" (the trial
    itself raised, which `run_trial` only lets through for a crash of the solver's process)."""
    return [
        {
            "problem": trial.problem.name,
            "solver": solver_label(trial.solver),
            "mode": "gradient" if trial.gradient else "forward",
            "reltol": r,
            "status": status,
            "message": message,
        }
        for r in trial.reltols
    ]


class _SetRun:
    """One session of `run_set`: the rows done so far (journaled ones first), the references and problem infos,
    and the progress bar; then the references jobs and the trial jobs on `executor`."""

    def __init__(self, trials, config, executor: AbstractExecutor, journal, progress: bool, log):
        from tqdm.auto import tqdm

        self.trials, self.executor, self.journal, self.log = trials, executor, journal, log
        self.groups: dict[ProblemSpec, list[Trial]] = {}
        for t in trials:
            self.groups.setdefault(t.problem, []).append(t)
        self.done: dict[str, list[dict]] = {}  # trial key -> rows
        self.refs, self.probs = {}, {}
        self.bar = tqdm(
            total=sum(len(t.reltols) for t in trials), disable=not progress, unit="point", dynamic_ncols=True
        )
        local = executor.in_process
        self.runner = TrialRunner(
            config,
            keep=local,
            on_point=(lambda row: self.bar.update(1)) if local else None,
            on_start=(lambda text: self.bar.set_description(text[:60])) if local else None,
        )

    def run(self):
        """(rows in plan order, references by problem name, problem infos by name)."""
        try:
            self._trials(self._references(self._resume()))
        finally:
            self.bar.close()
        return [row for t in self.trials for row in self.done[trial_key(t)]], self.refs, self.probs

    def _known(self, spec) -> dict | None:
        return self.journal.records.get(problem_key(spec)) if self.journal is not None else None

    def _finish(self, t: Trial, rows: list[dict]) -> None:
        self.done[trial_key(t)] = rows
        self.bar.update(len(t.reltols))

    def _resume(self) -> list[tuple[ProblemSpec, bool]]:
        """Take the journaled trials; returns the references jobs: the problems with a trial left to run."""
        jobs = []
        for spec, group in self.groups.items():
            if (known := self._known(spec)) is not None:
                self.probs[known["name"]], self.refs[known["name"]] = known["info"], known["references"]
            for t in group:
                if self.journal is not None and (rows := self.journal.take(trial_key(t))) is not None:
                    self._finish(t, rows)
            if any(trial_key(t) not in self.done for t in group):
                jobs.append((spec, any(t.gradient for t in group)))
        return jobs

    def _references(self, jobs) -> list[ProblemSpec]:
        """Compute (and journal) each problem's references; returns the problems that could be built."""
        available = []
        for outcome in self.executor.map_unordered(self.runner.references, jobs):
            spec = jobs[outcome.index][0]
            result = outcome.value if outcome.ok else {"unavailable": outcome.error}
            if "unavailable" in result:
                self.log(f"skipping problem {spec.name}: {result['unavailable']}")
                for t in self.groups[spec]:
                    if trial_key(t) not in self.done:
                        self._finish(t, _unmeasured_rows(t, "skipped", f"problem unavailable: {result['unavailable']}"))
                continue
            name, known = result["name"], self._known(spec)
            # a resumed problem keeps its first bare-f timing, so its rows' overheads stay on one scale
            self.probs[name] = known["info"] if known is not None else result["info"]
            self.refs[name] = result["references"]
            if self.journal is not None:
                self.journal.add_record(
                    problem_key(spec), {"name": name, "info": self.probs[name], "references": self.refs[name]}
                )
            if not self.executor.in_process:
                self.log(f"references of {name} ready")
            available.append(spec)
        return available

    def _trials(self, available) -> None:
        """Measure (and journal) every trial left, in the order they finish."""
        pending = [t for spec in available for t in self.groups[spec] if trial_key(t) not in self.done]
        left = {spec: sum(t.problem == spec for t in pending) for spec in available}
        for outcome in self.executor.map_unordered(self.runner.run, pending):
            t = pending[outcome.index]
            rows = outcome.value if outcome.ok else _unmeasured_rows(t, "error", f"the trial failed: {outcome.error}")
            if self.journal is not None:
                self.journal.add_trial(trial_key(t), rows, outcome.seconds)
            if self.executor.in_process:  # its points have moved the bar already
                self.done[trial_key(t)] = rows
            else:
                self._finish(t, rows)
            left[t.problem] -= 1
            if not left[t.problem]:
                self.runner.forget(t.problem)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
