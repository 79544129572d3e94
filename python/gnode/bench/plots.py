"""Work-precision diagrams: for one problem and mode, error vs wall time and error vs nf, log-log.

One line per solver through its successful points (from loose to tight tolerance). Each solver has its own
colour and marker, the same in every figure of a run (`solver_styles`), and the line style tells the family:
solid for gnode's engines (thicker for the native one), dashed for the peers. Failed points are listed
under the axes with their return codes. A dashed line marks how far down the reference can be trusted: the
float64 reference's difference from the extended-precision one when it exists (else its tolerance), or,
for gradients, the spread of the reference gradient.
"""

from __future__ import annotations

import math

from gnode.bench.compare import error_key

# matplotlib's tab10, then the lighter halves of tab20's pairs: 20 colours that stay apart
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
)
MARKERS = "osD^v<>pP*hX"  # 12 markers against 20 colours: (colour, marker) pairs repeat only after 60 solvers


def solver_styles(rows) -> dict[str, dict]:
    """{solver label: line style} for every solver with a measured point in `rows`: its own colour and marker
    (in label order, so the same in all the figures drawn from one set of rows; the colours differ for up to 20
    solvers), and the family's line style."""
    families = {}
    for r in rows:
        if r.get("status") == "ok":  # skipped solvers (Julia missing, ...) take no colour
            families.setdefault(r["solver"], r.get("family", ""))
    styles = {}
    for i, (label, fam) in enumerate(sorted(families.items())):
        native = fam == "gnode[torch]"
        styles[label] = {
            "color": COLOURS[i % len(COLOURS)],
            "marker": MARKERS[i % len(MARKERS)],
            "ms": 5,
            "lw": 1.6 if native else 1.0,
            "ls": "-" if fam.startswith("gnode") else "--",
        }
    return styles


def draw(
    rows,
    problem: str,
    mode: str,
    path,
    *,
    metric: str = "l2",
    floor: float | None = None,
    title: str | None = None,
    styles: dict[str, dict] | None = None,
) -> bool:
    """Draw the diagram of (problem, mode) into `path` (PNG); False when there is nothing to draw. `styles`
    (default: `solver_styles(rows)`) gives each solver's colour, marker and line style."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, any backend
    from matplotlib.ticker import LogFormatterSciNotation

    key = error_key(mode, metric)
    mine = [r for r in rows if r.get("problem") == problem and r.get("mode") == mode]
    series: dict[str, list] = {}
    for r in mine:
        if r.get("status") == "ok" and _pos(r.get(key)):
            series.setdefault(r["solver"], []).append(r)
    if not series:
        return False
    failed = sorted(
        {
            f"{r['solver']} @ {r['reltol']:.0e}: {r.get('retcode', '?')}"
            for r in mine
            if r.get("status") in ("failed", "error")
        }
    )
    styles = styles if styles is not None else solver_styles(rows)
    fig = Figure(figsize=(13, 5.2), constrained_layout=True)
    axes = fig.subplots(1, 2)
    for label, pts in sorted(series.items()):
        pts = sorted(pts, key=lambda r: -r["reltol"])
        style = {**styles[label], "label": label}
        for ax, cost in zip(axes, ("time", "nf")):
            xy = [(r[cost], r[key]) for r in pts if _pos(r.get(cost))]
            if xy:
                ax.plot(*zip(*xy), **style)
    for ax, xlabel in zip(axes, ("wall time [s] (min of repeats)", "f evaluations per trajectory (nf)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        # label minor ticks only on axes under half a decade: wider ones overprint them
        ax.xaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(0.5, 0.2)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("relative gradient error" if mode == "gradient" else f"{metric} error")
        ax.grid(True, which="both", alpha=0.25)
        if floor is not None and _pos(floor):
            ax.axhline(floor, color="k", ls=":", lw=1)
            ax.annotate(
                "reference floor", (1, floor), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=7
            )
    handles = {}  # one legend for both panels: a solver without nf (diffrax gradients) is only on the left
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[1].legend(
        handles.values(), handles.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False
    )
    fig.suptitle(title or f"{problem} — {mode}")
    if failed:
        shown = failed[:8] + ([f"... and {len(failed) - 8} more"] if len(failed) > 8 else [])
        fig.text(0.01, -0.02, "failed: " + "; ".join(shown), fontsize=6, va="top", wrap=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return True


def _pos(x) -> bool:
    return isinstance(x, (int, float)) and x > 0 and math.isfinite(x)
