"""Writing a benchmark's results: `results.json` (everything), `results.csv` (one row per point),
`comparisons.txt` (the matched-error table) and `figures/<problem>_<mode>.png`; and reading them back."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path

FIRST_COLUMNS = (
    "problem",
    "mode",
    "solver",
    "family",
    "package",
    "engine",
    "method",
    "sensealg",
    "reltol",
    "abstol",
    "status",
    "retcode",
    "n_failed",
    "final",
    "l2",
    "linf",
    "L2",
    "Linf",
    "l2_extended",
    "grad_error",
    "time",
    "overhead",
    "compile_seconds",
    "nf",
    "nf_max",
    "f_calls",
    "naccept",
    "nreject",
    "njacs",
    "nw",
    "nsolve",
    "nf_backward",
    "peak_memory_bytes",
    "memory_method",
    "batch",
    "n",
    "time_to_failure",
    "message",
)


def _clean(x):
    """JSON-safe: NaN/Inf as strings ("nan", "inf"), tuples as lists, NumPy scalars as Python numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (ValueError, AttributeError):
            return repr(x)
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def floor_of(refs: dict, mode: str) -> float | None:
    """How far down a reference can be trusted, for the diagrams' dashed line (see `gnode.bench.plots`)."""
    if mode == "gradient":
        g = refs.get("gradient") or {}
        return g.get("spread_vs_rtol_1e-10")
    ext = refs.get("float64_vs_extended")
    if ext:
        return max(ext.get("l2", 0.0), 1e-17)
    return None


def write_results(results, folder, *, figures: bool = True) -> dict[str, str]:
    """Write `results` (a `BenchResults`) into `folder`; returns {what: path}."""
    from gnode.bench.compare import format_comparisons

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    comparisons = results.comparisons()
    doc = {
        "format": "gnode-bench",
        "version": 1,
        "meta": results.meta,
        "config": results.config,
        "problems": results.problems,
        "references": results.references,
        "comparisons": comparisons,
        "rows": results.rows,
    }
    out = {
        "json": str(folder / "results.json"),
        "csv": str(folder / "results.csv"),
        "comparisons": str(folder / "comparisons.txt"),
    }
    _atomic_text(folder / "results.json", json.dumps(_clean(doc), indent=1))
    extra = sorted({k for r in results.rows for k in r} - set(FIRST_COLUMNS) - {"times", "traceback"})
    columns = list(FIRST_COLUMNS) + extra
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in results.rows:
            w.writerow({k: _clean(v) for k, v in r.items()})
    os.replace(f.name, folder / "results.csv")
    _atomic_text(folder / "comparisons.txt", format_comparisons(comparisons) + "\n")
    if figures:
        out.update(draw_figures(results.rows, results.problems, results.references, results.config, folder))
    return out


def draw_figures(rows, problems: dict, references: dict, config: dict, folder) -> dict[str, str]:
    """figures/<problem>_<mode>.png for every problem and mode in `rows`; returns {what: path}. Redraw a
    written run's: `draw_figures(**{k: doc[k] for k in ("rows", "problems", "references", "config")},
    folder=...)` with `doc = read_results(folder)`."""
    from gnode.bench.plots import draw, solver_styles

    out = {}
    metric = config.get("metric", "l2")
    styles = solver_styles(rows)  # one colour and marker per solver, the same in every figure
    for problem, mode in sorted({(r["problem"], r["mode"]) for r in rows if "mode" in r}):
        path = Path(folder) / "figures" / f"{problem}_{mode}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        desc = problems.get(problem, {}).get("description", problem)
        if draw(
            rows,
            problem,
            mode,
            path,
            metric=metric,
            floor=floor_of(references.get(problem, {}), mode),
            title=f"{desc} — {mode}",
            styles=styles,
        ):
            out[f"figure {problem} {mode}"] = str(path)
    return out


def read_results(path) -> dict:
    """The document written by `write_results` (results.json or its folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    doc = json.loads(p.read_text())
    if doc.get("format") != "gnode-bench":
        raise ValueError(f"{p} is not a gnode bench results file")
    return doc
