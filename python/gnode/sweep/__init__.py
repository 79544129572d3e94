"""Sweeps: many independent trials (seeds, model families, sizes, solvers, tolerances), each a Ray task, with a
journal so that a killed sweep resumes, and one table and a figure per metric at the end.

    gnode sweep sweep.yaml --out sweeps/mine                 # a local Ray with all CPUs
    gnode sweep sweep.yaml --out sweeps/mine --address auto  # the Ray cluster this machine belongs to

    from gnode.jobs import RayExecutor
    from gnode.sweep import SweepSpec, run_sweep
    spec = SweepSpec(trial="flipflop", grid={"model.kind": ["gnode", "mgru"], "train.seed": [0, 1, 2]})
    results = run_sweep(spec, "sweeps/mine", executor=RayExecutor(num_cpus=4))

The trial-function interface (how other studies plug in):
    A trial function is a plain, importable, module-level function

        def my_trial(out: pathlib.Path, **params) -> dict

    `params` are the sweep's nested arguments for this trial (the spec's `base` with the trial's grid values
    set at their dotted keys, so {"model": {"kind": "mgru"}, "train": {"seed": 1}}); `out` is a folder of its
    own, where it may keep a run (and find it again when a killed sweep is resumed). It returns a flat dict of
    results (numbers and strings); a `metrics` attribute on the function (a tuple of result names) says which
    get a figure when the spec does not (default: every number). It reads nothing from global state: everything
    it needs, engine settings included, arrives in `params`, since it runs in a Ray worker on any node. It may raise:
    the sweep runs it again (`retries`, default once) and then records the error.
    A spec names it by path, `trial: "package.module:function"`, or by a short name listed in
    `TRIAL_FUNCTIONS` (gnode's own: "flipflop" -> `gnode.sweep.trials.train_flipflop`, "expressivity" ->
    `gnode.expressivity.sweep.expressivity_trial`).

Modules: spec (the YAML/JSON specification and its grid), trials (gnode's trial functions), runner (running
and journaling: `run_sweep`), report (table and figures), cli (`gnode sweep`).
"""

from gnode.sweep.runner import SweepResults, TrialTask, run_sweep
from gnode.sweep.spec import TRIAL_FUNCTIONS, SweepSpec, SweepSpecError, SweepTrial

__all__ = ["TRIAL_FUNCTIONS", "SweepResults", "SweepSpec", "SweepSpecError", "SweepTrial", "TrialTask", "run_sweep"]
