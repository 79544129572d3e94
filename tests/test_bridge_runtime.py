"""The Julia-owning thread: every call runs on it, whoever makes it, and errors come back intact."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from gnode_bridge.runtime import (
    BackendStartError,
    BridgeError,
    JuliaThread,
    _portable,
    julia_stack_size,
)


class Recorder:
    def __init__(self):
        self.threads = []

    def where(self, tag):
        self.threads.append((tag, threading.get_ident()))
        return tag


def test_calls_from_many_threads_all_run_on_the_owner_thread():
    backend = Recorder()
    rt = JuliaThread(lambda: backend).start()
    try:
        results = {}

        def worker(i):
            results[i] = rt.call(lambda be, tag: be.where(tag), i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i: i for i in range(8)}
        assert {ident for _, ident in backend.threads} == {rt.ident}
        assert rt.ident != threading.get_ident()
    finally:
        rt.close()


def test_the_backend_is_created_on_the_owner_thread():
    created_on = []
    rt = JuliaThread(lambda: created_on.append(threading.get_ident()) or object()).start()
    try:
        assert created_on == [rt.ident]
    finally:
        rt.close()


def test_a_call_made_from_the_owner_thread_runs_inline_instead_of_deadlocking():
    backend = Recorder()
    rt = JuliaThread(lambda: backend).start()
    try:

        def outer(be):
            return rt.call(lambda be2: be2.where("inner"))  # would deadlock if queued

        assert rt.call(outer) == "inner"
        assert backend.threads == [("inner", rt.ident)]
    finally:
        rt.close()


def test_exceptions_come_back_with_their_type_and_message():
    rt = JuliaThread(lambda: None).start()
    try:

        def boom(be):
            raise ValueError("bad argument u0")

        with pytest.raises(ValueError, match="bad argument u0"):
            rt.call(boom)
        assert rt.call(lambda be: 42) == 42  # the thread survives
    finally:
        rt.close()


def test_julia_errors_are_formatted_on_the_owner_thread():
    seen = []

    class JuliaError(Exception):  # stands for juliacall.JuliaError, whose __str__ calls into Julia
        def __str__(self):
            seen.append(threading.get_ident())
            return "MethodError: no method matching foo"

    JuliaError.__module__ = "juliacall"
    rt = JuliaThread(lambda: None).start()
    try:

        def fail(be):
            raise JuliaError()

        with pytest.raises(BridgeError, match="in Julia: MethodError"):
            rt.call(fail)
        assert seen == [rt.ident]
    finally:
        rt.close()
    assert isinstance(_portable(KeyError("k")), KeyError)


def test_a_failing_start_is_reported_to_every_caller():
    def factory():
        raise ImportError("juliacall is not installed")

    rt = JuliaThread(factory)
    with pytest.raises(BackendStartError, match="juliacall is not installed"):
        rt.start(timeout=10)
    with pytest.raises(BackendStartError, match="juliacall is not installed"):
        rt.call(lambda be: None)


def test_post_runs_later_without_waiting_and_close_drains_the_queue():
    backend = Recorder()
    rt = JuliaThread(lambda: backend).start()
    done = threading.Event()
    rt.post(lambda be: (be.where("posted"), done.set()))
    assert done.wait(5)
    rt.close()
    assert backend.threads == [("posted", rt.ident)]
    rt.post(lambda be: be.where("after close"))  # ignored, no error
    with pytest.raises(BridgeError, match="closed"):
        rt.call(lambda be: None)


def thread_stack_bytes() -> int:
    """The stack size of the calling thread, from pthread_getattr_np (glibc)."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.pthread_self.restype = ctypes.c_ulong
    libc.pthread_getattr_np.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
    libc.pthread_attr_getstack.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    libc.pthread_attr_destroy.argtypes = [ctypes.c_void_p]
    attr = ctypes.create_string_buffer(256)  # pthread_attr_t is 56 bytes on x86-64 glibc
    size = ctypes.c_size_t()
    addr = ctypes.c_void_p()
    assert libc.pthread_getattr_np(libc.pthread_self(), attr) == 0
    try:
        assert libc.pthread_attr_getstack(attr, ctypes.byref(addr), ctypes.byref(size)) == 0
    finally:
        libc.pthread_attr_destroy(attr)
    return size.value


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the thread's stack with glibc's pthread_getattr_np"
)
def test_the_owner_thread_gets_the_stack_julia_assumes_whatever_pythons_thread_default():
    """macOS gives Python's threads 512 KiB of stack; Julia assumes RLIMIT_STACK (8 MiB). Here the 512 KiB
    default is imposed with threading.stack_size, which the owner thread must not inherit."""
    previous = threading.stack_size(512 * 1024)
    try:
        sizes = []
        rt = JuliaThread(lambda: sizes.append(thread_stack_bytes()) or object()).start()
        rt.close()
        assert threading.stack_size() == 512 * 1024  # the process's setting is left as it was
    finally:
        threading.stack_size(previous)
    assert sizes[0] >= julia_stack_size() >= 8 * 1024 * 1024


def test_the_close_hook_runs_before_the_hooks_the_backend_registered_when_it_started(tmp_path):
    """juliacall registers its atexit hook (which shuts Julia down) when it is imported, on the owner thread;
    atexit runs hooks last-in-first-out, so the bridge's close-and-join hook must be registered after it."""
    script = tmp_path / "exit_order.py"
    script.write_text(
        "import atexit, threading\n"
        "from gnode_bridge.runtime import JuliaThread\n"
        "state = {}\n"
        "def backend():  # stands for JuliaBackend: importing juliacall registers its shutdown hook\n"
        "    atexit.register(lambda: print('backend hook, owner alive:', state['rt']._thread.is_alive()))\n"
        "    return object()\n"
        "state['rt'] = JuliaThread(backend).start()\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "backend hook, owner alive: False", out.stdout + out.stderr


def test_cuda_arguments_are_synchronised_on_both_sides_of_a_call(monkeypatch):
    """DLPack hands CUDA memory over without ordering the streams: torch's stream is waited for before Julia
    reads the inputs, Julia's after it wrote the outputs (before torch reads them)."""
    from gnode_bridge import julia as backend_module

    events = []

    class CudaTensor:  # the attributes _call reads from a torch CUDA tensor
        is_cuda = True
        device = "cuda:0"

    backend = object.__new__(backend_module.JuliaBackend)
    backend._fns = {"solve_forward!": lambda *args: events.append(("julia call", len(args))) or 1}
    backend._dlpack = lambda x: ("CuArray", x)
    backend._cuda_sync = lambda: events.append(("julia sync",))
    monkeypatch.setattr(
        backend_module, "_torch_stream_synchronize", lambda device: events.append(("torch sync", device))
    )
    assert backend.solve_forward(CudaTensor(), 1.0, "request") == 1
    assert events == [("torch sync", "cuda:0"), ("julia call", 3), ("julia sync",)]
    events.clear()
    backend.solve_forward(1.0, "request")  # host arguments only: nothing to order
    assert events == [("julia call", 2)]
