"""A sweep's specification: which trial function, what every trial shares, and the grid of what varies.

    name: flipflop-solvers                       # optional (default: the file's stem)
    trial: flipflop                              # a name in TRIAL_FUNCTIONS, or "package.module:function"
    base:                                        # the arguments every trial shares (nested dicts)
      train: {epochs: 10}
    points:                                      # optional: explicit variants, each a set of dotted keys
      - {model.kind: gnode}
      - {model.kind: mgru, model.latent: 16}
    grid:                                        # crossed with every point: the Cartesian product
      solver.alg: ["RK4()", "Tsit5()"]
      train.seed: [0, 1, 2]
    metrics: [normalized_test_mse, train_time_s] # optional: the result fields that get a figure
    plot: {x: model.kind, hue: solver.alg}       # optional: the figures' axes (defaults below)
    retries: 1                                   # a failed trial runs again this many times, then is recorded
    cpus_per_trial: 1                            # CPUs (and torch threads) per trial

YAML or JSON (by the file's suffix). A dotted key sets a value inside the nested arguments ("model.kind" sets
`model["kind"]`), so a grid can reach any option of the trial function. Trials are the points (default: one
empty point) times the grid, in order: the last grid key varies fastest. Parameters whose name contains
"seed" are replicates: the figures average over them.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

TRIAL_FUNCTIONS = {  # short names for the trial functions that ship with gnode
    "flipflop": "gnode.sweep.trials:train_flipflop",
    "expressivity": "gnode.expressivity.sweep:expressivity_trial",
}
KEYS = ("name", "trial", "base", "points", "grid", "metrics", "plot", "retries", "cpus_per_trial")


class SweepSpecError(ValueError):
    """A sweep specification that cannot be run as written."""


@dataclass(frozen=True)
class SweepTrial:
    """One trial: its position in the sweep, the dotted parameters that define it (`point`), and the full
    nested arguments of the trial function (`params`)."""

    index: int
    point: dict
    params: dict

    @property
    def key(self) -> str:
        """What identifies the trial across sessions (its journal key): a hash of its full arguments."""
        text = json.dumps(self.params, sort_keys=True, default=repr)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @property
    def slug(self) -> str:
        """Its folder's name: the values that define it, for people, then the key (stable when the grid grows)."""
        words = "-".join(re.sub(r"[^A-Za-z0-9.]+", "", str(v))[:16] for v in self.point.values())
        return f"{words[:60]}-{self.key}" if words else self.key


@dataclass(frozen=True)
class SweepSpec:
    """See the module docstring. Build one in Python, or read one with `SweepSpec.load(path)`."""

    trial: str
    name: str = "sweep"
    base: dict = field(default_factory=dict)
    points: tuple[dict, ...] = ({},)
    grid: dict = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None
    plot: dict = field(default_factory=dict)
    retries: int = 1
    cpus_per_trial: float = 1

    def __post_init__(self):
        object.__setattr__(self, "points", tuple(self.points) or ({},))
        if self.metrics is not None:
            object.__setattr__(self, "metrics", tuple(self.metrics))
        if not isinstance(self.trial, str) or not self.trial:
            raise SweepSpecError(
                f"trial must name a trial function ({', '.join(TRIAL_FUNCTIONS)}, or "
                f"'package.module:function'), got {self.trial!r}"
            )
        if self.trial not in TRIAL_FUNCTIONS and ":" not in self.trial:
            raise SweepSpecError(
                f"unknown trial {self.trial!r}: use one of {', '.join(TRIAL_FUNCTIONS)}, or a "
                "function's path 'package.module:function'"
            )
        if not isinstance(self.base, dict):
            raise SweepSpecError(f"base must be a mapping of the trial function's arguments, got {self.base!r}")
        for i, p in enumerate(self.points):
            if not isinstance(p, dict):
                raise SweepSpecError(f"points[{i}] must be a mapping of dotted keys to values, got {p!r}")
        if not isinstance(self.grid, dict):
            raise SweepSpecError(f"grid must be a mapping of dotted keys to lists of values, got {self.grid!r}")
        for k, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise SweepSpecError(f"grid[{k!r}] must be a non-empty list of values, got {values!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise SweepSpecError(f"retries must be an integer >= 0, got {self.retries!r}")
        if isinstance(self.cpus_per_trial, bool) or not (
            isinstance(self.cpus_per_trial, (int, float)) and self.cpus_per_trial > 0
        ):
            raise SweepSpecError(f"cpus_per_trial must be a number > 0, got {self.cpus_per_trial!r}")
        if not isinstance(self.plot, dict) or set(self.plot) - {"x", "hue"}:
            raise SweepSpecError(f"plot takes the keys x and hue (dotted parameter names), got {self.plot!r}")
        self.expand()  # every point must apply to the base

    @property
    def function_path(self) -> str:
        """ "package.module:function" of the trial function."""
        return TRIAL_FUNCTIONS.get(self.trial, self.trial)

    @classmethod
    def from_dict(cls, d: dict, *, name: str = "sweep") -> SweepSpec:
        if not isinstance(d, dict):
            raise SweepSpecError(f"a sweep specification is a mapping with the keys {', '.join(KEYS)}")
        unknown = sorted(set(d) - set(KEYS))
        if unknown:
            raise SweepSpecError(f"unknown keys {unknown} in the sweep specification; known: {', '.join(KEYS)}")
        if "trial" not in d:
            raise SweepSpecError(
                f"the sweep specification needs 'trial': one of {', '.join(TRIAL_FUNCTIONS)}, "
                "or a function's path 'package.module:function'"
            )
        kwargs = {k: v for k, v in d.items() if v is not None}
        kwargs.setdefault("name", name)
        return cls(**kwargs)

    @classmethod
    def load(cls, path) -> SweepSpec:
        """Read a YAML (.yaml/.yml) or JSON (.json) specification."""
        path = Path(path)
        if not path.is_file():
            raise SweepSpecError(f"no sweep specification at {path}")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise SweepSpecError(
                    f"reading {path} needs PyYAML: pip install pyyaml (or write the specification as JSON)"
                ) from None
            try:
                d = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise SweepSpecError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
        elif path.suffix == ".json":
            try:
                d = json.loads(text)
            except json.JSONDecodeError as e:
                raise SweepSpecError(f"{path} is not valid JSON: {e}") from None
        else:
            raise SweepSpecError(f"{path}: a sweep specification is a .yaml, .yml or .json file")
        return cls.from_dict(d, name=path.stem)

    def expand(self) -> list[SweepTrial]:
        """Every trial, in order."""
        keys = list(self.grid)
        out = []
        for point in self.points:
            for values in itertools.product(*(self.grid[k] for k in keys)):
                dotted = {**point, **dict(zip(keys, values))}
                params = copy.deepcopy(self.base)
                for k, v in dotted.items():
                    _set_dotted(params, k, copy.deepcopy(v))
                out.append(SweepTrial(len(out), dotted, params))
        return out

    def varying(self) -> list[str]:
        """The dotted parameters that take more than one value across the trials, in spec order."""
        trials = self.expand()
        names = list(dict.fromkeys(k for t in trials for k in t.point))
        return [k for k in names if len({json.dumps(t.point.get(k), sort_keys=True) for t in trials}) > 1]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "trial": self.trial,
            "base": self.base,
            "points": list(self.points),
            "grid": self.grid,
            "metrics": list(self.metrics) if self.metrics is not None else None,
            "plot": self.plot,
            "retries": self.retries,
            "cpus_per_trial": self.cpus_per_trial,
        }


def _set_dotted(params: dict, key: str, value) -> None:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise SweepSpecError(f"parameter names are dotted keys such as 'model.kind', got {key!r}")
    *path, last = key.split(".")
    node = params
    for i, part in enumerate(path):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise SweepSpecError(f"cannot set {key!r}: {'.'.join(path[: i + 1])!r} is {nxt!r}, not a mapping")
        node = nxt
    node[last] = value
