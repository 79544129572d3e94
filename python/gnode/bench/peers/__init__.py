"""Peer libraries as optional benchmark adapters: torchdiffeq, torchode (PyTorch) and diffrax (JAX).

Each adapter reports `available()` (installed here?) and is skipped with that reason when it is not; none is
imported until used.
"""

from gnode.bench.peers.diffrax_peer import DiffraxSolver
from gnode.bench.peers.torch_peers import TorchdiffeqSolver, TorchodeSolver

__all__ = ["DiffraxSolver", "TorchdiffeqSolver", "TorchodeSolver"]
