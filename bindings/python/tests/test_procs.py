# SPDX-License-Identifier: MIT
"""Several processes: the taskq command and the C examples on the same
queue, stats against `taskq stats --json`, workers killed or signalled."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time

import pytest
from conftest import BUILD, Lines, cli, cli_json, spawn, wait_for

import taskq

# ------------------------------------------------------------------ stats

TIMES = ("oldest_ready_age_seconds",)
PROC_TIMES = ("attached_seconds", "last_seen_seconds_ago")


def split_times(o: dict) -> tuple[dict, list[float]]:
    """The snapshot without its ages (which grow between two reads), and the ages."""
    o = json.loads(json.dumps(o))
    for r in o["rates"].values():  # the command prints rates with 15 significant digits
        for k in r:
            r[k] = float(f"{r[k]:.12g}")
    ages = [o.pop(k) for k in TIMES]
    for p in o["process_list"]:
        ages += [p.pop(k) for k in PROC_TIMES]
    return o, ages


@pytest.mark.parametrize("command,config", [("stats", False), ("info", True)])
def test_stats_equal_the_command(make_queue, command, config):
    q = make_queue(capacity=50, max_attempts=1, dead_capacity=5, lease=3)
    q.push_many(range(6))
    q.push(b"payload")
    q.push(9, delay=60)
    with q.take(max=3, timeout=1) as b:
        b[0].fail("no")
    with q.take(max=1, timeout=1) as held:  # one leased while compared
        for _ in range(10):  # the 1 s rate samples may tick between the two reads: read again
            mine, mine_ages = split_times(q.stats(config=config))
            theirs, their_ages = split_times(cli_json(command, q.name, "--json"))
            if mine == theirs:
                break
            time.sleep(0.05)
        assert mine == theirs
        assert set(q.stats(config=config)) == set(cli_json(command, q.name, "--json"))
        assert len(mine_ages) == len(their_ages)
        for a, b in zip(mine_ages, their_ages):
            assert abs(a - b) < 5
        assert theirs["leased"] == 1 and theirs["dead"] == 1 and theirs["delayed"] == 1 and theirs["processes"] == 1
        assert held


# ---------------------------------------------------------------- interop

def test_c_producers_to_python(make_queue):
    q = make_queue(capacity=1000)
    cli("push", q.name, "--kind", "int", "1", "2", "18446744073709551615")
    cli("push", q.name, "--json", input=b'{"to":"a@b.c"}\n[1,2]\n')
    cli("push", q.name, "plain text", "b\u00e9")
    r = subprocess.run([str(BUILD / "examples" / "producer"), q.name, "100"], capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    got = []
    with q.take(max=64, timeout=1) as b:
        got += [(t.kind, t.payload) for t in b]
    while len(got) < 107:
        with q.take(max=64, timeout=1) as b:
            assert b, "tasks missing"
            got += [(t.kind, t.payload) for t in b]
    K = taskq.Kind
    assert got[:7] == [(K.INT, 1), (K.INT, 2), (K.INT, 2**64 - 1), (K.JSON, {"to": "a@b.c"}), (K.JSON, [1, 2]),
                       (K.STRING, b"plain text"), (K.STRING, "bé".encode())]
    assert got[7:] == [(K.JSON, {"n": v}) if v % 2 else (K.INT, v) for v in range(100)]


def test_python_to_the_command_and_c_consumer(make_queue):
    q = make_queue(capacity=1000)
    q.push(12)
    q.push(b"bytes")
    q.push_json({"k": [1, "x"]})
    out = cli("take", q.name, "-n", "3", "--json").stdout.decode().splitlines()
    tasks = [json.loads(line) for line in out]
    assert [(t["kind"], t.get("value", t.get("data"))) for t in tasks] == \
        [("int", 12), ("string", "bytes"), ("json", {"k": [1, "x"]})]
    q.push_many(range(500))
    r = subprocess.run([str(BUILD / "examples" / "consumer"), q.name], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    s = q.stats()
    assert s["ready"] == 0 and s["leased"] == 0
    assert s["totals"]["acked"] == 503 and s["totals"]["failed"] == 0  # it fails only values 998 mod 1000


# ------------------------------------------------------------ processes

CHILD_TAKE_AND_HANG = """
import sys, time, taskq
q = taskq.Queue.open(sys.argv[1])
b = q.take(max=64, timeout=5)
print(" ".join(str(v) for v in b.values()), flush=True)
time.sleep(60)
"""


def test_sigkilled_taker_tasks_come_back(make_queue):
    q = make_queue(capacity=1000, lease=30)  # long: only the death returns them
    n = 300
    q.push_many(range(n))
    child = spawn(CHILD_TAKE_AND_HANG, q.name)
    try:
        held = [int(v) for v in Lines(child).readline().split()]
        assert len(held) == 64
        assert q.stats()["leased"] == 64
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
        child.wait()
    acked = collections.Counter()
    attempts = {}
    deadline = time.monotonic() + 20
    while sum(acked.values()) < n and time.monotonic() < deadline:
        with q.take(max=64, timeout=0.2) as b:
            for t in b:
                acked[t.value] += 1
                attempts[t.value] = t.attempt
    assert set(acked) == set(range(n)) and set(acked.values()) == {1}
    s = q.stats()
    assert s["totals"]["acked"] == n and s["totals"]["recovered"] == 64
    assert s["ready"] == 0 and s["leased"] == 0 and s["recoveries"] == 1
    assert all(attempts[v] == 1 for v in range(n) if v not in held)


CHILD_WORKER = r"""
import json, sys, threading, time, taskq
q = taskq.Queue.open(sys.argv[1])
mode = sys.argv[2]
lock = threading.Lock()
def handler(task):
    with lock:
        sys.stdout.write(f"{task.value}\n")
        sys.stdout.flush()
    if mode == "hang" and task.value == 100:
        time.sleep(30)
    time.sleep(0.002)
r = taskq.work(q, handler, concurrency=2, batch=8, idle_exit=20)  # ends even if no signal comes
print("result", json.dumps(r.__dict__), flush=True)
"""


def test_sigkilled_worker_tasks_acked_once(make_queue):
    q = make_queue(capacity=1000, lease=30)
    n = 400
    q.push_many(range(n))
    child = spawn(CHILD_WORKER, q.name, "hang")
    seen_by_child = []
    try:
        for line in Lines(child):
            seen_by_child.append(int(line))
            if int(line) == 100:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
        child.wait()
    acked_before = q.stats()["totals"]["acked"]
    mine = collections.Counter()
    lock = threading.Lock()

    def handler(task):
        with lock:
            mine[task.value] += 1

    r = taskq.work(q, handler, concurrency=2, idle_exit=0.5)
    s = q.stats()
    assert s["totals"]["acked"] == n and s["ready"] == 0 and s["leased"] == 0
    assert s["totals"]["recovered"] >= 1 and 100 in mine
    assert set(mine) | set(seen_by_child) == set(range(n)) and set(mine.values()) == {1}
    assert r.acked == n - acked_before == sum(mine.values()) and r.ends == ["idle", "idle"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_worker_drains_on_signal(make_queue, sig):
    q = make_queue(capacity=2000)
    n = 1000
    q.push_many(range(n))
    child = spawn(CHILD_WORKER, q.name, "slow")
    try:
        wait_for(lambda: q.stats()["totals"]["acked"] >= 16, what="the worker to ack")
        child.send_signal(sig)
        out, err = child.communicate(timeout=20)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    res = json.loads(out.splitlines()[-1].split(" ", 1)[1])
    assert res["ends"] == ["signal", "signal"] and res["failed"] == 0
    s = q.stats()
    assert s["leased"] == 0 and s["totals"]["acked"] == res["acked"] and res["acked"] + s["ready"] == n
    assert res["acked"] < n  # it stopped early


def test_second_signal_ends_the_worker_at_once(make_queue):
    q = make_queue(capacity=2000, lease=30)  # long: only the death returns the tasks
    n = 200
    q.push_many(range(n))
    child = spawn(CHILD_WORKER, q.name, "hang")  # its handler sleeps on value 100
    try:
        for line in Lines(child):
            if int(line) == 100:
                break
        child.send_signal(signal.SIGTERM)  # drain: it would wait for the handler
        time.sleep(0.2)
        assert child.poll() is None
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        child.kill()
        child.wait()
    acked = q.stats()["totals"]["acked"]
    rest = drain_all(q, n - acked)
    assert len(rest) == len(set(rest)) == n - acked and set(rest) <= set(range(n))
    assert 100 in rest and q.stats()["totals"]["recovered"] >= 1


def drain_all(q: taskq.Queue, want: int) -> list[int]:
    got: list[int] = []
    deadline = time.monotonic() + 20
    while len(got) < want and time.monotonic() < deadline:
        with q.take(max=64, timeout=0.2) as b:
            got += b.values()
    return got


def test_blocking_calls_release_the_gil(make_queue):
    q = make_queue()
    got = []
    t = threading.Thread(target=lambda: got.extend(q.take(timeout=5).values()))
    t0 = time.monotonic()
    t.start()
    time.sleep(0.1)  # the thread waits inside tq_take: this thread must still run
    q.push(77)
    t.join(10)
    assert got == [77] and time.monotonic() - t0 < 4


def test_work_in_threads(make_queue):
    q = make_queue(capacity=5000, backoff=0, max_attempts=3)
    n = 2000
    q.push_many(range(n))
    q.push(b"payload")
    seen = collections.Counter()
    views = []
    lock = threading.Lock()

    class Boom(Exception):
        code = 42

    def handler(task):
        if task.kind != taskq.Kind.INT:
            views.append(task.view)
            assert bytes(task.view) == b"payload"
            with pytest.raises(taskq.InvalidArgument):
                task.ack()  # work acks it
            return
        with lock:
            seen[task.value] += 1
        if task.value % 97 == 0 and task.attempt == 1:
            raise Boom("first try fails")
    r = taskq.work(q, handler, concurrency=3, batch=32, idle_exit=0.5)
    assert set(seen) == set(range(n))
    assert all(seen[v] == (2 if v % 97 == 0 else 1) for v in range(n))
    assert r.acked == n + 1 and r.failed == len(range(0, n, 97)) and r.handled == r.acked + r.failed
    assert r.ends == ["idle"] * 3
    with pytest.raises(ValueError):
        views[0][0]  # released when the handler returned
    assert q.stats()["totals"]["retried"] == r.failed


def test_work_stop_event_and_max_tasks(make_queue):
    q = make_queue(capacity=1000)
    q.push_many(range(100))
    r = taskq.work(q, lambda t: None, concurrency=2, max_tasks=30)
    assert r.handled == 30 and r.ends == ["max_tasks", "max_tasks"]
    stop = threading.Event()
    stop.set()
    r = taskq.work(q, lambda t: None, stop=stop)
    assert r.ends == ["signal"]
    q.drain()
    r = taskq.work(q, lambda t: None)
    assert r.ends == ["draining"]
    for bad in ({"concurrency": 0}, {"batch": 0}, {"batch": 5000}, {"max_tasks": -1}):
        with pytest.raises(taskq.InvalidArgument):
            taskq.work(q, lambda t: None, **bad)
    with pytest.raises(taskq.InvalidArgument):
        taskq.work(q, None)  # type: ignore[arg-type]


CHILD_PRODUCER = """
import sys, taskq
q = taskq.Queue.open(sys.argv[1])
n = int(sys.argv[2])
for i in range(0, n, 100):
    q.push_many([b"task-%d" % j for j in range(i, min(n, i + 100))], batch=64)
q.push_json({"done": n})
"""


def test_two_python_processes(make_queue):
    q = make_queue(capacity=500, max_payload=64)  # smaller than what is pushed: the producer waits for room
    n = 3000
    child = spawn(CHILD_PRODUCER, q.name, str(n))
    got = []
    try:
        end = None
        deadline = time.monotonic() + 30
        while end is None and time.monotonic() < deadline:
            with q.take(max=64, timeout=0.5) as b:
                for t in b:
                    if t.kind == taskq.Kind.JSON:
                        end = t.json()
                    else:
                        got.append(t.data)
        assert child.wait(timeout=10) == 0
    finally:
        child.kill()
        child.wait()
    assert end == {"done": n} and got == [b"task-%d" % j for j in range(n)]


def test_reading_a_silent_child_fails_in_time():
    child = spawn("import time; time.sleep(30)")
    try:
        t0 = time.monotonic()
        with pytest.raises(pytest.fail.Exception, match="timed out"):
            Lines(child, timeout=0.3).readline()
        assert time.monotonic() - t0 < 10
    finally:
        child.kill()
        child.wait()
