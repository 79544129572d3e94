"""A sweep's result files: results.json (spec, session notes, every row), results.csv (one row per trial) and
one figure per metric (figures/<metric>.png, matplotlib with the Agg backend).

Each figure puts the metric against the `x` parameter (spec `plot.x`; default: the first parameter that varies
and is not a replicate), one colour per value of the `hue` parameter (default: the next one), each trial a dot
and the mean over the other parameters (the replicates: seeds) a bar with its standard deviation as
error bar.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

from gnode.atomic import atomic_write_json, atomic_write_text


def write_results(results, folder: Path, *, figures: bool = True) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {"json": folder / "results.json", "csv": folder / "results.csv"}
    atomic_write_json(written["json"], {"spec": results.spec.to_dict(), "meta": results.meta, "rows": results.rows})
    columns = list(dict.fromkeys(k for r in results.rows for k in r))
    atomic_write_text(written["csv"], _csv(results.rows, columns))
    if figures:
        x, hue = axes(results)
        for metric in results.metrics():
            path = folder / "figures" / f"{_safe(metric)}.png"
            if plot_metric(results.rows, metric, x, hue, path):
                written[f"figure {metric}"] = path
    return written


def _csv(rows: list[dict], columns: list[str]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    return buf.getvalue()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def axes(results) -> tuple[str | None, str | None]:
    """The figures' (x, hue) parameters: the spec's `plot`, else the first two varying parameters that are not
    replicates (a name containing "seed")."""
    varying = [k for k in results.spec.varying() if "seed" not in k.lower()]
    x = results.spec.plot.get("x", varying[0] if varying else None)
    rest = [k for k in varying if k != x]
    return x, results.spec.plot.get("hue", rest[0] if rest else None)


def _label(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def plot_metric(rows: list[dict], metric: str, x: str | None, hue: str | None, path: Path) -> bool:
    """Draw `metric` of the successful rows against `x` (see the module docstring); False when no row has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [
        r
        for r in rows
        if r.get("status") == "ok"
        and isinstance(r.get(metric), (int, float))
        and not isinstance(r.get(metric), bool)
        and math.isfinite(r[metric])
    ]
    if not ok:
        return False
    xs = list(dict.fromkeys(_label(r.get(x)) if x else "all" for r in ok))
    hues = list(dict.fromkeys(_label(r.get(hue)) for r in ok)) if hue else [None]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(xs) + 2), 3.6))
    width = 0.8 / len(hues)
    for j, h in enumerate(hues):
        colour, labelled = f"C{j % 10}", False
        for i, xv in enumerate(xs):
            vals = [
                r[metric] for r in ok if (not x or _label(r.get(x)) == xv) and (h is None or _label(r.get(hue)) == h)
            ]
            if not vals:
                continue
            pos = i - 0.4 + width * (j + 0.5)
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            ax.errorbar(
                pos,
                statistics.fmean(vals),
                yerr=sd,
                fmt="_",
                markersize=16,
                color=colour,
                capsize=3,
                label=f"{hue} = {h}" if h is not None and not labelled else None,
            )
            labelled = True
            spread = [pos + width * 0.2 * (k / max(len(vals) - 1, 1) - 0.5) for k in range(len(vals))]
            ax.plot(spread, vals, "o", color=colour, markersize=3.5, alpha=0.7)
    ax.set_xticks(range(len(xs)), xs, rotation=20 if max(map(len, xs)) > 8 else 0)
    ax.set_xlabel(x or "")
    ax.set_ylabel(metric)
    if all(r[metric] > 0 for r in ok) and max(r[metric] for r in ok) > 30 * min(r[metric] for r in ok):
        ax.set_yscale("log")
    if hue:
        ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{metric} (dots: trials; bars: mean ± sd)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return True
