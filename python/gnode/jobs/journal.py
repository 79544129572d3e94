"""A set of jobs' journal: every finished job appended to a JSON-lines file as it ends, so that a set that is
killed (or runs out of its time) keeps what it measured and resumes where it stopped.

    journal = Journal("out/journal.jsonl", config={"repeats": 3}, machine={"cpu_model": ...})
    if key not in journal.trials:                      # not measured in an earlier session
        journal.add_trial(key, rows, seconds)          # on disk (fsync'ed) before the next job starts
    journal.add_record(name, {...})                    # a result several jobs share (a benchmark's references)

The first line holds the configuration and the machine; resuming with different ones is a `JournalError` (the
results would not be comparable). A line cut off by a kill is dropped (its job runs again) and the file
repaired atomically; a damaged line elsewhere is an error that names the line. A key written twice keeps its
last entry (a failed sweep trial run again). Users: `gnode.bench.workprecision.run_set` and `gnode.sweep`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _plain(x):
    try:
        return x.item()  # NumPy and torch scalars
    except (AttributeError, ValueError, RuntimeError):  # not a scalar: recorded by its repr, never a crash
        return repr(x)


def _roundtrip(x):
    return json.loads(json.dumps(x, default=_plain))


class JournalError(ValueError):
    """A journal that cannot be resumed: damaged, or written with another configuration or on another machine."""


class Journal:
    """The jobs of a set already done, read from `path` (created if missing).

    trials:  job key -> its rows (a list of plain dicts), as `add_trial` wrote them;
    records: name -> a shared result (a plain dict), as `add_record` wrote it;
    seconds: job key -> seconds the job took when it ran.
    `config` and `machine` (plain dicts) head the journal; a journal headed by others is refused, since results
    measured under another configuration or on another machine would not be comparable."""

    def __init__(self, path, config: dict, machine: dict | None = None):
        self.path = Path(path)
        self.trials: dict[str, list[dict]] = {}
        self.records: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}
        self.resumed: set[str] = set()  # trial keys handed back by `take`
        head = {"kind": "config", "config": _roundtrip(config), "machine": _roundtrip(machine or {})}
        entries, intact = self._read(head) if self.path.exists() else ([], False)
        if intact:  # header included, nothing cut off: append from here
            return
        # a new journal, or one to repair (a line cut off by a kill, a missing header): rewritten atomically
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(e, default=_plain) + "\n" for e in [head, *entries])
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _read(self, head: dict) -> tuple[list[dict], bool]:
        """Load the journal; returns its entries (the header left out) and whether it is intact."""
        text = self.path.read_text()
        lines = text.splitlines()
        entries, intact, headed = [], text.endswith("\n"), False
        for i, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # the write a kill cut off: that job runs again
                    intact = False
                    continue
                raise JournalError(
                    f"{self.path}, line {i + 1}: not JSON; the journal is damaged (remove it to start the set afresh)"
                ) from None
            kind = entry.get("kind")
            if kind == "config":
                headed = True
                for what in ("config", "machine"):
                    if entry.get(what) != head[what]:
                        old, new = entry.get(what) or {}, head[what]
                        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                        raise JournalError(
                            f"{self.path} was written with another {what} (differs in "
                            f"{', '.join(changed)}); use another output folder, or remove the "
                            "journal to start afresh"
                        )
                continue
            entries.append(entry)
            if kind == "trial":
                self.trials[entry["key"]] = entry["rows"]
                self.seconds[entry["key"]] = entry.get("seconds", 0.0)
            elif kind == "record":
                self.records[entry["key"]] = entry["record"]
        return entries, intact and headed

    def _append(self, entry: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, default=_plain) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def take(self, key: str) -> list[dict] | None:
        """The rows of a job already done (marked as resumed), or None."""
        rows = self.trials.get(key)
        if rows is not None:
            self.resumed.add(key)
        return rows

    def resumed_seconds(self) -> float:
        """Seconds the resumed jobs took in the sessions that ran them."""
        return sum(self.seconds.get(k, 0.0) for k in self.resumed)

    def add_record(self, key: str, record: dict) -> None:
        self.records[key] = _roundtrip(record)
        self._append({"kind": "record", "key": key, "record": record})

    def add_trial(self, key: str, rows: list[dict], seconds: float) -> None:
        self.trials[key], self.seconds[key] = _roundtrip(rows), seconds
        self._append({"kind": "trial", "key": key, "seconds": seconds, "rows": rows})
