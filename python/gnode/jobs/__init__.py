"""Independent jobs (benchmark trials, sweep trials) run locally or as Ray tasks, and the journal that lets a
killed set of them resume where it stopped.

    executors   `LocalExecutor` (in this process) and `RayExecutor` (Ray tasks, local Ray or a cluster) behind
                one interface, `map_unordered(fn, items, retries=...)`, yielding an `Outcome` per item
    journal     `Journal`: every finished job appended to a JSON-lines file as it ends

Used by `gnode.bench` (work-precision trials) and `gnode.sweep` (training and expressivity sweeps); imports
nothing else of gnode.
"""

from gnode.jobs.executors import AbstractExecutor, LocalExecutor, Outcome, RayExecutor, ray_missing_message
from gnode.jobs.journal import Journal, JournalError

__all__ = [
    "AbstractExecutor",
    "Journal",
    "JournalError",
    "LocalExecutor",
    "Outcome",
    "RayExecutor",
    "ray_missing_message",
]
