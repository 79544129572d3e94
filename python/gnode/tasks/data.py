"""Sequence data shared by all tasks: sample times, inputs and targets, split into train/val/test."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SequenceSplit:
    """One split of a sequence task: every sequence is sampled at the same `times` (T,).

    inputs (B, T, d_in) and targets (B, T, d_out): batch-first; targets[b, k] is what the model's output
    should be at times[k], having seen the inputs on [times[0], times[k]).
    """

    times: torch.Tensor
    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self):
        if self.times.ndim != 1:
            raise ValueError(f"SequenceSplit: times must be (T,), got shape {tuple(self.times.shape)}")
        for name in ("inputs", "targets"):
            v = getattr(self, name)
            if v.ndim != 3 or v.shape[1] != self.times.numel():
                raise ValueError(f"SequenceSplit: {name} must be (batch, T={self.times.numel()}, dim), "
                                 f"got shape {tuple(v.shape)}")
        if self.inputs.shape[0] != self.targets.shape[0]:
            raise ValueError(f"SequenceSplit: inputs hold {self.inputs.shape[0]} sequences but targets "
                             f"hold {self.targets.shape[0]}")

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, *args, **kwargs) -> SequenceSplit:
        """A copy moved/cast like `Tensor.to` (e.g. `split.to(torch.float64)`)."""
        return SequenceSplit(self.times.to(*args, **kwargs), self.inputs.to(*args, **kwargs),
                             self.targets.to(*args, **kwargs))

    def take(self, index) -> SequenceSplit:
        """The sequences at `index` (an int tensor, a slice or a list)."""
        return SequenceSplit(self.times, self.inputs[index], self.targets[index])

    def target_variance(self) -> float:
        """Mean over output channels of the variance of the targets over sequences and time: the MSE of
        the best constant prediction per channel, the scale against which a model's MSE is judged."""
        y = self.targets.double().reshape(-1, self.targets.shape[-1])
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
