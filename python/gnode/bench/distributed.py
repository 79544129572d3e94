"""Trials as Ray tasks: `run_set(..., use_ray=True, ray_address=...)` (the command line's `--ray [ADDRESS]`).

Each trial runs in its own task with one CPU (`num_cpus=1`, torch on `config.threads` threads), so trials do
not share cores and their times stay comparable; the references of a problem are computed once, in a task of
their own, before its trials, and reach the trials through the on-disk cache when the workers share it (else
each worker recomputes and caches them). Without an address Ray starts locally; with one it joins that
cluster. Ray is optional: without it this raises an ImportError that says how to install it.
"""

from __future__ import annotations

import time


def run_on_ray(trials, config, *, address: str | None = None, journal=None, log=print):
    """(rows, references, problem infos) of `trials`, as `run_set` gathers them. `journal`: a
    `gnode.bench.journal.Journal` (not a path; `run_set` opens it): its trials are not run again, and each
    finished trial is recorded in it as soon as its task ends."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("--ray needs Ray: pip install 'ray[default]' (or run without --ray: trials run locally "
                          "by default)") from e
    from gnode.bench.journal import problem_key, trial_key
    from gnode.bench.workprecision import problem_info, problem_references, run_trial

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)

    @ray.remote(num_cpus=1)
    def references_task(spec, cfg, gradient):
        problem = spec.build()
        refs = problem_references(problem, cfg, gradient=gradient)
        return problem.name, refs.summary(), problem_info(problem, cfg)

    @ray.remote(num_cpus=1)
    def trial_task(trial, cfg):
        start = time.perf_counter()
        rows = run_trial(trial, cfg)
        return rows, time.perf_counter() - start

    def journaled(t):
        return journal.take(trial_key(t)) if journal is not None else None

    try:
        groups: dict = {}
        for t in trials:
            groups.setdefault(t.problem, []).append(t)
        refs, probs = {}, {}
        for spec, group in groups.items():
            if journal is not None and (finished := journal.finished(spec, group)):
                name, info, summary = finished
                probs[name], refs[name] = info, summary
                continue
            known = journal.problems.get(problem_key(spec)) if journal is not None else None
            name, summary, info = ray.get(references_task.remote(spec, config, any(t.gradient for t in group)))
            refs[name], probs[name] = summary, known[1] if known else info  # a resumed problem keeps its f timing
            if journal is not None:
                journal.add_problem(problem_key(spec), name, probs[name], summary)
            log(f"references of {name} ready")
        pending = {trial_task.remote(t, config): t for t in trials
                   if journal is None or trial_key(t) not in journal.trials}
        measured = {}
        while pending:  # collected as they finish, so a kill loses only the trials still running
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                t = pending.pop(ref)
                measured[trial_key(t)], seconds = ray.get(ref)
                if journal is not None:
                    journal.add_trial(trial_key(t), measured[trial_key(t)], seconds)
        rows = []
        for t in trials:  # in plan order
            done = measured.get(trial_key(t))
            rows += done if done is not None else journaled(t)
        return rows, refs, probs
    finally:
        if started:
            ray.shutdown()
