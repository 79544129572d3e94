"""Sweeps: the specification and its grid, running and journaling (killed and resumed, failures retried once and
recorded), the table and figures, `gnode sweep`, and a real local Ray."""

from __future__ import annotations

import csv
import json
import os

import pytest

from gnode.jobs import JournalError, RayExecutor
from gnode.sweep import SweepSpec, SweepSpecError, run_sweep

HERE = "test_sweep"  # trial functions below are found by path, as "test_sweep:square" (tests/ is on sys.path)


def square(out, x, fail_on=None, flaky=False):
    """A trial function: x squared. Raises for x == fail_on; with `flaky`, fails its first attempt only (it
    remembers the attempt in its own folder, as a real trial keeps its run there)."""
    if x == fail_on:
        raise ValueError(f"x = {x} is not allowed")
    if flaky and not (out / "tried").exists():
        (out / "tried").write_text("1")
        raise RuntimeError("a transient failure")
    return {"y": x * x, "pid": os.getpid()}


# ------------------------------------------------------------------------------------------------ the spec


def test_trials_are_the_points_times_the_grid_with_dotted_keys():
    spec = SweepSpec(
        trial=f"{HERE}:square",
        base={"model": {"kind": "gnode", "latent": 3}, "lr": 0.1},
        points=({"model.kind": "mgru"}, {"model.kind": "elman", "model.latent": 8}),
        grid={"seed": [0, 1], "solver.alg": ["RK4()"]},
    )
    trials = spec.expand()
    assert [t.point for t in trials] == [
        {"model.kind": "mgru", "seed": 0, "solver.alg": "RK4()"},
        {"model.kind": "mgru", "seed": 1, "solver.alg": "RK4()"},
        {"model.kind": "elman", "model.latent": 8, "seed": 0, "solver.alg": "RK4()"},
        {"model.kind": "elman", "model.latent": 8, "seed": 1, "solver.alg": "RK4()"},
    ]
    assert trials[2].params == {
        "model": {"kind": "elman", "latent": 8},
        "lr": 0.1,
        "seed": 0,
        "solver": {"alg": "RK4()"},
    }
    assert spec.base == {"model": {"kind": "gnode", "latent": 3}, "lr": 0.1}  # the base is not changed
    assert len({t.key for t in trials}) == 4 and trials[0].key == spec.expand()[0].key  # distinct, stable
    assert spec.varying() == ["model.kind", "seed", "model.latent"]  # in order of first appearance


def test_a_spec_is_read_from_yaml_or_json(tmp_path):
    text = f"trial: '{HERE}:square'\ngrid:\n  x: [1, 2, 3]\nretries: 0\n"
    (tmp_path / "s.yaml").write_text(text)
    (tmp_path / "s.json").write_text(json.dumps({"trial": f"{HERE}:square", "grid": {"x": [1, 2, 3]}, "retries": 0}))
    a, b = SweepSpec.load(tmp_path / "s.yaml"), SweepSpec.load(tmp_path / "s.json")
    assert a.name == b.name == "s" and a.to_dict() == b.to_dict()
    assert [t.params for t in a.expand()] == [{"x": 1}, {"x": 2}, {"x": 3}]


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"grid": {"x": [1]}}, "needs 'trial'"),
        ({"trial": "flipflop", "grdi": {}}, r"unknown keys \['grdi'\]"),
        ({"trial": "nosuch"}, "unknown trial 'nosuch'"),
        ({"trial": "flipflop", "grid": {"train.seed": 3}}, r"grid\['train.seed'\] must be a non-empty list"),
        (
            {"trial": "flipflop", "base": {"model": 3}, "grid": {"model.kind": ["gnode"]}},
            "cannot set 'model.kind': 'model' is 3, not a mapping",
        ),
        ({"trial": "flipflop", "grid": {"a..b": [1]}}, "dotted keys"),
        ({"trial": "flipflop", "retries": -1}, "retries must be an integer >= 0"),
        ({"trial": "flipflop", "plot": {"y": "x"}}, "plot takes the keys x and hue"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(doc, message):
    with pytest.raises(SweepSpecError, match=message):
        SweepSpec.from_dict(doc)


def test_a_spec_file_that_is_not_yaml_says_so(tmp_path):
    (tmp_path / "bad.yaml").write_text("grid: [1, 2\n")
    with pytest.raises(SweepSpecError, match="bad.yaml is not valid YAML"):
        SweepSpec.load(tmp_path / "bad.yaml")
    with pytest.raises(SweepSpecError, match="no sweep specification at"):
        SweepSpec.load(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------------------- running, locally


def test_a_failed_trial_is_retried_once_then_recorded_and_the_sweep_goes_on(tmp_path):
    spec = SweepSpec(trial=f"{HERE}:square", points=({"flaky": True},), grid={"x": [1, 2, 3]}, base={"fail_on": 2})
    results = run_sweep(spec, tmp_path / "sw", progress=False, log=lambda *a: None)
    by_x = {r["x"]: r for r in results.rows}
    assert [r["trial"] for r in results.rows] == [0, 1, 2]
    assert (by_x[1]["status"], by_x[1]["y"], by_x[1]["attempts"]) == ("ok", 1, 2)  # failed once, then passed
    assert (by_x[2]["status"], by_x[2]["attempts"]) == ("failed", 2)
    assert by_x[2]["error"] == "ValueError: x = 2 is not allowed"
    assert "ValueError" in (tmp_path / "sw" / by_x[2]["folder"] / "error.txt").read_text()
    assert results.meta["ok"] == 2 and results.meta["failed"] == 1
    with open(tmp_path / "sw" / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["x"], r["status"], r["y"]) for r in table] == [("1", "ok", "1"), ("2", "failed", ""), ("3", "ok", "9")]
    assert (tmp_path / "sw" / "figures" / "y.png").stat().st_size > 1000

    again = run_sweep(spec, tmp_path / "sw", progress=False, log=lambda *a: None)
    assert again.meta["ran_now"] == 0 and again.rows == json.loads(json.dumps(results.rows))  # failure kept
    assert (
        run_sweep(spec, tmp_path / "sw", retry_failed=True, progress=False, log=lambda *a: None).meta["ran_now"] == 1
    )  # --retry-failed runs the failure again


def test_a_killed_sweep_resumes_where_it_stopped(tmp_path):
    spec = SweepSpec(trial=f"{HERE}:square", grid={"x": [1, 2, 3, 4]})
    seen = []

    def kill_after_two(row):
        seen.append(row["x"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "sw", on_result=kill_after_two, progress=False, log=lambda *a: None)
    assert not (tmp_path / "sw" / "results.csv").exists()
    with open(tmp_path / "sw" / "journal.jsonl", "a") as f:  # and a write the kill cut off
        f.write('{"kind": "trial", "key": "')
    messages = []
    results = run_sweep(spec, tmp_path / "sw", progress=False, log=messages.append)
    assert messages == [f"resuming {tmp_path / 'sw'}: 2 of 4 trials already in its journal"]
    assert results.meta["ran_now"] == 2 and [r["y"] for r in results.rows] == [1, 4, 9, 16]
    other = SweepSpec(trial="flipflop", grid={"train.seed": [0]})
    with pytest.raises(JournalError, match="another config"):
        run_sweep(other, tmp_path / "sw", progress=False)


def test_a_trial_function_that_cannot_be_found_fails_before_anything_runs(tmp_path):
    for path, message in [(f"{HERE}:nosuch", "has no 'nosuch'"), ("nosuchmodule:f", "cannot import 'nosuchmodule'")]:
        with pytest.raises(SweepSpecError, match=message):
            run_sweep(SweepSpec(trial=path), tmp_path / "sw", progress=False)
    assert not (tmp_path / "sw").exists()


def test_the_flipflop_trial_trains_runs_and_a_bad_option_is_recorded(tmp_path):
    tiny = {
        "task": {"channels": 2, "duration": 4.0, "n_train": 8, "n_val": 4, "n_test": 4},
        "model": {"latent": 2, "width_F": 4, "width_G": 4},
        "train": {"epochs": 1, "batch_size": 4},
    }
    spec = SweepSpec(trial="flipflop", base=tiny, grid={"model.kind": ["gnode", "gru", "nosuch"]})
    results = run_sweep(spec, tmp_path / "sw", progress=False, figures=False, log=lambda *a: None)
    gnode_row, gru_row, bad = results.rows
    assert (gnode_row["status"], gnode_row["run_status"], gnode_row["latent"]) == ("ok", "finished", 2)
    assert gnode_row["test_nf"] > 0 and "test_nf" not in gru_row  # the GRU is discrete: no solver
    assert 0 < gru_row["normalized_test_mse"] < 10 and gru_row["n_params"] != gnode_row["n_params"]
    assert bad["status"] == "failed" and bad["attempts"] == 2 and "model kind must be one of" in bad["error"]
    run_folder = tmp_path / "sw" / gnode_row["folder"]
    assert {"config.json", "checkpoint.pt", "summary.json"} <= {f.name for f in run_folder.iterdir()}
    assert run_sweep(spec, tmp_path / "sw", progress=False, figures=False, log=lambda *a: None).meta["ran_now"] == 0


# ------------------------------------------------------------------------------------------ the command line


def test_gnode_sweep_runs_a_spec_and_reports_failures(tmp_path, capsys):
    from gnode.cli import main

    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"trial": f"{HERE}:square", "grid": {"x": [2, 3]}, "base": {"fail_on": 3}, "retries": 0})
    )
    assert main(["sweep", str(spec), "--list"]) == 0
    assert "2 trials of test_sweep:square" in capsys.readouterr().out
    code = main(["sweep", str(spec), "--local", "--out", str(tmp_path / "sw"), "--quiet", "--no-figures"])
    out = capsys.readouterr().out
    assert code == 1  # a trial failed; the other's result is written
    assert "1 of 2 trials succeeded" in out and "ValueError: x = 3 is not allowed" in out
    assert json.loads((tmp_path / "sw" / "results.json").read_text())["rows"][0]["y"] == 4
    spec.write_text('{"trial": "flipflop", "grid": {"train.seed": 1}}')
    assert main(["sweep", str(spec), "--local"]) == 2
    assert "must be a non-empty list" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ real Ray


@pytest.mark.slow
def test_a_sweep_on_a_real_local_ray_is_killed_resumed_and_retries_a_failure(local_ray, tmp_path):
    spec = SweepSpec(trial=f"{HERE}:square", points=({"flaky": True},), grid={"x": [1, 2, 3, 4]}, base={"fail_on": 4})
    executor = RayExecutor(num_cpus=2)
    seen = []

    def kill_after_one(row):
        seen.append(row)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "sw", executor=executor, on_result=kill_after_one, progress=False)
    assert len(seen) == 1 and local_ray.is_initialized()  # a Ray it did not start is left running
    results = run_sweep(spec, tmp_path / "sw", executor=executor, progress=False, log=lambda *a: None)
    assert results.meta["ran_now"] == 3
    by_x = {r["x"]: r for r in results.rows}
    assert [by_x[x]["y"] for x in (1, 2, 3)] == [1, 4, 9] and by_x[4]["status"] == "failed"
    assert by_x[4]["error"] == "ValueError: x = 4 is not allowed" and by_x[4]["attempts"] == 2
    assert all((tmp_path / "sw" / by_x[x]["folder"] / "tried").exists() for x in (1, 2, 3))  # each failed once
    assert os.getpid() not in {by_x[x]["pid"] for x in (1, 2, 3)}  # they ran in Ray's workers
    assert results.meta["executor"] == "a local Ray (1 CPU per task)"
