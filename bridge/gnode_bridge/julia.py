"""The real backend: Julia through juliacall, created on (and only ever used from) the owner thread.

Nothing here imports juliacall at module import time: it is imported by `JuliaBackend()` on the thread
that `gnode_bridge.runtime.JuliaThread` owns. `juliacall` starts Julia when it is imported and, through
juliapkg, would download Julia and install packages if they are missing; the backend sets
`PYTHON_JULIAPKG_OFFLINE=yes` (unless the user set it) so that a solve never downloads anything. The
environment is installed once, explicitly, by `gnode julia setup` (`gnode_bridge.setup.setup`).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

from gnode_bridge import contract

TORCH_FIRST_HINT = (
    "torch was imported before juliacall. On some systems this order crashes the process (heap "
    "corruption, PythonCall.jl FAQ 'Heap corruption when using PyTorch'; pytorch/pytorch#78829). If it "
    "does, start Julia first: `import gnode_bridge; gnode_bridge.start()` before `import torch` (or "
    "before `import gnode`), or run pytest with `-p gnode_bridge.early`."
)


def julia_source_dir() -> Path:
    """The folder holding `GnodeEngine.jl`: $GNODE_JULIA_SOURCE, else the repository's julia/ folder."""
    env = os.environ.get("GNODE_JULIA_SOURCE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "julia"


def configure_environment() -> None:
    """Environment defaults that must be in place before juliacall is imported (idempotent)."""
    os.environ.setdefault("PYTHON_JULIAPKG_OFFLINE", "yes")
    threads = os.environ.get("PYTHON_JULIACALL_THREADS", os.environ.get("JULIA_NUM_THREADS", "1"))
    if threads not in ("1", ""):
        # JuliaCall's advice for a multi-threaded Julia: let Julia handle the signals its GC safepoints use.
        os.environ.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")


class JuliaBackend:
    """The contract's entry points (`gnode_bridge.contract`) as methods, calling the Julia module.

    Arguments arrive as the bridge prepared them: numpy views in Julia's (reversed) layout for CPU
    arrays, which PythonCall wraps as `PyArray` without copying, and torch CUDA tensors, which are
    wrapped as `CuArray`s through DLPack here (also without copying).
    """

    def __init__(self):
        configure_environment()
        source = julia_source_dir() / contract.MODULE_FILE
        if not source.is_file():
            raise FileNotFoundError(
                f"the Julia engine's source {source} is missing; set GNODE_JULIA_SOURCE "
                "to the repository's julia/ folder"
            )
        if "torch" in sys.modules and "juliacall" not in sys.modules:
            warnings.warn(TORCH_FIRST_HINT, RuntimeWarning, stacklevel=2)
        try:
            from juliacall import Main as jl  # starts Julia on this thread
        except ImportError as e:
            raise ImportError(
                "juliacall is not installed: pip install 'gnode[julia]' and then run `gnode julia setup`"
            ) from e
        self.jl = jl
        try:
            jl.seval(f'Base.include(Main, raw"{source}")')
        except Exception as e:  # noqa: BLE001 - reworded with what to do
            raise RuntimeError(
                f"loading {source} failed ({_first_line(e)}); the Julia packages may be "
                "missing: run `gnode julia setup`"
            ) from None
        mod = jl.seval(contract.MODULE)
        version = int(mod.api_version())
        if version != contract.API_VERSION:
            raise RuntimeError(
                f"{source} implements bridge API {version} but this gnode_bridge expects "
                f"{contract.API_VERSION}; reinstall gnode so that both come from one version"
            )
        self._fns = {name: jl.seval(f"{contract.MODULE}.{name}") for name in contract.ENTRY_POINTS}
        self._dlpack = None
        self._cuda_sync = None

    # -- conversion -----------------------------------------------------------------------------
    def _arg(self, x):
        """CUDA tensors become CuArrays (DLPack, zero-copy, dims reversed); everything else passes as is."""
        if getattr(x, "is_cuda", False):
            if self._dlpack is None:
                self.jl.seval("import CUDA, DLPack, PythonCall")
                self._dlpack = self.jl.seval("x -> DLPack.from_dlpack(x)")
            return self._dlpack(x)
        return x

    def _call(self, name, *args):
        """Call entry point `name`. With CUDA tensors among the arguments the two libraries' streams are ordered
        around the call: DLPack hands the memory over without stream semantics, so torch's pending writes to the
        inputs must land before Julia reads them, and Julia's writes to the outputs before torch reads them."""
        devices = {a.device for a in args if getattr(a, "is_cuda", False)}
        for device in devices:
            _torch_stream_synchronize(device)
        result = self._fns[name](*(self._arg(a) for a in args))
        if devices:
            self._julia_synchronize()
        return result

    def _julia_synchronize(self) -> None:
        """Wait for the work Julia queued on its (task-local) CUDA stream: `CUDA.synchronize()`."""
        if self._cuda_sync is None:
            self._cuda_sync = self.jl.seval("CUDA.synchronize")
        self._cuda_sync()

    # -- entry points ---------------------------------------------------------------------------
    def api_version(self) -> int:
        return int(self._call("api_version"))

    def solve_forward(self, *args) -> int:
        return int(self._call("solve_forward!", *args))

    def solve_backward(self, *args) -> None:
        self._call("solve_backward!", *args)

    def interpolate(self, *args) -> None:
        self._call("interpolate!", *args)

    def release(self, handle: int) -> None:
        self._call("release", handle)

    def close(self) -> None:
        """Nothing to do: juliacall shuts Julia down at interpreter exit."""


def _torch_stream_synchronize(device) -> None:
    """Wait for torch's current CUDA stream on `device`. (torch is imported here, not at the top: this module
    must not load torch before juliacall, see `TORCH_FIRST_HINT`; by the time a CUDA tensor is passed it is.)"""
    import torch

    torch.cuda.current_stream(device).synchronize()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
