"""Walker2d rollouts (MuJoCo + Gymnasium): deterministic for a seed, cached with a manifest, and cut into
irregularly sampled next-observation windows."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco", reason="Walker2d data is generated with MuJoCo (pip install 'gymnasium[mujoco]')")
pytest.importorskip("gymnasium", reason="Walker2d data is generated with Gymnasium (pip install 'gymnasium[mujoco]')")

from gnode.cli import main
from gnode.tasks.sequences import DataFormatError
from gnode.tasks.walker2d import (
    DATA_FILE,
    MANIFEST,
    Walker2dConfig,
    Walker2dGeneration,
    generate_walker2d,
    load_walker2d,
    make_walker2d,
)

SMALL = Walker2dGeneration(episodes=8, steps=40, seed=3)


@pytest.fixture(scope="module")
def rollouts(tmp_path_factory):
    return generate_walker2d(SMALL, tmp_path_factory.mktemp("walker") / "data", progress=False)


def test_generation_is_deterministic_for_a_seed_and_differs_across_seeds(rollouts, tmp_path):
    obs, act, _ = load_walker2d(rollouts)
    assert obs.shape == (8, 40, 17) and act.shape == (8, 40, 6)
    again = generate_walker2d(SMALL, tmp_path / "again", progress=False)
    obs2, act2, _ = load_walker2d(again)
    assert np.array_equal(obs, obs2) and np.array_equal(act, act2)
    other = generate_walker2d(Walker2dGeneration(episodes=8, steps=40, seed=4), tmp_path / "other", progress=False)
    assert not np.allclose(load_walker2d(other)[0], obs)
    # the walker moves: joint angles and heights change over an episode, actions stay in the box
    assert float(np.ptp(obs[:, :, 0], axis=1).min()) > 1e-3 and float(np.abs(act).max()) <= 1.0


def test_manifest_records_versions_seeds_and_policy(rollouts):
    m = json.loads((rollouts / MANIFEST).read_text())
    assert m["env"] == "Walker2d-v5" and m["generation"] == {"episodes": 8, "steps": 40, "seed": 3}
    assert {"gymnasium", "mujoco", "numpy"} <= set(m["versions"])
    assert len(m["episodes"]) == 8 and "pd_targets" in m["policy"] and m["control_dt_s"] == pytest.approx(0.008)


def test_cache_is_reused_and_never_overwritten_by_other_settings(rollouts):
    stamp = (rollouts / DATA_FILE).stat().st_mtime_ns
    generate_walker2d(SMALL, rollouts, progress=False)
    assert (rollouts / DATA_FILE).stat().st_mtime_ns == stamp
    with pytest.raises(DataFormatError, match="already holds Walker2d data generated with"):
        generate_walker2d(Walker2dGeneration(episodes=9, steps=40, seed=3), rollouts, progress=False)


def test_damaged_data_fails_its_checksum(rollouts, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / MANIFEST).write_text((rollouts / MANIFEST).read_text())
    data = bytearray((rollouts / DATA_FILE).read_bytes())
    data[-100] ^= 0xFF
    (copy / DATA_FILE).write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="does not match the checksum"):
        load_walker2d(copy)
    with pytest.raises(DataFormatError, match="holds no Walker2d data"):
        load_walker2d(tmp_path / "empty")


def test_gnode_data_walker2d_generates_once_and_the_task_must_match_its_settings(rollouts, tmp_path, capsys):
    argv = [
        "data",
        "walker2d",
        "--episodes",
        "4",
        "--steps",
        "12",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "w"),
        "--no-progress",
    ]
    assert main(argv) == 0 and "generated in" in capsys.readouterr().out
    assert main(argv) == 0 and "already there (same settings): kept" in capsys.readouterr().out
    with pytest.raises(DataFormatError, match=r"give --episodes 8 --steps 40 --generation-seed 3 to use it"):
        make_walker2d(Walker2dConfig(data=str(rollouts)))


def test_task_windows_are_irregular_next_observation_predictions(rollouts):
    d = make_walker2d(
        Walker2dConfig(data=str(rollouts), generation=SMALL, drop=0.25, window=8, stride=4, seed=0), dtype=torch.float64
    )
    obs, _, _ = load_walker2d(rollouts)
    assert d.meta["kind"] == "regression" and d.d_in == 23 and d.d_out == 17
    eps = d.meta["episodes"]
    assert sorted(eps["train"] + eps["val"] + eps["test"]) == list(range(8)) and len(eps["test"]) == 1
    t = d.train.times
    assert torch.all(t[:, 0] == 0) and torch.all(torch.diff(t, dim=1) >= 1)
    assert 0.6 < d.meta["kept_fraction_train"] < 0.9  # about 1 - drop
    assert bool((torch.diff(t, dim=1) > 1).any())  # some steps were dropped
    # targets are the observations at the window's own times, standardised with training statistics
    stats = d.meta["standardization"]["observations"]
    raw = d.train.targets * torch.tensor(stats["std"], dtype=torch.float64) + torch.tensor(
        stats["mean"], dtype=torch.float64
    )
    first = min(eps["train"])  # the first window starts at step 0 of the first training episode
    np.testing.assert_allclose(raw[0].numpy(), obs[first, t[0].long().numpy()], rtol=1e-12, atol=1e-12)
    assert stats["samples"] == round(d.meta["kept_fraction_train"] * len(eps["train"]) * 40)  # training steps only
    torch.testing.assert_close(d.train.inputs[..., :17], d.train.targets)
    assert d.train.mask[:, 0].sum() == 0 and bool(d.train.mask[:, 1:].all())


def test_a_regression_run_trains_evaluates_and_draws_predictions(rollouts, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "train",
        "walker2d",
        "--data",
        str(rollouts),
        "--episodes",
        "8",
        "--steps",
        "40",
        "--generation-seed",
        "3",
        "--window",
        "8",
        "--stride",
        "8",
        "--model",
        "gru",
        "-N",
        "8",
        "--epochs",
        "3",
        "--out",
        str(run),
        "--no-progress",
    ]
    assert main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["kind"] == "regression" and 0 < summary["test_mse"] < float("inf")
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["test"]["mse_per_channel"]) == 17 and metrics["channels"][0] == "rootz"
    assert metrics["test"]["mse"] == pytest.approx(summary["test_mse"], rel=1e-5)
    assert (run / "predictions.png").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert "MSE" in capsys.readouterr().out
