"""Is the Julia engine usable here, and if not, why not; and `setup()`, which makes it usable.

`julia_status()` never downloads anything and never starts Julia in this process: it checks that
juliacall is installed and (through juliapkg, in dry-run mode) that the Julia environment has been set
up; `probe=True` additionally starts Julia in a subprocess, with a timeout, and loads the engine there.
`setup()` is what `gnode julia setup` runs: the one place that lets juliapkg download Julia and the
engine's packages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass

INSTALL_HINT = (
    "install the Julia engine with: pip install 'gnode[julia]' && gnode julia setup "
    "(setup downloads Julia if it is not on PATH, then the engine's Julia packages)"
)

# Extra Julia packages for CUDA tensors (name -> (uuid, compat)).
CUDA_PACKAGES = {
    "CUDA": ("052768ef-5323-5732-b1bb-66c8b64840ba", "5"),
    "DLPack": ("53c2dc0f-f7d5-43fd-8906-6c0220547083", "0.2, 0.3"),
}


@dataclass(frozen=True)
class JuliaStatus:
    """usable: whether engine="julia" can run here; reason: why not (or what was found)."""

    usable: bool
    reason: str

    def __bool__(self) -> bool:
        return self.usable

    def __str__(self) -> str:
        return f"Julia engine {'usable' if self.usable else 'NOT usable'}: {self.reason}"


_PROBED: JuliaStatus | None = None


def julia_status(probe: bool = False, timeout: float = 600.0) -> JuliaStatus:
    """Whether the Julia engine can run here, and why not (see the module docstring)."""
    global _PROBED
    from gnode_bridge.runtime import _RUNTIME

    rt = _RUNTIME
    if rt is not None and rt.start_error is not None:
        return JuliaStatus(False, f"Julia failed to start in this process: {rt.start_error}")
    if rt is not None and rt.alive and rt.ident is not None:
        return JuliaStatus(True, "Julia is running in this process")
    if importlib.util.find_spec("juliacall") is None:
        return JuliaStatus(False, f"Julia not found: the Python package juliacall is not installed; {INSTALL_HINT}")
    try:
        os.environ.setdefault("PYTHON_JULIAPKG_OFFLINE", "yes")
        import juliapkg

        ready = juliapkg.resolve(dry_run=True)
    except Exception as e:  # noqa: BLE001 - any failure here means "not set up"
        return JuliaStatus(
            False, f"Julia not found: juliapkg could not check the Julia environment ({e}); {INSTALL_HINT}"
        )
    if not ready:
        return JuliaStatus(False, f"Julia not found: the Julia environment is not set up yet; {INSTALL_HINT}")
    if not probe:
        return JuliaStatus(True, "juliacall is installed and its Julia environment is set up")
    if _PROBED is None:
        _PROBED = _probe_subprocess(timeout)
    return _PROBED


def _probe_subprocess(timeout: float) -> JuliaStatus:
    """Start Julia in a fresh interpreter (juliacall before torch), load the engine, report."""
    env = dict(os.environ, PYTHON_JULIAPKG_OFFLINE=os.environ.get("PYTHON_JULIAPKG_OFFLINE", "yes"))
    code = "import json, gnode_bridge.julia as j; b = j.JuliaBackend(); print(json.dumps({'api': b.api_version()}))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return JuliaStatus(False, f"Julia not found: starting Julia did not finish within {timeout:.0f} s")
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return JuliaStatus(
            False, "Julia not found: the engine did not load (" + " | ".join(tail) + f"); {INSTALL_HINT}"
        )
    try:
        api = json.loads(out.stdout.strip().splitlines()[-1])["api"]
    except (ValueError, KeyError, IndexError):
        return JuliaStatus(False, f"Julia not found: unexpected probe output {out.stdout[-200:]!r}")
    return JuliaStatus(True, f"Julia started and loaded GnodeEngine (bridge API {api})")


def setup(*, cuda: bool = False, precompile: bool = True, log=print) -> JuliaStatus:
    """Install what the Julia engine needs (downloads allowed here, and only here).

    Runs juliapkg's resolve (which installs a Julia if none is found, then the packages listed in
    `gnode_bridge/juliapkg.json`), adds CUDA and DLPack with `cuda=True`, and with `precompile`
    loads the engine once in a subprocess so that the first solve does not pay for compilation.
    """
    if importlib.util.find_spec("juliacall") is None:
        raise RuntimeError(f"juliacall is not installed; {INSTALL_HINT}")
    import juliapkg

    juliapkg.offline(False)
    if cuda:
        for name, (uuid, version) in CUDA_PACKAGES.items():
            juliapkg.add(name, uuid, version=version)
    log("resolving the Julia environment (this may download Julia and packages) ...")
    juliapkg.resolve()
    log(f"Julia: {juliapkg.executable()}; environment: {juliapkg.project()}")
    if not precompile:
        return julia_status()
    log("loading the engine once to precompile it ...")
    global _PROBED
    _PROBED = None
    status = julia_status(probe=True, timeout=3600.0)
    log(status.reason)
    return status
