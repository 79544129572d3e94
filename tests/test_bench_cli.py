"""`gnode bench` as a new user meets it: --quick is a small set with an estimate printed first, skipped solvers
are reported once per cause, Ctrl-C names the command that resumes, and each method keeps its own colour and
marker in every figure."""

from __future__ import annotations

import matplotlib
import pytest

from gnode import cli
from gnode.bench import cli as bench_cli
from gnode.bench.plots import draw, solver_styles

matplotlib.use("Agg")


def args_of(*argv):
    return cli.build_parser().parse_args(["bench", *argv])


def test_quick_is_three_problems_with_a_few_methods_and_an_estimate_within_five_minutes():
    from gnode.bench.workprecision import BenchConfig

    args = args_of("--quick")
    trials = bench_cli._trials(bench_cli._problem_specs(args), args)
    assert {t.problem.name for t in trials} == set(bench_cli.QUICK["problems"])
    assert all(t.reltols == bench_cli.QUICK["reltols"] for t in trials)
    per_problem = {}
    for t in trials:
        per_problem.setdefault((t.problem.name, t.solver.package), []).append(t)
    assert all(len(v) == 1 for (p, package), v in per_problem.items() if package == "diffrax")  # one compile each
    measured = [t for t in trials if t.solver.engine != "julia" or t.solver.package != "gnode"]
    seconds = bench_cli.estimate_seconds(measured, BenchConfig(repeats=1, memory="none"))
    assert 60 < seconds <= 300
    # the full default set is estimated far longer than --quick (the estimate scales with the work)
    full = bench_cli._trials(bench_cli._problem_specs(args_of()), args_of())
    assert bench_cli.estimate_seconds(full, BenchConfig()) > 5 * seconds


def test_skipped_points_are_reported_once_per_cause():
    julia = "the 'julia' engine is not available here: Julia not found"
    rows = [
        {"solver": f"julia {m}()", "status": "skipped", "message": julia, "reltol": r}
        for m in ("BS3", "DP5", "Tsit5", "Vern7", "Rodas5P")
        for r in (1e-3, 1e-5)
    ]
    rows += [
        {
            "solver": "torchode Tsit5",
            "status": "skipped",
            "reltol": r,
            "message": "torchode is not installed (pip install torchode, or gnode[bench])",
        }
        for r in (1e-3, 1e-5)
    ]
    rows += [{"solver": "torch Tsit5()", "status": "ok", "reltol": 1e-3}]
    lines = bench_cli.skipped_lines(rows).splitlines()
    assert lines == [
        f"  skipped 10 points of julia BS3(), julia DP5(), julia Rodas5P() and 2 more: {julia}",
        "  skipped 2 points of torchode Tsit5: torchode is not installed (pip install torchode, or gnode[bench])",
    ]


def test_ctrl_c_names_the_command_that_resumes(monkeypatch, tmp_path, capsys):
    from gnode.bench import workprecision

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workprecision, "run_set", interrupted)
    code = cli.main(["bench", "--quick", "--problems", "robertson", "--peers", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 130
    assert f"resume with\n  gnode bench --quick --problems robertson --peers --out {tmp_path / 'b'}\n" in err
    # without --out, the command names the default folder it used
    args = args_of("--quick")
    args.command_line = ["gnode", "bench", "--quick"]
    assert bench_cli.resume_command(args) == "gnode bench --quick --out bench-results"


def rows_for(problem, labels):
    return [
        {
            "problem": problem,
            "mode": "forward",
            "solver": label,
            "family": label.split()[0],
            "status": "ok",
            "reltol": r,
            "l2": r,
            "time": 1 / r,
            "nf": 10 / r,
        }
        for label in labels
        for r in (1e-3, 1e-5)
    ]


def test_each_method_has_its_own_colour_and_marker_in_every_figure(monkeypatch, tmp_path):
    labels = [f"torch M{i}()" for i in range(8)] + [f"torchdiffeq m{i}" for i in range(4)] + ["diffrax Tsit5"]
    rows = rows_for("a", labels) + rows_for("b", labels[::2])
    rows += [{**r, "solver": "julia Tsit5()", "status": "skipped"} for r in rows_for("a", ["x"])]
    styles = solver_styles(rows)
    assert set(styles) == set(labels)  # a skipped solver takes no colour
    assert len({s["color"] for s in styles.values()}) == len(labels) == 13  # a colour each (up to 20)
    drawn = {}
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: drawn.__setitem__(str(path), fig))
    for problem in ("a", "b"):
        assert draw(rows, problem, "forward", tmp_path / f"{problem}.png", styles=styles)
    for path, fig in drawn.items():
        lines = [ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]
        assert lines, path
        for ln in lines:  # the same colour and marker in both figures
            assert (ln.get_color(), ln.get_marker()) == (
                styles[ln.get_label()]["color"],
                styles[ln.get_label()]["marker"],
            )
        assert len({(ln.get_color(), ln.get_marker()) for ln in lines}) == len(lines)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--quick", "--batch", "0"], "--batch must be >= 1"),
        (["--reltols", "2"], "--reltols must lie in (0, 1)"),
        (["--quick", "--out", "{file}"], "--out {file}: {file} is a file"),
    ],
)
def test_bad_options_are_one_line(capsys, tmp_path, argv, message):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    argv = [a.format(file=a_file) for a in argv]
    assert cli.main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message.format(file=a_file) in err and len(err.strip().splitlines()) == 1
