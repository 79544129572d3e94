"""Figures and the `gnode analyze` report: nullclines drawn where the in-plane components vanish, the attractor
view shows every point once by class, and a run folder gets its figures and consistent JSON."""

from __future__ import annotations

import argparse
import json

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gnode.analysis import FixedPointConfig, find_fixed_points
from gnode.analysis.plots import CLASS_STYLE, plot_attractor, plot_flow_slice, plot_spectra

D = torch.float64


def ring(t, h):
    return h * (1 - h.pow(2).sum(-1, keepdim=True))


def test_flow_slice_nullclines_lie_where_the_components_vanish():
    # ring: f1 = h1 (1 - r^2) vanishes on h1 = 0 and r = 1; f2 = h2 (1 - r^2) on h2 = 0 and r = 1
    fig = plot_flow_slice(
        ring, center=torch.zeros(2, dtype=D), basis=torch.eye(2, dtype=D), extent=(-1.5, 1.5, -1.5, 1.5), grid=61
    )
    ax = fig.axes[0]
    contours = [c for c in ax.collections if type(c).__name__ in ("QuadContourSet", "ContourSet")]
    assert len(contours) == 2
    for comp, cs in enumerate(contours):
        verts = torch.tensor([v for path in cs.get_paths() for v in path.vertices.tolist()], dtype=D)
        assert verts.shape[0] > 50
        r = verts.norm(dim=-1)
        on_axis = verts[:, comp].abs() < 0.03
        on_circle = (r - 1).abs() < 0.03
        assert bool((on_axis | on_circle).all()), "a nullcline vertex off {h_i = 0} and the unit circle"
        assert bool(on_axis.any()) and bool(on_circle.any())
    plt.close(fig)
    with pytest.raises(ValueError, match="orthonormal"):
        plot_flow_slice(
            ring,
            center=torch.zeros(2, dtype=D),
            basis=torch.tensor([[1.0, 0], [1.0, 0]], dtype=D),
            extent=(-1, 1, -1, 1),
        )


def test_attractor_view_draws_each_point_once_with_its_class_colour():
    fps = find_fixed_points(
        ring,
        torch.randn(60, 2, generator=torch.Generator().manual_seed(0), dtype=D),
        config=FixedPointConfig(opt_steps=100),
    )
    traj = torch.randn(3, 20, 2, dtype=D)
    fig = plot_attractor(fps, traj)
    ax = fig.axes[0]
    drawn = {}
    for coll in ax.collections:
        label = coll.get_label()
        if label and not label.startswith("_"):
            drawn[label] = coll.get_offsets().shape[0]
    assert sum(drawn.values()) == len(fps)
    assert drawn[f"{CLASS_STYLE['marginally_stable'][2]} (fixed): {len(fps) - 1}"] == len(fps) - 1
    assert drawn[f"{CLASS_STYLE['unstable'][2]} (fixed): 1"] == 1
    plt.close(fig)


def test_attractor_view_of_a_high_dimensional_system_uses_the_leading_principal_components():
    # a 5-D ring: the ring in the plane spanned by a and b, fast decay elsewhere; trajectories on that ring
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=D))
    a, b = Q[:, 0], Q[:, 1]

    def ring5(t, h):
        u, v = h @ a, h @ b
        r2 = (u * u + v * v)[:, None]
        inplane = u[:, None] * a + v[:, None] * b
        return inplane * (1 - r2) - (h - inplane)

    th = torch.linspace(0, 6.28, 50, dtype=D)
    traj = (torch.cos(th)[:, None] * a + torch.sin(th)[:, None] * b)[None]
    fps = find_fixed_points(
        ring5, traj[0][::5] + 0.05 * torch.randn(10, 5, generator=g, dtype=D), config=FixedPointConfig(opt_steps=50)
    )
    assert set(fps.classes) == {"marginally_stable"}
    fig = plot_attractor(fps, traj)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    plt.close(fig)


def test_spectra_labels_stay_on_the_canvas_with_long_tick_labels():
    # eigenvalues -0.05 +- 0.012i, -0.15: tick labels such as "-0.010" are wide enough to push "Im lambda" off
    a, b = -0.05, 0.012
    A = torch.tensor([[a, -b, 0.0], [b, a, 0.0], [0.0, 0.0, -0.15]], dtype=D)
    fps = find_fixed_points(
        lambda t, h: h @ A.T,
        0.1 * torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=D),
        config=FixedPointConfig(opt_steps=0),
    )
    fig = plot_spectra(fps)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for text in (fig.axes[0].xaxis.label, fig.axes[0].yaxis.label, fig.axes[0].title):
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, text
    plt.close(fig)


def parse(argv):
    from gnode.training.analyze import add_subparser

    p = argparse.ArgumentParser(prog="gnode")
    sub = p.add_subparsers(dest="command")
    add_subparser(sub)
    return p.parse_args(argv)


def test_cli_reports_bad_options_and_missing_runs(tmp_path, capsys):
    args = parse(["analyze", str(tmp_path / "nowhere")])
    assert args.func(args) == 2  # a bad argument, as for `gnode evaluate` and `gnode plot`
    assert "no run folder" in capsys.readouterr().err
    args = parse(["analyze", str(tmp_path), "--sequences", "0"])
    assert args.func(args) == 2
    assert "sequences must be a positive integer" in capsys.readouterr().err
    args = parse(["analyze", str(tmp_path), "--dedup-tol", "-1"])
    assert args.func(args) == 2
    assert "dedup_tol must be a positive number" in capsys.readouterr().err


def test_cli_shows_progress_and_prints_the_paths_it_wrote(tmp_path, capsys):
    from gnode import cli
    from gnode.tasks import FlipFlopConfig
    from gnode.training import TrainConfig
    from gnode.training.experiment import ModelConfig, RunConfig, SolverConfig, run_flipflop

    cfg = RunConfig(
        task=FlipFlopConfig(duration=2.0, dt=0.5, pulse_width=0.5, pulse_prob=0.3, n_train=8, n_val=4, n_test=4),
        model=ModelConfig(kind="gnode", latent=3, width_F=4, width_G=4),
        solver=SolverConfig(alg="RK4"),
        train=TrainConfig(epochs=1, batch_size=8, progress=False),
    )
    run_flipflop(cfg, tmp_path / "run", figures=False)
    out = tmp_path / "elsewhere"
    code = cli.main(
        [
            "analyze",
            str(tmp_path / "run"),
            "--out",
            str(out),
            "--sequences",
            "2",
            "--initial-states",
            "16",
            "--opt-steps",
            "20",
            "--newton-steps",
            "3",
            "--grid",
            "7",
        ]
    )
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    for phase in (
        "analyze: solving 2 trajectories",
        "analyze: fixed points (16 searches)",
        "analyze: stiffness telemetry",
        "analyze: drawing flow_slices.png",
        "7/7 phases",
    ):
        assert phase in stderr, phase
    listed = [
        line.strip() for line in stdout.splitlines()[stdout.splitlines().index(f"figures and JSON in {out}:") + 1 :]
    ]
    assert listed == [
        str(out / name)
        for name in (
            "attractor.png",
            "flow_slices.png",
            "spectra.png",
            "telemetry.png",
            "summary.json",
            "fixed_points.json",
        )
    ]
    for name in ("attractor.png", "flow_slices.png", "spectra.png", "telemetry.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    s = json.loads((out / "summary.json").read_text())
    points = json.loads((out / "fixed_points.json").read_text())
    assert s["fixed_points"]["n_points"] == len(points["points"])
    assert s["fixed_points"]["n_fixed"] == sum(p["fixed"] for p in points["points"])
    assert s["marginal_tol"] == pytest.approx(1 / 2.0)  # default: 1 / the sequences' duration
    assert s["telemetry"]["alg"] == "RK4" and s["telemetry"]["points"] == 2 * 8  # 2 sequences, RK4 at dt 0.25
    for p in points["points"]:
        assert len(p["point"]) == 3 and len(p["eigenvalues"]) == 3 and p["class"] in CLASS_STYLE
    assert set(s["figures"]) == {"attractor", "flow_slices", "spectra", "telemetry"}
    assert (out / s["run"]).resolve() == (tmp_path / "run").resolve()  # relative: the folders can move


@pytest.mark.slow
def test_cli_analyzes_a_trained_run(tmp_path, capsys):
    from gnode.tasks import FlipFlopConfig
    from gnode.training import TrainConfig
    from gnode.training.experiment import ModelConfig, RunConfig, SolverConfig, run_flipflop

    cfg = RunConfig(
        task=FlipFlopConfig(duration=4.0, dt=0.5, pulse_width=0.5, pulse_prob=0.3, n_train=16, n_val=8, n_test=8),
        model=ModelConfig(kind="gnode", latent=3, width_F=8, width_G=8),
        solver=SolverConfig(alg="RK4"),
        train=TrainConfig(epochs=1, batch_size=8, progress=False),
    )
    run_flipflop(cfg, tmp_path / "run", figures=False)
    args = parse(["analyze", str(tmp_path / "run"), "--initial-states", "64", "--opt-steps", "50", "--json"])
    assert args.func(args) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["weights"] == "best" and s["model"]["n"] == 3
    assert (tmp_path / "run" / "analysis" / "attractor.png").exists()
    args = parse(["analyze", str(tmp_path / "run"), "--input", "1", "2"])
    assert args.func(args) == 2
    assert "--input needs 3 numbers" in capsys.readouterr().err
