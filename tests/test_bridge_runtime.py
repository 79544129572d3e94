"""The Julia-owning thread: every call runs on it, whoever makes it, and errors come back intact."""

from __future__ import annotations

import threading

import pytest

from gnode_bridge.runtime import BackendStartError, BridgeError, JuliaThread, _portable


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
