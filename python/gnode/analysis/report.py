"""The analysis of a trained run: fixed points, attractor views, flow slices, spectra and stiffness
telemetry, written as figures and JSON into the run folder (`gnode analyze RUN`).

    RUN/analysis/attractor.png     fixed/slow points coloured by class over the task trajectories (3-D for
                                   N = 3, leading principal components for N > 3), and beside it the
                                   visited states coloured by the speed of the flow at x*
    RUN/analysis/flow_slices.png   the flow with nullclines on 2-D slices through the trajectories' mean
    RUN/analysis/spectra.png       the Jacobian eigenvalues of every point, coloured by class
    RUN/analysis/telemetry.png     dt*rho(J)/bound, rho(J), gate timescales, stiffness ratio over time
    RUN/analysis/summary.json      counts, tolerances, telemetry summary, figure paths
    RUN/analysis/fixed_points.json every point: state, q, class, eigenvalues

`analyze_model` works on any `SequenceModel` and its inputs; a run folder is analysed by
`gnode.training.analyze.analyze_run` (the layer that reads run folders). Trajectories are the model's own on
the first sequences of a split; the fixed points are those of the autonomous system with the input held at x*
(default 0: the flip-flop's memory phase between pulses).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from gnode.analysis.fixed_points import FixedPointConfig, find_fixed_points, sample_states
from gnode.analysis.plots import (
    plot_attractor,
    plot_flow_slice,
    plot_spectra,
    plot_state_speed,
    plot_telemetry,
)
from gnode.analysis.telemetry import stiffness_telemetry
from gnode.analysis.vector_field import FrozenField, unwrap_vector_field

FIGURES = {
    "attractor": "attractor.png",
    "flow_slices": "flow_slices.png",
    "spectra": "spectra.png",
    "telemetry": "telemetry.png",
}


@dataclass(frozen=True)
class AnalysisConfig:
    """What `analyze_model` does.

    split:            the data split whose sequences drive the trajectories.
    sequences:        how many sequences (trajectories) to solve and draw.
    initial_states:   fixed-point searches, started from states sampled along those trajectories.
    noise:            relative noise added to the sampled starts (see `sample_states`).
    input:            the constant input x* (d_in numbers); None: zeros.
    marginal_tol:     |Re lambda| <= this is a marginal direction; None: 1 / (the sequences' duration),
                      i.e. a direction that moves by less than a factor e over one whole sequence counts
                      as marginal for the task.
    finder:           the fixed-point search's other settings (its marginal_tol is replaced by the above).
    grid:             points per side of the flow-slice grids.
    telemetry_method: "auto" | "exact" | "krylov" (`gnode.analysis.telemetry`).
    seed:             seeds the sampling of initial states.
    """

    split: str = "test"
    sequences: int = 64
    initial_states: int = 1024
    noise: float = 0.05
    input: tuple[float, ...] | None = None
    marginal_tol: float | None = None
    finder: FixedPointConfig = field(default_factory=FixedPointConfig)
    grid: int = 41
    telemetry_method: str = "auto"
    seed: int = 0

    def __post_init__(self):
        def need(ok, what):
            if not ok:
                raise ValueError(f"AnalysisConfig: {what}")

        need(self.split in ("train", "val", "test"), f"split must be train, val or test, got {self.split!r}")
        for name in ("sequences", "initial_states", "grid"):
            v = getattr(self, name)
            need(isinstance(v, int) and v >= 1, f"{name} must be a positive integer, got {v!r}")
        need(self.grid >= 5, f"grid must be at least 5, got {self.grid}")
        need(isinstance(self.noise, (int, float)) and self.noise >= 0, f"noise must be >= 0, got {self.noise!r}")
        need(
            self.marginal_tol is None or (isinstance(self.marginal_tol, (int, float)) and self.marginal_tol >= 0),
            f"marginal_tol must be None or a number >= 0, got {self.marginal_tol!r}",
        )


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def analyze_model(
    model,
    inputs: torch.Tensor | None,
    times: torch.Tensor,
    out_dir: str | Path,
    *,
    config: AnalysisConfig | None = None,
    duration: float | None = None,
    progress: bool = False,
) -> dict:
    """Analyse a `SequenceModel` driven by `inputs` (B, T, d_in) at `times` (T,); write figures and JSON into
    `out_dir`; return the summary (what summary.json holds). `progress` shows a bar on stderr that names the
    phase under way (trajectories, fixed points, telemetry, then each figure)."""
    from tqdm.auto import tqdm

    plt = _pyplot()
    config = config or AnalysisConfig()
    out_dir = Path(out_dir)
    vf = unwrap_vector_field(model)
    if vf is model or not hasattr(vf, "n"):
        raise ValueError(
            f"the analysis needs a continuous-time model with a vector field (a SequenceModel); "
            f"got {type(model).__name__}"
        )
    n, d_in = vf.n, vf.d_in
    x_star = torch.tensor(config.input if config.input is not None else [0.0] * d_in, dtype=torch.float64)
    if d_in and x_star.numel() != d_in:
        raise ValueError(f"--input needs {d_in} numbers (one per model input), got {x_star.numel()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    x_fixed = x_star if d_in else None
    timings = {}
    bar = tqdm(
        total=3 + len(FIGURES),
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
        bar_format="{desc} [{n_fmt}/{total_fmt} phases, {elapsed}]",
    )

    def begin(what: str) -> float:
        bar.set_description_str(f"analyze: {what}", refresh=True)
        return time.perf_counter()

    with bar:
        x = inputs[: config.sequences] if inputs is not None else None
        t0 = begin(f"solving {x.shape[0] if x is not None else 1} trajectories")
        with torch.no_grad():
            out = model(x, times)
        sol = out.sol
        fine = torch.linspace(float(times[0]), float(times[-1]), 4 * (times.numel() - 1) + 1, dtype=times.dtype)
        try:
            traj = sol(fine).detach()
        except NotImplementedError:  # an engine without dense output: the sample times will do
            traj = out.h.detach()
        timings["trajectories_s"] = time.perf_counter() - t0
        bar.update(1)

        t0 = begin(f"fixed points ({config.initial_states} searches)")
        duration = duration if duration is not None else float(times[-1] - times[0])
        tol = config.marginal_tol if config.marginal_tol is not None else 1.0 / duration
        finder = replace(config.finder, marginal_tol=tol)
        gen = torch.Generator().manual_seed(config.seed)
        starts = sample_states(out.h.detach().double(), config.initial_states, noise=config.noise, generator=gen)
        fps = find_fixed_points(vf, starts, x_fixed, config=finder)
        timings["fixed_points_s"] = time.perf_counter() - t0
        bar.update(1)

        t0 = begin("stiffness telemetry along the solve")
        tel = stiffness_telemetry(vf, sol, method=config.telemetry_method)
        timings["telemetry_s"] = time.perf_counter() - t0
        bar.update(1)

        t0 = begin(f"drawing {FIGURES['attractor']}")
        paths = {}
        dims = 3 if n >= 3 else 2
        fig = plt.figure(figsize=(15, 6.5))
        left = fig.add_subplot(121, projection="3d" if dims == 3 else None)
        right = fig.add_subplot(122, projection="3d" if dims == 3 else None)
        plot_attractor(
            fps,
            traj,
            ax=left,
            title=f"fixed and slow points at x* = {_fmt(x_star)}; marginal: |Re lambda| <= {tol:.3g}",
        )
        plot_state_speed(vf, traj, x=x_fixed, fps=fps, ax=right)
        fig.tight_layout()
        paths["attractor"] = _save(plt, fig, out_dir / FIGURES["attractor"])
        bar.update(1)
        begin(f"drawing {FIGURES['flow_slices']}")
        paths["flow_slices"] = _save(
            plt, _flow_slices(plt, vf, x_fixed, fps, traj, config.grid), out_dir / FIGURES["flow_slices"]
        )
        bar.update(1)
        begin(f"drawing {FIGURES['spectra']}")
        paths["spectra"] = _save(plt, plot_spectra(fps), out_dir / FIGURES["spectra"])
        bar.update(1)
        begin(f"drawing {FIGURES['telemetry']}")
        paths["telemetry"] = _save(
            plt,
            plot_telemetry(tel, title=f"stiffness telemetry along {tel.t.shape[0]} {config.split} trajectories"),
            out_dir / FIGURES["telemetry"],
        )
        bar.update(1)
        timings["figures_s"] = time.perf_counter() - t0
        bar.set_description_str("analyze: done", refresh=True)

    summary = {
        "model": {"family": getattr(vf, "family", type(vf).__name__), "n": n, "d_in": d_in},
        "input": x_star.tolist(),
        "marginal_tol": tol,
        "fixed_points": fps.summary(),
        "telemetry": _finite(tel.summary()),
        "figures": {k: Path(v).name for k, v in paths.items()},  # beside this file: the folder can move
        "timings": timings,
        "config": {
            k: (str(v) if not isinstance(v, (int, float, str, type(None), tuple, list, dict)) else v)
            for k, v in asdict(config).items()
            if k != "finder"
        },
    }
    write_json(out_dir / "fixed_points.json", {"input": x_star.tolist(), "marginal_tol": tol, "points": fps.records()})
    write_json(out_dir / "summary.json", summary)
    summary["fixed_points_object"] = fps
    summary["telemetry_object"] = tel
    return summary


def _flow_slices(plt, vf, x_star, fps, traj, grid):
    n = vf.n
    flat = traj.reshape(-1, n)
    flat = flat[torch.isfinite(flat).all(-1)].double()
    if n == 1:
        raise ValueError("flow slices need n >= 2")
    from gnode.analysis.plots import principal_components

    mean, comps, ratio = principal_components(flat, min(n, 3))
    pairs = [(0, 1)] if comps.shape[0] == 2 else [(0, 1), (0, 2), (1, 2)]
    if n == 2:  # the plane itself, in its own coordinates: classical nullclines
        mean, comps = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
        labels = ["$h_1$", "$h_2$"]
    else:
        labels = [f"PC{i + 1} ({100 * float(r):.0f}%)" for i, r in enumerate(ratio)]
    proj = (flat - mean) @ comps.T
    fig, axes = plt.subplots(1, len(pairs), figsize=(6 * len(pairs), 5.2), squeeze=False)
    field = FrozenField(vf, x_star, dtype=torch.float64)
    for ax, (i, j) in zip(axes[0], pairs):
        lo_i, hi_i = float(proj[:, i].min()), float(proj[:, i].max())
        lo_j, hi_j = float(proj[:, j].min()), float(proj[:, j].max())
        pad_i, pad_j = 0.15 * (hi_i - lo_i) + 1e-3, 0.15 * (hi_j - lo_j) + 1e-3
        extent = (lo_i - pad_i, hi_i + pad_i, lo_j - pad_j, hi_j + pad_j)
        basis = torch.stack([comps[i], comps[j]])
        plot_flow_slice(
            field,
            center=mean,
            basis=basis,
            extent=extent,
            grid=grid,
            fps=fps,
            trajectories=traj,
            ax=ax,
            labels=(labels[i], labels[j]),
            title=f"slice through the mean: {labels[i].split()[0]}-{labels[j].split()[0]}",
            near=0.1 * max(extent[1] - extent[0], extent[3] - extent[2]),
        )
    fig.tight_layout()
    return fig


def _fmt(x: torch.Tensor) -> str:
    vals = x.tolist()
    return "0" if all(v == 0 for v in vals) else "(" + ", ".join(f"{v:g}" for v in vals) + ")"


def _save(plt, fig, path: Path) -> Path:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a figure
    return path


def _finite(d: dict) -> dict:
    """JSON has no NaN/inf: write them as null / the strings "inf"."""
    out = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        else:
            out[k] = v
    return out


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False))
    tmp.replace(path)
