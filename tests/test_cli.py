"""The `gnode` command line: help, one-line errors with exit status 2, train/evaluate/plot on tiny runs,
resumption, Ctrl-C, info and julia setup."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gnode import cli
from gnode.training import load_checkpoint

TINY_TASK = [
    "--duration",
    "2",
    "--dt",
    "0.25",
    "--pulse-prob",
    "0.3",
    "--pulse-width",
    "0.25",
    "--n-train",
    "8",
    "--n-val",
    "4",
    "--n-test",
    "4",
]


@pytest.fixture(autouse=True)
def keep_threads():
    """The CLI sets torch's thread count for its process; give the test process its own back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def run(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse: --help, --version and its own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_commands_and_each_has_its_own_help(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("train", "evaluate", "plot", "analyze", "bench", "info", "julia"):
        assert command in out
    for argv, words in [
        (["train", "--help"], ["flipflop"]),
        (
            ["train", "flipflop", "--help"],
            [
                "--model",
                "--latent",
                "--solver",
                "--sensealg",
                "--engine",
                "--epochs",
                "--out",
                "--resume",
                "(default: 3)",
            ],
        ),
        (["evaluate", "--help"], ["RUN", "--solver"]),
        (["plot", "--help"], ["RUN"]),
        (["info", "--help"], ["engine"]),
        (["bench", "--help"], ["--problems", "--gradients", "--peers", "diffrax", "gnode_stiff"]),
        (["julia", "setup", "--help"], ["gnode_bridge.setup"]),
    ]:
        code, out, _ = run(capsys, *argv)
        assert code == 0, argv
        for w in words:
            assert w in out, (argv, w)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "flipflop", "--model", "transformer"], "invalid choice: 'transformer'"),
        (["train", "flipflop", "--solver", "Tsit6"], "unknown solver 'Tsit6' (did you mean Tsit5?); known: "),
        (["train", "flipflop", "--sensealg", "Adjoint"], "unknown sensealg 'Adjoint' (did you mean BackpropAdjoint?)"),
        (["train", "flipflop", "--engine", "fortran"], "unknown engine 'fortran'"),
        (["train", "flipflop", "--lr", "-1"], "lr must be a positive number"),
        (["train", "flipflop", "--epochs", "many"], "invalid int value: 'many'"),
        (["train", "flipflop", "--channels", "0"], "channels must be an integer >= 1"),
        (["train", "flipflop", "--resume"], "--resume needs --out"),
        (["train"], "required: TASK"),
        (["train", "maze"], "invalid choice: 'maze'"),
        (["evaluate", "no/such/run"], "no run folder at no/such/run"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_options_give_one_line_and_exit_status_2(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0] and lines[0].startswith("gnode")


def test_train_evaluate_plot_a_tiny_discrete_run(capsys, tmp_path):
    out_dir = tmp_path / "gru"
    code, out, err = run(
        capsys,
        "train",
        "flipflop",
        *TINY_TASK,
        "--model",
        "gru",
        "-N",
        "6",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--out",
        str(out_dir),
        "--no-progress",
        "--no-figures",
    )
    assert code == 0, err
    assert "test MSE" in out and str(out_dir) in out
    for name in ("config.json", "checkpoint.pt", "history.json", "history.csv", "summary.json"):
        assert (out_dir / name).is_file(), name
    config = json.loads((out_dir / "config.json").read_text())
    assert config["model"]["kind"] == "gru" and config["model"]["latent"] == 6 and config["train"]["epochs"] == 3
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["epochs_run"] == 3

    code, out, err = run(capsys, "evaluate", str(out_dir), "--split", "val", "test", "--json")
    assert code == 0, err
    ev = json.loads(out)
    assert ev["test"]["mse"] == pytest.approx(summary["test_mse"], rel=1e-6)
    assert ev["val"]["mse"] == pytest.approx(summary["val_mse"], rel=1e-6)

    code, out, err = run(capsys, "plot", str(out_dir))  # the figures training draws (drawn once here: seconds)
    assert code == 0
    for name in ("loss.png", "sequences.png", "latents.png"):
        assert (out_dir / name).stat().st_size > 1000 and str(out_dir / name) in out, name

    # a second run into the same folder is refused; resuming the finished run changes nothing
    code, _, err = run(capsys, "train", "flipflop", *TINY_TASK, "--model", "gru", "--out", str(out_dir))
    assert code == 2 and "already holds a run" in err
    code, out, err = run(capsys, "train", "flipflop", "--out", str(out_dir), "--resume", "--no-progress")
    assert code == 0 and "already finished" in out
    code, _, err = run(capsys, "train", "flipflop", "--out", str(out_dir), "--resume", "--lr", "0.5")
    assert code == 2 and "train.lr: saved 0.05, now 0.5" in err
    # solver overrides make no sense for a discrete model
    code, _, err = run(capsys, "evaluate", str(out_dir), "--solver", "Tsit5")
    assert code == 2 and "discrete" in err
    # a damaged checkpoint: one clear line, status 1, from every command that reads it
    ck = out_dir / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:-100])
    for argv in (
        ["evaluate", str(out_dir)],
        ["plot", str(out_dir)],
        ["train", "flipflop", "--out", str(out_dir), "--resume", "--no-progress"],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "checkpoint.pt is unreadable (truncated or corrupted?)" in err, argv
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    ck.unlink()
    code, _, err = run(capsys, "evaluate", str(out_dir))
    assert code == 1 and "no checkpoint at" in err


def test_train_and_evaluate_a_tiny_gnode_under_another_solver(capsys, tmp_path):
    out_dir = tmp_path / "gnode"
    code, out, err = run(
        capsys,
        "train",
        "flipflop",
        *TINY_TASK,
        "--model",
        "gnode",
        "-N",
        "2",
        "--depth-F",
        "1",
        "--depth-G",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--solver",
        "RK4",
        "--solver-dt",
        "0.25",
        "--out",
        str(out_dir),
        "--no-progress",
        "--no-figures",
    )
    assert code == 0, err
    assert "mean nf per trajectory" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    # RK4, one step per sample interval (2 / 0.25): f(t0), then 3 stages and f at each step's end (the next
    # step's first stage)
    assert summary["test_nf"] == 1 + 4 * 8
    hist = json.loads((out_dir / "history.json").read_text())
    assert hist[0]["train_nf"] == 1 + 4 * 8
    # float32 cannot resolve reltol 1e-7: a one-line usage error naming the fix
    code, out, err = run(capsys, "evaluate", str(out_dir), "--solver", "Tsit5", "--reltol", "1e-7")
    assert code == 2 and "use float64" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(
        capsys,
        "evaluate",
        str(out_dir),
        "--solver",
        "Tsit5",
        "--reltol",
        "1e-7",
        "--abstol",
        "1e-9",
        "--dtype",
        "float64",
        "--json",
    )
    assert code == 0, err
    ev = json.loads(out)
    assert ev["solver"]["alg"] == "Tsit5" and ev["dtype"] == "float64" and ev["test"]["nf"] > 32
    # RK4 at the sample step and Tsit5 at tight tolerance solve the same ODE: close, not identical
    assert ev["test"]["mse"] == pytest.approx(summary["test_mse"], rel=2e-2)
    assert ev["test"]["mse"] != summary["test_mse"]
    # a float64 reference check on SciPy: evaluating needs no sensealg, which the scipy engine lacks
    code, out, err = run(
        capsys,
        "evaluate",
        str(out_dir),
        "--engine",
        "scipy",
        "--solver",
        "DP5",
        "--reltol",
        "1e-7",
        "--abstol",
        "1e-9",
        "--dtype",
        "float64",
        "--json",
    )
    assert code == 0, err
    sp = json.loads(out)
    assert sp["solver"]["engine"] == "scipy" and sp["test"]["mse"] == pytest.approx(ev["test"]["mse"], rel=1e-4)


def test_a_folder_without_a_checkpoint_resumes_from_its_beginning_and_every_refusal_names_the_way_out(capsys, tmp_path):
    out_dir = tmp_path / "run"
    tiny = [*TINY_TASK, "--model", "gru", "-N", "5", "--batch-size", "4", "--no-progress"]
    code, _, err = run(capsys, "train", "flipflop", *tiny, "--epochs", "2", "--no-figures", "--out", str(out_dir))
    assert code == 0, err
    first = json.loads((out_dir / "summary.json").read_text())
    # a run that died before its first checkpoint (or whose damaged checkpoint was deleted, as advised)
    (out_dir / "checkpoint.pt").unlink()
    (out_dir / "summary.json").unlink()
    code, _, err = run(capsys, "train", "flipflop", *tiny, "--out", str(out_dir))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"gnode train flipflop --out {out_dir} --resume" in err and f"--out {out_dir} --overwrite" in err
    code, _, err = run(capsys, "train", "flipflop", "--out", str(out_dir), "--resume", "--no-progress", "--no-figures")
    assert code == 0 and "has no checkpoint yet" in err and "starting it from the beginning" in err
    again = json.loads((out_dir / "summary.json").read_text())
    assert again["test_mse"] == first["test_mse"]  # the saved config (N = 5, 2 epochs), from the start
    # --resume into a folder without a run starts one; --overwrite replaces a run with a new one
    code, _, err = run(
        capsys, "train", "flipflop", *tiny, "--epochs", "1", "--no-figures", "--resume", "--out", str(tmp_path / "new")
    )
    assert code == 0 and "holds no run yet" in err and (tmp_path / "new" / "summary.json").exists()
    (out_dir / "loss.png").write_bytes(b"a figure of the old run")
    code, _, err = run(
        capsys, "train", "flipflop", *tiny, "--epochs", "1", "--no-figures", "--out", str(out_dir), "--overwrite"
    )
    assert code == 0, err
    assert json.loads((out_dir / "config.json").read_text())["train"]["epochs"] == 1
    assert json.loads((out_dir / "summary.json").read_text())["epochs_run"] == 1
    assert not (out_dir / "loss.png").exists()  # the old run's figures went with it


@pytest.mark.parametrize(
    "options, message",
    [
        (["--reltol", "-1"], "reltol must be a finite number >= 0"),
        (["--abstol", "-1"], "abstol must be a finite number >= 0"),
        (["--maxiters", "0"], "maxiters must be an integer >= 1"),
        (["--solver-dt", "-1"], "the solver's dt must be a positive number"),
        (["--reltol", "0", "--abstol", "0"], "reltol and abstol cannot both be 0"),
        (["--reltol", "1e-9"], "reltol 1e-09 is below what float32 can resolve"),
        (["--solver", "DP5", "--engine", "scipy"], "the 'scipy' engine computes no gradients"),
        (["--divergence-factor", "0.5"], "divergence_factor must be a number > 1"),
    ],
)
def test_solver_options_are_checked_before_anything_is_written(capsys, tmp_path, options, message):
    out_dir = tmp_path / "x"
    code, _, err = run(capsys, "train", "flipflop", "--solver", "Tsit5", *options, "--out", str(out_dir))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err
    assert not out_dir.exists()


def test_an_unusable_out_is_a_one_line_error(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    for argv in (
        ["train", "flipflop", "--out", str(a_file)],
        ["train", "flipflop", "--out", str(a_file / "sub")],
        ["analyze", str(tmp_path), "--out", str(a_file)],
        ["plot", str(a_file)],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert str(a_file) in err, argv
    assert a_file.read_text() == "not a folder"


def test_a_diverging_run_stops_keeps_its_checkpoint_and_exits_1(capsys, tmp_path):
    out_dir = tmp_path / "hot"
    code, out, err = run(
        capsys,
        "train",
        "flipflop",
        *TINY_TASK,
        "--model",
        "gru",
        "-N",
        "4",
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--lr",
        "1e4",
        "--out",
        str(out_dir),
        "--no-progress",
    )
    assert code == 1 and "finished" not in out
    assert "training diverged: the loss grew to" in err and "times the first batch's" in err
    assert f"gnode train flipflop --out {out_dir} --overwrite --lr 1000" in err
    state = load_checkpoint(out_dir / "checkpoint.pt")  # the state before the step that blew up
    assert state["progress"]["status"] == "running" and state["progress"]["global_step"] >= 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (out_dir / "summary.json").exists()


def test_the_readme_names_the_folder_a_default_run_lands_in(capsys, tmp_path, monkeypatch):
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    described = re.search(r"land in `(runs/[^`]+)`", readme)
    assert described, "the README's set-up section says where a run's files land"
    pattern = re.escape(described.group(1)).replace("<model>", "gru").replace("<date>", r"\d{8}")
    pattern = pattern.replace("<time>", r"\d{6}")
    assert "<" not in pattern
    monkeypatch.chdir(tmp_path)
    code, out, err = run(
        capsys,
        "train",
        "flipflop",
        *TINY_TASK,
        "--model",
        "gru",
        "-N",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--no-progress",
        "--no-figures",
    )
    assert code == 0, err
    (folder,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(pattern, f"runs/{folder.name}"), (pattern, folder.name)
    assert f"run folder: runs/{folder.name}" in out


@pytest.mark.slow  # a separate Python process; the in-process SIGINT path is tested in test_trainer.py
def test_ctrl_c_in_a_real_process_saves_and_exits_130(tmp_path):
    out_dir = tmp_path / "cut"
    argv = [
        sys.executable,
        "-m",
        "gnode.cli",
        "train",
        "flipflop",
        *TINY_TASK,
        "--model",
        "gru",
        "-N",
        "4",
        "--epochs",
        "2000",
        "--batch-size",
        "8",
        "--checkpoint-every",
        "1",
        "--out",
        str(out_dir),
        "--no-progress",
        "--no-figures",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out_dir / "checkpoint.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no checkpoint after 60 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "--resume" in err and "Traceback" not in err
    state = load_checkpoint(out_dir / "checkpoint.pt")
    done = state["progress"]["epoch"]
    assert 1 <= done < 2000 and state["progress"]["status"] == "running"


def test_info_reports_versions_and_engine_availability(capsys, monkeypatch):
    from gnode.engines import registry

    class Unavailable(registry.AbstractEngine):
        name, algorithms, sensealgs = "nowhere", (), ()

        def available(self):
            return False, "needs a machine that does not exist"

    monkeypatch.setitem(registry._ENGINES, "nowhere", Unavailable)
    code, out, _ = run(capsys, "info")
    assert code == 0
    import gnode

    assert f"gnode {gnode.__version__}" in out and f"torch {torch.__version__}" in out
    assert "torch    available" in out
    assert "nowhere  NOT available: needs a machine that does not exist" in out
    solvers = out[out.index("solvers (--solver)") : out.index("sensealgs (--sensealg)")]
    sensealgs = out[out.index("sensealgs (--sensealg)") :]
    assert "Tsit5" in solvers and "InterpolatingAdjoint" in sensealgs
    assert "scipy: Scipy" in solvers and "ScipyRadau" in solvers  # the scipy engine's own methods


def test_julia_setup_calls_the_bridge_or_says_why_not(capsys, monkeypatch):
    import gnode_bridge

    calls = []
    monkeypatch.setattr(gnode_bridge, "setup", lambda: calls.append(1), raising=False)
    code, out, _ = run(capsys, "julia", "setup")
    assert code == 0 and calls == [1] and "done" in out

    def broken():
        raise RuntimeError("Julia not found\nmore detail")

    monkeypatch.setattr(gnode_bridge, "setup", broken)
    code, _, err = run(capsys, "julia", "setup")
    assert code == 1 and err.strip() == "gnode julia setup: failed: RuntimeError: Julia not found"
    monkeypatch.delattr(gnode_bridge, "setup")
    code, _, err = run(capsys, "julia", "setup")
    assert code == 1 and "provides no setup() function" in err


def test_console_script_is_declared():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'gnode = "gnode.cli:main"' in text
