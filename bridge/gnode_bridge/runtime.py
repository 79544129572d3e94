"""One thread owns Julia; every call into it is marshalled to that thread.

Why: Julia's runtime is entered through juliacall from the thread that initialised it. PyTorch runs a
backward pass on threads of its own (one per device, and whichever thread called `.backward()`), and a
`torch.autograd.Function.backward` that called Julia directly would enter it from those threads. With
JuliaCall >= 0.9.22 that is allowed in principle, but Julia's GC and task scheduler can then hang
(PythonCall.jl issues #539, #540, #578), and the workaround the maintainers describe is exactly this:
one thread makes all Julia calls. So the thread that starts the backend (and so imports juliacall and
initialises Julia) is the only one that ever touches it, and the others wait for its answers.

Things that would enter Julia implicitly are kept on the owner thread too: formatting a `JuliaError`
(its `__str__` calls `Base.showerror`) happens there, and no Julia-owned object is handed back (the
contract has Julia write into caller-allocated buffers), so no other thread ever drops the last
reference to one.

A backend is any object with the contract's entry points as methods (`gnode_bridge.contract`): the
real one (`gnode_bridge.julia.JuliaBackend`) or the test scaffolding (`gnode_bridge.testing`).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any


class BridgeError(RuntimeError):
    """A call into the backend (Julia, or the stand-in) failed; the message was formatted on its thread."""


class BackendStartError(BridgeError):
    """The backend could not be started (Julia missing, environment not set up, contract mismatch)."""


_STOP = object()


class JuliaThread:
    """A daemon thread that creates a backend with `factory()` and then runs submitted calls on it.

    `call(fn, *args)` runs `fn(backend, *args)` on the owner thread and returns its result (or raises its
    exception); from the owner thread itself it runs inline, so nested calls cannot deadlock.
    `post(fn, *args)` queues a call without waiting (for finalizers, which may run on any thread).
    """

    def __init__(self, factory: Callable[[], Any], name: str = "gnode-julia"):
        self._factory = factory
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._backend: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> JuliaThread:
        """Start the thread and wait until the backend exists; raise `BackendStartError` if it failed."""
        with self._lock:
            if not self._thread.is_alive() and not self._started.is_set():
                self._thread.start()
        if not self._started.wait(timeout):
            raise BackendStartError(f"the backend did not start within {timeout} s")
        if self._start_error is not None:
            err = self._start_error
            raise BackendStartError(str(err)) from err
        return self

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the owner thread after the calls already queued (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            if threading.get_ident() != self._thread.ident:
                self._thread.join(timeout)

    @property
    def ident(self) -> int | None:
        """The owner thread's identifier (None before it started)."""
        return self._thread.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    @property
    def start_error(self) -> BaseException | None:
        return self._start_error

    # -- calls -----------------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if threading.get_ident() == self._thread.ident:
            return fn(self._backend, *args)
        if self._closed:
            raise BridgeError("the Julia bridge was closed; no more calls can be made in this process")
        self.start()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fut, fn, args))
        return fut.result()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._closed or not self._thread.is_alive():
            return  # nothing left to clean up in a stopped backend
        self._queue.put((None, fn, args))

    # -- the owner thread ------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._backend = self._factory()
        except BaseException as e:  # noqa: BLE001 - reported to every caller of start()
            self._start_error = _portable(e)
            self._started.set()
            return
        self._started.set()
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            fut, fn, args = item
            if fut is not None and not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn(self._backend, *args)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
                if fut is not None:
                    fut.set_exception(_portable(e))
                continue
            if fut is not None:
                fut.set_result(result)
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()


def _portable(e: BaseException) -> BaseException:
    """An exception safe to raise on another thread: Julia errors become `BridgeError` with their text
    formatted here (formatting a `juliacall.JuliaError` calls into Julia)."""
    if type(e).__module__.split(".")[0] == "juliacall":
        try:
            text = str(e)
        except Exception:  # noqa: BLE001
            text = repr(e)
        err = BridgeError(f"in Julia: {text}")
        err.__cause__ = None
        return err
    return e


# -- the process-wide runtime ----------------------------------------------------------------------
_RUNTIME: JuliaThread | None = None
_RUNTIME_LOCK = threading.Lock()


def get_runtime(factory: Callable[[], Any] | None = None) -> JuliaThread:
    """The process's Julia thread, created (not yet started) on first use with `factory` (default: the
    real Julia backend)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None or (not _RUNTIME.alive and _RUNTIME.ident is not None
                                and _RUNTIME.start_error is None):
            if factory is None:
                from gnode_bridge.julia import JuliaBackend
                factory = JuliaBackend
            _RUNTIME = JuliaThread(factory)
        return _RUNTIME


def set_runtime(runtime: JuliaThread | None) -> JuliaThread | None:
    """Install `runtime` as the process's (tests use it to put the stand-in in place); returns the old one."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        old, _RUNTIME = _RUNTIME, runtime
        return old


@atexit.register
def _close_at_exit() -> None:
    rt = _RUNTIME
    if rt is not None:
        rt.close(timeout=5.0)
