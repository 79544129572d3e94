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

Two things about the thread follow from Julia running on it:
- Its stack. Julia sizes its own use of the stack from RLIMIT_STACK (8 MiB by default), but a thread
  Python starts gets the platform's thread default unless `threading.stack_size` says otherwise: 512 KiB
  on macOS, where Julia's code generation and deep recursion overflow it. The thread is started with
  `julia_stack_size()`.
- Shutdown order. juliacall registers an `atexit` hook (`jl_atexit_hook`) when it is imported, and
  `atexit` runs hooks last-registered-first. The hook that closes and joins this thread is registered
  once the backend exists (so after juliacall's), and so it runs before Julia is shut down, not after
  with the thread still parked inside Julia.
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

#: The stack of the Julia-owning thread when RLIMIT_STACK does not say (Julia's and Linux's usual 8 MiB).
DEFAULT_STACK = 8 * 1024 * 1024


def julia_stack_size() -> int:
    """Bytes of stack for the thread that runs Julia: the soft RLIMIT_STACK Julia assumes, at least
    `DEFAULT_STACK`, and `DEFAULT_STACK` where the limit is unlimited or unknown (Windows)."""
    try:
        import resource
    except ImportError:  # Windows: no RLIMIT_STACK
        return DEFAULT_STACK
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return DEFAULT_STACK
    return max(int(soft), DEFAULT_STACK)


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
        """Start the thread (with `julia_stack_size()` of stack) and wait until the backend exists; raise
        `BackendStartError` if it failed."""
        with self._lock:
            if not self._thread.is_alive() and not self._started.is_set():
                previous = threading.stack_size(julia_stack_size())  # read by Thread.start, for this thread only
                try:
                    self._thread.start()
                finally:
                    threading.stack_size(previous)
        if not self._started.wait(timeout):
            raise BackendStartError(f"the backend did not start within {timeout} s")
        if self._start_error is not None:
            err = self._start_error
            raise BackendStartError(str(err)) from err
        return self

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the owner thread after the calls already queued (idempotent)."""
        atexit.unregister(self._close_at_exit)
        self._stop(timeout)

    def _close_at_exit(self) -> None:
        self._stop(5.0)  # (not close(): no unregistering from inside a running atexit hook)

    def _stop(self, timeout: float | None) -> None:
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
        atexit.register(self._close_at_exit)  # after the backend's own hooks (juliacall's), so it runs first
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
        if _RUNTIME is None or (not _RUNTIME.alive and _RUNTIME.ident is not None and _RUNTIME.start_error is None):
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
