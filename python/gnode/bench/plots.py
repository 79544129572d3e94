"""Work-precision diagrams: for one problem and mode, error vs wall time and error vs nf, log-log.

One line per solver through its successful points (from loose to tight tolerance), coloured by family
(gnode's native engine, its other engines, each peer) with a marker per method. Failed points are listed
under the axes with their return codes. A dashed line marks how far down the reference can be trusted: the
float64 reference's difference from the extended-precision one when it exists (else its tolerance), or,
for gradients, the spread of the reference gradient.
"""

from __future__ import annotations

import math

from gnode.bench.compare import error_key

FAMILY_COLOURS = {"gnode[torch]": "tab:blue", "gnode[julia]": "tab:purple", "gnode[scipy]": "tab:gray",
                  "torchdiffeq": "tab:orange", "torchode": "tab:green", "diffrax": "tab:red"}
MARKERS = "osD^v<>pP*hX"


def draw(rows, problem: str, mode: str, path, *, metric: str = "l2", floor: float | None = None,
         title: str | None = None) -> bool:
    """Draw the diagram of (problem, mode) into `path` (PNG); False when there is nothing to draw."""
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
    failed = sorted({f"{r['solver']} @ {r['reltol']:.0e}: {r.get('retcode', '?')}" for r in mine
                     if r.get("status") in ("failed", "error")})
    fig = Figure(figsize=(13, 5.2), constrained_layout=True)
    axes = fig.subplots(1, 2)
    method_marker: dict[str, str] = {}
    for label, pts in sorted(series.items()):
        pts = sorted(pts, key=lambda r: -r["reltol"])
        fam = pts[0].get("family", "")
        m = method_marker.setdefault(f"{pts[0].get('method')}/{pts[0].get('sensealg')}",
                                     MARKERS[len(method_marker) % len(MARKERS)])
        style = {"color": FAMILY_COLOURS.get(fam, "black"), "marker": m, "ms": 5, "label": label,
                 "lw": 1.4 if fam == "gnode[torch]" else 1.0, "ls": "-" if fam.startswith("gnode") else "--"}
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
            ax.annotate("reference floor", (1, floor), xycoords=("axes fraction", "data"), ha="right",
                        va="bottom", fontsize=7)
    handles = {}  # one legend for both panels: a solver without nf (diffrax gradients) is only on the left
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[1].legend(handles.values(), handles.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5),
                   frameon=False)
    fig.suptitle(title or f"{problem} — {mode}")
    if failed:
        shown = failed[:8] + ([f"... and {len(failed) - 8} more"] if len(failed) > 8 else [])
        fig.text(0.01, -0.02, "failed: " + "; ".join(shown), fontsize=6, va="top", wrap=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return True


def _pos(x) -> bool:
    return isinstance(x, (int, float)) and x > 0 and math.isfinite(x)
