"""The expressivity measure (gnode.tasks.expressivity, gnode.expressivity): targets, stacked generators, fitting,
the search for K*, the sweep's journal and the command line, checked on cases whose answer is known."""

import json
import math

import pytest
import torch

import gnode
from gnode.expressivity import (
    FamilySpec,
    FitConfig,
    MeasureConfig,
    SweepGrid,
    ensemble_of,
    fit_ensemble,
    matched_latent,
    measure_expressivity,
    plan_points,
    run_points,
)
from gnode.expressivity import measure as measure_module
from gnode.expressivity import sweep as sweep_module
from gnode.tasks.expressivity import fourier_target, generating_oscillator

# ---------------------------------------------------------------------------------------------------- targets


def test_target_has_K_orthogonal_modes_and_its_variance_is_their_power():
    t = fourier_target(5, d_out=2, samples_per_feature=8, seed=3)
    assert t.times.numel() == 5 * 8 + 1 and math.isclose(float(t.times[-1]), 5 * 2 * math.pi)
    # the modes are whole periods on the window: a dense average of y^2 is sum (a^2 + b^2) / 2
    dense = torch.linspace(0, t.duration, 20001, dtype=torch.float64)[:-1]
    power = (t.cos.pow(2) + t.sin.pow(2)).sum(0) / 2
    torch.testing.assert_close(t(dense).pow(2).mean(0), power, rtol=1e-6, atol=1e-9)
    assert torch.equal(fourier_target(5, d_out=2, samples_per_feature=8, seed=3).values, t.values)
    assert not torch.equal(fourier_target(5, d_out=2, samples_per_feature=8, seed=4).values, t.values)


def test_generating_oscillator_reproduces_the_target_in_closed_form():
    t = fourier_target(4, d_out=3, seed=1)
    A, z0, C = generating_oscillator(t)
    z = torch.stack([torch.linalg.matrix_exp(A * s) @ z0 for s in t.times])
    torch.testing.assert_close(z @ C.T, t.values, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"features": 0}, "features"),
        ({"features": 2, "d_out": 0}, "d_out"),
        ({"features": 2, "samples_per_feature": 2}, "samples_per_feature"),
        ({"features": 2, "tau_c": -1.0}, "tau_c"),
    ],
)
def test_bad_target_arguments_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        fourier_target(**kwargs)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------------- ensembles

FAMILY_CASES = [
    ("gnode", 2),
    ("gnode", 3),
    ("node", 2),
    ("mgru", 1),
    ("elman", 1),
    ("linear", 1),
    ("gru", 1),
    ("lstm", 1),
]


@pytest.mark.parametrize("family, depth", FAMILY_CASES)
def test_ensemble_computes_exactly_its_members(family, depth):
    spec = FamilySpec(family, 3, depth=depth, width=5, d_out=2)
    members = [spec.build(seed) for seed in range(3)]
    ens = ensemble_of(members)
    times = torch.arange(9, dtype=torch.float64) * 0.5
    y = ens.trajectories(times, alg=gnode.RK4(), dt=0.25).detach()
    for r, m in enumerate(members):
        if spec.discrete:
            ref = m(torch.zeros(1, times.numel(), 1, dtype=torch.float64), times).y[0]
        else:
            m.alg, m.solve_kwargs = gnode.RK4(), {"dt": 0.25}
            ref = m(None, times).y[0]
        torch.testing.assert_close(y[r], ref.detach(), rtol=1e-12, atol=1e-12)
    # a member handed back is its own model with the ensemble's weights
    with torch.no_grad():
        for p in ens.stacked.values():
            p.add_(0.01)
    back = ens.member(1)
    assert type(back) is type(members[1])
    assert spec.parameter_count() == ens.parameters_per_member()
    for name in ens.trained_names:
        torch.testing.assert_close(dict(back.named_parameters())[name], ens.p(name)[1].detach())


def test_parameter_counts_are_the_trained_weights():
    # gnODE N=3, L=2, W=8, d_out=2: F and G each 3*8+8 + 8*3+3 = 59; readout 3*2+2; h0 3
    assert FamilySpec("gnode", 3, depth=2, width=8, d_out=2).parameter_count() == 59 + 59 + 8 + 3
    # GRU N=4 on zero input: W_hh 3*4*4, biases 2*3*4, readout 4+1, h0 4 (input weights never see a signal)
    assert FamilySpec("gru", 4).parameter_count() == 48 + 24 + 5 + 4
    n = matched_latent("elman", 500)
    count = FamilySpec("elman", n).parameter_count()
    assert abs(count - 500) <= abs(FamilySpec("elman", n + 1).parameter_count() - 500)
    assert abs(count - 500) <= abs(FamilySpec("elman", n - 1).parameter_count() - 500)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"family": "transformer", "latent": 2}, "unknown model family"),
        ({"family": "mgru", "latent": 2, "depth": 2}, "depth 1 only"),
        ({"family": "gnode", "latent": 0}, "latent"),
    ],
)
def test_bad_family_arguments_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        FamilySpec(**kwargs)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------------- fitting


def _exact_generators(targets):
    """Linear members of dimension 2K whose ODE, h0 and readout are the targets' generating oscillators."""
    members = []
    for t in targets:
        A, z0, C = generating_oscillator(t)
        m = FamilySpec("linear", A.shape[0]).build(0)
        with torch.no_grad():  # tau dh/dt = -h + W h + b with W = A + I, b = 0 is dh/dt = A h
            m.vector_field.F.layers[0].weight.copy_(A + torch.eye(A.shape[0], dtype=A.dtype))
            m.vector_field.F.layers[0].bias.zero_()
            m.h0.copy_(z0)
            m.readout.weight.copy_(C)
            m.readout.bias.zero_()
        members.append(m)
    return members


@pytest.mark.parametrize("features", [1, 3, 8])
def test_the_exact_generating_ode_reproduces_any_K(features):
    target = fourier_target(features, samples_per_feature=6, seed=features)
    out = fit_ensemble(
        ensemble_of(_exact_generators([target])), [target], FitConfig(steps=1, lr=1e-12, segment_features=0)
    )
    assert out.reproduced(0.05) == [True]
    assert out.nmse[0] < 1e-6  # Tsit5 at reltol 1e-7 over the whole target


def test_a_two_dimensional_linear_ode_fits_one_mode_but_not_three():
    """Its output holds at most one oscillation: K = 1 is reachable (here from a perturbed generator, so
    that a few steps suffice), K = 3 is not, however long it trains (the modes are orthogonal and carry
    comparable power in this draw, so one mode leaves most of the variance unexplained)."""
    one, three = fourier_target(1, samples_per_feature=4, seed=0), fourier_target(3, samples_per_feature=4, seed=0)
    power = (three.cos.pow(2) + three.sin.pow(2)).sum(1)
    assert float(power.max() / power.sum()) < 0.7  # no single mode dominates this draw
    near = _exact_generators([one])[0]
    with torch.no_grad():
        for p in near.parameters():
            p.add_(0.15 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype))
    out = fit_ensemble(ensemble_of([near]), [one], FitConfig(steps=25, lr=0.02, segment_features=0))
    assert out.nmse[0] <= 0.05  # reproduced
    out3 = fit_ensemble(
        ensemble_of([FamilySpec("linear", 2).build(s) for s in range(2)]),
        [three, three],
        FitConfig(steps=15, lr=0.05, segment_features=0),
    )
    assert min(out3.nmse) > 0.25


def test_members_fitted_together_do_not_interact():
    """Stacking changes nothing: a member fitted beside another (with per-member clipping and Adam) ends
    where it ends alone, even when the other one blows up. (Members share the round's schedule, set by the
    longest target, so the two targets here have the same K.)"""
    spec = FamilySpec("gnode", 2, depth=2, width=4)
    t1, t2 = fourier_target(2, samples_per_feature=4, seed=1), fourier_target(2, samples_per_feature=4, seed=2)
    cfg = FitConfig(steps=12, lr=0.05, segment_features=1, single_fraction=0.5)
    alone = fit_ensemble(ensemble_of([spec.build(0)]), [t1], cfg)
    broken = spec.build(1)
    with torch.no_grad():
        broken.h0.fill_(math.nan)
    together = fit_ensemble(ensemble_of([spec.build(0), broken]), [t1, t2], cfg)
    assert together.diverged == [False, True]
    assert math.isclose(together.nmse[0], alone.nmse[0], rel_tol=1e-6)
    assert math.isnan(together.nmse[1])


def test_multiple_shooting_phases_double_the_segments_then_fit_from_h0():
    cfg = FitConfig(steps=100, segment_features=1, single_fraction=0.4)
    assert cfg.phases(8) == [(1, 20), (2, 20), (4, 20), (0, 40)]
    assert cfg.phases(1) == [(0, 100)]
    assert FitConfig(segment_features=0).phases(8) == [(0, FitConfig().steps)]


# ---------------------------------------------------------------------------------------------------- the search


def _fake_round(capacity, calls):
    """A stand-in for fit_round: K passes (NMSE 0.01) up to `capacity`, fails (NMSE 0.5) above."""

    def fake(spec, features, config, *, progress=None):
        calls.append(list(features))
        return [
            {
                "K": k,
                "seed": s,
                "nmse": 0.01 if k <= capacity else 0.5,
                "nmse_train": 0.0,
                "diverged": False,
                "steps": 1,
                "y": [],
            }
            for k in features
            for s in range(config.seeds)
        ]

    return fake


@pytest.mark.parametrize(
    "capacity, expected, censored", [(11, 11, False), (0, 0, False), (40, 32, True), (4, 4, False)]
)
def test_search_finds_the_largest_K_by_grid_then_k_section(monkeypatch, capacity, expected, censored):
    calls = []
    monkeypatch.setattr(measure_module, "fit_round", _fake_round(capacity, calls))
    r = measure_expressivity(FamilySpec("node", 2), MeasureConfig(grid=(1, 2, 4, 8, 16, 32), per_round=3, refine=3))
    assert (r["expressivity"], r["censored"]) == (expected, censored)
    assert r["upper"] == (None if censored else expected + 1)
    assert calls[0] == [1, 2, 4]
    if capacity == 11:  # grid: 8 passes, 16 fails; then (8, 16) in rounds of 3: 9 12 15 -> (9, 12) 10 11 -> done
        assert calls[1:] == [[8, 16, 32], [9, 12, 15], [10, 11]]
    if capacity == 0:
        assert calls == [[1, 2, 4]]


def test_median_over_seeds_decides(monkeypatch):
    def fake(spec, features, config, *, progress=None):  # K = 2 passes for 2 seeds of 3, K = 3 for 1 of 3
        good = {1: 3, 2: 2, 3: 1}
        return [
            {
                "K": k,
                "seed": s,
                "nmse": 0.01 if s < good.get(k, 0) else 0.9,
                "nmse_train": 0.0,
                "diverged": False,
                "steps": 1,
                "y": [],
            }
            for k in features
            for s in range(config.seeds)
        ]

    monkeypatch.setattr(measure_module, "fit_round", fake)
    r = measure_expressivity(FamilySpec("node", 2), MeasureConfig(grid=(1, 2, 4), seeds=3, per_round=3))
    assert r["expressivity"] == 2 and r["upper"] == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -1}, "epsilon"),
        ({"grid": ()}, "empty"),
        ({"grid": (4, 2)}, "increasing"),
        ({"grid": (0, 1)}, "integers >= 1"),
        ({"seeds": 0}, "seeds"),
    ],
)
def test_bad_measure_arguments_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        MeasureConfig(**kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_measured_capacity_of_a_linear_ode_is_one_mode_per_two_dimensions():
    """End to end, from random initial weights: a 2-D linear ODE reproduces K = 1 and not K = 2 or 3."""
    r = measure_expressivity(
        FamilySpec("linear", 2),
        MeasureConfig(
            grid=(1, 3), seeds=1, per_round=2, fit=FitConfig(steps=300, lr=0.05, segment_features=0, patience=100)
        ),
    )
    assert r["expressivity"] == 1 and r["upper"] == 2


# ---------------------------------------------------------------------------------------------------- the sweep


def _fake_measure(spec, config, progress=None):
    return {
        **spec.as_dict(),
        "label": spec.label,
        "parameters": spec.parameter_count(),
        "expressivity": spec.latent // 2 * spec.depth,
        "censored": False,
        "upper": spec.latent // 2 * spec.depth + 1,
        "epsilon": config.epsilon,
        "median": {"1": 0.01},
        "rounds": 1,
        "seconds": 0.0,
        "fits": [{"K": 1, "seed": 0, "nmse": 0.01, "nmse_train": 0.01, "diverged": False, "steps": 1}],
        "examples": {},
    }


def test_plan_points_dedups_and_matches_parameter_counts():
    points = plan_points(
        SweepGrid(families=("gnode", "node"), latents=(2, 4), depths=(1, 2), widths=(8, 16), matched=("gru",))
    )
    labels = [p.label for p in points]
    assert len(labels) == len(set(labels))
    assert sum(p.family == "gnode" and p.depth == 1 for p in points) == 2  # L = 1 has no width to vary
    grus = {p.latent for p in points if p.family == "gru"}
    assert grus == {matched_latent("gru", q.parameter_count()) for q in points if q.family == "gnode"}
    with pytest.raises(ValueError, match="unknown model family"):
        SweepGrid(families=("gnode", "nope"))
    with pytest.raises(ValueError, match="empty"):
        SweepGrid(latents=())


def test_sweep_journals_each_point_and_resumes(tmp_path, monkeypatch):
    from gnode.jobs import JournalError

    calls = []
    monkeypatch.setattr(
        sweep_module,
        "measure_expressivity",
        lambda spec, config, progress=None: calls.append(spec.label) or _fake_measure(spec, config),
    )
    points = [FamilySpec("node", 2), FamilySpec("node", 4, depth=2, width=8)]
    cfg = MeasureConfig(grid=(1, 2))
    results, failures = run_points(points, cfg, tmp_path, progress=False, log=lambda s: None)
    assert [r["expressivity"] for r in results] == [1, 4] and not failures and len(calls) == 2
    results2, _ = run_points(points, cfg, tmp_path, progress=False, log=lambda s: None)
    assert len(calls) == 2 and [r["label"] for r in results2] == [r["label"] for r in results]
    with pytest.raises(JournalError):
        run_points(points, MeasureConfig(grid=(1, 2, 4)), tmp_path, progress=False, log=lambda s: None)


def test_write_results_gives_json_csv_table_and_figures(tmp_path):
    from gnode.expressivity.report import write_results

    cfg = MeasureConfig(grid=(1, 2))
    results = [
        _fake_measure(s, cfg)
        for s in (
            FamilySpec("gnode", 2),
            FamilySpec("gnode", 4, depth=2, width=8),
            FamilySpec("node", 2),
            FamilySpec("gru", 3),
        )
    ]
    written = write_results(results, [], cfg.as_dict(), {"machine": "test"}, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["label"] for r in data["results"]] == [r["label"] for r in results]
    assert (tmp_path / "points.csv").read_text().count("\n") == 1 + len(results)
    assert {"expressivity_vs_latent", "expressivity_vs_parameters"} <= set(written)
    assert "gnode N=4 L=2" in (tmp_path / "table.txt").read_text()


def test_cli_bad_arguments_are_one_line_and_status_2(capsys):
    from gnode.cli import main

    for argv in (
        ["expressivity", "--epsilon", "0"],
        ["expressivity", "--families", "gnode", "transformer"],
        ["expressivity", "--grid", "4", "2"],
        ["expressivity", "--latent", "0"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("gnode expressivity: error:") and "\n" not in err


def test_cli_runs_a_small_sweep_end_to_end(tmp_path, monkeypatch, capsys):
    from gnode.cli import main

    monkeypatch.setattr(
        sweep_module, "measure_expressivity", lambda spec, config, progress=None: _fake_measure(spec, config)
    )
    out = tmp_path / "x"
    assert (
        main(
            [
                "expressivity",
                "--families",
                "node",
                "--latent",
                "2",
                "4",
                "--depth",
                "1",
                "--matched",
                "none",
                "--out",
                str(out),
                "--no-progress",
                "--no-figures",
            ]
        )
        == 0
    )
    assert "node N=4" in capsys.readouterr().out
    assert {"results.json", "points.csv", "fits.csv", "table.txt", "journal.jsonl"} <= {p.name for p in out.iterdir()}


def test_expressivity_trial_speaks_gnode_sweeps_trial_interface(tmp_path, monkeypatch):
    from gnode.expressivity import expressivity_trial

    monkeypatch.setattr(
        sweep_module, "measure_expressivity", lambda spec, config, progress=None: _fake_measure(spec, config)
    )
    flat = expressivity_trial(
        tmp_path / "t",
        model={"family": "node", "latent": 4, "depth": 2, "width": 8},
        measure={"grid": [1, 2], "seeds": 3},
    )
    assert flat["expressivity"] == 4 and all(not isinstance(v, (dict, list)) for v in flat.values())
    saved = json.loads((tmp_path / "t" / "result.json").read_text())
    assert saved["label"] == "node N=4 L=2, W=8" and saved["fits"]
    with pytest.raises(ValueError, match="unknown sections"):
        expressivity_trial(tmp_path / "u", model={"family": "node", "latent": 2}, train={})
