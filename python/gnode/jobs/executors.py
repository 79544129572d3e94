"""Where independent jobs run: in this process, or as Ray tasks — behind one interface.

    with RayExecutor(num_cpus=2) as ex:                  # or LocalExecutor(), or RayExecutor(address="auto")
        for outcome in ex.map_unordered(fn, items, retries=1):
            outcome.index, outcome.value, outcome.error   # in the order the jobs finish

`fn` is called as `fn(item)`; it and the items must be picklable for Ray (module-level functions, frozen
dataclasses, plain data; a bound method pickles its object). A job that raises is run again up to `retries`
times; if it still fails, its `Outcome` carries the error as text (`"TypeName: message"`) and the traceback
instead of a value, and the other jobs go on. On the Ray path the retries are Ray's own (`max_retries` with
`retry_exceptions`), which also cover a worker process that died (killed, out of memory).

`RayExecutor` starts a local Ray for the duration of its `with` block (`ray.init(num_cpus=...)`, its workers
given this process's module path), or joins the cluster at `address` (`ray start --head` on one machine,
`ray start --address HEAD:6379` on the others; every node needs gnode, and the modules the jobs' functions live
in, installed), and leaves an already initialised Ray as it found it. Each job asks for
`cpus_per_task` CPUs, so Ray runs as many at once as the CPUs allow. Ray is optional: without it, entering a
`RayExecutor` raises an ImportError that says how to install it.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass


def ray_missing_message(what: str = "Ray") -> str:
    return f"{what} needs Ray: pip install 'gnode[ray]' (or pip install ray)"


@dataclass(frozen=True)
class Outcome:
    """What became of job `index` (its position in the items): its `value`, or the `error` of its last attempt
    (`"TypeName: message"`) and its `traceback`; `seconds` the job took (its last attempt, measured where it
    ran); `attempts` how often it ran (None where Ray retried it out of sight: a success on Ray)."""

    index: int
    value: object = None
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    attempts: int | None = 1

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:500] if text else ''}".rstrip(": ")


def timed_call(fn: Callable, item):
    """(fn(item), seconds it took): what a job returns, so its time is measured where it ran."""
    start = time.perf_counter()
    value = fn(item)
    return value, time.perf_counter() - start


class AbstractExecutor(ABC):
    """Runs jobs; a context manager that holds whatever the jobs need (a Ray session) while open.

    in_process: True when the jobs run in this process, so that callbacks and caches on `fn`'s object reach
    the caller (a progress bar per point, references built once and shared by the jobs of a problem)."""

    in_process: bool = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    @abstractmethod
    def map_unordered(self, fn: Callable, items: Sequence, *, retries: int = 0) -> Iterator[Outcome]:
        """One `Outcome` per item, in the order the jobs finish."""

    def describe(self) -> str:
        return type(self).__name__


class LocalExecutor(AbstractExecutor):
    """The jobs one after the other in this process, in order (Ctrl-C stops at once: nothing is retried)."""

    in_process = True

    def map_unordered(self, fn, items, *, retries=0):
        _check_retries(retries)
        for i, item in enumerate(items):
            for attempt in range(1, retries + 2):
                start = time.perf_counter()
                try:
                    value = fn(item)
                except Exception as e:  # noqa: BLE001 - a failed job is an outcome, the others go on
                    if attempt <= retries:
                        continue
                    yield Outcome(
                        i,
                        error=_describe(e),
                        traceback=traceback.format_exc(limit=8),
                        seconds=time.perf_counter() - start,
                        attempts=attempt,
                    )
                else:
                    yield Outcome(i, value, seconds=time.perf_counter() - start, attempts=attempt)
                break

    def describe(self) -> str:
        return "in this process"


class RayExecutor(AbstractExecutor):
    """The jobs as Ray tasks of `cpus_per_task` CPUs each, collected as they finish.

    address:    None starts a local Ray for the `with` block; "auto" or "HOST:PORT" (or "ray://HOST:10001")
                joins that cluster. An already initialised Ray is used as it is and left running.
    num_cpus:   CPUs a local Ray may use (default: all of this machine's); ignored when joining a cluster.
    init_kwargs: more keywords for `ray.init` (e.g. `runtime_env`, `object_store_memory`).
    """

    in_process = False

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cpus_per_task: float = 1,
        init_kwargs: dict | None = None,
    ):
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
            raise ValueError(f"RayExecutor: num_cpus must be an integer >= 1, got {num_cpus!r}")
        if not (isinstance(cpus_per_task, (int, float)) and cpus_per_task > 0):
            raise ValueError(f"RayExecutor: cpus_per_task must be a number > 0, got {cpus_per_task!r}")
        self.address = address or None
        self.num_cpus = num_cpus
        self.cpus_per_task = cpus_per_task
        self.init_kwargs = dict(init_kwargs or {})
        self._started = False

    def __enter__(self):
        try:
            import ray
        except ImportError as e:
            raise ImportError(ray_missing_message("running jobs on Ray")) from e
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            if self.address is None:
                if self.num_cpus is not None:
                    kwargs["num_cpus"] = self.num_cpus
                # workers on this machine import what this process can (a study's own trial module included)
                kwargs.setdefault(
                    "runtime_env", {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
                )
            ray.init(address=self.address, **kwargs)
            self._started = True
        return self

    def __exit__(self, *exc):
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        return False

    def map_unordered(self, fn, items, *, retries=0):
        import ray

        _check_retries(retries)
        if not ray.is_initialized():
            raise RuntimeError("RayExecutor.map_unordered runs inside `with RayExecutor(...) as ex:`")
        task = ray.remote(timed_call).options(
            num_cpus=self.cpus_per_task, max_retries=retries, retry_exceptions=retries > 0
        )
        fn_ref = ray.put(fn)  # shipped once, not with every task
        pending = {task.remote(fn_ref, item): i for i, item in enumerate(items)}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        value, seconds = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        cause = getattr(e, "cause", None)
                        yield Outcome(
                            i,
                            error=_describe(cause if isinstance(cause, BaseException) else e),
                            traceback=str(e)[-4000:],
                            attempts=retries + 1,
                        )
                    else:
                        yield Outcome(i, value, seconds=seconds, attempts=None)
        finally:  # the caller stopped early (Ctrl-C, an error): the jobs still queued or running are dropped
            for ref in pending:
                ray.cancel(ref, force=True)

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
        return f"{where} ({self.cpus_per_task:g} CPU per task)"


def _check_retries(retries) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
