"""Specification of coalescing: a storm of events for one set -> one reconcile plus one follow-up.

Ordering is forced with events and the coalescer's own counters, never with sleeps: the first
reconcile is held until every later caller has queued behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from remediation.coalesce import Coalescer


def wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    """Wait for another thread to reach a state (bounded: a broken coalescer fails, not hangs)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the other threads never got there"
        time.sleep(0.001)


def test_a_storm_runs_one_reconcile_and_one_follow_up() -> None:
    coalescer: Coalescer[int] = Coalescer()
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def reconcile() -> int:
        calls.append(len(calls))
        started.set()
        if len(calls) == 1:
            assert release.wait(60)
        return len(calls)

    with ThreadPoolExecutor(max_workers=20) as pool:
        first = pool.submit(coalescer.run, "set-a", reconcile)
        assert started.wait(60)
        storm = [pool.submit(coalescer.run, "set-a", reconcile) for _ in range(19)]
        wait_until(lambda: coalescer.joined == 18)  # one follow-up, and 18 callers sharing it
        release.set()
        results = [future.result(timeout=60) for future in storm]

    assert first.result() == 1
    assert results == [2] * 19, "every later caller gets the follow-up's result"
    assert calls == [0, 1] and coalescer.runs == 2 and coalescer.joined == 18


def test_different_sets_do_not_wait_for_each_other() -> None:
    coalescer: Coalescer[str] = Coalescer()
    release = threading.Event()

    def slow() -> str:
        assert release.wait(60)
        return "a"

    with ThreadPoolExecutor(max_workers=2) as pool:
        blocked = pool.submit(coalescer.run, "set-a", slow)
        assert coalescer.run("set-b", lambda: "b") == "b"
        release.set()
        assert blocked.result(timeout=60) == "a"


def test_a_failed_follow_up_fails_every_caller_that_shared_it() -> None:
    coalescer: Coalescer[None] = Coalescer()
    release = threading.Event()
    attempts: list[int] = []

    def reconcile() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            assert release.wait(60)
            return
        raise RuntimeError("ARM unavailable")

    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(coalescer.run, "s", reconcile)
        wait_until(lambda: len(attempts) == 1)
        followers = [pool.submit(coalescer.run, "s", reconcile) for _ in range(3)]
        wait_until(lambda: coalescer.joined == 2)
        release.set()
        first.result(timeout=60)
        for follower in followers:
            with pytest.raises(RuntimeError, match="ARM unavailable"):
                follower.result(timeout=60)
    assert coalescer.runs == 2
    assert coalescer.run("s", lambda: None) is None, "the slot is free again afterwards"
