"""A run's journal: every finished trial appended to a JSON-lines file as it ends, so that a run that is
killed (or runs out of its time) keeps what it measured and resumes where it stopped.

    run_set(trials, config, journal="out/journal.jsonl")   # trials already in the journal are not run again

The first line holds the configuration; resuming with a different one is an error (its points would not be
comparable). Each problem's reference summary and information are journaled too, so a problem whose trials
are all done is not built again. The benchmark front ends journal into their output folder and remove the
journal once the results are written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def problem_key(spec) -> str:
    """What identifies a problem spec across runs: its name and options."""
    return f"{spec.name}({','.join(f'{k}={v!r}' for k, v in spec.options)})"


def trial_key(trial) -> str:
    """What identifies a trial across runs (the solver by its label: method objects carry no stable repr)."""
    from gnode.bench.workprecision import _label
    reltols = ",".join(f"{r:.3g}" for r in sorted(trial.reltols))
    return (f"{problem_key(trial.problem)}|{_label(trial.solver)}|"
            f"{'gradient' if trial.gradient else 'forward'}|{reltols}")


def _plain(x):
    if hasattr(x, "item"):  # NumPy and torch scalars
        return x.item()
    return repr(x)


class Journal:
    """The trials and problems of a run already measured, read from `path` (created if missing)."""

    def __init__(self, path, config: dict):
        self.path = Path(path)
        self.trials: dict[str, list[dict]] = {}
        self.problems: dict[str, tuple[str, dict, dict]] = {}  # spec key -> (name, info, references summary)
        config = json.loads(json.dumps(config, default=_plain))
        if self.path.exists() and self.path.stat().st_size:
            self._read(config)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"kind": "config", "config": config})

    def _read(self, config: dict) -> None:
        lines = self.path.read_text().splitlines()
        for i, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # the write that was cut off by the kill: measured again
                    continue
                raise ValueError(f"{self.path}, line {i + 1}: not JSON; the journal is damaged (remove it to start "
                                 "the run afresh)") from None
            kind = entry.get("kind")
            if kind == "config" and entry["config"] != config:
                changed = sorted(k for k in set(config) | set(entry["config"])
                                 if config.get(k) != entry["config"].get(k))
                raise ValueError(f"{self.path} was written with another configuration (differs in "
                                 f"{', '.join(changed)}); use another output folder, or remove the journal to start "
                                 "afresh")
            if kind == "trial":
                self.trials[entry["key"]] = entry["rows"]
            elif kind == "problem":
                self.problems[entry["key"]] = (entry["name"], entry["info"], entry["references"])
        if lines and not lines[-1].endswith("}"):
            # drop the cut-off line so the next append starts on a line of its own
            self.path.write_text("".join(line + "\n" for line in lines[:-1]))

    def _append(self, entry: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, default=_plain) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def add_problem(self, key: str, name: str, info: dict, references: dict) -> None:
        self.problems[key] = (name, info, references)
        self._append({"kind": "problem", "key": key, "name": name, "info": info, "references": references})

    def add_trial(self, key: str, rows: list[dict]) -> None:
        self.trials[key] = rows
        self._append({"kind": "trial", "key": key, "rows": rows})
