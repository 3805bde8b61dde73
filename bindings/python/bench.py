#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Tasks per second between two Python processes: taskq (one task per call,
and 64 per call) beside multiprocessing.Queue, multiprocessing.Pipe and a
Redis list (redis-py, a private redis-server on a Unix socket), in the same
run. `make bench-python` runs it with Debian's /usr/bin/python3.

Each row: a producer process sends the integers 0..N-1, a consumer process
receives them and checks that every one arrives exactly once (a seen-map;
any loss or duplicate fails the run); the time is from the moment both are
released until the consumer has the last one. Rows run in rounds, in turn,
and the median of the rounds is reported, so that the machine's swings
weigh on every row alike; ratios are against multiprocessing.Queue, one
task per put/get.
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import taskq  # noqa: E402

BATCH = 64
ctx = mp.get_context("fork")


class Check:
    """Every value 0..n-1 exactly once."""

    def __init__(self, n: int):
        self.n = n
        self.seen = bytearray(n)
        self.count = 0
        self.bad = 0

    def add(self, vals: list[int]) -> None:
        seen = self.seen
        for v in vals:
            if seen[v]:
                self.bad += 1
            seen[v] = 1
        self.count += len(vals)

    def add1(self, v: int) -> None:
        if self.seen[v]:
            self.bad += 1
        self.seen[v] = 1
        self.count += 1

    def ok(self) -> bool:
        return self.count == self.n and self.bad == 0 and self.seen.count(0) == 0


def chunks(n: int) -> range:
    return range(0, n, BATCH)


# Each transport: setup(n) -> state shared with the children through fork;
# produce(state, n) and consume(state, n, check) run in the children.

def taskq_setup(n: int) -> Any:
    name = f"bench-python-{os.getpid()}"
    try:
        taskq.destroy(name)
    except taskq.QueueNotFound:
        pass
    return taskq.Queue.create(name, capacity=1 << 16, max_payload=0)


def taskq_teardown(q: taskq.Queue) -> None:
    q.close()
    taskq.destroy(q.name)


def taskq1_produce(q0: taskq.Queue, n: int) -> None:
    with taskq.Queue.open(q0.name) as q:
        push = q.push
        for i in range(n):
            push(i)


def taskq1_consume(q0: taskq.Queue, n: int, check: Check) -> None:
    with taskq.Queue.open(q0.name) as q:
        get = q.get
        add1 = check.add1
        for _ in range(n):
            add1(get())


def taskq1take_consume(q0: taskq.Queue, n: int, check: Check) -> None:
    with taskq.Queue.open(q0.name) as q:
        take = q.take
        add1 = check.add1
        for _ in range(n):
            with take(max=1) as b:
                add1(b[0].value)


def taskq64_produce(q0: taskq.Queue, n: int) -> None:
    with taskq.Queue.open(q0.name) as q:
        push_many = q.push_many
        for i in chunks(n):
            push_many(range(i, min(n, i + BATCH)))


def taskq64_consume(q0: taskq.Queue, n: int, check: Check) -> None:
    with taskq.Queue.open(q0.name) as q:
        take = q.take
        while check.count < n:
            with take(max=BATCH) as b:
                check.add(b.values())


def mpq_setup(n: int) -> Any:
    return ctx.Queue()


def mpq1_produce(q: Any, n: int) -> None:
    put = q.put
    for i in range(n):
        put(i)


def mpq1_consume(q: Any, n: int, check: Check) -> None:
    get = q.get
    add1 = check.add1
    for _ in range(n):
        add1(get())


def mpq64_produce(q: Any, n: int) -> None:
    for i in chunks(n):
        q.put(list(range(i, min(n, i + BATCH))))


def mpq64_consume(q: Any, n: int, check: Check) -> None:
    while check.count < n:
        check.add(q.get())


def pipe_setup(n: int) -> Any:
    return ctx.Pipe(duplex=False)


def pipe1_produce(p: Any, n: int) -> None:
    send = p[1].send
    for i in range(n):
        send(i)


def pipe1_consume(p: Any, n: int, check: Check) -> None:
    recv = p[0].recv
    add1 = check.add1
    for _ in range(n):
        add1(recv())


def pipe64_produce(p: Any, n: int) -> None:
    for i in chunks(n):
        p[1].send(list(range(i, min(n, i + BATCH))))


def pipe64_consume(p: Any, n: int, check: Check) -> None:
    while check.count < n:
        check.add(p[0].recv())


class RedisServer:
    """A private redis-server on a Unix socket in a temporary directory,
    nothing saved to disk; stopped (and the directory removed) by stop()."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="taskq-bench-redis-")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", self.sock, "--unixsocketperm",
                                      "700", "--save", "", "--appendonly", "no", "--dir", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.sock)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


REDIS: RedisServer | None = None
KEY = "taskq-bench"


def redis_setup(n: int) -> Any:
    import redis
    r = redis.Redis(unix_socket_path=REDIS.sock)  # type: ignore[union-attr]
    r.delete(KEY)
    r.close()
    return REDIS.sock  # type: ignore[union-attr]


def _redis(sock: str) -> Any:
    import redis
    return redis.Redis(unix_socket_path=sock)


def redis1_produce(sock: str, n: int) -> None:
    r = _redis(sock)
    for i in range(n):
        r.rpush(KEY, i)


def redis1_consume(sock: str, n: int, check: Check) -> None:
    r = _redis(sock)
    add1 = check.add1
    for _ in range(n):
        add1(int(r.blpop(KEY, 0)[1]))


def redis64_produce(sock: str, n: int) -> None:
    r = _redis(sock)
    for i in chunks(n):
        r.rpush(KEY, *range(i, min(n, i + BATCH)))


def redis64_consume(sock: str, n: int, check: Check) -> None:
    r = _redis(sock)
    while check.count < n:
        vals = r.lpop(KEY, BATCH)
        if vals is None:  # empty: wait for one
            vals = [r.blpop(KEY, 0)[1]]
        check.add([int(v) for v in vals])


# (label, setup, produce, consume, teardown, tasks at scale 1)
ROWS: list[tuple[str, Callable, Callable, Callable, Callable | None, int]] = [
    ("taskq, 1 per call (push / get)", taskq_setup, taskq1_produce, taskq1_consume, taskq_teardown, 300_000),
    ("taskq, 1 per call (push / with take(max=1))", taskq_setup, taskq1_produce, taskq1take_consume,
     taskq_teardown, 200_000),
    ("taskq, 64 per call (push_many / take(max=64))", taskq_setup, taskq64_produce, taskq64_consume,
     taskq_teardown, 3_000_000),
    ("multiprocessing.Queue, 1 per put/get", mpq_setup, mpq1_produce, mpq1_consume, None, 200_000),
    ("multiprocessing.Queue, 64 per put (a list)", mpq_setup, mpq64_produce, mpq64_consume, None, 2_000_000),
    ("multiprocessing.Pipe, 1 per send/recv", pipe_setup, pipe1_produce, pipe1_consume, None, 300_000),
    ("multiprocessing.Pipe, 64 per send (a list)", pipe_setup, pipe64_produce, pipe64_consume, None, 2_000_000),
    ("Redis list, 1 per call (RPUSH / BLPOP)", redis_setup, redis1_produce, redis1_consume, None, 50_000),
    ("Redis list, 64 per call (RPUSH / LPOP 64)", redis_setup, redis64_produce, redis64_consume, None, 1_000_000),
]
BASE = "multiprocessing.Queue, 1 per put/get"


def _producer(produce: Callable, state: Any, n: int, go: Any) -> None:
    go.wait()
    produce(state, n)


def _consumer(consume: Callable, state: Any, n: int, go: Any, out: Any) -> None:
    check = Check(n)
    go.wait()
    consume(state, n, check)
    out.send((time.perf_counter(), check.ok(), check.count, check.bad))


def run_row(row: tuple, scale: float, timeout: float) -> float:
    label, setup, produce, consume, teardown, n0 = row
    n = max(BATCH, int(n0 * scale))
    state = setup(n)
    go = ctx.Event()
    rx, tx = ctx.Pipe(duplex=False)
    cons = ctx.Process(target=_consumer, args=(consume, state, n, go, tx))
    prod = ctx.Process(target=_producer, args=(produce, state, n, go))
    try:
        cons.start()
        prod.start()
        time.sleep(0.2)  # both started and waiting
        t0 = time.perf_counter()
        go.set()
        if not rx.poll(timeout):
            raise RuntimeError(f"{label}: no result within {timeout} s")
        t1, ok, count, bad = rx.recv()
        if not ok:
            raise RuntimeError(f"{label}: {count} of {n} tasks received, {bad} duplicates")
        prod.join(timeout)
        cons.join(timeout)
        return n / (t1 - t0)
    finally:
        for p in (prod, cons):
            if p.is_alive():
                p.kill()
                p.join()
        if teardown:
            teardown(state)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> int:
    global REDIS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every row (default 3); the median is shown")
    ap.add_argument("--scale", type=float, default=1.0, help="tasks per row, times this (default 1)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds a row may take before the run fails")
    args = ap.parse_args()
    if args.rounds < 1 or not args.scale > 0:
        ap.error("--rounds must be >= 1 and --scale > 0")
    rows = list(ROWS)
    note = ""
    if not shutil.which("redis-server"):
        rows = [r for r in rows if not r[0].startswith("Redis")]
        note = "Redis rows skipped: redis-server is missing (Debian package redis-server; scripts/install-deps.sh)"
    elif importlib.util.find_spec("redis") is None:
        rows = [r for r in rows if not r[0].startswith("Redis")]
        note = "Redis rows skipped: redis-py is missing (Debian package python3-redis)"
    print(f"# taskq Python benchmark: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_model()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()} ({sys.executable}), libtaskq {taskq.library_path}")
    if note:
        print(f"# {note}")
    if any(r[0].startswith("Redis") for r in rows):
        REDIS = RedisServer()
    rates: dict[str, list[float]] = {r[0]: [] for r in rows}
    try:
        for rnd in range(args.rounds):
            for row in rows:
                rate = run_row(row, args.scale, args.timeout)
                rates[row[0]].append(rate)
                print(f"# round {rnd + 1}: {row[0]}: {rate:,.0f} tasks/s", file=sys.stderr, flush=True)
    finally:
        if REDIS:
            REDIS.stop()
    med = {k: statistics.median(v) for k, v in rates.items()}
    base = med[BASE]
    width = max(len(k) for k in med)
    print(f"{'transport':{width}}  {'tasks/s (median)':>16}  {'min .. max':>21}  {'x mp.Queue':>10}")
    for k, v in med.items():
        lo, hi = min(rates[k]), max(rates[k])
        print(f"{k:{width}}  {v:16,.0f}  {lo:10,.0f} .. {hi:<9,.0f}  {v / base:10.2f}")
    one = med["taskq, 1 per call (push / get)"] / base
    many = med["taskq, 64 per call (push_many / take(max=64))"] / base
    print(f"targets: taskq 64 per call >= 20x multiprocessing.Queue: {many:.1f}x {'met' if many >= 20 else 'MISSED'}; "
          f"taskq 1 per call >= 2x: {one:.1f}x {'met' if one >= 2 else 'MISSED'}")
    print("every task of every row checked: each value 0..N-1 received exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
