"""Figures of an expressivity sweep (matplotlib, Agg; drawn from the results alone, so they can be redrawn).

    expressivity_vs_latent.png       K* against N, one line per flow-field depth L, a panel per family
    expressivity_vs_parameters.png   K* against the parameter count, one line per family (and depth)
    examples.png                     fits at the edge of capacity: the target and the fit at K = K*
                                     (reproduced) and at the first K that failed
Censored points (every K of the grid reproduced) are drawn with an upward triangle: the capacity is at
least that high.
"""

from __future__ import annotations

from pathlib import Path

FAMILY_LABELS = {
    "gnode": "gnODE",
    "node": "nODE",
    "mgru": "mGRU",
    "elman": "Elman RNN",
    "linear": "linear ODE",
    "gru": "GRU (discrete)",
    "lstm": "LSTM (discrete)",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARKERS = ("o", "s", "D", "v", "P", "X")  # one per line, shrinking, so that lines on top of each other stay visible


def _line(ax, points: list[dict], x: str, label: str, index: int = 0, **style) -> None:
    points = sorted(points, key=lambda r: r[x])
    xs, ys = [r[x] for r in points], [r["expressivity"] for r in points]
    marker = MARKERS[index % len(MARKERS)]
    (line,) = ax.plot(
        xs,
        ys,
        marker=marker,
        markersize=9 - 1.5 * (index % 4),
        fillstyle="none" if index else "full",
        lw=2.2 - 0.4 * (index % 4),
        label=label,
        **style,
    )
    cens = [(a, b) for a, b, r in zip(xs, ys, points) if r["censored"]]
    if cens:
        ax.plot(*zip(*cens), linestyle="none", marker="^", markersize=11, color=line.get_color())


def plot_vs_latent(results: list[dict], path) -> Path | None:
    """K* against N for the families with a flow-field depth (one panel each, one line per L and width)."""
    families = [f for f in ("gnode", "node") if any(r["family"] == f for r in results)]
    if not families:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(families), figsize=(5.2 * len(families), 4), sharey=True, squeeze=False)
    for ax, fam in zip(axes[0], families):
        mine = [r for r in results if r["family"] == fam]
        for i, (depth, width) in enumerate(sorted({(r["depth"], r["width"] if r["depth"] > 1 else 0) for r in mine})):
            pts = [r for r in mine if r["depth"] == depth and (depth == 1 or r["width"] == width)]
            _line(ax, pts, "latent", f"L = {depth}" + (f", W = {width}" if depth > 1 else ""), i)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("phase-space dimension N")
        ax.set_title(FAMILY_LABELS[fam])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("expressivity K* (features reproduced)")
    fig.suptitle("Expressivity against phase-space dimension (deeper F: the same K* at lower N?)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_vs_parameters(results: list[dict], path) -> Path | None:
    """K* against the parameter count, one line per family (per depth for gnODE and nODE)."""
    if not results:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    groups: dict[str, list[dict]] = {}
    for r in results:
        name = FAMILY_LABELS[r["family"]] + (f" L={r['depth']}" if r["family"] in ("gnode", "node") else "")
        groups.setdefault(name, []).append(r)
    for i, (name, pts) in enumerate(sorted(groups.items())):
        _line(ax, pts, "parameters", name, i, linestyle="--" if name.startswith("nODE") else "-")
    ax.set_xscale("log")
    ax.set_xlabel("trained parameters")
    ax.set_ylabel("expressivity K* (features reproduced)")
    ax.set_title("Expressivity against parameter count", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_examples(results: list[dict], measure: dict, path, *, limit: int = 4) -> Path | None:
    """For up to `limit` configurations (the largest K* first), the target and the fit at K* and at the first
    failing K (the seed with the median NMSE), from the example fits kept in the results."""
    import torch

    from gnode.expressivity.measure import MeasureConfig, target_for

    config = MeasureConfig.from_dict(measure)

    chosen = [r for r in sorted(results, key=lambda r: -r["expressivity"]) if r.get("examples")][:limit]
    if not chosen:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(chosen), 2, figsize=(11, 2.3 * len(chosen)), squeeze=False)
    for row, r in zip(axes, chosen):
        for ax, which in zip(row, ("reproduced", "failed")):
            ex = r["examples"].get(which)
            if ex is None:
                ax.set_axis_off()
                ax.set_title(f"{r['label']}: no K failed (censored)" if which == "failed" else "", fontsize=9)
                continue
            target = target_for(config, ex["K"], ex["seed"])
            dense = torch.linspace(0, target.duration, 600, dtype=torch.float64)
            ax.plot(dense, target(dense)[:, 0], color="0.6", lw=2.5, label="target y*")
            ax.plot(target.times, [v[0] for v in ex["y"]], "o-", ms=2.5, lw=1, label="model")
            ax.set_title(f"{r['label']}: K = {ex['K']}, NMSE = {ex['nmse']:.3g} ({which})", fontsize=9)
            ax.set_xlabel("t")
        row[0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
