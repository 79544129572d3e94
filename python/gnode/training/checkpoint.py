"""Training checkpoints on disk: written atomically, read back with a clear error when missing or damaged.

A checkpoint is a dict of tensors and plain Python values saved with `torch.save` (a zip archive whose
members carry CRC32s, checked on reading so that silent corruption is caught). Writing goes to a
temporary file in the same folder, is flushed and fsync'ed, then `os.replace`d over the target, so a
crash or Ctrl-C at any moment leaves either the old checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

FORMAT = "gnode-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("format", "version", "model", "optimizer", "scheduler", "rng", "progress", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or not a gnode training checkpoint."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        raise CheckpointError(f"no checkpoint at {path}: the run has not saved one yet (it saves every few "
                              "epochs and on Ctrl-C); start a fresh run instead of resuming")
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
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            KeyError, IndexError, TypeError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted?): {first[:200]}. "
                              "Delete it to start over, or resume from a copy") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gnode training checkpoint (no '{FORMAT}' marker)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {state.get('version')!r}; this gnode reads "
                              f"version {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: it lacks {missing}")
    return state
