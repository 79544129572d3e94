"""Trials as Ray tasks: `run_set(..., use_ray=True, ray_address=...)` (the command line's `--ray [ADDRESS]`).

Each trial runs in its own task with one CPU (`num_cpus=1`, torch on `config.threads` threads), so trials do
not share cores and their times stay comparable; the references of a problem are computed once, in a task of
their own, before its trials, and reach the trials through the on-disk cache when the workers share it (else
each worker recomputes and caches them). Without an address Ray starts locally; with one it joins that
cluster. Ray is optional: without it this raises an ImportError that says how to install it.
"""

from __future__ import annotations


def run_on_ray(trials, config, *, address: str | None = None, journal=None, log=print):
    try:
        import ray
    except ImportError as e:
        raise ImportError("--ray needs Ray: pip install 'ray[default]' (or run without --ray: trials run locally "
                          "by default)") from e
    from gnode.bench.journal import trial_key
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
        return run_trial(trial, cfg)

    try:
        groups: dict = {}
        for t in trials:
            groups.setdefault(t.problem, []).append(t)
        refs, probs = {}, {}
        for spec, group in groups.items():
            name, summary, info = ray.get(references_task.remote(spec, config, any(t.gradient for t in group)))
            refs[name], probs[name] = summary, info
            log(f"references of {name} ready")
        done = journal.trials if journal is not None else {}
        pending = {trial_key(t): trial_task.remote(t, config) for t in trials if trial_key(t) not in done}
        rows = []
        for t in trials:  # in plan order; each trial journaled as soon as it is collected
            key = trial_key(t)
            if key in done:
                rows += done[key]
                continue
            out = ray.get(pending[key])
            if journal is not None:
                journal.add_trial(key, out)
            rows += out
        return rows, refs, probs
    finally:
        if started:
            ray.shutdown()
