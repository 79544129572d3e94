"""gnode_bridge: the crossing from gnode (PyTorch) into its Julia engine (julia/GnodeEngine.jl).

Light to import: neither torch nor juliacall is imported here, so that `import gnode_bridge;
gnode_bridge.start()` can start Julia before torch is loaded (see `early.py` for why that matters).

    contract   the entry points of the Julia module, their signatures and array layouts
    runtime    the one thread that owns Julia; every call is marshalled to it
    julia      the real backend (juliacall), created on that thread
    convert    torch <-> Julia-layout views without copies (numpy on CPU, DLPack on CUDA)
    solve      the engine's solve and the torch.autograd.Function around the Julia solve
    status     julia_status() (is it usable here, why not) and setup() (`gnode julia setup`)
    testing    TEST SCAFFOLDING: a pure-Python stand-in for the Julia module
"""

from gnode_bridge.status import JuliaStatus, julia_status, setup


def start() -> None:
    """Start Julia now, on the bridge's thread (call before `import torch` to avoid the import-order hazard)."""
    from gnode_bridge.runtime import get_runtime

    get_runtime().start()


__all__ = ["JuliaStatus", "julia_status", "setup", "start"]
