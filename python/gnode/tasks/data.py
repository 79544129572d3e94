"""Sequence data shared by all tasks: sample times, inputs and targets, split into train/val/test."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SequenceSplit:
    """One split of a sequence task.

    inputs (B, T, d_in) and targets (B, T, d_out): batch-first; targets[b, k] is what the model's output
    should be at times[k], having seen the inputs on [times[0], times[k]).
    times: (T,) when every sequence is sampled at the same times, or (B, T) for irregularly sampled or
    variable-length sequences (each row its own times; a row of L < T samples is padded by repeating its
    last time and input, see `gnode.tasks.sequences`).
    mask: None (the loss reads every entry) or (B, T) bool, the entries the loss reads: the observed
    samples of each sequence, or only its readout time for sequence classification.
    """

    times: torch.Tensor
    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor | None = None

    def __post_init__(self):
        batch = self.inputs.shape[0] if self.inputs.ndim == 3 else None
        if self.times.ndim not in (1, 2) or (self.times.ndim == 2 and self.times.shape[0] != batch):
            raise ValueError(
                f"SequenceSplit: times must be (T,) or (batch, T), got shape {tuple(self.times.shape)} "
                f"for inputs of shape {tuple(self.inputs.shape)}"
            )
        if self.mask is not None and (self.mask.dtype != torch.bool or self.mask.shape != self.inputs.shape[:2]):
            raise ValueError(
                f"SequenceSplit: mask must be a bool tensor (batch, T) = {tuple(self.inputs.shape[:2])}, "
                f"got {self.mask.dtype} of shape {tuple(self.mask.shape)}"
            )
        for name in ("inputs", "targets"):
            v = getattr(self, name)
            if v.ndim != 3 or v.shape[1] != self.times.shape[-1]:
                raise ValueError(
                    f"SequenceSplit: {name} must be (batch, T={self.times.shape[-1]}, dim), got shape {tuple(v.shape)}"
                )
        if self.inputs.shape[0] != self.targets.shape[0]:
            raise ValueError(
                f"SequenceSplit: inputs hold {self.inputs.shape[0]} sequences but targets hold {self.targets.shape[0]}"
            )

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, *args, **kwargs) -> SequenceSplit:
        """A copy moved/cast like `Tensor.to` (e.g. `split.to(torch.float64)`)."""
        inputs = self.inputs.to(*args, **kwargs)
        mask = None if self.mask is None else self.mask.to(inputs.device)  # stays bool
        return SequenceSplit(self.times.to(*args, **kwargs), inputs, self.targets.to(*args, **kwargs), mask)

    def take(self, index) -> SequenceSplit:
        """The sequences at `index` (an int tensor, a slice or a list)."""
        times = self.times[index] if self.times.ndim == 2 else self.times
        mask = None if self.mask is None else self.mask[index]
        return SequenceSplit(times, self.inputs[index], self.targets[index], mask)

    def observed(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, targets) at the entries the loss reads: (M, d) each under a mask, else both unchanged."""
        if self.mask is None:
            return outputs, self.targets
        return outputs[self.mask], self.targets[self.mask]

    def target_variance(self) -> float:
        """Mean over output channels of the variance of the targets over sequences and time (the entries
        under `mask`): the MSE of the best constant prediction per channel, the scale against which a
        model's MSE is judged."""
        y = self.targets if self.mask is None else self.targets[self.mask]
        y = y.double().reshape(-1, self.targets.shape[-1])
        return float(y.var(dim=0, unbiased=False).mean())


@dataclass(frozen=True)
class TaskData:
    """The train, validation and test splits of a task, and a description of how they were made."""

    train: SequenceSplit
    val: SequenceSplit
    test: SequenceSplit
    meta: dict = field(default_factory=dict)

    @property
    def d_in(self) -> int:
        return self.train.inputs.shape[-1]

    @property
    def d_out(self) -> int:
        return self.train.targets.shape[-1]

    def split(self, name: str) -> SequenceSplit:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use 'train', 'val' or 'test'")
        return getattr(self, name)
