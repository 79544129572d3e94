"""The real-data tasks by name: what each one is, its configuration class and the function that builds its splits.

    japanesevowels, basicmotions   UEA classification shipped with aeon (offline)
    charactertrajectories          UEA classification from a folder (--data DIR)
    speechcommands                 Speech Commands classification from MFCCs (--data DIR)
    walker2d                       next-observation regression on generated MuJoCo rollouts

`make_task(name, options)` builds a task from its name and the options of its configuration class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from gnode.tasks.data import TaskData
from gnode.tasks.speechcommands import SpeechCommandsConfig, make_speechcommands
from gnode.tasks.uea import UEAConfig, make_uea
from gnode.tasks.walker2d import Walker2dConfig, make_walker2d


@dataclass(frozen=True)
class TaskEntry:
    """kind: "classification" or "regression"; config: its configuration dataclass; fixed: options the name
    fixes (the UEA problem); needs_data: whether it must be given a data folder; about: one line for --help."""

    name: str
    kind: str
    config: type
    build: Callable[..., TaskData]
    about: str
    fixed: dict
    needs_data: bool

    def make_config(self, options: dict):
        """The configuration from `options` (unknown keys are an error naming the known ones)."""
        known = {f.name for f in fields(self.config)} - set(self.fixed)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"task {self.name}: unknown option(s) {unknown}; known: {sorted(known)}")
        return self.config(**{**options, **self.fixed})


def _uea(config, dtype, progress):
    return make_uea(config, dtype=dtype)


def _walker(config, dtype, progress):
    return make_walker2d(config, dtype=dtype, progress=progress)


def _speech(config, dtype, progress):
    return make_speechcommands(config, dtype=dtype, progress=progress)


def _entries() -> dict[str, TaskEntry]:
    return {
        e.name: e
        for e in (
            TaskEntry(
                "japanesevowels",
                "classification",
                UEAConfig,
                _uea,
                "UEA JapaneseVowels: 9 speakers from 12 LPC channels, lengths 7-29 (ships with aeon)",
                {"name": "JapaneseVowels"},
                False,
            ),
            TaskEntry(
                "basicmotions",
                "classification",
                UEAConfig,
                _uea,
                "UEA BasicMotions: 4 activities from 6 motion-sensor channels, length 100 (ships with aeon)",
                {"name": "BasicMotions"},
                False,
            ),
            TaskEntry(
                "charactertrajectories",
                "classification",
                UEAConfig,
                _uea,
                "UEA CharacterTrajectories: 20 characters from pen velocity and force, lengths 60-182 (--data DIR)",
                {"name": "CharacterTrajectories"},
                True,
            ),
            TaskEntry(
                "speechcommands",
                "classification",
                SpeechCommandsConfig,
                _speech,
                "Speech Commands: 10 spoken words from 20 MFCCs over 161 frames (--data DIR)",
                {},
                True,
            ),
            TaskEntry(
                "walker2d",
                "regression",
                Walker2dConfig,
                _walker,
                "Walker2d-v5 kinematics: predict the next observation from the irregularly sampled past",
                {},
                False,
            ),
        )
    }


def task_names() -> tuple[str, ...]:
    return tuple(_entries())


def get_task(name: str) -> TaskEntry:
    entries = _entries()
    if name not in entries:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(entries)}")
    return entries[name]


def make_task(
    name: str, options: dict | None = None, *, dtype: torch.dtype | None = None, progress: bool = True
) -> TaskData:
    """The splits of task `name` built from `options` (fields of its configuration class)."""
    entry = get_task(name)
    return entry.build(entry.make_config(dict(options or {})), dtype, progress)
