"""An on-disk cache of reference solutions: one `.npz` file per key, written atomically.

Where: `cache_dir` if given, else `$GNODE_CACHE_DIR`, else the user cache folder of the platform
(`$XDG_CACHE_HOME/gnode` or `~/.cache/gnode` on Linux, `~/Library/Caches/gnode` on macOS,
`%LOCALAPPDATA%\\gnode\\Cache` on Windows), with a `references` subfolder.

Keys are SHA-256 digests of everything that determines the cached arrays (see `digest`): the problem's
initial states, time span, saved times, inputs and weights, the reference method and its tolerances, and a
format version that is bumped whenever what is computed changes. A key therefore never serves stale data;
a damaged file is treated as missing and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CACHE_FORMAT = 2  # bump when the content of a cached reference changes meaning


def default_cache_dir() -> Path:
    """The folder references are cached in when none is given (module docstring)."""
    env = os.environ.get("GNODE_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "references"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "gnode" / "Cache"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "gnode"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gnode"
    return base / "references"


class Digest:
    """Incremental SHA-256 over labelled numbers, strings and arrays (dtype, shape and bytes all count)."""

    def __init__(self, kind: str):
        self._h = hashlib.sha256(f"gnode-bench/{CACHE_FORMAT}/{kind}".encode())

    def add(self, label: str, value) -> Digest:
        self._h.update(b"\x00" + label.encode() + b"\x01")
        if value is None:
            self._h.update(b"None")
        elif hasattr(value, "detach"):  # a torch tensor
            self.add_array(value.detach().cpu().numpy())
        elif isinstance(value, np.ndarray):
            self.add_array(value)
        elif isinstance(value, (list, tuple)):
            self._h.update(f"seq{len(value)}".encode())
            for i, v in enumerate(value):
                self.add(f"{label}[{i}]", v)
        elif isinstance(value, dict):
            self._h.update(json.dumps(value, sort_keys=True, default=repr).encode())
        elif isinstance(value, float):
            self._h.update(value.hex().encode())  # exact, unlike repr rounding
        else:
            self._h.update(repr(value).encode())
        return self

    def add_array(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        self._h.update(f"{a.dtype.str}{a.shape}".encode())
        self._h.update(a.tobytes())

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class ReferenceCache:
    """`get(key)` → dict of arrays or None; `put(key, arrays)` writes `<key>.npz` atomically.

    `enabled=False` turns the cache into a no-op (every reference is recomputed).
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, enabled: bool = True):
        self.folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if not self.enabled:
            return None
        p = self.path(key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            self.misses += 1  # damaged (e.g. a crash while another process wrote it): recompute
            return None
        self.hits += 1
        return out

    def put(self, key: str, arrays: dict[str, np.ndarray]) -> Path | None:
        if not self.enabled:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{key}.", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path(key)

    def __repr__(self) -> str:
        return f"ReferenceCache({str(self.folder)!r}, enabled={self.enabled})"
