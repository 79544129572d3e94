"""Start Julia before torch is imported: `import gnode_bridge.early` (or `pytest -p gnode_bridge.early`).

Importing juliacall after torch can crash some systems (PythonCall.jl FAQ, "Heap corruption when using
PyTorch"); importing this module first starts the Julia thread, and so juliacall, while torch is not
yet loaded. Where Julia is not usable it does nothing, and a failed start is only warned about: the
engine reports the reason again when it is asked for.
"""

import warnings

from gnode_bridge.status import julia_status

if julia_status().usable:
    from gnode_bridge.runtime import BackendStartError, get_runtime

    try:
        get_runtime().start()
    except BackendStartError as e:
        warnings.warn(f"gnode_bridge.early: Julia did not start: {e}", RuntimeWarning, stacklevel=1)
