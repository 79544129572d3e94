"""Figures of a training run (matplotlib, Agg backend, headless), written beside its metrics.

loss.png       training and validation loss per epoch (log scale), with the target variance for scale
sequences.png  inputs, targets and outputs per channel for a few test sequences
latents.png    latent trajectories h(t) of test sequences: 3-D when N = 3 (the space the memory lives
               in), the first three principal components when N > 3, the plane or the line below
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

LOSS_PNG, SEQUENCES_PNG, LATENTS_PNG = "loss.png", "sequences.png", "latents.png"


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")  # never pop up a window; files only
    import matplotlib.pyplot as plt

    return plt


def plot_loss(history: list[dict], path: str | Path, *, target_variance: float | None = None) -> Path:
    """Train/val loss per epoch on a log axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r.get("train_loss") for r in history], label="train", color="C0")
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", ms=3, label="validation", color="C1")
    if target_variance:
        ax.axhline(target_variance, color="0.5", ls="--", lw=1, label="target variance")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_sequences(
    times, inputs, targets, outputs, path: str | Path, *, n_sequences: int = 3, dense: tuple | None = None
) -> Path:
    """One column per sequence, one row per channel: input pulses (grey), target (black dashed), output
    (dots at the sample times; with `dense` = (t (M,), outputs (B, M, d_out)) also the continuous-time
    output between them)."""
    plt = _pyplot()
    t = _np(times)
    x, y, o = _np(inputs), _np(targets), _np(outputs)
    td, od = (_np(dense[0]), _np(dense[1])) if dense is not None else (None, None)
    n_seq = min(n_sequences, x.shape[0])
    n_ch = y.shape[-1]
    fig, axes = plt.subplots(
        n_ch,
        n_seq,
        figsize=(3.6 * n_seq, 1.6 * n_ch + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
        constrained_layout=True,
    )
    for s in range(n_seq):
        for c in range(n_ch):
            ax = axes[c, s]
            if c < x.shape[-1]:
                ax.step(t, x[s, :, c], where="post", color="0.7", lw=1, label="input")
            ax.step(t, y[s, :, c], "k--", where="post", lw=1.2, label="target")
            if od is not None:
                ax.plot(td, od[s, :, c], color="C3", lw=1.2, label="output")
                ax.plot(t, o[s, :, c], ".", color="C3", ms=3)
            else:
                ax.plot(t, o[s, :, c], ".-", color="C3", lw=1.2, ms=3, label="output")
            if s == 0:
                ax.set_ylabel(f"channel {c + 1}")
            if c == 0:
                ax.set_title(f"test sequence {s + 1}")
    for ax in axes[-1]:
        ax.set_xlabel("t")
    axes[0, 0].legend(loc="upper left", fontsize=7, frameon=False)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_latents(h, path: str | Path, *, colors=None, n_lines: int = 8, dense=None) -> Path:
    """Latent states h (B, T, N) of test sequences: the first `n_lines` trajectories as lines (through
    `dense` (L, M, N), the continuous-time trajectories of the first L sequences, when given), every state
    as a point coloured by `colors` (B, T, 3) in [0, 1] (e.g. the targets mapped to RGB), so that memories
    that the network holds apart show as separated colours. N > 3 is projected on its top 3 principal
    components."""
    plt = _pyplot()
    h = _np(h)
    _, steps, n = h.shape
    flat = h.reshape(-1, n)
    lines = h if dense is None else _np(dense)
    label = [f"$h_{i + 1}$" for i in range(min(n, 3))]
    if n > 3:
        mean = flat.mean(0)
        _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
        share = s[:3] ** 2 / max((s**2).sum(), 1e-300)
        flat = (flat - mean) @ vt[:3].T
        lines = (lines - mean) @ vt[:3].T
        label = [f"PC{i + 1} ({100 * share[i]:.0f}%)" for i in range(3)]
        n = 3
    pts = lines
    c = None if colors is None else np.clip(_np(colors), 0, 1).reshape(-1, 3)
    if n == 3:
        fig = plt.figure(figsize=(6, 5.5), constrained_layout=True)
        ax = fig.add_subplot(projection="3d")
        ax.scatter(*flat.T, c=c, s=3, alpha=0.5, depthshade=False)
        for k in range(min(n_lines, pts.shape[0])):
            ax.plot(*pts[k].T, lw=0.8, color="0.2", alpha=0.7)
        ax.set_xlabel(label[0])
        ax.set_ylabel(label[1])
        ax.set_zlabel(label[2])
    else:
        fig, ax = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
        if n == 2:
            ax.scatter(*flat.T, c=c, s=3, alpha=0.5)
            for k in range(min(n_lines, pts.shape[0])):
                ax.plot(*pts[k].T, lw=0.8, color="0.2", alpha=0.7)
            ax.set_xlabel(label[0])
            ax.set_ylabel(label[1])
        else:
            for k in range(min(n_lines, pts.shape[0])):
                ax.plot(np.linspace(0, steps - 1, pts.shape[1]), pts[k, :, 0], lw=1)
            ax.set_xlabel("sample")
            ax.set_ylabel(label[0])
    ax.set_title("latent trajectories" + (" (colour: targets as RGB)" if c is not None else ""))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def draw_run_figures(
    folder: str | Path, model, data, history: list[dict], *, n_sequences: int = 3, n_latent: int = 64
) -> list[Path]:
    """The three figures of a run folder from a trained model and its task data."""
    folder = Path(folder)
    test = data.test.take(slice(0, max(n_sequences, n_latent)))
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(test.inputs, test.times)
    model.train(was)
    y = out if isinstance(out, torch.Tensor) else out.y
    n_lines = 8
    dense = _dense(model, out, test.times, max(n_sequences, n_lines))
    paths = [
        plot_loss(history, folder / LOSS_PNG, target_variance=data.test.target_variance()),
        plot_sequences(
            test.times,
            test.inputs,
            test.targets,
            y,
            folder / SEQUENCES_PNG,
            n_sequences=n_sequences,
            dense=None if dense is None else (dense[0], dense[2]),
        ),
    ]
    h = getattr(out, "h", None)
    if h is not None:
        paths.append(
            plot_latents(
                h,
                folder / LATENTS_PNG,
                colors=_target_colors(test.targets),
                n_lines=n_lines,
                dense=None if dense is None else dense[1],
            )
        )
    return paths


def _dense(model, out, times: torch.Tensor, n: int):
    """(t, h(t), y(t)) of the first n sequences on a grid 8x finer than the samples, from the solution's
    dense output, for ODE models with a linear readout; None otherwise."""
    sol = getattr(out, "sol", None)
    readout = getattr(model, "readout", None)
    if sol is None or readout is None:
        return None
    t = torch.linspace(
        float(times[0]), float(times[-1]), 8 * (times.numel() - 1) + 1, dtype=times.dtype, device=times.device
    )
    try:
        with torch.no_grad():
            h = sol(t)[:n]
            return t, h, readout(h)
    except NotImplementedError:  # an engine without dense output
        return None


def _target_colors(targets: torch.Tensor):
    """Targets in [-1, 1] per channel → RGB in [0, 1] (first three channels; missing ones mid-grey)."""
    y = _np(targets)
    scale = max(float(np.abs(y).max()), 1e-12)
    rgb = np.full(y.shape[:2] + (3,), 0.5)
    k = min(3, y.shape[-1])
    rgb[..., :k] = 0.5 + 0.5 * y[..., :k] / scale
    return rgb


def _np(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().to("cpu", torch.float64).numpy()
    return np.asarray(v, dtype=np.float64)
