"""Variable-length, irregularly sampled sequences as padded `SequenceSplit`s, with the pieces every real-data
loader shares: class labels, stratified splits, standardisation from the training split, NaN checks.

Layout of a padded split (see `gnode.models.irregular`): times (B, T) per sequence, a sequence of L samples
padded to T by repeating its last time and sample, and a mask of the entries the loss reads.

- Classification (`classification_split`): a sequence of L samples at t_0 .. t_{L-1} gets one more time
  point, its readout time t_L = t_{L-1} + dt, where the model's output is read (mask) and compared with the
  class. Under the models' alignment (the output at t_k has seen the samples before t_k; zero-order hold
  acts on [t_k, t_{k+1})), this lets the last sample act for one sampling step like every other one; without
  it the output at t_{L-1} would never see the last sample.
- Regression (`regression_split`): targets at every sample time; the loss reads samples 1 .. L-1 (the output
  at t_0 has seen nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gnode.tasks.data import SequenceSplit


class DataFormatError(ValueError):
    """A data file or folder is missing, malformed, or holds values a task cannot train on."""


def check_finite(series: Sequence[np.ndarray], *, where: str, channel_names: Sequence[str] | None = None) -> None:
    """Raise `DataFormatError` at the first NaN/inf in `series` (each (L, d)), naming the sequence, time index
    and channel, and how many there are in all."""
    bad_total, first = 0, None
    for i, s in enumerate(series):
        bad = ~np.isfinite(s)
        if bad.any():
            bad_total += int(bad.sum())
            if first is None:
                k, c = (int(v) for v in np.argwhere(bad)[0])
                first = (i, k, c, s[k, c])
    if first is not None:
        i, k, c, v = first
        name = f" ({channel_names[c]})" if channel_names is not None and c < len(channel_names) else ""
        raise DataFormatError(
            f"{where}: {v} in sequence {i}, time index {k}, channel {c}{name}; "
            f"{bad_total} non-finite value(s) in all. Impute or drop them before training"
        )


@dataclass(frozen=True)
class Labels:
    """Class names in a fixed order; `encode` maps names to indices and refuses names it does not know."""

    classes: tuple[str, ...]

    def encode(self, names: Sequence, *, where: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        unseen = sorted({str(n) for n in names} - set(index))
        if unseen:
            raise DataFormatError(
                f"{where}: class label(s) {unseen} do not occur in the training split "
                f"(classes {list(self.classes)}); a model cannot learn a class it never sees"
            )
        return np.array([index[str(n)] for n in names], dtype=np.int64)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep, held_out) indices: `fraction` of each class (rounded, at least one when the class has two or
    more members) held out, drawn with `seed`; both sorted."""
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must lie in [0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = round(fraction * len(members))
        if fraction > 0 and len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        held.extend(rng.permutation(members)[:k].tolist())
    held = np.array(sorted(held), dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), held)
    return keep, held


@dataclass(frozen=True)
class Standardization:
    """Per-channel mean and standard deviation, computed on the training split's observed samples only and
    saved with a run (channels with zero spread keep std 1 so they pass through unscaled)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    samples: int

    @classmethod
    def fit(cls, series: Sequence[np.ndarray]) -> Standardization:
        flat = np.concatenate([np.asarray(s, dtype=np.float64) for s in series], axis=0)
        std = flat.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(flat.mean(axis=0).tolist()), tuple(std.tolist()), int(flat.shape[0]))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "samples": self.samples}


def _pad(rows: Sequence[np.ndarray], length: int) -> np.ndarray:
    """Stack (L_i, ...) arrays into (B, length, ...) by repeating each one's last row."""
    out = []
    for r in rows:
        r = np.asarray(r)
        out.append(np.concatenate([r, np.repeat(r[-1:], length - len(r), axis=0)]) if len(r) < length else r)
    return np.stack(out)


def classification_split(
    series: Sequence[np.ndarray], labels: np.ndarray, *, dt: float = 1.0, dtype: torch.dtype | None = None
) -> SequenceSplit:
    """Sequences (L_i, d) sampled every `dt` from 0, with class indices `labels`, as a padded split read out one
    step `dt` after each sequence's last sample (module docstring). targets (B, T, 1) hold the class index as a
    float; mask marks each readout time."""
    dtype = dtype or torch.get_default_dtype()
    rows_t = [np.arange(len(s) + 1, dtype=np.float64) * dt for s in series]
    rows_x = [np.concatenate([s, s[-1:]]) for s in series]
    steps = max(len(t) for t in rows_t)
    mask = np.zeros((len(series), steps), dtype=bool)
    mask[np.arange(len(series)), [len(t) - 1 for t in rows_t]] = True
    targets = np.broadcast_to(np.asarray(labels, dtype=np.float64)[:, None, None], (len(series), steps, 1))
    return SequenceSplit(
        torch.as_tensor(_pad(rows_t, steps), dtype=dtype),
        torch.as_tensor(_pad(rows_x, steps), dtype=dtype),
        torch.as_tensor(targets.copy(), dtype=dtype),
        torch.as_tensor(mask),
    )


def regression_split(
    times: Sequence[np.ndarray],
    inputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    dtype: torch.dtype | None = None,
) -> SequenceSplit:
    """Sequences observed at `times` (L_i,) with `inputs` (L_i, d_in) and `targets` (L_i, d_out), padded; the
    loss reads samples 1 .. L_i - 1 of each (module docstring)."""
    dtype = dtype or torch.get_default_dtype()
    steps = max(len(t) for t in times)
    mask = np.zeros((len(times), steps), dtype=bool)
    for i, t in enumerate(times):
        mask[i, 1 : len(t)] = True
    return SequenceSplit(
        torch.as_tensor(_pad(times, steps), dtype=dtype),
        torch.as_tensor(_pad(inputs, steps), dtype=dtype),
        torch.as_tensor(_pad(targets, steps), dtype=dtype),
        torch.as_tensor(mask),
    )
