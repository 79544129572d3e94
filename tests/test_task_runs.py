"""Real-data task runs end to end through the command line: `gnode train TASK`, `gnode evaluate`, `gnode plot`,
resume, and the errors a missing --data gives (gnode.training.task_runs, gnode.training.task_cli)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("aeon", reason="the UEA tasks read .ts files through aeon (pip install aeon)")

from gnode.cli import main
from gnode.tasks.data import SequenceSplit, TaskData
from gnode.training import TrainConfig, Trainer
from gnode.training.task_runs import class_cross_entropy, split_metrics
from uea_files import write_ts


def separable_ts(folder, n_train=24, n_test=12, seed=0):
    """Two classes a human tells apart at a glance: a rising and a falling ramp with noise, lengths 4-8."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        labels = ["up" if i % 2 else "down" for i in range(n)]
        series = []
        for lab in labels:
            length = int(rng.integers(4, 9))
            ramp = np.linspace(0, 1, length) * (1 if lab == "up" else -1)
            series.append(np.stack([ramp, -ramp], axis=1) + 0.1 * rng.standard_normal((length, 2)))
        write_ts(folder / f"CharacterTrajectories_{split}.ts", series, labels, ("down", "up"))
    return folder


FAST = [
    "--every",
    "1",
    "--model",
    "gru",
    "-N",
    "6",
    "--epochs",
    "12",
    "--batch-size",
    "8",
    "--lr",
    "0.05",
    "--no-progress",
]


def test_train_evaluate_plot_and_resume_a_classification_run(tmp_path, capsys):
    data = separable_ts(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "charactertrajectories", "--data", str(data), "--out", str(run), *FAST]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["kind"] == "classification" and "test_mse" not in summary
    assert summary["test_accuracy"] >= 0.9  # the ramps are separable; chance is 0.5
    for name in ("config.json", "standardization.json", "metrics.json", "confusion.csv", "confusion.png", "loss.png"):
        assert (run / name).is_file(), name
    conf = json.loads((run / "metrics.json").read_text())["test"]["confusion"]
    assert sum(map(sum, conf)) == 12 and np.trace(np.array(conf)) / 12 == pytest.approx(summary["test_accuracy"])
    stats = json.loads((run / "standardization.json").read_text())
    assert stats["from"] == "the training split only" and len(stats["statistics"]["mean"]) == 2
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "val", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["test"]["accuracy"] == pytest.approx(summary["test_accuracy"]) and ev["task"] == "charactertrajectories"
    assert main(["plot", str(run)]) == 0
    assert "confusion.png" in capsys.readouterr().out
    assert (
        main(["train", "charactertrajectories", "--data", str(data), "--out", str(run), "--resume", "--no-progress"])
        == 0
    )
    assert "already finished" in capsys.readouterr().out
    assert (
        main(
            [
                "train",
                "charactertrajectories",
                "--data",
                str(data),
                "--out",
                str(run),
                "--resume",
                "--epochs",
                "13",
                "--no-progress",
            ]
        )
        == 2
    )
    assert "options differ from the saved run (train.epochs: saved 12, now 13)" in capsys.readouterr().err


def test_changed_data_under_a_run_is_refused(tmp_path, capsys):
    data = separable_ts(tmp_path / "data")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "charactertrajectories",
                "--data",
                str(data),
                "--out",
                str(run),
                *FAST[:6],
                "--epochs",
                "1",
                "--no-progress",
                "--no-figures",
            ]
        )
        == 0
    )
    separable_ts(data, seed=1)
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    assert "is not the data the run was trained on" in capsys.readouterr().err


def test_missing_data_folder_is_one_line_saying_where_to_put_the_files(tmp_path, capsys):
    assert main(["train", "charactertrajectories", "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (
        "CharacterTrajectories is not shipped with aeon" in err and "--data DIR" in err and len(err.splitlines()) == 1
    )
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "readme.txt").write_text("")
    assert main(["train", "charactertrajectories", "--data", str(tmp_path / "wrong"), "--no-progress"]) == 2
    assert "found readme.txt" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_trainer_reads_only_the_masked_entries():
    """A model whose outputs are garbage outside the mask trains exactly as one whose outputs are clean there."""
    torch.manual_seed(0)
    times = torch.arange(4.0)
    x = torch.randn(6, 4, 1)
    mask = torch.zeros(6, 4, dtype=torch.bool)
    mask[:, -1] = True
    y = (x.sum(dim=1, keepdim=True) > 0).double().expand(6, 4, 1).clone()
    split = SequenceSplit(times.expand(6, 4).clone(), x.double(), y, mask)
    data = TaskData(split, split, split, meta={"kind": "classification", "classes": ["0", "1"]})

    class Model(torch.nn.Module):
        def __init__(self, junk):
            super().__init__()
            self.lin = torch.nn.Linear(1, 2, dtype=torch.float64)
            self.junk = junk

        def forward(self, x, t):
            out = self.lin(x.cumsum(dim=1))
            return torch.where(torch.arange(4)[None, :, None] == 3, out, out + self.junk)

    finals = []
    for junk in (0.0, 1e6):
        torch.manual_seed(1)
        model = Model(junk)
        Trainer(model, data, TrainConfig(epochs=3, batch_size=3, progress=False), loss=class_cross_entropy).fit()
        finals.append(model.lin.weight.detach().clone())
    torch.testing.assert_close(finals[0], finals[1], rtol=0, atol=0)
    m = split_metrics("classification", model, split, classes=["0", "1"])
    assert m["sequences"] == 6 and sum(map(sum, m["confusion"])) == 6
