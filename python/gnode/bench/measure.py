"""Measuring a run: wall time (minimum over repeats, after a warm-up) and peak memory, with no global state
left behind.

Time. `min_time(fn, repeats)` calls `fn` once to warm up (caches, lazy initialisation, JIT), then `repeats`
times, returning the minimum: noise on a shared machine only ever adds time, so the minimum is the best
estimate of the cost itself (the convention of `timeit` and of DiffEqDevTools' `WorkPrecision`). The garbage
collector is off during each call, as in `timeit`. `torch_threads(k)` sets torch's intra-op threads for a
block and restores them afterwards.

Memory (one extra, untimed run; the probes slow the code down):
  torch on CPU   the torch profiler's allocator events (`profile_memory=True`): the peak of the running sum
                 of allocated minus freed bytes over the run — memory the run allocated on top of what
                 existed before it (tensors only; Python objects are not counted);
  torch on CUDA  `torch.cuda.max_memory_allocated` minus the allocation before the run;
  NumPy/SciPy    `tracemalloc` (NumPy reports its buffers to it);
  JAX            the compiled function's `memory_analysis()` (temporaries + outputs), from XLA.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
import os
import time
from collections.abc import Callable


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block with `threads` torch intra-op threads (None: leave as is), restoring the setting after."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _gc_off():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def time_once(fn: Callable[[], object]) -> float:
    with _gc_off():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def min_time(
    fn: Callable[[], object], repeats: int = 3, warmup: bool = True, budget: float | None = None
) -> tuple[float, list[float]]:
    """(minimum, all times) of `repeats` calls of `fn` after one warm-up call. With `budget` (seconds), stop
    repeating once the calls so far have used it (at least one timed call is always made)."""
    if warmup:
        fn()
    times = []
    for _ in range(max(1, repeats)):
        times.append(time_once(fn))
        if budget is not None and sum(times) > budget:
            break
    return min(times), times


def torch_peak_memory(fn: Callable[[], object], device=None) -> tuple[int | None, str]:
    """(peak bytes allocated by `fn` on top of what existed before, how it was measured)."""
    import torch

    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base), "torch.cuda.max_memory_allocated"
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    if not events:
        return 0, "torch profiler (no allocations)"
    peak = max(0, max(itertools.accumulate(nb for _, nb in events)))
    return int(peak), "torch profiler allocator events"


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 for the block (the profiler's C++ side prints start/stop lines there)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tracemalloc_peak(fn: Callable[[], object]) -> tuple[int, str]:
    """(peak bytes traced while `fn` ran, "tracemalloc"); restores tracemalloc's previous state."""
    import tracemalloc

    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was:
            tracemalloc.stop()
    return int(peak - base), "tracemalloc"


def geometric_mean(values) -> float:
    vals = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")
