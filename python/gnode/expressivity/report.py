"""What an expressivity sweep writes: results.json, points.csv, fits.csv, a table and the figures.

results.json   the measure's settings, the machine, and every configuration's result (every fit's NMSE;
               the trajectories of the example fits only)
points.csv     one row per configuration: family, N, L, W, parameters, K*, censored, upper, seconds
fits.csv       one row per fit: configuration, K, seed, NMSE (verdict), NMSE (training), diverged
table.txt      the table `format_table` prints
*.png          `gnode.expressivity.plots`
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from gnode.atomic import atomic_write_json, atomic_write_text
from gnode.expressivity.plots import FAMILY_LABELS, plot_examples, plot_vs_latent, plot_vs_parameters

POINT_COLUMNS = (
    "label",
    "family",
    "latent",
    "depth",
    "width",
    "d_out",
    "parameters",
    "expressivity",
    "censored",
    "upper",
    "rounds",
    "seconds",
    "cpu_seconds",
)
FIT_COLUMNS = ("label", "K", "seed", "nmse", "nmse_train", "diverged", "steps")


def format_table(results: list[dict], failures: list[dict] = ()) -> str:
    """A text table of K* per configuration, grouped by family, with the median NMSE at each K tried."""
    lines = [f"{'configuration':<26}{'params':>8}{'K*':>7}   median NMSE at each K tried", "-" * 96]
    for r in sorted(
        results, key=lambda r: (list(FAMILY_LABELS).index(r["family"]), r["depth"], r["width"], r["latent"])
    ):
        k = f"{r['expressivity']}{'+' if r['censored'] else ''}"
        med = "  ".join(f"{key}:{v:.3g}" for key, v in sorted(r["median"].items(), key=lambda kv: int(kv[0])))
        lines.append(f"{r['label']:<26}{r['parameters']:>8}{k:>7}   {med}")
    for f in failures:
        lines.append(f"{f['label']:<26}{'':>8}{'failed':>7}   {f.get('error', '')}")
    lines.append("")
    lines.append(
        "K*: the largest number of Fourier features whose median NMSE over seeds is at most epsilon; "
        "'+': every K of the grid passed (at least K*)."
    )
    return "\n".join(lines)


def _csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in columns})
    return buf.getvalue()


def write_results(
    results: list[dict], failures: list[dict], measure: dict, meta: dict, out, *, figures: bool = True
) -> dict[str, Path]:
    """Write the files of the module docstring into `out`; returns {name: path}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    written["results"] = out / "results.json"
    atomic_write_json(
        written["results"], {"measure": measure, "meta": meta, "results": results, "failures": list(failures)}
    )
    written["points"] = out / "points.csv"
    atomic_write_text(written["points"], _csv(results, POINT_COLUMNS))
    fits = [{"label": r["label"], **f} for r in results for f in r["fits"]]
    for f in fits:
        f["nmse"] = f["nmse"] if math.isfinite(f["nmse"]) else "nan"
    written["fits"] = out / "fits.csv"
    atomic_write_text(written["fits"], _csv(fits, FIT_COLUMNS))
    written["table"] = out / "table.txt"
    atomic_write_text(written["table"], format_table(results, failures) + "\n")
    if figures:
        for name, draw in (
            ("expressivity_vs_latent", lambda p: plot_vs_latent(results, p)),
            ("expressivity_vs_parameters", lambda p: plot_vs_parameters(results, p)),
            ("examples", lambda p: plot_examples(results, measure, p)),
        ):
            path = draw(out / f"{name}.png")
            if path is not None:
                written[name] = path
    return written
