"""A small work-precision set end to end (references, measurement, failures, files, figure, comparisons), the
measurement helpers, and `gnode bench` on the command line."""

from __future__ import annotations

import csv
import importlib.util
import json
import math

import numpy as np
import pytest
import torch

import gnode
from gnode.bench import BenchConfig, ProblemSpec, SolverSpec, Trial, run_set
from gnode.bench.measure import min_time, torch_peak_memory, torch_threads
from gnode.bench.workprecision import run_trial
from gnode.jobs import AbstractExecutor, Journal, JournalError, Outcome

SMALL = ProblemSpec.of("gnode_small", batch=2, t1=2.0)  # smooth: clean convergence, exact FD checks
HAS_TORCHDIFFEQ = importlib.util.find_spec("torchdiffeq") is not None


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """(results, folder): native Tsit5 and Vern7 (+ torchdiffeq dopri5 when installed) forward, Tsit5 with two
    sensealgs for gradients and an unknown engine, measured once; the files are written by the test of them."""
    tmp = tmp_path_factory.mktemp("bench")
    tols = (1e-3, 1e-5, 1e-7)
    trials = [
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5()), tols),
        Trial(SMALL, SolverSpec("gnode", gnode.Vern7()), tols),
        Trial(SMALL, SolverSpec("torchdiffeq", "dopri5"), tols),
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5(), gnode.BackpropAdjoint()), tols[:2], True),
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5(), gnode.InterpolatingAdjoint()), tols[:2], True),
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5(), engine="nosuchengine"), tols[:1]),
    ]
    # no memory probes here (the torch profiler costs about a second each): test_memory_is_probed_... has them
    config = BenchConfig(
        repeats=1,
        cache_dir=str(tmp / "cache"),
        memory="none",
        extended_reference=False,
        fd_directions=1,
        fd_steps=(1e-4,),
    )
    return run_set(trials, config, progress=False), tmp


def rows_of(results, solver, mode="forward"):
    return sorted((r for r in results.rows if r["solver"] == solver and r["mode"] == mode), key=lambda r: -r["reltol"])


def test_every_point_is_measured_and_errors_fall_with_the_tolerance(small_set):
    results, _ = small_set
    rows = rows_of(results, "torch Tsit5()")
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    l2 = [r["l2"] for r in rows]
    assert l2[0] > 10 * l2[1] > 100 * l2[2]  # 5th order: 2 decades of tolerance buy > 1 decade of error
    for r in rows:
        assert r["time"] > 0 and len(r["times"]) == 1 and r["time"] == min(r["times"])
        assert r["nf"] >= 7 and r["nf_max"] >= r["nf"] and r["naccept"] >= 1
        assert r["f_calls"] >= r["nf_max"] / 6  # one batched call per stage of the slowest trajectory
        assert r["L2"] > 0 and r["final"] > 0
        assert math.isfinite(r["overhead"])
    assert rows[0]["nf"] < rows[-1]["nf"]


def test_gradient_points_are_compared_with_the_reference_gradient(small_set):
    results, _ = small_set
    ref = results.references["gnode_small"]["gradient"]
    assert ref["fd_rel_diff"] < 1e-6  # a smooth field: central differences good to O(h^2)
    for label in ("torch Tsit5() / BackpropAdjoint()", "torch Tsit5() / InterpolatingAdjoint()"):
        rows = rows_of(results, label, "gradient")
        assert [r["status"] for r in rows] == ["ok", "ok"]
        assert rows[0]["grad_error"] > rows[1]["grad_error"] > 0
    (adj,) = [r for r in rows_of(results, "torch Tsit5() / InterpolatingAdjoint()", "gradient") if r["reltol"] == 1e-5]
    assert adj["nf_backward"] > 0  # the continuous adjoint's backward solve is counted apart


@pytest.mark.skipif(not HAS_TORCHDIFFEQ, reason="torchdiffeq not installed")
def test_a_peer_solves_the_same_problem_to_the_same_reference(small_set):
    results, _ = small_set
    rows = rows_of(results, "torchdiffeq dopri5")
    assert all(r["status"] == "ok" for r in rows)
    assert rows[-1]["l2"] < 1e-5  # measured against the same reference: a peer that is right looks right
    assert rows[0]["nf"] == rows[0]["f_calls"]  # one step size for the whole batch


def test_an_unavailable_engine_is_skipped_with_its_reason(small_set):
    results, _ = small_set
    (row,) = [r for r in results.rows if r.get("engine") == "nosuchengine"]
    assert row["status"] == "skipped" and "unknown engine" in row["message"]


def test_a_failed_solve_is_recorded_with_its_retcode_and_tighter_tolerances_are_skipped(tmp_path):
    trial = Trial(SMALL, SolverSpec("gnode", gnode.DP5()), (1e-3, 1e-6))
    rows = run_trial(trial, BenchConfig(maxiters=3, cache_dir=str(tmp_path), repeats=1, extended_reference=False))
    assert [r["status"] for r in rows] == ["failed", "skipped"]
    assert rows[0]["retcode"] == "MaxIters" and rows[0]["n_failed"] == 2
    assert rows[0]["l2"] == math.inf and "time" not in rows[0]
    assert "MaxIters" in rows[1]["message"]


def test_the_set_writes_json_csv_comparisons_and_a_figure(small_set):
    results, tmp = small_set
    files = results.write(tmp / "out")
    assert files["json"] == str(tmp / "out" / "results.json") and "figure gnode_small forward" in files
    doc = json.loads((tmp / "out" / "results.json").read_text())
    assert doc["format"] == "gnode-bench" and len(doc["rows"]) == len(results.rows)
    assert doc["meta"]["torch"] == torch.__version__ and doc["config"]["repeats"] == 1
    assert doc["references"]["gnode_small"]["solution"]["method"] == "DOP853"
    assert doc["problems"]["gnode_small"]["f_seconds"] > 0
    with open(tmp / "out" / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(results.rows) and {"problem", "solver", "l2", "time", "nf"} <= set(table[0])
    for mode in ("forward", "gradient"):
        png = tmp / "out" / "figures" / f"gnode_small_{mode}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = (tmp / "out" / "comparisons.txt").read_text()
    assert "best of gnode[torch]" in text or not HAS_TORCHDIFFEQ
    if HAS_TORCHDIFFEQ:
        env = doc["comparisons"]["problems"]["gnode_small"]["forward"]["envelope"]
        assert env[0]["other"] == "torchdiffeq" and env[0]["time_ratio"] > 0


def test_memory_is_probed_on_gradient_points_only(small_set):
    """memory="gradient": the torch profiler's peak on the gradient point, nothing on the forward one."""
    _, tmp = small_set
    trials = [
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5()), (1e-3,)),
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5(), gnode.InterpolatingAdjoint()), (1e-3,), True),
    ]
    config = BenchConfig(
        repeats=1,
        cache_dir=str(tmp / "cache"),  # the fixture's references, reused
        memory="gradient",
        extended_reference=False,
        fd_directions=1,
        fd_steps=(1e-4,),
    )
    results = run_set(trials, config, progress=False)
    (forward,) = rows_of(results, "torch Tsit5()")
    (gradient,) = rows_of(results, "torch Tsit5() / InterpolatingAdjoint()", "gradient")
    assert "peak_memory_bytes" not in forward
    assert gradient["peak_memory_bytes"] > 0 and "profiler" in gradient["memory_method"]


def test_the_reference_is_reused_from_the_cache(small_set):
    _, tmp = small_set
    assert any((tmp / "cache").glob("*.npz"))
    rows = run_trial(
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5()), (1e-4,)),
        BenchConfig(repeats=1, memory="none", cache_dir=str(tmp / "cache"), extended_reference=False),
    )
    assert rows[0]["status"] == "ok"


# ------------------------------------------------------------------------------------------- measurement


def test_min_time_reports_the_minimum_after_a_warm_up():
    calls = []
    durations = iter([0.0, 0.03, 0.01, 0.02])

    def fn():
        import time

        calls.append(1)
        time.sleep(next(durations))

    best, times = min_time(fn, repeats=3)
    assert len(calls) == 4 and len(times) == 3  # one warm-up, not timed
    assert best == min(times) and 0.009 < best < 0.02


def test_torch_threads_are_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_peak_memory_sees_a_known_allocation():
    def fn():
        a = torch.ones(1_000_000, dtype=torch.float64)  # 8 MB, freed before the next
        del a
        b = torch.ones(500_000, dtype=torch.float64)
        return b.sum()

    peak, how = torch_peak_memory(fn)
    assert 8_000_000 <= peak < 8_200_000, (peak, how)


def test_an_interrupted_run_resumes_from_its_journal(monkeypatch, tmp_path):
    """Finished trials are journaled as they end; a run started again with the journal measures only the rest,
    and refuses a journal written with another configuration."""
    from gnode.bench import workprecision

    journal = tmp_path / "out" / "journal.jsonl"
    config = BenchConfig(repeats=1, memory="none", cache_dir=str(tmp_path / "c"), extended_reference=False)
    first = Trial(SMALL, SolverSpec("gnode", gnode.Tsit5()), (1e-3, 1e-5))
    second = Trial(SMALL, SolverSpec("gnode", gnode.DP5()), (1e-3,))
    before = run_set([first], config, progress=False, journal=journal)
    with open(journal, "a") as f:  # the line a kill interrupted (ending, as it may, in a brace)
        f.write('{"kind": "trial", "key": "cut off", "seconds": 1.0, "rows": [{"reltol": 0.001}')

    ran = []
    real = workprecision.run_trial
    monkeypatch.setattr(workprecision, "run_trial", lambda t, *a, **k: (ran.append(t), real(t, *a, **k))[1])
    after = run_set([first, second], config, progress=False, journal=journal, log=lambda *a: None)
    assert ran == [second]
    assert after.rows[:2] == json.loads(json.dumps(before.rows))  # as measured the first time
    assert [r["solver"] for r in after.rows] == ["torch Tsit5()", "torch Tsit5()", "torch DP5()"]
    assert set(after.references) == {"gnode_small"} and after.problems["gnode_small"]["batch"] == 2
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    first_seconds = next(e["seconds"] for e in entries if e["kind"] == "trial" and "Tsit5" in e["key"])
    assert after.meta["resumed_trials"] == 1 and after.meta["wall_seconds"] > first_seconds > 0

    ran.clear()
    again = run_set([first, second], config, progress=False, journal=journal, log=lambda *a: None)
    assert ran == [] and again.rows == after.rows  # everything journaled: nothing is built or run
    with pytest.raises(JournalError, match="another config .*repeats"):
        run_set(
            [first],
            BenchConfig(repeats=2, memory="none", cache_dir=str(tmp_path / "c"), extended_reference=False),
            progress=False,
            journal=journal,
        )


def test_a_journal_survives_cut_off_writes_and_refuses_another_machine(tmp_path):
    path = tmp_path / "journal.jsonl"
    config, machine = {"repeats": 2, "fd_steps": (1e-4,)}, {"cpu_model": "A"}
    path.write_text('{"kind": "con')  # killed while writing its very first line
    j = Journal(path, config, machine)
    j.add_trial("k1", [{"l2": float("nan"), "nf": np.float64(3.0), "u": np.ones(2)}], 1.5)
    with open(path, "a") as f:
        f.write('{"kind": "trial", "key": "k2", "rows": [{"l2": 1}')  # cut off after a brace
    j = Journal(path, config, machine)
    assert set(j.trials) == {"k1"} and j.trials["k1"][0]["nf"] == 3.0 and math.isnan(j.trials["k1"][0]["l2"])
    assert j.trials["k1"][0]["u"].startswith("array(")  # not a scalar: kept as its repr, not a crash
    j.add_trial("k3", [], 0.5)
    j = Journal(path, config, machine)
    assert set(j.trials) == {"k1", "k3"} and j.take("k3") == [] and j.resumed_seconds() == 0.5
    with pytest.raises(JournalError, match="another machine .*cpu_model"):
        Journal(path, config, {"cpu_model": "B"})
    with pytest.raises(JournalError, match="another config .*repeats"):
        Journal(path, {**config, "repeats": 3}, machine)
    path.write_text(path.read_text() + "not json\n{}\n")
    with pytest.raises(JournalError, match="line 4: not JSON"):
        Journal(path, config, machine)


# ----------------------------------------------------------------------------------------- command line


def test_gnode_bench_command_line_runs_a_tiny_set(tmp_path, capsys):
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
        ]
    )
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    assert {r["solver"] for r in doc["rows"]} == {"torch Tsit5()"}
    assert [r["status"] for r in doc["rows"]] == ["ok", "ok"]
    assert "points: 2 ok" in capsys.readouterr().out
    assert not (out / "journal.jsonl").exists()  # the journal goes once the results are written


def test_gnode_bench_rejects_bad_options_with_a_message(capsys):
    from gnode.bench.cli import main

    assert main(["--reltols", "2"]) == 2
    assert "--reltols must lie in (0, 1)" in capsys.readouterr().err
    assert main(["--problems", "flipflop"]) == 2
    assert "needs --run FOLDER" in capsys.readouterr().err


def test_flipflop_problem_without_a_run_says_what_to_do():
    from gnode.bench.gnode_problems import make_problem

    with pytest.raises(FileNotFoundError, match="gnode train flipflop"):
        make_problem("flipflop")


def test_solution_of_the_problem_is_what_the_reference_integrates():
    """The bench problem's torch field and the NumPy field the reference integrates are the same function,
    so a tight native solve lands on the reference."""
    from gnode.bench.reference import reference_solution

    p = SMALL.build()
    ref = reference_solution(p)
    sol = gnode.solve(p.ode_problem(), gnode.Vern7(), saveat=p.saveat, reltol=1e-11, abstol=1e-13)
    np.testing.assert_allclose(sol.u.detach().numpy(), ref.u_save, atol=1e-9)


class _OutOfProcessExecutor(AbstractExecutor):
    """Test scaffolding, not Ray: runs each job on a pickled copy of its function (as a Ray worker gets it) and
    hands the outcomes back in reverse order (the last job submitted finishes first)."""

    in_process = False

    def __init__(self):
        self.jobs = []

    def map_unordered(self, fn, items, *, retries=0):
        import pickle

        self.jobs += [getattr(fn, "__name__", "?")] * len(items)
        outcomes = [Outcome(i, pickle.loads(pickle.dumps(fn))(item), seconds=0.5) for i, item in enumerate(items)]
        yield from reversed(outcomes)


@pytest.fixture(scope="module")
def reference_cache(tmp_path_factory):
    """A reference cache shared by the tests below, so SMALL's reference is computed once."""
    return str(tmp_path_factory.mktemp("references"))


def test_trials_out_of_process_come_back_in_plan_order_and_resume_from_the_journal(tmp_path, reference_cache):
    """The grouping logic of the Ray path, with an out-of-process stand-in executor: references are computed once
    per problem, in a job of their own, each trial is a job run on a copy of the runner, the rows come back in
    plan order whatever order the jobs finish in, and a journaled run started again runs only what is missing."""
    trials = [
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5()), (1e-3, 1e-5)),
        Trial(SMALL, SolverSpec("gnode", gnode.DP5()), (1e-3,)),
    ]
    config = BenchConfig(repeats=1, memory="none", cache_dir=reference_cache, extended_reference=False)
    journal = tmp_path / "journal.jsonl"
    ex = _OutOfProcessExecutor()
    results = run_set(trials, config, executor=ex, progress=False, journal=journal, log=lambda *a: None)
    assert ex.jobs == ["references", "run", "run"]
    assert [(r["solver"], r["reltol"], r["status"]) for r in results.rows] == [
        ("torch Tsit5()", 1e-3, "ok"),
        ("torch Tsit5()", 1e-5, "ok"),
        ("torch DP5()", 1e-3, "ok"),
    ]
    assert results.references["gnode_small"]["solution"]["method"] == "DOP853"

    more = trials + [Trial(SMALL, SolverSpec("gnode", gnode.BS3()), (1e-3,))]
    ex = _OutOfProcessExecutor()
    again = run_set(more, config, executor=ex, progress=False, journal=journal, log=lambda *a: None)
    assert ex.jobs == ["references", "run"]  # the references again, and only the new trial
    assert again.rows[:3] == json.loads(json.dumps(results.rows)) and again.rows[3]["solver"] == "torch BS3()"
    assert again.problems["gnode_small"]["f_seconds"] == results.problems["gnode_small"]["f_seconds"]


def test_a_trial_that_raises_is_recorded_as_an_error_and_the_set_goes_on(monkeypatch, reference_cache):
    from gnode.bench import workprecision

    real = workprecision.run_trial

    def crash_on_dp5(trial, *a, **k):
        if trial.solver.method == gnode.DP5():  # the crash of a solver process, as Ray would report it
            raise MemoryError("the solver's process ran out of memory")
        return real(trial, *a, **k)

    monkeypatch.setattr(workprecision, "run_trial", crash_on_dp5)
    trials = [
        Trial(SMALL, SolverSpec("gnode", gnode.DP5()), (1e-3, 1e-5)),
        Trial(SMALL, SolverSpec("gnode", gnode.Tsit5()), (1e-3,)),
    ]
    config = BenchConfig(repeats=1, memory="none", cache_dir=reference_cache, extended_reference=False)
    results = run_set(trials, config, progress=False)
    assert [(r["solver"], r["status"]) for r in results.rows] == [
        ("torch DP5()", "error"),
        ("torch DP5()", "error"),
        ("torch Tsit5()", "ok"),
    ]
    assert results.rows[0]["message"] == "the trial failed: MemoryError: the solver's process ran out of memory"
