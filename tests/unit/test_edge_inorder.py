"""Keyframes worked on at once come back in the order they went in."""

from __future__ import annotations

import threading
import time

import pytest

from edge.inorder import InOrder


def test_results_come_back_in_order_though_later_items_finish_first() -> None:
    def slow_for_small(n: int) -> int:
        time.sleep(0.02 * (5 - n % 5))
        return n * n

    got = []
    with InOrder(slow_for_small, 3) as work:
        for n in range(20):
            got += work.put(n)
        got += work.finish()
    assert got == [n * n for n in range(20)]


def test_at_most_twice_the_workers_are_in_flight() -> None:
    running, most = 0, 0
    lock = threading.Lock()
    started = threading.Event()

    def track(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        started.set()
        time.sleep(0.01)
        with lock:
            running -= 1
        return n

    with InOrder(track, 2) as work:
        taken = [r for n in range(30) for r in work.put(n)]
        pending_before_finish = 30 - len(taken)
        taken += work.finish()
    assert taken == list(range(30))
    assert pending_before_finish <= 4
    assert most == 2


def test_one_worker_runs_on_the_calling_thread() -> None:
    callers = []

    def record_caller(n: int) -> int:
        callers.append(threading.current_thread())
        return n

    with InOrder(record_caller, 1) as work:
        assert work.put(7) == [7]
    assert callers == [threading.current_thread()]


def test_a_failure_reaches_the_caller_and_later_work_is_cancelled() -> None:
    ran = []

    def fail_on_two(n: int) -> int:
        ran.append(n)
        if n == 2:
            raise ValueError("bad frame")
        time.sleep(0.05)
        return n

    with pytest.raises(ValueError, match="bad frame"), InOrder(fail_on_two, 2) as work:
        for n in range(40):
            work.put(n)
    assert len(ran) < 40
