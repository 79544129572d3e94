"""Executors: jobs in this process and as real Ray tasks (retries, a crashed worker, outcomes as they finish),
and `gnode bench --ray` on a real local Ray."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gnode.jobs import LocalExecutor, Outcome, RayExecutor


def halve(x):
    if x % 2:
        raise ValueError(f"{x} is odd")
    return x // 2


class FlakyJob:
    """Fails the first attempt at each item (it remembers attempts in files, as a worker process is fresh), by an
    exception or, with `crash`, by its process dying."""

    def __init__(self, folder, crash=False):
        self.folder, self.crash = str(folder), crash

    def __call__(self, x):
        mark = Path(self.folder) / f"tried-{x}"
        if not mark.exists():
            mark.write_text(str(os.getpid()))
            if self.crash:
                os._exit(3)  # as a worker killed by the OOM killer would end
            raise RuntimeError("a transient failure")
        return x * 10, os.getpid()


def test_local_jobs_run_in_order_and_failures_become_outcomes(tmp_path):
    out = list(LocalExecutor().map_unordered(halve, [4, 3, 8]))
    assert [(o.index, o.value, o.error) for o in out] == [(0, 2, None), (1, None, "ValueError: 3 is odd"), (2, 4, None)]
    assert out[1].attempts == 1 and "ValueError" in out[1].traceback and not out[1].ok
    flaky = list(LocalExecutor().map_unordered(FlakyJob(tmp_path), [1, 2], retries=1))
    assert [(o.value[0], o.attempts) for o in flaky] == [(10, 2), (20, 2)]
    with pytest.raises(ValueError, match="retries must be an integer >= 0"):
        list(LocalExecutor().map_unordered(halve, [2], retries=-1))


def test_ctrl_c_in_a_local_job_is_not_retried():
    def interrupted(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(LocalExecutor().map_unordered(interrupted, [1], retries=3))


def test_a_ray_executor_checks_its_settings_before_starting_anything():
    with pytest.raises(ValueError, match="num_cpus must be an integer >= 1"):
        RayExecutor(num_cpus=0)
    with pytest.raises(ValueError, match="cpus_per_task must be a number > 0"):
        RayExecutor(cpus_per_task=0)
    assert RayExecutor("ray://head:10001").describe() == "the Ray cluster at ray://head:10001 (1 CPU per task)"


@pytest.mark.slow
def test_ray_tasks_are_retried_after_an_error_or_a_crashed_worker(local_ray, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with RayExecutor(num_cpus=2) as ex:
        raised = sorted(ex.map_unordered(FlakyJob(tmp_path / "a"), [1, 2, 3], retries=1), key=lambda o: o.index)
        crashed = list(ex.map_unordered(FlakyJob(tmp_path / "b", crash=True), [7], retries=1))
        failed = list(ex.map_unordered(halve, [5], retries=1))
    assert [o.value[0] for o in raised] == [10, 20, 30] and all(o.ok for o in raised)
    assert {o.value[1] for o in raised}.isdisjoint({os.getpid()})  # ran in Ray's workers
    assert crashed[0].value[0] == 70 and (tmp_path / "b" / "tried-7").exists()  # a new worker took it over
    assert failed == [Outcome(0, error="ValueError: 5 is odd", traceback=failed[0].traceback, attempts=2)]
    assert local_ray.is_initialized()  # a Ray the executor did not start stays up


@pytest.mark.slow
def test_gnode_bench_ray_runs_trials_on_a_real_ray(local_ray, tmp_path, capsys):
    from gnode.cli import main

    out = tmp_path / "out"
    code = main(
        [
            "bench",
            "--problems",
            "gnode_critical",
            "--batch",
            "2",
            "--n",
            "3",
            "--hidden",
            "4",
            "--t1",
            "1",
            "--solvers",
            "torch Tsit5",
            "torch DP5",
            "--reltols",
            "1e-3",
            "1e-5",
            "--repeats",
            "1",
            "--peers",
            "--memory",
            "none",
            "--no-figures",
            "--quiet",
            "--cache-dir",
            str(tmp_path / "c"),
            "--out",
            str(out),
            "--ray",
        ]
    )
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert [(r["solver"], r["reltol"], r["status"]) for r in doc["rows"]] == [
        ("torch DP5()", 1e-3, "ok"),
        ("torch DP5()", 1e-5, "ok"),
        ("torch Tsit5()", 1e-3, "ok"),
        ("torch Tsit5()", 1e-5, "ok"),
    ]
    assert doc["meta"]["executor"] == "a local Ray (1 CPU per task)"
    assert all(r["l2"] < 1e-2 for r in doc["rows"])  # measured against the reference, as locally
