"""Tasks: sequence data (times, inputs, targets, optional mask) split into train/val/test.

Synthetic tasks are seeded generators (flipflop.py); real-data tasks are read by the field's own libraries
and named in registry.py: UEA classification (uea.py, aeon), Walker2d kinematics (walker2d.py, MuJoCo +
Gymnasium), Speech Commands (speechcommands.py, soundfile + librosa), with the padding, masks and
standardisation they share in sequences.py.
"""

from gnode.tasks.data import SequenceSplit, TaskData
from gnode.tasks.flipflop import FlipFlopConfig, flipflop_targets, make_flipflop, render_inputs
from gnode.tasks.registry import get_task, make_task, task_names
from gnode.tasks.sequences import DataFormatError

__all__ = [
    "DataFormatError",
    "FlipFlopConfig",
    "SequenceSplit",
    "TaskData",
    "flipflop_targets",
    "get_task",
    "make_flipflop",
    "make_task",
    "render_inputs",
    "task_names",
]
