"""Per-epoch metrics of a run, kept in memory and mirrored to `history.json` and `history.csv`."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from gnode.atomic import atomic_write_text

HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"


class MetricsLog:
    """Rows of metrics (one per epoch). `write(folder)` rewrites both files atomically, so a reader (or an
    interrupted run) never sees half a file. Missing values (e.g. no validation that epoch) are empty in
    the CSV and null in the JSON."""

    def __init__(self, rows: list[dict] | None = None):
        self.rows: list[dict] = [dict(r) for r in rows or []]

    def append(self, row: dict) -> None:
        self.rows.append({k: _plain(v) for k, v in row.items()})

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.rows]

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        return cols

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})
        return buf.getvalue()

    def write(self, folder: str | Path) -> None:
        folder = Path(folder)
        atomic_write_text(folder / HISTORY_JSON, json.dumps(self.rows, indent=1) + "\n")
        atomic_write_text(folder / HISTORY_CSV, self.to_csv())

    @classmethod
    def read(cls, folder: str | Path) -> MetricsLog:
        path = Path(folder) / HISTORY_JSON
        if not path.exists():
            raise FileNotFoundError(f"no {HISTORY_JSON} in {folder}: is it a gnode run folder?")
        return cls(json.loads(path.read_text()))


def _plain(v):
    """JSON-safe scalars: floats that are NaN/inf become None, tensors become numbers."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
