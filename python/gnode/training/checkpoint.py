"""Training checkpoints on disk: written atomically, read back with a clear error when missing or damaged.

A checkpoint is a dict of tensors and plain Python values saved with `torch.save` (a zip archive whose
members carry CRC32s, checked on reading so that silent corruption is caught). Writing goes to a
temporary file in the same folder, is flushed and fsync'ed, then `os.replace`d over the target, so a
crash or Ctrl-C at any moment leaves either the old checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import torch

from gnode.atomic import atomic_write_bytes

FORMAT = "gnode-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "model", "optimizer", "scheduler", "rng", "progress", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not a gnode training checkpoint."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Save a training state (see `REQUIRED_KEYS`) atomically to `path`."""
    missing = [k for k in REQUIRED_KEYS if k not in state and k not in ("format", "version")]
    if missing:
        raise ValueError(f"save_checkpoint: the state lacks {missing}")
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, *, map_location="cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`.

    Raises `CheckpointError` naming the file and what to do when it does not exist, cannot be parsed
    (truncated or corrupted), or is some other file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}: the run has not saved one yet (it saves every few "
            "epochs and on Ctrl-C); start a fresh run instead of resuming"
        )
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file; expected a checkpoint file written by gnode")
    try:
        # torch.load does not verify the zip members' CRC32s, so a flipped bit in tensor data would load
        # silently; zipfile's testzip checks every member first.
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
        if bad is not None:
            raise RuntimeError(f"member {bad} fails its CRC check")
        # weights_only: a checkpoint holds tensors and plain values only, so nothing in it can run code.
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        KeyError,
        IndexError,
        TypeError,
        UnicodeDecodeError,
    ) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupted?): {first[:200]}. "
            "Delete it to start over, or resume from a copy"
        ) from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gnode training checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state.get('version')!r}; this gnode reads version {VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: it lacks {missing}")
    return state


def load_trained_weights(model, folder: Path, checkpoint: str) -> tuple[dict, str]:
    """Load a run's trained weights into `model`: the best validation epoch's when the checkpoint holds them,
    else the last. Returns (the checkpoint's state, "best" or "last"); a model the checkpoint does not fit is a
    `CheckpointError` naming the run folder."""
    state = load_checkpoint(folder / checkpoint)
    weights = "best" if state.get("best_model") is not None else "last"
    try:
        model.load_state_dict(state["best_model"] if weights == "best" else state["model"])
    except RuntimeError as e:
        raise CheckpointError(
            f"the checkpoint in {folder} does not fit the model its config.json describes: {str(e).splitlines()[0]}"
        ) from e
    return state, weights
