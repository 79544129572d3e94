"""Tasks: seeded generators of sequence data (times, inputs, targets) split into train/val/test."""

from gnode.tasks.data import SequenceSplit, TaskData
from gnode.tasks.flipflop import FlipFlopConfig, flipflop_targets, make_flipflop, render_inputs

__all__ = ["FlipFlopConfig", "SequenceSplit", "TaskData", "flipflop_targets", "make_flipflop", "render_inputs"]
