"""`solve(..., compile=True)`: each attempted step traced into one compiled graph.

The loop's attempt (`loop.Attempt`: stages, error norm, controller, accept/reject, all per trajectory through
`torch.where`) is a pure function of tensors, so `torch.compile(fullgraph=True)` can trace it whole, and inductor
fuses the stage combinations, the error norm and the controller into a few kernels around f's matrix products.
Eager PyTorch pays its per-operation cost on every one of those small operations; that cost, not arithmetic, is
what bounds the eager engine on gnODE batches.

Graphs are cached per (method, vector field, kind of inputs, controller, dtype, device, state size, grad mode),
each kind under its own copy of the entry function's code object, so that dynamo's per-function recompile limit
never mixes one kind with another. Tolerances, inputs, parameters and the batch are inputs of the graph, not
constants: the next training batch or the next point of a sweep reuses the graphs without tracing again
(`cache_info()` counts). A kind compiles two graphs: one specialised to the first batch size, and one with a
symbolic batch size (dynamo's automatic dynamic shapes) for every other size, compaction's included.

What compiling costs: 50-60 s for the first graph of a gnODE forward step on a 16-core machine, minutes on a
loaded 2-core one, and 1-2 s for later graphs once inductor's on-disk cache is warm; more with autograd. It pays
off for repeated solves (training, sweeps, benchmarks), not for one. Methods whose step has a data-dependent loop
(Newton iterations, AutoSwitch's row selection) and fields that cannot be traced run eagerly, with one warning
saying why.
"""

from __future__ import annotations

import types
import warnings
from collections import OrderedDict

import torch
import torch._dynamo.exc
import torch._inductor.exc

from gnode.engines.torch.loop import Attempt
from gnode.engines.torch.stepper import AbstractTraceable

_MAX_ENTRIES = 64
_CACHE: OrderedDict = OrderedDict()
_STATS = {"graphs": 0, "hits": 0, "fallbacks": 0}


class CompileWarning(UserWarning):
    """A solve asked for compile=True ran eagerly instead."""


def cache_info() -> dict:
    """{"graphs": step graphs compiled, "hits": attempts on a batch shape compiled before, "fallbacks": solve
    kinds that could not be compiled (run eagerly), "entries": cache entries}."""
    return {**_STATS, "entries": len(_CACHE)}


def clear_cache() -> None:
    _CACHE.clear()


def _entry(attempt, carry, rows):
    return attempt(carry, rows)


class CompiledAttempts:
    """The compiled attempt of one solve's kind: one entry function (its own code object), compiled with
    automatic dynamic shapes — the first graph is specialised to the full batch; when compaction first shrinks
    the working batch, dynamo compiles a second graph with a symbolic batch size, which serves every later size."""

    def __init__(self, stepper, backend, label: str):
        self.stepper, self.label = stepper, label
        self.eager = False
        self.seen: set = set()
        code = _entry.__code__.replace(co_name=f"gnode_attempt_{len(_CACHE)}")
        fn = types.FunctionType(code, _entry.__globals__, code.co_name)
        self.graph = torch.compile(
            fn, fullgraph=True, dynamic=None, backend=_counting(backend), options={"guard_filter_fn": _keep_guards}
        )

    def bind(self, attempt: Attempt):
        """The attempt of this solve (its stops and direction), compiled: (carry, rows) → attempt's result."""
        # this solve's own right-hand side (its inputs are this solve's), evaluated as traced
        traced = Attempt(self.stepper, attempt.rhs.as_traced(), attempt.cfg, attempt.stops, attempt.d)

        def run(carry, rows):
            if self.eager:
                return attempt(carry, rows)
            signature = (carry.t.shape[0], rows is None)
            if signature in self.seen:
                _STATS["hits"] += 1
            self.seen.add(signature)
            try:
                return self.graph(traced, carry, rows)
            except Exception as e:
                if not _is_compile_failure(e):
                    raise
                self.eager = True
                _STATS["fallbacks"] += 1
                reason = str(e).strip().splitlines()[0][:240] if str(e).strip() else type(e).__name__
                warnings.warn(
                    f"compile=True: the step of {self.label} could not be compiled as one graph "
                    f"({type(e).__name__}: {reason}); solving eagerly",
                    CompileWarning,
                    stacklevel=4,
                )
                return attempt(carry, rows)

        return run


def _keep_guards(entries) -> list[bool]:
    """Which of dynamo's guards to evaluate on every call. The cache key (`compiled_attempts`) already pins the
    method, controller, tolerances' kind, dtype, device and direction, so the guards on gnode's own objects (the
    attempt, its stepper, config and controller: constants baked into the graph) are dropped: they were a quarter
    of the per-attempt overhead (143 against 185 µs per attempt, minimum of 6 solves of a scalar decay, 2-core
    machine). Guards on tensors, on the inputs and on the user's vector field (its attributes and submodules)
    stay: a change there recompiles."""
    return [
        e.guard_type == "TENSOR_MATCH"
        or ".rhs.f" in e.name
        or ".rhs.control" in e.name
        or not (e.name.startswith("attempt") or e.name.startswith("G['__import_gnode"))
        for e in entries
    ]


def _counting(backend):
    """`backend`, counting the graphs it compiles."""
    real = torch._dynamo.lookup_backend(backend) if isinstance(backend, str) else backend

    def compile_graph(gm, example_inputs):
        _STATS["graphs"] += 1
        return real(gm, example_inputs)

    return compile_graph


_COMPILE_FAILURES = tuple(
    c
    for c in (torch._dynamo.exc.TorchDynamoException, getattr(torch._inductor.exc, "InductorError", None))
    if c is not None
)


def _is_compile_failure(e: Exception) -> bool:
    return isinstance(e, _COMPILE_FAILURES)


def compiled_attempts(alg, stepper, traced_stepper, rhs, y0: torch.Tensor, cfg, backend) -> CompiledAttempts | None:
    """The compiled attempts for a solve of this kind (cached), or None (with a warning) where the method's step
    cannot be traced. `traced_stepper`: a function giving the method's stepper for tracing."""
    label = f"{alg.name}()"
    if not isinstance(stepper, AbstractTraceable):
        warnings.warn(
            f"compile=True: {label} steps with data-dependent control flow (Newton iterations or "
            "per-row method switching), which cannot be traced into one graph; solving eagerly",
            CompileWarning,
            stacklevel=5,
        )
        return None
    control = rhs.control
    # what the graph bakes in (the tolerances are inputs: one graph serves a work-precision sweep)
    inputs = (
        None
        if control is None
        else (control.interpolation, control.values.shape[0] == 1, tuple(control.values.shape[1:]))
    )
    key = (
        stepper,
        type(rhs),
        getattr(rhs, "f", None),
        inputs,
        rhs.backward,
        cfg.adaptive,
        cfg.controller,
        cfg.dtmin,
        cfg.dtmax,
        y0.dtype,
        y0.device,
        y0.shape[1],
        torch.is_grad_enabled(),
        backend,
    )
    entry = _CACHE.get(key)
    if entry is None:
        entry = CompiledAttempts(traced_stepper(), backend, label)
        _CACHE[key] = entry
        while len(_CACHE) > _MAX_ENTRIES:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return entry
