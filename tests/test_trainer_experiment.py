"""Run configuration, model building by kind, the run folder and its figures."""

import json

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import gnode
from gnode.tasks import FlipFlopConfig, make_flipflop
from gnode.training import TrainConfig
from gnode.training.experiment import (
    MODEL_KINDS,
    ModelConfig,
    RunConfig,
    SolverConfig,
    build_model,
    count_parameters,
    load_run,
    run_flipflop,
)
from gnode.training.figures import plot_latents, plot_loss, plot_sequences


def test_every_kind_builds_and_maps_a_batch_of_sequences():
    data = make_flipflop(FlipFlopConfig(duration=2.0, dt=0.5, n_train=4, n_val=1, n_test=1))
    x, t = data.train.inputs, data.train.times
    for kind in MODEL_KINDS:
        model = build_model(ModelConfig(kind=kind, latent=4), SolverConfig(), 3, 3, seed=0, sample_dt=0.5)
        out = model(x, t)
        assert out.y.shape == (4, 5, 3) and out.h.shape == (4, 5, 4), kind
        assert (out.sol is None) == (kind in ("gru", "lstm")), kind


def test_building_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = build_model(ModelConfig(), SolverConfig(), 3, 3, seed=1, sample_dt=0.5)
    b = build_model(ModelConfig(), SolverConfig(), 3, 3, seed=1, sample_dt=0.5)
    c = build_model(ModelConfig(), SolverConfig(), 3, 3, seed=2, sample_dt=0.5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    # the readout too (a torch.nn.Linear, drawn from the global RNG inside a forked state)
    assert torch.equal(a.readout.weight, b.readout.weight) and not torch.equal(a.readout.weight, c.readout.weight)


def test_solver_settings_reach_the_model():
    m = build_model(ModelConfig(), SolverConfig(alg="RK4", dt=0.125), 3, 3, seed=0, sample_dt=0.5)
    assert m.alg == gnode.RK4() and m.solve_kwargs["dt"] == 0.125
    m = build_model(
        ModelConfig(),
        SolverConfig(alg="Tsit5", reltol=1e-4, abstol=1e-7, sensealg="InterpolatingAdjoint"),
        3,
        3,
        seed=0,
        sample_dt=0.5,
    )
    assert (m.alg, m.reltol, m.abstol) == (gnode.Tsit5(), 1e-4, 1e-7)
    assert m.sensealg == gnode.InterpolatingAdjoint() and "dt" not in m.solve_kwargs
    m = build_model(ModelConfig(), SolverConfig(alg="RK4"), 3, 3, seed=0, sample_dt=0.5)
    assert m.solve_kwargs["dt"] == 0.25  # default: two steps per sample interval


def test_run_config_round_trip_and_unknown_keys():
    cfg = RunConfig(
        task=FlipFlopConfig(channels=2),
        model=ModelConfig(kind="mgru", latent=7),
        solver=SolverConfig(alg="Tsit5()"),
        train=TrainConfig(epochs=3),
    )
    back = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    d = cfg.to_dict()
    d["model"]["widht_F"] = 3
    with pytest.raises(ValueError, match="unknown keys \\['widht_F'\\]"):
        RunConfig.from_dict(d)
    with pytest.raises(ValueError, match="unknown solver"):
        SolverConfig(alg="Heun")


def test_run_folder_round_trip(tmp_path):
    cfg = RunConfig(
        task=FlipFlopConfig(duration=3.0, dt=0.5, pulse_width=0.5, pulse_prob=0.3, n_train=16, n_val=8, n_test=8),
        model=ModelConfig(kind="mgru", latent=3),
        solver=SolverConfig(alg="Midpoint"),
        train=TrainConfig(epochs=2, batch_size=8, progress=False),
    )
    result = run_flipflop(cfg, tmp_path / "run", figures=False)
    run = load_run(tmp_path / "run")
    assert run.config == cfg and run.weights == "best"
    assert run.summary["test_mse"] == result.summary["test_mse"]
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(
            run.model(run.data.test.inputs, run.data.test.times).y, run.data.test.targets
        )
    assert float(mse) == pytest.approx(result.summary["test_mse"], rel=1e-6)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["n_params"] == count_parameters(run.model) and saved["versions"]["torch"] == torch.__version__
    with pytest.raises(ValueError, match="already holds a run"):
        run_flipflop(cfg, tmp_path / "run")


def test_figures_are_written_for_any_latent_size(tmp_path):
    # N > 3 (principal components) is drawn by the CLI test's GRU run
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(4, 10, 3, generator=g) * 2 - 1
    for n in (1, 2, 3):
        path = plot_latents(torch.randn(4, 10, n, generator=g), tmp_path / f"lat{n}.png", colors=(targets + 1) / 2)
        assert path.stat().st_size > 5000
    t = torch.linspace(0, 1, 10)
    plot_sequences(t, targets, targets, targets * 0.9, tmp_path / "seq.png", n_sequences=2)
    assert (tmp_path / "seq.png").stat().st_size > 5000
    plot_loss(
        [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}],
        tmp_path / "loss.png",
        target_variance=0.3,
    )
    assert (tmp_path / "loss.png").stat().st_size > 5000
