"""Irregularly sampled and variable-length sequences: per-sequence sample times (batch, T).

A batch whose sequences are sampled at different times is given as times (B, T), one row per sequence,
each strictly increasing over its own samples. A sequence of L < T samples is padded at the end by
repeating its last time (and its last input): padding never adds a time point.

Continuous-time models solve such a batch as one ODE problem on the union of the rows' times (`merge_times`):
each row's inputs are put on that grid (`resample`) so that its interpolated input x(t) is exactly the one
its own samples give (zero-order hold: the last sample at or before t; linear: the line between its two
neighbouring samples; both are exact on a finer grid that contains the row's times, cubic Hermite is not),
and the solution is read back at each row's own times. All rows must start at the same time, the start of
the batch's time span.

Discrete models step once per sample instead, and are told the spacing by an extra input channel
(`time_gaps`): the gap t_{k+1} - t_k over which x_k acts before the next output (as in ODE-RNN and GRU-D,
Rubanova et al. 2019, Che et al. 2018).
"""

from __future__ import annotations

import torch

EXACT_INTERPOLATIONS = ("zoh", "linear")


def check_sequence_times(times: torch.Tensor, batch: int, steps: int, *, where: str) -> None:
    """Raise a clear error unless `times` (batch, steps) is strictly increasing per row up to trailing repeats
    (padding) and every row starts at the same time."""
    if times.ndim != 2 or times.shape != (batch, steps):
        raise ValueError(
            f"{where}: per-sequence times must be (batch, T) = ({batch}, {steps}), got shape {tuple(times.shape)}"
        )
    if not bool(torch.isfinite(times).all()):
        row, col = (~torch.isfinite(times)).nonzero()[0].tolist()
        raise ValueError(f"{where}: times[{row}, {col}] = {times[row, col].item()} is not finite")
    if steps < 2:
        raise ValueError(f"{where}: need at least 2 sample times, got {steps}")
    d = torch.diff(times, dim=1)
    if bool((d < 0).any()):
        row, col = (d < 0).nonzero()[0].tolist()
        raise ValueError(
            f"{where}: times of sequence {row} decrease at index {col + 1} ({times[row, col].item():.6g} "
            f"-> {times[row, col + 1].item():.6g}); each row must increase"
        )
    rising = d > 0
    # once a row stops rising it is padding: a rise after a repeat is a repeated time inside the sequence
    inner = rising & ~torch.cummin(rising.to(torch.int8), dim=1).values.bool()
    if bool(inner.any()):
        row, col = inner.nonzero()[0].tolist()
        raise ValueError(
            f"{where}: sequence {row} repeats a time before index {col + 1}; times must be strictly "
            "increasing, with repeats only as padding at the end"
        )
    if not bool((times[:, 0] == times[0, 0]).all()):
        row = int((times[:, 0] != times[0, 0]).nonzero()[0])
        raise ValueError(
            f"{where}: sequence {row} starts at t = {times[row, 0].item():.6g} but sequence 0 at "
            f"t = {times[0, 0].item():.6g}; all sequences of a batch must start at the same time "
            "(shift each to start at 0)"
        )


def merge_times(times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(grid (G,), index (B, T)): the sorted union of all rows' times, and where each row's times sit on it
    (grid[index[b, k]] == times[b, k])."""
    grid = torch.unique(times.detach().reshape(-1), sorted=True)
    index = torch.searchsorted(grid, times.detach().contiguous())
    return grid, index


def resample(times: torch.Tensor, values: torch.Tensor, grid: torch.Tensor, interpolation: str) -> torch.Tensor:
    """Each row's samples `values` (B, T, d) at its `times` (B, T), interpolated onto `grid` (G,) -> (B, G, d).

    "zoh": the row's last sample at or before each grid time (its first one before it starts);
    "linear": linear between the row's neighbouring samples, held constant past its last one.
    On a grid containing the row's times, interpolating the result again gives the same x(t) as the row's own
    samples (differentiable in `values`).
    """
    if interpolation not in EXACT_INTERPOLATIONS:
        raise ValueError(
            f"per-sequence times need interpolation 'zoh' or 'linear' (exact on the merged time grid), "
            f"got {interpolation!r}"
        )
    batch, steps, dim = values.shape
    g = grid.expand(batch, -1).contiguous()
    k = (torch.searchsorted(times.contiguous(), g, right=True) - 1).clamp(0, steps - 1)  # (B, G)
    x0 = values.gather(1, k[..., None].expand(-1, -1, dim))
    if interpolation == "zoh":
        return x0
    k1 = (k + 1).clamp(max=steps - 1)
    t0, t1 = times.gather(1, k), times.gather(1, k1)
    x1 = values.gather(1, k1[..., None].expand(-1, -1, dim))
    span = t1 - t0
    s = torch.where(span > 0, (g - t0) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(span))
    return x0 + s.clamp(0, 1)[..., None] * (x1 - x0)


def time_gaps(times: torch.Tensor) -> torch.Tensor:
    """(B or 1, T, 1): t_{k+1} - t_k at sample k (0 at the last sample and over padding), from times (T,) or (B, T)."""
    t = times if times.ndim == 2 else times[None]
    return torch.diff(t, dim=1, append=t[:, -1:])[..., None]
