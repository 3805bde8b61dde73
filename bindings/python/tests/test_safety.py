# SPDX-License-Identifier: MIT
"""Payload views, context-manager outcomes, waits and close() under misuse:
what must raise instead of crashing, hanging or reading another task's
bytes. Whatever could crash or hang runs in a child process with a
deadline."""
from __future__ import annotations

import signal
import struct
import subprocess
import sys
import threading
import time

import pytest
from conftest import Lines, spawn, wait_for

import taskq


def run_child(code: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    child = spawn(code, *args)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the child hung; stdout {out!r}, stderr {err!r}")
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def waiting(q: taskq.Queue, state: str) -> bool:
    return any(p["state"] == state for p in q.procs())


# ----------------------------------------------------------------- views

CHILD_VIEW_AFTER_CLOSE = """
import sys, taskq
q = taskq.Queue.open(sys.argv[1])
b = q.take(timeout=5)
t = b[0]
v, u = t.view, t.unsafe_view()
q.close()
for what, f in (("view", lambda: bytes(v)), ("view[0]", lambda: v[0]), ("unsafe", lambda: bytes(u)),
                ("data", lambda: t.data), ("view again", lambda: t.view[0])):
    try:
        f()
        print(what, "read")
    except ValueError:
        print(what, "ValueError")
"""


def test_views_after_close_raise(make_queue):
    q = make_queue()
    q.push(b"payload in shared memory")
    r = run_child(CHILD_VIEW_AFTER_CLOSE, q.name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:5] == ["view ValueError", "view[0] ValueError", "unsafe ValueError",
                                         "data ValueError", "view again ValueError"]


CHILD_VIEW_OUTLIVES_QUEUE = """
import gc, sys, taskq
def first(name):
    q = taskq.Queue.open(name)
    b = q.take(timeout=5)
    return b[0].view, b[0].unsafe_view()
v, u = first(sys.argv[1])
gc.collect()
print(bytes(v).decode(), bytes(u).decode())
"""


def test_view_keeps_its_queue_alive(make_queue):
    q = make_queue()
    q.push(b"kept")
    r = run_child(CHILD_VIEW_OUTLIVES_QUEUE, q.name)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "kept kept\n"


def test_view_slices_are_copies(make_queue):
    q = make_queue(capacity=1)
    q.push(b"first")
    with q.take(timeout=1) as b:
        v = b[0].view
        whole, part, one = v[:], v[1:3], v[0]
        with pytest.raises(TypeError):
            memoryview(v)  # no buffer export that could outlive the lease
        assert len(v) == 5 and bytes(v) == b"first" and v == b"first" and list(v) == list(b"first")
    with pytest.raises(ValueError):
        v[0]
    q.push(b"other")  # takes the one place the first task had
    with q.take(timeout=1) as b:
        assert b[0].data == b"other"
        assert whole == b"first" and part == b"ir" and one == ord("f")


def test_unsafe_view_is_a_released_memoryview(q):
    q.push(b"zero copy")
    with q.take(timeout=1) as b:
        u = b[0].unsafe_view()
        assert isinstance(u, memoryview) and u.readonly and bytes(u[5:]) == b"copy"
        assert b[0].unsafe_view() is u
    with pytest.raises(ValueError):
        u[0]


def test_held_export_does_not_replace_the_exception(make_queue):
    q = make_queue(max_attempts=1)
    q.push_many([b"a", b"b"])
    with pytest.raises(RuntimeError, match="body"):
        with q.take(max=2, timeout=1) as b:
            held = struct.iter_unpack("c", b[0].unsafe_view())  # an export the release cannot end
            raise RuntimeError("body")
    assert q.stats()["dead"] == 2
    for t in b:
        with pytest.raises(ValueError, match="acked or failed"):
            t.ack()
    del held


# --------------------------------------------------- the context manager

def test_raise_after_the_loop_fails_every_task(make_queue):
    q = make_queue(max_attempts=1)
    q.push_many(range(3))
    with pytest.raises(RuntimeError):
        with q.take(max=3, timeout=1) as b:
            vals = [t.value for t in b]
            raise RuntimeError(f"nothing handled of {vals}")
    s = q.stats()
    assert s["totals"]["acked"] == 0 and s["dead"] == 3


def test_raise_before_the_loop_fails_every_task(make_queue):
    q = make_queue(max_attempts=1)
    q.push_many(range(3))
    with pytest.raises(RuntimeError):
        with q.take(max=3, timeout=1):
            raise RuntimeError("before")
    assert q.stats()["dead"] == 3


def test_keyboard_interrupt_fails_nothing(make_queue):
    q = make_queue(max_attempts=1)
    q.push_many(range(3))
    other = taskq.Queue.open(q.name)
    try:
        with pytest.raises(KeyboardInterrupt):
            with q.take(max=3, timeout=1) as b:
                for t in b:
                    if t.value == 1:
                        raise KeyboardInterrupt
        s = other.stats()  # the one handled is acked, the others stay leased
        assert s["leased"] == 2 and s["totals"]["failed"] == 0 and s["totals"]["acked"] == 1
        q.close()  # gives them back
        s = other.stats()
        assert s["ready"] == 2 and s["dead"] == 0
        assert sorted(other.get(timeout=1) for _ in range(2)) == [1, 2]
    finally:
        other.close()


# ---------------------------------------------------------------- waits

CHILD_WAIT_FOREVER = """
import sys, taskq
q = taskq.Queue.open(sys.argv[1])
try:
    if sys.argv[2] == "take":
        q.take(timeout=None)
    elif sys.argv[2] == "get":
        q.get(timeout=None)
    else:
        q.push(2, timeout=None)
    print("returned")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("call", ["take", "get", "push"])
def test_ctrl_c_ends_an_endless_wait(make_queue, call):
    q = make_queue(capacity=1)
    if call == "push":
        q.push(1)
    child = spawn(CHILD_WAIT_FOREVER, q.name, call)
    try:
        wait_for(lambda: waiting(q, "waiting for room" if call == "push" else "waiting for tasks"), 10,
                 "the child to wait")
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("SIGINT did not end the wait")
    finally:
        child.kill()
        child.wait()
    assert out == "interrupted\n", err


CHILD_CLOSE_WHILE_TAKING = """
import sys, threading, taskq
q = taskq.Queue.open(sys.argv[1])
got = []
def taker():
    try:
        q.take(timeout=None)
        got.append("returned")
    except taskq.Error as e:
        got.append(type(e).__name__)
t = threading.Thread(target=taker)
t.start()
while not any(p["state"] == "waiting for tasks" for p in q.procs()):
    pass
q.close()
t.join(10)
print(got, q.closed, flush=True)
try:
    q.take(timeout=0)
except taskq.Error as e:
    print("after close:", type(e).__name__)
"""


def test_close_while_another_thread_takes(make_queue):
    q = make_queue()
    r = run_child(CHILD_CLOSE_WHILE_TAKING, q.name)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "['InvalidArgument'] True\nafter close: InvalidArgument\n"


CHILD_WORK_INTERRUPTED = """
import sys, threading, time, taskq
q = taskq.Queue.open(sys.argv[1])
lock = threading.Lock()
def handler(task):
    with lock:  # several threads: whole lines
        print("handling", flush=True)
    time.sleep(0.05)
try:
    taskq.work(q, handler, concurrency=int(sys.argv[2]), batch=1, signals=())
except KeyboardInterrupt:
    s = q.stats()  # every loop returned: nothing held, nothing taking
    print("leased", s["leased"], "waiting", sum(p["state"] != "busy" for p in s["process_list"]), flush=True)
"""


@pytest.mark.parametrize("concurrency", [2, 8])
def test_work_left_by_an_exception_stops_its_threads(make_queue, concurrency):
    # Ctrl+C lands while the threads start (the first one already
    # handles) or while they run: each round, work() must wait for every
    # thread it started, wherever the KeyboardInterrupt was raised.
    q = make_queue(capacity=1000)
    q.push_many(range(1000))
    for _ in range(3):
        child = spawn(CHILD_WORK_INTERRUPTED, q.name, str(concurrency))
        try:
            lines = Lines(child)
            assert lines.readline() == "handling\n"
            child.send_signal(signal.SIGINT)  # no handler of work(): KeyboardInterrupt in its wait
            out, err = lines.rest(timeout=10)
        finally:
            child.kill()
            child.wait()
        assert out.splitlines()[-1] == "leased 0 waiting 0", err


def test_closed_handle_does_not_hide_the_exception(make_queue):
    q = make_queue()
    q.push_many(range(2))
    with pytest.raises(RuntimeError, match="body"):
        with q.take(max=2, timeout=1):
            q.close()
            raise RuntimeError("body")


def test_close_drains_work_in_another_thread(make_queue):
    q = make_queue(capacity=1000)
    n = 500
    q.push_many([b"p%d" % i for i in range(n)])
    started = threading.Event()

    def handler(task):
        started.set()
        assert task.view[:1] == b"p"  # readable until the loop has drained
        time.sleep(0.001)

    res = []
    th = threading.Thread(target=lambda: res.append(taskq.work(q, handler, batch=8)))
    th.start()
    try:
        assert started.wait(10)
        q.close()  # stops the loop, waits for it to drain
        th.join(10)
        assert not th.is_alive()
    finally:
        q.close()
        th.join(10)
    assert res[0].failed == 0 and res[0].ends == ["signal"] and 0 < res[0].acked < n
    with taskq.Queue.open(q.name) as other:
        s = other.stats()
        assert s["ready"] == n - res[0].acked and s["leased"] == 0 and s["totals"]["failed"] == 0
