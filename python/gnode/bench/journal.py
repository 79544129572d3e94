"""A run's journal: every finished trial appended to a JSON-lines file as it ends, so that a run that is
killed (or runs out of its time) keeps what it measured and resumes where it stopped.

    run_set(trials, config, journal="out/journal.jsonl")   # trials already in the journal are not run again

The first line holds the configuration and the machine; resuming with different ones is an error (the
points would not be comparable). Each problem's reference summary and information are journaled too, so a
problem whose trials are all done is not built again. The benchmark front ends journal into their output folder and remove the
journal once the results are written.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def problem_key(spec) -> str:
    """What identifies a problem spec across runs: its name, options and factory (when it has one)."""
    factory = f"{spec.factory.__module__}.{spec.factory.__qualname__}:" if spec.factory is not None else ""
    return f"{factory}{spec.name}({','.join(f'{k}={v!r}' for k, v in spec.options)})"


def trial_key(trial) -> str:
    """What identifies a trial across runs (the solver by its label, which names the method, its options, the
    engine and the sensealg: method objects carry no stable identity of their own)."""
    from gnode.bench.workprecision import _label
    reltols = ",".join(f"{r:.3g}" for r in sorted(trial.reltols))
    return (f"{problem_key(trial.problem)}|{_label(trial.solver)}|"
            f"{'gradient' if trial.gradient else 'forward'}|{reltols}")


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
    """The trials and problems of a run already measured, read from `path` (created if missing).

    `config` and `machine` (plain dicts) head the journal; a journal headed by others is refused, since points
    measured under another configuration or on another machine would not be comparable."""

    def __init__(self, path, config: dict, machine: dict | None = None):
        self.path = Path(path)
        self.trials: dict[str, list[dict]] = {}
        self.problems: dict[str, tuple[str, dict, dict]] = {}  # spec key -> (name, info, references summary)
        self.seconds: dict[str, float] = {}  # trial key -> seconds it took when measured
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
                if i == len(lines) - 1:  # the write a kill cut off: that trial is measured again
                    intact = False
                    continue
                raise JournalError(f"{self.path}, line {i + 1}: not JSON; the journal is damaged (remove it to "
                                   "start the run afresh)") from None
            kind = entry.get("kind")
            if kind == "config":
                headed = True
                for what in ("config", "machine"):
                    if entry.get(what) != head[what]:
                        old, new = entry.get(what) or {}, head[what]
                        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                        raise JournalError(f"{self.path} was written with another {what} (differs in "
                                           f"{', '.join(changed)}); use another output folder, or remove the "
                                           "journal to start afresh")
                continue
            entries.append(entry)
            if kind == "trial":
                self.trials[entry["key"]] = entry["rows"]
                self.seconds[entry["key"]] = entry.get("seconds", 0.0)
            elif kind == "problem":
                self.problems[entry["key"]] = (entry["name"], entry["info"], entry["references"])
        return entries, intact and headed

    def _append(self, entry: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, default=_plain) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finished(self, spec, trials) -> tuple[str, dict, dict] | None:
        """(name, info, references summary) of problem `spec` when it and all of its `trials` are journaled (the
        problem need not even be built), else None."""
        known = self.problems.get(problem_key(spec))
        return known if known and all(trial_key(t) in self.trials for t in trials) else None

    def take(self, key: str) -> list[dict] | None:
        """The rows of a trial already measured (marked as resumed), or None."""
        rows = self.trials.get(key)
        if rows is not None:
            self.resumed.add(key)
        return rows

    def resumed_seconds(self) -> float:
        """Seconds the resumed trials took in the sessions that measured them."""
        return sum(self.seconds.get(k, 0.0) for k in self.resumed)

    def add_problem(self, key: str, name: str, info: dict, references: dict) -> None:
        self.problems[key] = (name, info, references)
        self._append({"kind": "problem", "key": key, "name": name, "info": info, "references": references})

    def add_trial(self, key: str, rows: list[dict], seconds: float) -> None:
        self.trials[key], self.seconds[key] = rows, seconds
        self._append({"kind": "trial", "key": key, "seconds": seconds, "rows": rows})
