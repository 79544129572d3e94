"""Figures of real-data task runs (matplotlib, Agg, headless): loss per epoch, the confusion matrix of a
classifier, predicted against true trajectories of a regression model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_task_loss(history: list[dict], path: str | Path, *, ylabel: str) -> Path:
    """Training and validation loss per epoch (log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.plot([r["epoch"] for r in history], [r.get("train_loss") for r in history], label="train", color="C0")
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", ms=3, label="validation", color="C1")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_confusion(confusion, classes: list[str], path: str | Path, *, title: str = "") -> Path:
    """Counts of (true class, predicted class), each row normalised for the colour, counts written in."""
    plt = _pyplot()
    c = np.asarray(confusion, dtype=np.float64)
    share = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
    k = len(classes)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size), constrained_layout=True)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if c[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(c[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7 if k > 12 else 9,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(k), classes, rotation=90 if k > 6 else 0)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="share of the true class")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_predictions(
    times, targets, outputs, mask, path: str | Path, *, channels: list[str] | None = None, n_channels: int = 4
) -> Path:
    """One column per sequence, one row per channel (the first `n_channels`): true observations (black) and
    the model's predictions (red dots) at the samples the loss reads."""
    plt = _pyplot()
    t, y, o, m = (
        v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        for v in (times, targets, outputs, mask)
    )
    n_seq, n_ch = y.shape[0], min(n_channels, y.shape[-1])
    fig, axes = plt.subplots(
        n_ch, n_seq, figsize=(3.8 * n_seq, 1.7 * n_ch + 0.6), sharex="col", squeeze=False, constrained_layout=True
    )
    for s in range(n_seq):
        tt = t[s] if t.ndim == 2 else t
        keep = m[s].astype(bool)
        for c in range(n_ch):
            ax = axes[c, s]
            ax.plot(tt[keep], y[s, keep, c], "k-", lw=1.2, label="true")
            ax.plot(tt[keep], o[s, keep, c], ".", color="C3", ms=4, label="predicted")
            if s == 0:
                ax.set_ylabel(channels[c] if channels else f"channel {c + 1}", fontsize=8)
            if c == 0:
                ax.set_title(f"test sequence {s + 1}")
    for ax in axes[-1]:
        ax.set_xlabel("t (control steps)")
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle("observations in standardised units (training mean 0, std 1)", fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
