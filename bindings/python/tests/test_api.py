# SPDX-License-Identifier: MIT
"""The API in one process: every call, its arguments and its errors."""
from __future__ import annotations

import math
import os
import queue as stdqueue
import re
import time

import pytest
from conftest import REPO, unique_name, wait_for

import taskq
from taskq import Kind, RunState


def drain(q: taskq.Queue) -> list:
    out = []
    while True:
        with q.take(max=64, timeout=0) as b:
            if not b:
                return out
            out.extend(t.payload for t in b)


# ------------------------------------------------------------- lifecycle

def test_create_open_close(qname):
    with taskq.Queue.create(qname, capacity=100, max_payload=64, mode=0o640, max_attempts=3, dead_capacity=7,
                            delay_capacity=11, lease=2.5, backoff=0.25, backoff_max=9, payload_bytes=1000) as q:
        assert q.name == qname and not q.closed
        assert q.config == {"capacity": 100, "max_payload": 64, "payload_bytes": 1024, "mode": "640", "max_attempts": 3,
                            "dead_capacity": 7, "delay_capacity": 11, "lease_seconds": 2.5,
                            "backoff_seconds": 0.25, "backoff_max_seconds": 9.0}
        assert q.stats()["slots"] == 118
        assert q.payload_area() == {"bytes": 1024, "held_bytes": 0, "largest_free_bytes": 1024}
        q.push_many([1, b"x" * 64, b"y"])  # a mixed batch: through slots, 64 + 1 bytes in two runs
        assert q.payload_area() == {"bytes": 1024, "held_bytes": 128, "largest_free_bytes": 896}
        assert q.max_payload == 64
        with taskq.Queue.open(qname) as q2:
            assert q2.instance == q.instance
            assert q2.config == q.config
        assert q2.closed
        with taskq.Queue.create(qname, exist_ok=True) as q3:  # opens; its configuration stands
            assert q3.config["capacity"] == 100
    assert q.closed
    q.close()  # twice: nothing
    with pytest.raises(taskq.InvalidArgument, match="closed"):
        q.push(1)


def test_create_errors(qname):
    with taskq.Queue.create(qname):
        with pytest.raises(taskq.QueueExists) as e:
            taskq.Queue.create(qname)
        assert isinstance(e.value, FileExistsError) and e.value.code == -3 and "TQ_EEXIST" in str(e.value)
    for bad in ("", "a/b", ".x", "x" * 201, "sp ace"):
        with pytest.raises(taskq.BadName):
            taskq.Queue.create(bad)
    with pytest.raises(taskq.InvalidArgument):
        taskq.Queue.create(None)  # type: ignore[arg-type]
    for cfg in ({"capacity": 0}, {"capacity": (1 << 24) + 1}, {"max_payload": (1 << 24) + 1}, {"max_attempts": 0},
                {"lease": 0.0001}, {"backoff": 10, "backoff_max": 1}, {"capacity": -1}, {"capacity": 1.5},
                {"capacity": True}, {"lease": -1}, {"lease": math.nan}, {"lease": "1"}, {"payload_bytes": -1},
                {"payload_bytes": 2**64}, {"payload_bytes": 1.5}, {"max_payload": 100, "payload_bytes": 64},
                {"capacity": 10, "max_payload": 64, "payload_bytes": 10**6}):
        with pytest.raises(taskq.InvalidArgument):
            taskq.Queue.create(unique_name(), **cfg)
    missing = unique_name()
    with pytest.raises(taskq.QueueNotFound) as e:
        taskq.Queue.open(missing)
    assert isinstance(e.value, FileNotFoundError) and missing in str(e.value)
    with pytest.raises(taskq.QueueNotFound):
        taskq.destroy(missing)


def test_destroy_keeps_attached_handles(qname):
    q = taskq.Queue.create(qname)
    taskq.destroy(qname)
    q.push(3)
    assert q.get(timeout=1) == 3
    q.close()
    with pytest.raises(taskq.QueueNotFound):
        taskq.Queue.open(qname)


# ------------------------------------------------------------------ tasks

def test_push_take_every_kind(q):
    ids = [q.push(7), q.push(b"bytes\x00z"), q.push("h\u00e9"), q.push(bytearray(b"ba")), q.push(memoryview(b"mv")),
           q.push_json({"to": "a@b.c", "n": [1, 2]}), q.push(2**64 - 1), q.push(b"")]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    with q.take(max=64, timeout=1) as b:
        assert len(b) == 8 and b.ids() == ids
        t = b[0]
        assert t.kind is Kind.INT and t.value == 7 and t.payload == 7 and t.attempt == 1 and t.id == ids[0]
        assert 0 < t.enqueued_ns <= taskq.queue.lib.tq_now_ns()
        with pytest.raises(ValueError):
            t.data
        with pytest.raises(ValueError):
            t.view
        s = b[1]
        assert s.kind is Kind.STRING and len(s) == 7 and s.data == b"bytes\x00z" and bytes(s.view) == b"bytes\x00z"
        with pytest.raises(ValueError):
            s.value
        assert b[2].text == "h\u00e9" and b[3].data == b"ba" and b[4].data == b"mv"
        j = b[5]
        assert j.kind is Kind.JSON and j.json() == {"to": "a@b.c", "n": [1, 2]} and j.payload == j.json()
        assert j.data == b'{"to":"a@b.c","n":[1,2]}'
        assert b[6].value == 2**64 - 1 and b[-1].data == b"" and bytes(b[-1].view) == b""
        assert str(j.kind) == "json" and "json" in repr(j)
    assert q.stats()["totals"]["acked"] == 8


def test_view_is_zero_copy_and_released(q):
    q.push(b"shared bytes")
    with q.take(timeout=1) as b:
        t = b[0]
        v, u = t.view, t.unsafe_view()
        assert v[7:] == b"bytes" and u.readonly and u.format == "B" and bytes(u[7:]) == b"bytes"
        assert not v.released and t.view is v
        t.ack()
        assert v.released
        with pytest.raises(ValueError, match="released"):
            v[0]  # released with the lease
        with pytest.raises(ValueError):
            u[0]
        with pytest.raises(ValueError, match="no longer held"):
            t.data
    q.push(b"copy me")
    with q.take(timeout=1) as b:
        d = b[0].data
    assert d == b"copy me" and b[0].data == d  # a copy made while held stays


def test_push_bad_arguments(q):
    for bad in (1.5, None, True, [1], object(), -1, 2**64):
        with pytest.raises(taskq.InvalidArgument):
            q.push(bad)  # type: ignore[arg-type]
    with pytest.raises(taskq.PayloadTooLarge) as e:
        q.push(b"x" * 257)
    assert isinstance(e.value, ValueError) and e.value.code == -8
    q.push(b"x" * 256)
    with pytest.raises(taskq.PayloadTooLarge):
        q.push_json("x" * 300)
    for t in (-1, math.nan, "1"):
        with pytest.raises(taskq.InvalidArgument):
            q.push(1, timeout=t)  # type: ignore[arg-type]
    for m in (0, 4097, 1.0, True):
        with pytest.raises(taskq.InvalidArgument):
            q.take(max=m)  # type: ignore[arg-type]
    for batch in (0, 4097, "8"):
        with pytest.raises(taskq.InvalidArgument):
            q.push_many([1], batch=batch)  # type: ignore[arg-type]
    with pytest.raises(taskq.InvalidArgument):
        q.push_many([1, 2, 2**64])
    with pytest.raises(taskq.InvalidArgument):
        q.push_many([b"a", 1.0])
    with pytest.raises(taskq.PayloadTooLarge):
        q.push_many([b"a", b"y" * 300])
    assert q.stats()["ready"] == 1  # the bad batches pushed nothing


def test_push_many(q):
    assert q.push_many(range(200), batch=64) == 200
    assert q.push_many([b"a", "b", bytearray(b"c")]) == 3
    assert q.push_many([{"k": i} for i in range(3)], json=True) == 3
    assert q.push_many([1, b"mixed", 2]) == 3
    assert q.push_many(iter(())) == 0
    assert q.push_many([Kind.JSON, 4]) == 2 and q.push(Kind.STRING)  # int subclasses as ints
    got = drain(q)
    assert got == list(range(200)) + [b"a", b"b", b"c"] + [{"k": i} for i in range(3)] + [1, b"mixed", 2] + [3, 4, 2]


def test_push_many_integers(make_queue):
    """Integers alone go in through tq_push_ints: every value once, in
    order, the largest too; a full queue reports what went in."""
    q = make_queue(capacity=1000)
    with pytest.raises(taskq.QueueFull) as e:
        q.push_many(range(5000), batch=4096, timeout=0)
    assert e.value.pushed == 1000
    assert drain(q) == list(range(1000))
    assert q.push_many([0, 2**64 - 1, 7], batch=2) == 3
    assert drain(q) == [0, 2**64 - 1, 7]
    assert q.push_many([5, 6], delay=0.001) == 2  # delayed: through slots, as before
    got = []
    with q.take(max=8, timeout=5) as b:
        got += b.values()
    assert got + drain(q) == [5, 6]
    assert q.stats()["totals"]["pushed"] == 1005


def test_queue_full(make_queue):
    q = make_queue(capacity=8)
    assert q.push_many(range(8)) == 8
    with pytest.raises(taskq.QueueFull) as e:
        q.push(9, timeout=0)
    assert isinstance(e.value, taskq.WouldBlock) and isinstance(e.value, stdqueue.Full) and e.value.code == -9
    t0 = time.monotonic()
    with pytest.raises(taskq.QueueFull) as e:
        q.push(b"x", timeout=0.05)
    assert isinstance(e.value, taskq.Timeout) and isinstance(e.value, TimeoutError) and e.value.code == -10
    assert time.monotonic() - t0 >= 0.04
    q.get(timeout=0)
    q.get(timeout=0)
    with pytest.raises(taskq.QueueFull) as e:
        q.push_many(range(100, 105), batch=64, timeout=0)
    assert e.value.pushed == 2
    assert drain(q) == list(range(2, 8)) + [100, 101]


def test_get_and_empty(q):
    with pytest.raises(taskq.QueueEmpty) as e:
        q.get(timeout=0)
    assert isinstance(e.value, taskq.WouldBlock) and isinstance(e.value, stdqueue.Empty)
    with pytest.raises(taskq.QueueEmpty) as e:
        q.get(timeout=0.02)
    assert isinstance(e.value, taskq.Timeout)
    with q.take(max=4, timeout=0.02) as b:
        assert not b and len(b) == 0 and list(b) == []
    q.push_json([1, "two"])
    assert q.get() == [1, "two"]


# ----------------------------------------------------------- batch exits

def test_batch_acks_on_normal_exit(q):
    q.push_many(range(10))
    with q.take(max=10, timeout=1) as b:
        assert b.values() == list(range(10))
        for t in b:
            if t.value == 3:
                break  # the rest are acked all the same
    s = q.stats()
    assert s["totals"]["acked"] == 10 and s["leased"] == 0 and s["ready"] == 0


def test_batch_fails_the_rest_on_exception(make_queue):
    q = make_queue(max_attempts=1)
    q.push_many(range(6))
    with pytest.raises(RuntimeError, match="boom"):
        with q.take(max=6, timeout=1) as b:
            for t in b:
                if t.value == 4:
                    raise RuntimeError("boom on 4")
    s = q.stats()
    assert s["totals"]["acked"] == 4 and s["dead"] == 2
    dead = q.dead.list()
    assert [d["value"] for d in dead] == [4, 5]
    assert all(d["last_message"] == "RuntimeError: boom on 4" and d["last_error"] == 1 for d in dead)


def test_explicit_ack_fail_touch(make_queue):
    q = make_queue(max_attempts=2, backoff=0, lease=5)
    q.push_many([10, 11, 12])
    with q.take(max=3, timeout=1) as b:
        b[0].ack()
        b[1].fail("bad input", code=22)
        b[2].touch(10)
        b.touch()
        with pytest.raises(ValueError, match="already"):
            b[0].ack()
        with pytest.raises(ValueError, match="already"):
            b[1].touch()
        with pytest.raises(taskq.InvalidArgument):
            b[2].fail("x", code=0)
    # 11 comes back for its second attempt
    with q.take(timeout=2) as b:
        assert b[0].value == 11 and b[0].attempt == 2
        b[0].fail("still bad", code=22)
    assert q.dead.list()[0]["last_error"] == 22
    assert q.dead.list()[0]["last_message"] == "still bad"
    assert q.stats()["totals"]["acked"] == 2


def test_lease_lost(make_queue):
    q = make_queue(lease=0.05)
    q.push(1)
    b = q.take(timeout=1)
    with taskq.Queue.open(q.name) as q2:
        again = wait_for(lambda: q2.take(timeout=0.05), what="the expired lease to come back")
        assert again[0].value == 1 and again[0].attempt == 2
        with pytest.raises(taskq.LeaseLost) as e:
            b[0].ack()
        assert e.value.code == -11 and "TQ_ELOST" in str(e.value)
        again.ack()
    assert q.stats()["totals"]["lost"] >= 1


def test_touch_keeps_lease(make_queue):
    q = make_queue(lease=0.2)
    q.push(5)
    with q.take(timeout=1) as b, taskq.Queue.open(q.name) as q2:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            b.touch()
            assert not q2.take(timeout=0.05)
    assert q.stats()["totals"]["acked"] == 1 and q.stats()["totals"]["expired"] == 0


def test_take_ahead(make_queue):
    q = make_queue(capacity=256)
    q.push_many(range(100))
    for bad in (65, -1, "8", 2.0):
        with pytest.raises(taskq.InvalidArgument, match="take-ahead"):
            q.set_take_ahead(bad)
    q.set_take_ahead(64)
    got = []
    for i in range(100):
        with q.take(timeout=0) as b:
            assert len(b) == 1 and b[0].attempt == 1
            if i == 0:  # one claim of 64: the other 63 kept, leased to q
                s = q.stats()
                assert (s["leased"], s["ready"]) == (64, 36)
            got.append(b[0].value)
    assert got == list(range(100))
    assert not q.take(timeout=0)
    assert q.stats()["totals"]["acked"] == 100
    q.set_take_ahead(0)


def test_delay(q):
    q.push(1, delay=0.2)
    q.push_many([2, 3], delay=0.2)
    assert q.stats()["delayed"] == 3
    assert not q.take(timeout=0)
    assert sorted(drain_wait(q, 3)) == [1, 2, 3]
    with pytest.raises(taskq.InvalidArgument):
        q.push(1, delay=-1)


def drain_wait(q: taskq.Queue, n: int) -> list:
    out: list = []
    deadline = time.monotonic() + 5
    while len(out) < n and time.monotonic() < deadline:
        with q.take(max=64, timeout=0.1) as b:
            out.extend(b.values())
    return out


# ------------------------------------------------------------ run state

def test_run_state(q):
    assert q.state is RunState.RUNNING and str(q.state) == "running"
    q.push(1)
    q.pause()
    assert q.state is RunState.PAUSED
    assert not q.take(timeout=0.02)  # paused: nothing taken
    q.push(2)  # pushes work
    q.resume()
    assert q.get(timeout=1) == 1
    q.drain()
    with pytest.raises(taskq.Stopped) as e:
        q.push(3)
    assert e.value.code == -18
    with pytest.raises(taskq.Stopped):
        q.take(timeout=0)
    q.state = "stopped"
    assert q.state is RunState.STOPPED
    q.state = RunState.RUNNING
    for bad in ("nope", 7, -1):
        with pytest.raises(taskq.InvalidArgument):
            q.state = bad  # type: ignore[assignment]
    assert q.get(timeout=1) == 2


# --------------------------------------------------------- dead letters

def test_dead_letters(make_queue):
    q = make_queue(max_attempts=1, max_payload=64)
    q.push_many([1, 2])
    q.push(b"payload")
    with q.take(max=3, timeout=1) as b:
        b.fail("why \u00e9", code=5)
    assert len(q.dead) == 3
    dead = q.dead.list()
    assert [d["kind"] for d in dead] == ["int", "int", "string"]
    assert dead[0]["value"] == 1 and dead[2]["data"] == b"payload"
    assert dead[0]["attempts"] == 1 and dead[0]["last_message"] == "why \u00e9" and dead[0]["dead_seconds"] >= 0
    assert q.dead.list(max=1) == dead[:1] or q.dead.list(max=1)[0]["id"] == dead[0]["id"]
    assert q.dead.kick(dead[0]["id"]) == 1
    assert q.get(timeout=1) == 1
    with pytest.raises(taskq.TaskNotFound) as e:
        q.dead.kick(dead[0]["id"])
    assert isinstance(e.value, LookupError)
    assert q.dead.purge(dead[1]["id"]) == 1
    assert q.dead.kick() == 1
    assert q.get(timeout=1) == b"payload"
    assert q.dead.purge() == 0 and q.dead.list() == []


# --------------------------------------------------- stats and the rest

def test_counters_events_watermark(q):
    q.push_many(range(5))
    c = q.counters()
    assert c["pushed"] == 5 and set(c) == {"pushed", "taken", "acked", "failed", "retried", "dead", "expired",
                                           "recovered", "dead_overflow", "lost"}
    drain(q)
    assert q.finished_below() > 5
    ev = q.events()
    assert ev[0]["type"] == "created" and ev[0]["seq"] == 1
    q.pause()
    last = q.events(after=ev[-1]["seq"])
    assert last[-1]["type"] == "state_changed" and last[-1]["a"] == RunState.PAUSED
    assert q.recover() == 0
    procs = q.procs()
    assert [p["pid"] for p in procs] == [os.getpid()]


def test_observer(q):
    with taskq.Queue.open(q.name, observer=True) as o:
        assert o.observer and "observer" in repr(o)
        with pytest.raises(taskq.ObserverOnly) as e:
            o.push(1)
        assert e.value.code == -20
        with pytest.raises(taskq.ObserverOnly):
            o.take(timeout=0)
        assert o.stats()["processes"] == 1  # only q
        o.pause()
        assert q.state is RunState.PAUSED


def test_forked_handle(q):
    pid = os.fork()
    if pid == 0:  # the child: the parent's handle refuses, a new one works
        code = 1
        try:
            q.push(1)
        except taskq.Forked:
            with taskq.Queue.open(q.name) as q2:
                q2.push(42)
            code = 0
        except BaseException:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert q.get(timeout=1) == 42


# ------------------------------------------------------------ exceptions

def test_every_error_code_has_its_class():
    header = (REPO / "include" / "taskq.h").read_text()
    codes = {m[0]: int(m[1]) for m in re.findall(r"^\s*(TQ_E\w+) = (-\d+),", header, re.M)}
    assert len(codes) >= 20
    assert {c.code_name: c.code for c in taskq.BY_CODE.values()} == codes
    for code, cls in taskq.BY_CODE.items():
        e = taskq.errors.error(code, "op")
        assert type(e) is cls and isinstance(e, taskq.Error) and e.code == code
        assert e.strerror == taskq.strerror(code) and e.strerror in str(e) and cls.code_name in str(e)
        assert e.strerror and not e.strerror.startswith("error ")
    unknown = taskq.errors.error(-99, "op")
    assert type(unknown) is taskq.Error and unknown.code == -99 and "code -99" in str(unknown)
    assert issubclass(taskq.QueueNotFound, FileNotFoundError) and issubclass(taskq.Timeout, TimeoutError)
    assert issubclass(taskq.PermissionDenied, PermissionError) and issubclass(taskq.BadName, ValueError)


def test_dead_list_allocates_for_the_payloads_it_has(make_queue, monkeypatch):
    q = make_queue(capacity=1000, max_payload=1 << 20, max_attempts=1, dead_capacity=500)
    n = 300
    q.push_many([b"p%d" % i for i in range(n)] + [7])
    while True:
        with q.take(max=64, timeout=0) as b:
            if not b:
                break
            b.fail("x")
    sizes = []
    real = taskq.queue.ctypes.create_string_buffer

    def counting(size, *a):
        sizes.append(size)
        return real(size, *a)

    monkeypatch.setattr(taskq.queue.ctypes, "create_string_buffer", counting)
    dead = q.dead.list()
    assert [d["data"] for d in dead[:n]] == [b"p%d" % i for i in range(n)] and dead[n]["value"] == 7
    assert sum(sizes) <= 10 * (n + 1)  # the longest payload's length per row, not max_payload's 1 MiB
    assert [d["data"] for d in q.dead.list(max=2)] == [b"p0", b"p1"]


def test_names_with_nul_are_refused(qname):
    for call in (lambda n: taskq.Queue.create(n), lambda n: taskq.Queue.open(n), taskq.destroy):
        with pytest.raises(taskq.BadName, match="NUL"):
            call(qname + "\0tail")
    with pytest.raises(taskq.QueueNotFound):
        taskq.Queue.open(qname)  # nothing made under the name's head
