"""UEA multivariate time-series classification archive (Bagnall et al. 2018, arXiv:1811.00075), read from
its `.ts` files by `aeon` (`aeon.datasets.load_classification` / `load_from_ts_file`), never parsed by hand.

- JapaneseVowels (12 LPC cepstrum channels, 9 speakers, lengths 7-29; Kudo et al. 1999) and BasicMotions
  (6 accelerometer/gyroscope channels at 10 Hz, 4 activities, length 100) ship inside aeon's wheel and load
  offline.
- Any other UEA problem, such as CharacterTrajectories (3 channels: pen x, y velocity and tip force at 200 Hz,
  20 characters, lengths 60-182; Williams et al. 2006), the paper's dataset (Kim, Can & Krishnamurthy 2023,
  sec. 5.4), loads from a folder given as `data` holding NAME_TRAIN.ts and NAME_TEST.ts (or NAME/NAME_*.ts).

The archive's test split is kept; `val_fraction` of the training split (per class) is held out for
validation. Series are sampled every `dt` time units from t = 0 (the files carry no time stamps) and
standardised per channel with statistics of the remaining training series only. Sequences are classified
at their readout time, one step after the last sample (`gnode.tasks.sequences`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from gnode.tasks.data import TaskData
from gnode.tasks.sequences import (
    DataFormatError,
    Labels,
    Standardization,
    check_finite,
    classification_split,
    stratified_holdout,
)

SHIPPED = ("JapaneseVowels", "BasicMotions")  # in aeon's wheel (aeon/datasets/data)
DOWNLOAD_HINT = (
    'on a machine with internet, `python -c "from aeon.datasets import load_classification; '
    "load_classification('{name}', extract_path='DIR')\"` downloads it into DIR/{name}/; "
    "it is also in the archive's Multivariate2018_ts.zip"
)


@dataclass(frozen=True)
class UEAConfig:
    """Which UEA problem and how it becomes train/val/test splits.

    name:         the problem's name as in the archive (e.g. "JapaneseVowels", "CharacterTrajectories").
    data:         folder holding NAME_TRAIN.ts and NAME_TEST.ts (or NAME/NAME_*.ts); None: aeon's shipped copy
                  (JapaneseVowels and BasicMotions only).
    val_fraction: fraction of each class of the training split held out for validation.
    dt:           time between samples, in the model's time unit (tau = 1).
    every:        keep every this many samples (1: all). Solving costs grow with the number of samples, and
                  BasicMotions' 100 samples at 10 Hz carry its four activities at a quarter of the rate too.
    max_train:    use at most this many training series (a stratified subset; None: all), for quick runs.
    seed:         seeds the validation hold-out and the subset.
    """

    name: str = "JapaneseVowels"
    data: str | None = None
    val_fraction: float = 0.2
    dt: float = 1.0
    every: int = 1
    max_train: int | None = None
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"UEAConfig: name must be a UEA problem name, got {self.name!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 < self.val_fraction < 1):
            raise ValueError(f"UEAConfig: val_fraction must lie in (0, 1), got {self.val_fraction!r}")
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"UEAConfig: dt must be a positive number, got {self.dt!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"UEAConfig: every must be an integer >= 1, got {self.every!r}")
        if self.max_train is not None and not (isinstance(self.max_train, int) and self.max_train >= 2):
            raise ValueError(f"UEAConfig: max_train must be an integer >= 2 or None, got {self.max_train!r}")


def find_ts_files(name: str, folder: str | Path) -> dict[str, Path]:
    """{"train": path, "test": path} of NAME_TRAIN.ts / NAME_TEST.ts in `folder` or `folder/NAME`; a clear error
    listing what the folder holds when they are not there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(
            f"--data {folder}: no such folder; it should hold {name}_TRAIN.ts and {name}_TEST.ts "
            f"({DOWNLOAD_HINT.format(name=name)})"
        )
    for where in (folder, folder / name):
        paths = {s: where / f"{name}_{s.upper()}.ts" for s in ("train", "test")}
        if all(p.is_file() for p in paths.values()):
            return paths
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(found[:20]) + (f", ... ({len(found)} entries)" if len(found) > 20 else "")
    raise DataFormatError(
        f"--data {folder}: expected {name}_TRAIN.ts and {name}_TEST.ts there or in {folder / name}, "
        f"found {shown or 'nothing'}. {DOWNLOAD_HINT.format(name=name)}"
    )


def read_ts(path: Path) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """(series (channels, L) each, labels, metadata) of one `.ts` file, through aeon, with the checks aeon leaves
    out: a @data section with series, class labels declared in the header, one channel count throughout."""
    from aeon.datasets import load_from_ts_file

    try:
        X, y, meta = load_from_ts_file(str(path), return_meta_data=True)
    except (OSError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataFormatError(f"{path}: not a readable .ts classification file ({first[:200]})") from e
    return _checked(list(X), np.asarray(y), meta, str(path))


def _checked(X: list, y: np.ndarray, meta: dict, where: str) -> tuple[list[np.ndarray], np.ndarray, dict]:
    if len(X) == 0:
        raise DataFormatError(f"{where}: holds no series; expected a .ts file with @-headers and a @data section")
    if not meta.get("classlabel"):
        raise DataFormatError(f"{where}: declares no class labels (@classLabel true ...): not a classification file")
    declared = [str(c) for c in meta.get("class_values", [])]
    undeclared = sorted({str(v) for v in y} - set(declared))
    if declared and undeclared:
        raise DataFormatError(
            f"{where}: label(s) {undeclared} are not among the classes the header declares ({declared})"
        )
    series = [np.asarray(x, dtype=np.float64) for x in X]
    channels = {s.shape[0] for s in series}
    if len(channels) != 1:
        i = next(i for i, s in enumerate(series) if s.shape[0] != series[0].shape[0])
        raise DataFormatError(
            f"{where}: series 0 has {series[0].shape[0]} channels but series {i} has "
            f"{series[i].shape[0]}; every series must have the same channels"
        )
    return series, np.array([str(v) for v in y]), meta


def load_uea(config: UEAConfig) -> dict:
    """{"train": (series (L, d) each, labels), "test": ..., "meta", "sources"} of a UEA problem."""
    out = {}
    if config.data is None and config.name not in SHIPPED:
        raise DataFormatError(
            f"{config.name} is not shipped with aeon (only {', '.join(SHIPPED)} are): give the folder "
            f"holding {config.name}_TRAIN.ts and {config.name}_TEST.ts (--data DIR); "
            f"{DOWNLOAD_HINT.format(name=config.name)}"
        )
    if config.data is None:
        from aeon.datasets import load_classification

        for split in ("train", "test"):
            X, y, meta = load_classification(config.name, split=split, return_metadata=True)
            series, labels, meta = _checked(list(X), np.asarray(y), meta, f"aeon's {config.name}_{split.upper()}.ts")
            out[split] = ([s.T for s in series], labels)
        out["sources"] = {
            s: f"aeon {_aeon_version()} (shipped {config.name}_{s.upper()}.ts)" for s in ("train", "test")
        }
    else:
        paths = find_ts_files(config.name, config.data)
        for split, path in paths.items():
            series, labels, meta = read_ts(path)
            out[split] = ([s.T for s in series], labels)
        out["sources"] = {s: str(p) for s, p in paths.items()}
    out["meta"] = meta
    d_train, d_test = out["train"][0][0].shape[1], out["test"][0][0].shape[1]
    if d_train != d_test:
        raise DataFormatError(
            f"{config.name}: the training series have {d_train} channels but the test series {d_test}"
        )
    for split in ("train", "test"):
        check_finite(out[split][0], where=f"{config.name} {split} split ({out['sources'][split]})")
    return out


def _aeon_version() -> str:
    import aeon

    return aeon.__version__


def make_uea(config: UEAConfig | None = None, *, dtype: torch.dtype | None = None) -> TaskData:
    """Train/val/test splits of a UEA problem for sequence classification (module docstring).

    meta: task, kind "classification", classes, lengths, the standardisation statistics, the files read.
    """
    config = config or UEAConfig()
    raw = load_uea(config)
    train_x, train_names = raw["train"]
    test_x, test_names = raw["test"]
    train_x, test_x = [s[:: config.every] for s in train_x], [s[:: config.every] for s in test_x]
    labels = Labels(tuple(sorted(set(train_names.tolist()), key=_natural)))
    train_y = labels.encode(train_names, where=f"{config.name} training split")
    test_y = labels.encode(test_names, where=f"{config.name} test split ({raw['sources']['test']})")
    if config.max_train is not None and config.max_train < len(train_x):
        keep, _ = stratified_holdout(train_y, 1 - config.max_train / len(train_x), config.seed + 1)
        train_x, train_y = [train_x[i] for i in keep], train_y[keep]
    fit_idx, val_idx = stratified_holdout(train_y, config.val_fraction, config.seed)
    stats = Standardization.fit([train_x[i] for i in fit_idx])

    def split(series, y):
        return classification_split([stats.apply(s) for s in series], y, dt=config.dt, dtype=dtype)

    lengths = [len(s) for s in train_x] + [len(s) for s in test_x]
    meta = {
        "task": config.name.lower(),
        "kind": "classification",
        "config": asdict(config),
        "classes": list(labels.classes),
        "channels": int(train_x[0].shape[1]),
        "lengths": [min(lengths), max(lengths)],
        "standardization": stats.to_dict(),
        "sources": raw["sources"],
        "sizes": {"train": len(fit_idx), "val": len(val_idx), "test": len(test_x)},
    }
    return TaskData(
        split([train_x[i] for i in fit_idx], train_y[fit_idx]),
        split([train_x[i] for i in val_idx], train_y[val_idx]),
        split(test_x, test_y),
        meta=meta,
    )


def _natural(label: str):
    """Sort "2" before "10" when labels are numbers, else alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)
