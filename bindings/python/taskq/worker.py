# SPDX-License-Identifier: MIT
"""taskq.work: handler threads over the library's tq_worker_run."""
from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable

from . import _lib
from ._lib import TASK_WORDS, lib
from .errors import Error, InvalidArgument, error
from .queue import Batch, Queue, Task, seconds_to_ns

__all__ = ["work", "WorkResult"]

_ENDS = {1: "signal", 2: "draining", 3: "stopped", 4: "idle", 5: "max_tasks"}


@dataclass
class WorkResult:
    """What :func:`work` did, summed over its threads (tq_worker_result).

    ``handled == acked + failed + lost``; ``skipped``: tasks whose lease was
    lost before their turn. ``ends``: why each thread returned ("signal"
    for a stop request or signal, "draining", "stopped", "idle",
    "max_tasks")."""

    handled: int = 0
    acked: int = 0
    failed: int = 0
    lost: int = 0
    skipped: int = 0
    ends: list[str] = field(default_factory=list)


class _WorkerBatch(Batch):
    """The one task the worker hands to the handler: the worker acks or
    fails it, so the task's ack() and fail() are refused (touch works)."""

    __slots__ = ()

    def _settle(self, idx: list[int], fail: Any, quiet: bool = False) -> None:
        raise InvalidArgument("taskq.work acks or fails the task itself: return to ack it, raise to fail it")


def _fail_code(e: BaseException) -> int:
    code = getattr(e, "code", None)
    if isinstance(code, int) and not isinstance(code, bool) and code and -2**31 <= code < 2**31:
        return code
    return 1


def work(q: Queue, handler: Callable[[Task], Any], *, concurrency: int = 1, batch: int = 64,
         max_tasks: int = 0, idle_exit: float | None = None, stop: threading.Event | None = None,
         signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> WorkResult:
    """Runs ``handler`` on the queue's tasks in ``concurrency`` threads, each
    a tq_worker_run loop (take ``batch`` tasks, handle them in order, ack
    the successes together, extend the leases of the tasks waiting their
    turn), until the queue is drained or stopped, ``idle_exit`` seconds pass
    with no task, ``max_tasks`` (split among the threads) are handled, the
    ``stop`` event is set, or a signal of ``signals`` arrives.

    The handler gets a :class:`Task`. Returning acks it; raising fails it
    with the exception's type and message (the exception's ``code``
    attribute, if a non-zero int, is the error code; else 1): it is retried
    with backoff, then dead. The task's payload view is valid while the
    handler runs.

    A signal drains gracefully, as ``taskq work`` does: each thread finishes
    and acks the batch it holds, takes nothing more, and returns; work()
    then returns. A second signal ends the process at once (``os._exit``,
    status 128 + the signal's number), as ``taskq work`` does: the tasks it
    held go back to the queue by recovery, as for a process killed. Signal
    handlers are installed only when work() runs in the main thread, and
    restored on return. The GIL is released while the
    library waits, so threads help when handlers wait on I/O or release the
    GIL themselves; for CPU-bound Python handlers, run several processes.
    Raises the queue's error if a thread's loop failed (the others are
    stopped first)."""
    for what, v, lo, hi in (("concurrency", concurrency, 1, 1024), ("batch", batch, 1, _lib.MAX_BATCH),
                            ("max_tasks", max_tasks, 0, 2**64 - 1)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise InvalidArgument(f"work {q.name}: {what} must be an integer in {lo}..{hi}, got {v!r}")
    if not callable(handler):
        raise InvalidArgument(f"work {q.name}: the handler is not callable")
    q._call(lambda h: 0)  # InvalidArgument if the handle is closed
    flag = ctypes.c_int(0)

    def on_task(tp: Any, _arg: Any, msg: int, size: int) -> int:
        buf = array("Q", ctypes.string_at(ctypes.addressof(tp.contents), 8 * TASK_WORDS))
        b = _WorkerBatch(q, buf, 1)
        try:
            handler(b[0])
            rc = 0
        except BaseException as e:  # a handler's error fails the task; nothing escapes into C
            text = f"{type(e).__name__}: {e}".encode("utf-8", "replace")[:size - 1]
            ctypes.memmove(msg, text, len(text))
            ctypes.memset(msg + len(text), 0, 1)
            rc = _fail_code(e)
        b._release((0,))  # the view, if any, ends here
        return rc

    cb = _lib.HANDLER(on_task)
    results: list[tuple[int, _lib.WorkerResult]] = []
    lock = threading.Lock()

    def run(share: int) -> None:
        try:
            loop(share)
        finally:
            os.write(wfd, b"x")  # its end, seen by work() with no lock of its own

    def loop(share: int) -> None:
        cfg = _lib.WorkerConfig()
        lib.tq_worker_config_init(ctypes.byref(cfg))
        cfg.batch = batch
        cfg.max_tasks = share
        cfg.idle_exit_ns = 0 if idle_exit is None else max(seconds_to_ns(idle_exit, "idle_exit"), 1)
        cfg.stop = ctypes.pointer(flag)
        res = _lib.WorkerResult()
        try:  # q.close() in another thread stops the loop (flag) and waits for it
            rc = q._call(lib.tq_worker_run, cb, None, ctypes.byref(cfg), ctypes.byref(res))
        except Error as e:  # closed before this thread began
            rc = e.code
        with lock:
            results.append((rc, res))
        if rc:
            flag.value = 1  # one loop failed: the others stop too

    shares = [0] * concurrency
    if max_tasks:
        shares = [max_tasks // concurrency + (i < max_tasks % concurrency) for i in range(concurrency)]
        shares = [s for s in shares if s] or [0]
    old: dict[int, Any] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        if flag.value and signalled:
            os._exit(128 + signum)  # the second: at once; recovery returns the leases
        signalled.append(signum)
        flag.value = 1

    signalled: list[int] = []
    deferred: list[int] = []

    def defer(signum: int, _frame: Any) -> None:
        deferred.append(signum)

    # An exception a signal handler raises (KeyboardInterrupt with
    # signals=()) lands at any bytecode of the main thread, inside
    # threading's own locks too, where CPython 3.11 leaves a lock held
    # (Thread.start() waiting for its thread: a hang) or released twice.
    # So while the threads start, and while work() cleans up, such
    # handlers are deferred (the signal recorded, and raised again
    # after); between, work() waits on a pipe the threads write their
    # end to, where a signal interrupts it with no lock held.
    main = threading.current_thread() is threading.main_thread()

    def hold() -> dict[int, Any]:
        held: dict[int, Any] = {}
        if main:
            for n in signal.valid_signals():
                h = signal.getsignal(n)
                if callable(h) and h is not on_signal and h is not defer:
                    held[n] = signal.signal(n, defer)
        return held

    def release(held: dict[int, Any]) -> None:
        while held:
            n, h = held.popitem()
            signal.signal(n, h)
        while deferred:
            signal.raise_signal(deferred.pop(0))  # its handler runs now, where an exception is safe

    rfd, wfd = os.pipe()
    threads = [threading.Thread(target=run, args=(s,), name=f"taskq-work-{i}", daemon=True)
               for i, s in enumerate(shares)]
    started = ended = 0
    registered = False
    held = hold()
    try:
        if main:
            for s in signals:
                old[s] = held.pop(s) if s in held else signal.getsignal(s)
                signal.signal(s, on_signal)
        with q._cv:
            q._stops.append(flag)
        registered = True
        try:
            for t in threads:
                t.start()
                started += 1
            release(held)
            while ended < started:
                if select.select([rfd], [], [], 0.1)[0]:  # wakes to see `stop`
                    ended += len(os.read(rfd, 64))
                if stop is not None and stop.is_set():
                    flag.value = 1
        finally:
            # Left by an exception too: the loops drain what they hold
            # and return before work() does.
            flag.value = 1
            while ended < started:
                ended += len(os.read(rfd, 64))
    finally:
        held.update(hold())
        try:
            if registered:
                with q._cv:
                    q._stops.remove(flag)
            for s, f in old.items():  # restored by release(), as the others
                signal.signal(s, defer)
                held[s] = f
            if ended == started:  # else a second exception left them running: the pipe stays theirs
                os.close(rfd)
                os.close(wfd)
        finally:
            release(held)
    out = WorkResult()
    err = 0
    for rc, r in results:
        for n in ("handled", "acked", "failed", "lost", "skipped"):
            setattr(out, n, getattr(out, n) + getattr(r, n))
        if rc:
            err = err or rc
        else:
            out.ends.append(_ENDS.get(r.end, str(r.end)))
    if err:
        e = error(err, f"work {q.name}")
        e.result = out  # type: ignore[attr-defined]
        raise e
    return out
