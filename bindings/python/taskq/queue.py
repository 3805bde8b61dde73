# SPDX-License-Identifier: MIT
"""Queue, Batch and Task: the Python face of libtaskq's queue calls."""
from __future__ import annotations

import ctypes
import enum
import json as _json
import threading
import time
import weakref
from _thread import get_ident
from array import array
from ctypes import byref, c_uint64, c_void_p
from itertools import accumulate, islice
from typing import Any, Iterable, Iterator

from . import _lib
from ._lib import KIND_INT, KIND_JSON, KIND_STRING, TASK_WORDS, W_DATA, W_ENQ, W_ID, W_LENKIND, W_VALUE, lib
from .errors import BadName, Error, InvalidArgument, LeaseLost, PayloadTooLarge, error

__all__ = ["Kind", "RunState", "Queue", "Batch", "Task", "PayloadView", "DeadLetters", "destroy", "seconds_to_ns"]

_ZERO_TASK = array("Q", bytes(8 * TASK_WORDS))
_LEN_MASK = 0xFFFFFFFF
_ETIMEDOUT = -10
#: The longest single wait inside the library: a wait without limit (or a
#: long one) is made of such slices, so that signal handlers (Ctrl-C) run
#: and close() from another thread is noticed between them.
_SLICE_NS = 200_000_000


class Kind(enum.IntEnum):
    """A task's kind (enum tq_kind)."""

    INT = KIND_INT
    STRING = KIND_STRING
    JSON = KIND_JSON

    def __str__(self) -> str:
        return self.name.lower()


_KINDS = {k.value: k for k in Kind}


class RunState(enum.IntEnum):
    """A queue's run state (enum tq_run_state); ``str()`` gives the name
    ``taskq stats`` prints ("running", ...)."""

    RUNNING = 0
    DRAINING = 1
    STOPPED = 2
    PAUSED = 3

    def __str__(self) -> str:
        return self.name.lower()


def seconds_to_ns(seconds: float | None, what: str = "timeout") -> int:
    """A timeout in seconds as the library's nanoseconds: None waits
    forever (TQ_WAIT_FOREVER), 0 does not wait. Negative values, NaN and
    non-numbers raise InvalidArgument."""
    if seconds is None:
        return _lib.WAIT_FOREVER
    try:
        ns = seconds * 1e9
    except TypeError:
        raise InvalidArgument(f"{what}: seconds expected, got {type(seconds).__name__}") from None
    if not ns >= 0:  # also NaN
        raise InvalidArgument(f"{what}: {seconds!r} is not a number of seconds >= 0")
    return _lib.WAIT_FOREVER - 1 if ns >= _lib.WAIT_FOREVER - 1 else int(ns)


def _check_name(name: str) -> bytes:
    if not isinstance(name, str):
        raise InvalidArgument(f"queue name: str expected, got {type(name).__name__}")
    if "\0" in name:  # C would read the name up to it: another queue
        raise error(BadName.code, f"queue name {name!r}: has a NUL character")
    return name.encode("utf-8", "surrogateescape")


def destroy(name: str) -> None:
    """Removes the queue ``name`` (tq_destroy): attached processes keep
    working on it until they close. Raises QueueNotFound if there is none."""
    rc = lib.tq_destroy(_check_name(name))
    if rc:
        raise error(rc, f"destroy {name}")


def _age_s(now: int, t: int) -> float:
    return (now - t) / 1e9 if t and now > t else 0.0


def _counters(c: _lib.Counters) -> dict[str, int]:
    return {n: getattr(c, n) for n, _ in _lib.Counters._fields_}


def _latency(lat: _lib.Latency) -> dict[str, float | int]:
    return {"count": lat.count, "mean": lat.mean_ns / 1e9, "p50": lat.p50_ns / 1e9, "p90": lat.p90_ns / 1e9,
            "p99": lat.p99_ns / 1e9, "max": -1 if lat.max_ns == _lib.WAIT_FOREVER else lat.max_ns / 1e9}


def _state_name(s: int) -> str:
    try:
        return str(RunState(s))
    except ValueError:
        return "invalid"


_PROC_STATE = {1: "waiting for tasks", 2: "waiting for room"}


def _take_ack(h: int, buf: array, got: list[Any], timeout_ns: int) -> int:
    """Queue.get's call: takes one task into buf, and if one came, appends
    its length-kind word, value or payload, and the ack's result to got
    (the payload is read while the call is counted: the memory is mapped)."""
    addr = buf.buffer_info()[0]
    n = lib.tq_take(h, addr, 1, timeout_ns)
    if n == 1:
        lk = buf[W_LENKIND]
        got.append(lk)
        got.append(buf[W_VALUE] if (lk >> 32) & 0xFFFF == KIND_INT else ctypes.string_at(buf[W_DATA], lk & _LEN_MASK))
        got.append(lib.tq_ack(h, addr, 1))
    return n


class Queue:
    """A handle on a taskq queue (a tq_queue).

    Make one with :meth:`create` or :meth:`open`; use it as a context
    manager, or call :meth:`close`, which returns the leases of the tasks it
    still holds to the queue. A handle may be used from several threads at
    once; it cannot be used in a child after ``fork()`` (open the queue
    again there). Timeouts are in seconds: ``None`` waits without limit,
    ``0`` does not wait.
    """

    __slots__ = ("_h", "name", "observer", "max_payload", "_lease_ns", "dead", "_lock", "_cv", "_busy", "_closing",
                 "_viewed", "_stops", "__weakref__")

    def __init__(self, handle: int, name: str, observer: bool = False):
        """Not for direct use: see :meth:`create` and :meth:`open`."""
        self._h: int | None = handle
        self._lock = threading.Lock()  # guards _h, _closing, _busy
        self._cv = threading.Condition(self._lock)
        self._busy: list[int] = []  # the thread ids of the calls into the library in progress
        self._closing = False
        self._viewed: weakref.WeakSet[Batch] = weakref.WeakSet()  # batches with payload views
        self._stops: list[ctypes.c_int] = []  # the stop flags of running work() loops
        self.name = name
        self.observer = observer
        cfg = _lib.Config()
        lib.tq_config_get(handle, byref(cfg))
        #: The queue's largest payload in bytes.
        self.max_payload: int = cfg.max_payload
        self._lease_ns = cfg.lease_ns
        #: The dead-letter area: ``q.dead.list()``, ``.kick()``, ``.purge()``.
        self.dead = DeadLetters(self)

    # ---------------------------------------------------------- lifecycle

    @classmethod
    def create(cls, name: str, *, capacity: int | None = None, max_payload: int | None = None,
               mode: int | None = None, max_attempts: int | None = None, dead_capacity: int | None = None,
               delay_capacity: int | None = None, lease: float | None = None, backoff: float | None = None, backoff_max: float | None = None,
               payload_bytes: int | None = None, exist_ok: bool = False) -> Queue:
        """Creates the queue ``name`` and attaches to it (tq_create).

        Options left at None take the library's defaults: capacity 10000
        tasks, max_payload 4096 bytes, mode 0o600, max_attempts 5,
        dead_capacity max(1, capacity / 10), delay_capacity max(1, capacity /
        20) (delayed tasks, retries waiting for their backoff, held without
        taking room from the capacity), lease 30 s, backoff 0.1 s
        (the first retry's delay), backoff_max 60 s, payload_bytes (the area
        that holds the payloads of tasks in slots, rounded up to 64; a push
        that finds it full waits as on a full queue) capacity x max_payload
        while that is at most 64 MiB, else max(64 MiB, 256 bytes a task).
        Times are seconds.
        With ``exist_ok``, an existing queue of that name is opened instead
        (its own configuration stands). Raises QueueExists, BadName,
        InvalidArgument (the message names the field), PermissionDenied,
        OutOfMemory.
        """
        cfg = _lib.Config()
        lib.tq_config_init(byref(cfg))
        for field, v in (("capacity", capacity), ("max_payload", max_payload), ("mode", mode),
                         ("max_attempts", max_attempts), ("dead_capacity", dead_capacity),
                         ("delay_capacity", delay_capacity)):
            if v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFFFFFF:
                raise InvalidArgument(f"create {name}: {field} must be an integer in 0..4294967295, got {v!r}")
            setattr(cfg, field, v)
        if payload_bytes is not None:
            if not isinstance(payload_bytes, int) or isinstance(payload_bytes, bool) or not 0 <= payload_bytes < 2**64:
                raise InvalidArgument(f"create {name}: payload_bytes must be an integer in 0..2**64-1, got {payload_bytes!r}")
            cfg.payload_bytes = payload_bytes
        for field, v in (("lease_ns", lease), ("backoff_base_ns", backoff), ("backoff_max_ns", backoff_max)):
            if v is not None:
                setattr(cfg, field, seconds_to_ns(v, field[:-3]))
        h = c_void_p()
        rc = lib.tq_create(_check_name(name), byref(cfg), byref(h))
        if rc == -3 and exist_ok:
            return cls.open(name)
        if rc:
            raise error(rc, f"create {name}")
        return cls(h.value or 0, name)

    @classmethod
    def open(cls, name: str, *, observer: bool = False) -> Queue:
        """Attaches to the existing queue ``name`` (tq_open). An
        ``observer`` handle (tq_open_observer) reads statistics, the run
        state and events without registering as a process; calls that change
        tasks raise ObserverOnly. Raises QueueNotFound, BadName, BadQueue,
        VersionMismatch, PermissionDenied, TooManyProcesses, ..."""
        h = c_void_p()
        fn = lib.tq_open_observer if observer else lib.tq_open
        rc = fn(_check_name(name), byref(h))
        if rc:
            raise error(rc, f"open {name}")
        return cls(h.value or 0, name, observer)

    destroy = staticmethod(destroy)

    def close(self) -> None:
        """Detaches (tq_close): tasks still leased by this handle return to
        ready at once. Calls in progress in other threads end first (a
        waiting take, get or push within 0.2 s, raising InvalidArgument;
        :func:`taskq.work` loops as on a stop request); every payload view
        of its tasks is released (reading one then raises ValueError).
        Calls after close raise InvalidArgument. Closing twice does
        nothing; closing from inside a call on this handle (a work()
        handler) raises InvalidArgument."""
        with self._cv:
            if self._h is None or self._closing:
                return
            if threading.get_ident() in self._busy:
                raise InvalidArgument(f"close {self.name}: called from inside a call on this handle")
            self._closing = True
            for f in self._stops:
                f.value = 1
            while self._busy:  # (the timeout: a call may end between the test and the wait)
                self._cv.wait(0.05)
            h, self._h = self._h, None
            self._closing = False
            viewed = list(self._viewed)
        for b in viewed:
            b._release_views()
        lib.tq_close(h)

    @property
    def closed(self) -> bool:
        return self._h is None

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def __repr__(self) -> str:
        what = "closed" if self._h is None else ("observer" if self.observer else "open")
        return f"<taskq.Queue {self.name!r} {what}>"

    def _call(self, fn: Any, *args: Any) -> Any:
        """fn(handle, *args), the call counted in progress in this thread
        meanwhile (close() waits for it). InvalidArgument once the handle
        is closed or closing. Without a lock: a thread enters (one append
        to _busy, atomic) before it looks at _closing, which close() sets
        before it looks at _busy."""
        me = get_ident()
        busy = self._busy
        busy.append(me)
        try:
            h = self._h
            if h is None or self._closing:
                raise InvalidArgument(f"queue {self.name}: the handle is closed")
            return fn(h, *args)
        finally:
            busy.remove(me)
            if self._closing:
                with self._cv:
                    self._cv.notify_all()

    def _wait(self, fn: Any, timeout_ns: int, *args: Any) -> int:
        """fn(handle, *args, timeout) for a call that waits up to timeout_ns
        (WAIT_FOREVER: no limit), made of waits of at most _SLICE_NS so that
        signals and close() are seen between them; each counted as _call
        does (inline: this is every push's and take's path)."""
        end = None
        wait = timeout_ns
        if timeout_ns > _SLICE_NS:
            wait = _SLICE_NS
            if timeout_ns != _lib.WAIT_FOREVER:
                end = time.monotonic_ns() + timeout_ns
        me = get_ident()
        busy = self._busy
        while True:
            busy.append(me)
            try:
                h = self._h
                if h is None or self._closing:
                    raise InvalidArgument(f"queue {self.name}: the handle is closed")
                rc = fn(h, *args, wait)
            finally:
                busy.remove(me)
                if self._closing:
                    with self._cv:
                        self._cv.notify_all()
            if rc != _ETIMEDOUT or wait == timeout_ns:
                return rc
            if end is not None:
                left = end - time.monotonic_ns()
                if left <= 0:
                    return rc
                wait = min(_SLICE_NS, left)

    # ------------------------------------------------------------- pushes

    def push(self, item: int | bytes | bytearray | memoryview | str, *, timeout: float | None = None,
             delay: float | None = None) -> int:
        """Pushes one task and returns its id: an ``int`` (0..2**64-1) as an
        integer task, ``bytes``-like as a string task (copied into the
        queue), ``str`` as its UTF-8 bytes. ``timeout``: how long to wait
        for room while the queue is full (None: no limit, 0: not at all;
        then QueueFull). ``delay``: seconds before the task becomes ready
        (tq_push_delayed). Raises PayloadTooLarge, QueueFull, Stopped,
        InvalidArgument (another type, an integer out of range)."""
        t = array("Q", _ZERO_TASK)
        if type(item) is not int and isinstance(item, int) and not isinstance(item, bool):
            item = int(item)  # an int subclass (IntEnum, ...)
        if type(item) is int:
            if not 0 <= item < 1 << 64:
                raise InvalidArgument(f"push {self.name}: integer tasks are 0..2**64-1, got {item}")
            t[W_VALUE] = item
            t[W_LENKIND] = KIND_INT << 32
            return self._push1(t, None, timeout, delay)
        return self._push_payload(t, item, KIND_STRING, timeout, delay)

    def push_json(self, obj: Any, *, timeout: float | None = None, delay: float | None = None) -> int:
        """Pushes ``obj`` encoded with ``json.dumps`` (compact, UTF-8) as a
        JSON task and returns its id. As :meth:`push` otherwise."""
        data = _json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        return self._push_payload(array("Q", _ZERO_TASK), data, KIND_JSON, timeout, delay)

    def _push_payload(self, t: array, item: Any, kind: int, timeout: float | None, delay: float | None) -> int:
        if isinstance(item, str):
            item = item.encode()
        elif not isinstance(item, bytes):
            if isinstance(item, bool) or not isinstance(item, (bytearray, memoryview)):
                raise InvalidArgument(f"push {self.name}: int, bytes-like or str expected, "
                                      f"got {type(item).__name__}")
            item = bytes(item)
        if len(item) > self.max_payload:
            raise error(PayloadTooLarge.code, f"push {self.name}: {len(item)} bytes, max_payload {self.max_payload}")
        t[W_DATA] = ctypes.cast(item, c_void_p).value or 0
        t[W_LENKIND] = (kind << 32) | len(item)
        return self._push1(t, item, timeout, delay)

    def _push1(self, t: array, keep: Any, timeout: float | None, delay: float | None) -> int:
        addr = t.buffer_info()[0]
        if delay:
            rc = self._wait(lib.tq_push_delayed, seconds_to_ns(timeout), addr, 1, seconds_to_ns(delay, "delay"))
        else:
            rc = self._wait(lib.tq_push, seconds_to_ns(timeout), addr, 1)
        if rc != 1:
            raise error(rc, f"push {self.name}", full=True)
        del keep  # the payload's bytes were read by the call
        return t[W_ID]

    def push_many(self, items: Iterable[Any], *, batch: int = 64, timeout: float | None = None,
                  delay: float | None = None, json: bool = False) -> int:
        """Pushes every item of ``items`` (as :meth:`push` would, or
        :meth:`push_json` with ``json=True``), ``batch`` tasks per call into
        the library (1..4096), and returns how many were pushed. Integers
        and payloads are best not mixed in one batch (a mixed batch takes
        the queue's locks; one of a kind goes through the lock-free lanes).
        ``timeout`` bounds each wait for room. On an error, the exception's
        ``pushed`` attribute says how many items went in before it (items
        0..pushed-1)."""
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= _lib.MAX_BATCH:
            raise InvalidArgument(f"push_many {self.name}: batch must be 1..{_lib.MAX_BATCH}, got {batch!r}")
        timeout_ns = seconds_to_ns(timeout)
        delay_ns = seconds_to_ns(delay, "delay") if delay else 0
        it = iter(items)
        done = 0
        while True:
            chunk = list(islice(it, batch))
            if not chunk:
                return done
            if json:
                chunk = [_json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode() for o in chunk]
            try:
                done += self._push_chunk(chunk, KIND_JSON if json else KIND_STRING, timeout_ns, delay_ns)
            except Error as e:
                e.pushed = done + getattr(e, "pushed", 0)  # type: ignore[attr-defined]
                raise

    def _push_ints(self, chunk: list[int], timeout_ns: int) -> int:
        """Integers alone, without a delay: tq_push_ints, from one array of
        the values (no task record each)."""
        try:
            vals = array("Q", chunk)
        except OverflowError:
            raise InvalidArgument(f"push {self.name}: integer tasks are 0..2**64-1") from None
        addr, n = vals.buffer_info()
        return self._push_all(lib.tq_push_ints, timeout_ns, addr, 8, n)

    def _push_all(self, fn: Any, timeout_ns: int, addr: int, stride: int, n: int, *extra: Any) -> int:
        """fn(handle, addr + done * stride, n - done, *extra, timeout) until
        all n went in; an error raises with ``pushed``: what went in before it."""
        done = 0
        while done < n:
            rc = self._wait(fn, timeout_ns, addr + done * stride, n - done, *extra)
            if rc < 0:
                e = error(rc, f"push {self.name}", full=True)
                e.pushed = done  # type: ignore[attr-defined]
                raise e
            done += rc
        return n

    def _push_chunk(self, chunk: list[Any], kind: int, timeout_ns: int, delay_ns: int) -> int:
        n = len(chunk)
        keep = None
        ints = all(type(v) is int for v in chunk)
        if not ints:  # int subclasses (IntEnum, ...) as ints
            chunk = [int(v) if type(v) is not int and isinstance(v, int) and not isinstance(v, bool) else v
                     for v in chunk]
            ints = all(type(v) is int for v in chunk)
        if ints and not delay_ns:
            return self._push_ints(chunk, timeout_ns)
        t = _ZERO_TASK * n
        if ints:
            try:
                t[W_VALUE::TASK_WORDS] = array("Q", chunk)
            except OverflowError:
                raise InvalidArgument(f"push {self.name}: integer tasks are 0..2**64-1") from None
            t[W_LENKIND::TASK_WORDS] = array("Q", [KIND_INT << 32]) * n
        else:
            words = []
            for v in chunk:
                if type(v) is int:
                    continue
                if isinstance(v, str):
                    v = v.encode()
                elif not isinstance(v, (bytes, bytearray, memoryview)) or isinstance(v, bool):
                    raise InvalidArgument(f"push {self.name}: int, bytes-like or str expected, "
                                          f"got {type(v).__name__}")
                if len(v) > self.max_payload:
                    raise error(PayloadTooLarge.code,
                                f"push {self.name}: {len(v)} bytes, max_payload {self.max_payload}")
                words.append(v)
            keep = b"".join(words)
            base = ctypes.cast(keep, c_void_p).value or 0
            offs = accumulate((len(w) for w in words), initial=0)
            k = 0
            for i, v in enumerate(chunk):
                if type(v) is int:
                    if not 0 <= v < 1 << 64:
                        raise InvalidArgument(f"push {self.name}: integer tasks are 0..2**64-1, got {v}")
                    t[i * TASK_WORDS + W_VALUE] = v
                    t[i * TASK_WORDS + W_LENKIND] = KIND_INT << 32
                else:
                    ln = len(words[k])
                    k += 1
                    t[i * TASK_WORDS + W_DATA] = base + next(offs)
                    t[i * TASK_WORDS + W_LENKIND] = (kind << 32) | ln
        addr = t.buffer_info()[0]
        if delay_ns:
            self._push_all(lib.tq_push_delayed, timeout_ns, addr, 8 * TASK_WORDS, n, delay_ns)
        else:
            self._push_all(lib.tq_push, timeout_ns, addr, 8 * TASK_WORDS, n)
        del keep  # the payloads' bytes were read by the calls
        return n

    # -------------------------------------------------------------- takes

    def take(self, max: int = 1, timeout: float | None = None) -> Batch:
        """Takes up to ``max`` ready tasks (1..4096), oldest first, leased
        to this handle, waiting up to ``timeout`` seconds while none is
        ready (None: no limit). Returns a :class:`Batch`, empty (and false)
        if nothing came within the timeout or the queue is paused. Use it
        as a context manager::

            with q.take(max=64, timeout=1.0) as batch:
                for task in batch:
                    handle(task)

        Raises Stopped if the run state is draining or stopped."""
        if type(max) is not int or not 1 <= max <= _lib.MAX_BATCH:
            raise InvalidArgument(f"take {self.name}: max must be 1..{_lib.MAX_BATCH}, got {max!r}")
        buf = _ZERO_TASK * max
        n = self._wait(lib.tq_take, seconds_to_ns(timeout), buf.buffer_info()[0], max)
        if n < 0:
            if n == -9 or n == -10:  # TQ_EAGAIN, TQ_ETIMEDOUT: nothing ready
                n = 0
            else:
                raise error(n, f"take {self.name}")
        return Batch(self, buf, n)

    def set_take_ahead(self, n: int) -> None:
        """Take-ahead, a consumer's prefetch (tq_set_take_ahead): with
        ``n`` >= 2, a :meth:`take` that asks for fewer than ``n`` tasks
        claims up to ``n`` fresh tasks at once and keeps the rest leased to
        this handle; its next takes hand those over first, each with its
        lease started anew. Kept tasks count as leased and other workers do
        not get them; one never handed over counts no attempt when its
        lease expires or its process dies, and :meth:`close` gives them
        back. 0 or 1: off (the default); at most 64."""
        if type(n) is not int or not 0 <= n <= _lib.TAKE_AHEAD_MAX:
            raise InvalidArgument(f"take-ahead {self.name}: n must be 0..{_lib.TAKE_AHEAD_MAX}, got {n!r}")
        rc = self._call(lib.tq_set_take_ahead, n)
        if rc:
            raise error(rc, f"take-ahead {self.name}")

    def get(self, timeout: float | None = None) -> Any:
        """Takes one task, acknowledges it, and returns its payload as
        :attr:`Task.payload` does (an int, bytes, or the decoded JSON value):
        the counterpart of ``push``/``push_json`` for code that needs no
        lease. Raises QueueEmpty (a queue.Empty; also a Timeout) if nothing came
        within ``timeout``, Stopped if the queue is draining or stopped."""
        buf = array("Q", _ZERO_TASK)
        got: list[Any] = []
        n = self._wait(_take_ack, seconds_to_ns(timeout), buf, got)
        if n != 1:
            raise error(n, f"get {self.name}", empty=True)
        lk, v, rc = got
        if rc:
            raise error(rc, f"ack {self.name}")
        if (lk >> 32) & 0xFFFF == KIND_JSON:
            v = _json.loads(v)
        return v

    # ------------------------------------------------------- state, stats

    @property
    def state(self) -> RunState:
        """The queue's run state (shared by every process); settable."""
        rc = self._call(lib.tq_run_state)
        if rc < 0:
            raise error(rc, f"state {self.name}")
        return RunState(rc)

    @state.setter
    def state(self, value: RunState | int | str) -> None:
        if isinstance(value, str):
            try:
                value = RunState[value.upper()]
            except KeyError:
                raise InvalidArgument(f"state {self.name}: running, draining, stopped or paused, "
                                      f"got {value!r}") from None
        rc = self._call(lib.tq_set_run_state, int(value))
        if rc:
            raise error(rc, f"state {self.name}")

    def pause(self) -> None:
        """Run state PAUSED: takes wait, pushes work (``taskq pause``)."""
        self.state = RunState.PAUSED

    def resume(self) -> None:
        """Run state RUNNING (``taskq resume``)."""
        self.state = RunState.RUNNING

    def drain(self) -> None:
        """Run state DRAINING: workers finish what they hold and return;
        pushes and takes raise Stopped (``taskq stop``)."""
        self.state = RunState.DRAINING

    def stop(self) -> None:
        """Run state STOPPED: workers return at once (``taskq stop --now``)."""
        self.state = RunState.STOPPED

    @property
    def config(self) -> dict[str, Any]:
        """The queue's configuration, as ``taskq info --json`` prints it
        (times in seconds, mode as octal text)."""
        cfg = _lib.Config()
        self._call(lib.tq_config_get, byref(cfg))
        return {"capacity": cfg.capacity, "max_payload": cfg.max_payload, "payload_bytes": cfg.payload_bytes,
                "mode": f"{cfg.mode:03o}",
                "max_attempts": cfg.max_attempts, "dead_capacity": cfg.dead_capacity,
                "delay_capacity": cfg.delay_capacity, "lease_seconds": cfg.lease_ns / 1e9, "backoff_seconds": cfg.backoff_base_ns / 1e9,
                "backoff_max_seconds": cfg.backoff_max_ns / 1e9}

    @property
    def instance(self) -> int:
        """A number identifying this instance of the queue (tq_instance)."""
        v = c_uint64()
        rc = self._call(lib.tq_instance, byref(v))
        if rc:
            raise error(rc, f"instance {self.name}")
        return v.value

    def payload_area(self) -> dict[str, int]:
        """The slot payload area now, as ``taskq info NAME --json`` prints it
        under ``payload_area`` (tq_payload_area): ``bytes``, ``held_bytes``
        and ``largest_free_bytes``. Reads every unit: for a look, not a loop."""
        held, total, largest = c_uint64(), c_uint64(), c_uint64()
        rc = self._call(lib.tq_payload_area, byref(held), byref(total), byref(largest))
        if rc:
            raise error(rc, f"payload_area {self.name}")
        return {"bytes": total.value, "held_bytes": held.value, "largest_free_bytes": largest.value}

    def stats(self, *, config: bool = False) -> dict[str, Any]:
        """A snapshot, the same dict as ``taskq stats NAME --json`` prints
        (with ``config=True``, as ``taskq info NAME --json``): task counts by
        state, totals, rates, latency, and the attached processes."""
        s = _lib.Stats()
        rc = self._call(lib.tq_stats_get, byref(s))
        if rc:
            raise error(rc, f"stats {self.name}")
        procs = (_lib.ProcInfo * _lib.MAX_PROCS)()
        n = max(self._call(lib.tq_procs, procs, _lib.MAX_PROCS), 0)
        now = lib.tq_now_ns()  # after everything it is compared with, as the command does
        o: dict[str, Any] = {
            "name": self.name, "state": _state_name(s.run_state), "capacity": s.capacity, "ready": s.ready,
            "leased": s.leased, "delayed": s.delayed, "dead": s.dead, "free": s.free_slots, "slots": s.slots,
            "dead_capacity": s.dead_capacity, "dead_over": s.dead_over, "dead_full": s.dead >= s.dead_capacity,
            "delay_capacity": s.delay_capacity, "delay_over": s.delay_over,
            "delay_full": s.delayed >= s.delay_capacity, "processes": s.procs, "recoveries": s.recoveries,
            "oldest_ready_age_seconds": _age_s(now, s.oldest_ready_ns), "totals": _counters(s.total),
            "rates": {"pushed_per_second": dict(zip(("1s", "10s", "60s"), s.pushed_per_s)),
                      "done_per_second": dict(zip(("1s", "10s", "60s"), s.done_per_s))},
            "latency_seconds": {"queue_wait": _latency(s.wait), "processing": _latency(s.processing)},
        }
        if config:
            o["config"] = self.config
        o["process_list"] = [self._proc(p, now) for p in procs[:n]]
        if config:
            o["payload_area"] = self.payload_area()  # after the rest, as the command adds it
        return o

    @staticmethod
    def _proc(p: _lib.ProcInfo, now: int) -> dict[str, Any]:
        return {"pid": p.pid, "slot": p.slot, "attached_seconds": _age_s(now, p.attached_ns),
                "last_seen_seconds_ago": _age_s(now, p.last_seen_ns), "in_progress": p.leased,
                "done_per_second": p.done_per_s, "state": _PROC_STATE.get(p.waiting, "busy"),
                "counters": _counters(p.counters)}

    def procs(self) -> list[dict[str, Any]]:
        """The attached processes (tq_procs), as in stats()["process_list"]."""
        return self.stats()["process_list"]

    def counters(self) -> dict[str, int]:
        """This handle's own counters (tq_counters_self)."""
        c = _lib.Counters()
        self._call(lib.tq_counters_self, byref(c))
        return _counters(c)

    def events(self, after: int = 0, max: int = 256) -> list[dict[str, Any]]:
        """Recent events with seq > ``after``, oldest first (tq_events): dicts
        with seq, t_ns, pid, type (its name, as ``taskq log`` prints), a, b,
        msg."""
        out = (_lib.EventInfo * max)()
        n = self._call(lib.tq_events, after, out, max)
        if n < 0:
            raise error(n, f"events {self.name}")
        return [{"seq": e.seq, "t_ns": e.t_ns, "pid": e.pid, "type": (lib.tq_event_name(e.type) or b"?").decode(),
                 "a": e.a, "b": e.b, "msg": e.msg.decode("utf-8", "replace")} for e in out[:n]]

    def finished_below(self) -> int:
        """The finished watermark W (tq_finished_below): every task pushed
        before this call with an id below W is acked or dead."""
        v = c_uint64()
        rc = self._call(lib.tq_finished_below, byref(v))
        if rc:
            raise error(rc, f"finished_below {self.name}")
        return v.value

    def recover(self) -> int:
        """Runs recovery now (tq_recover); returns the number of dead
        processes recovered."""
        rc = self._call(lib.tq_recover)
        if rc < 0:
            raise error(rc, f"recover {self.name}")
        return rc


class PayloadView:
    """A held task's payload in shared memory, read without copying it
    whole (:attr:`Task.view`).

    ``len(v)``, ``v[i]`` (an int), ``v[i:j]`` (a ``bytes`` copy of just
    those bytes), iteration, ``v == b"..."``, ``bytes(v)`` and
    :meth:`tobytes` read the shared memory in place. It exports no buffer:
    ``memoryview(v)`` raises TypeError, so that no slice or derived view
    can outlive the lease and read another task's bytes once the place is
    reused. It is released when the task is acked or failed, or the handle
    closes: reading it then raises ValueError. For a true zero-copy
    ``memoryview`` (to hand to ``socket.send``, ``hashlib``, ``numpy``,
    ...), see :meth:`Task.unsafe_view`.
    """

    __slots__ = ("_task", "_mv")

    def __init__(self, task: Task, mv: memoryview):
        self._task = task
        self._mv = mv  # format "B", never handed out

    def _gone(self) -> ValueError:
        return ValueError(f"task {self._task.id}: the payload view was released (the task was acked or failed, "
                          "or the queue closed); read data before, to keep a copy")

    def __len__(self) -> int:
        return len(self._task)

    def __getitem__(self, i: int | slice) -> int | bytes:
        try:
            if isinstance(i, slice):
                return self._mv[i].tobytes()
            return self._mv[i]
        except ValueError:
            if self.released:
                raise self._gone() from None
            raise

    def __iter__(self) -> Iterator[int]:
        for i in range(len(self)):
            yield self[i]  # type: ignore[misc]

    def __bytes__(self) -> bytes:
        return self.tobytes()

    def tobytes(self) -> bytes:
        """The whole payload copied out (as :attr:`Task.data`)."""
        try:
            return self._mv.tobytes()
        except ValueError:
            raise self._gone() from None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PayloadView):
            other = other.tobytes()
        if not isinstance(other, (bytes, bytearray, memoryview)):
            return NotImplemented
        try:
            return self._mv == other
        except ValueError:
            raise self._gone() from None

    __hash__ = None  # type: ignore[assignment]

    @property
    def released(self) -> bool:
        """True once the task was acked or failed, or the queue closed."""
        try:
            len(self._mv)
            return False
        except ValueError:
            return True

    def __repr__(self) -> str:
        return f"<taskq.PayloadView of task {self._task.id}, {'released' if self.released else len(self)} bytes>"


class Task:
    """One leased task of a :class:`Batch`.

    ``id``, ``kind`` (:class:`Kind`), ``attempt`` (1 on first delivery) and
    ``enqueued_ns`` (CLOCK_MONOTONIC time of its first push; an integer
    task's may be up to 1 us earlier, see ``tq_push`` in taskq.h). An integer
    task has ``value``; a payload task has ``view`` (a :class:`PayloadView`:
    the bytes read in place in shared memory, slices are copies; valid only
    while the lease is held), ``unsafe_view()`` (a memoryview, no copy at
    all, see there), and ``data``, a copy as bytes (made once, kept after
    the ack). ``payload`` is the int, the bytes, or for a JSON task the
    decoded value.
    """

    __slots__ = ("_batch", "_o", "_i", "_data", "_mv", "_view", "_unsafe")

    def __init__(self, batch: Batch, i: int):
        self._batch = batch
        self._i = i
        self._o = i * TASK_WORDS  # its record's first word in the batch's buffer
        self._data: bytes | None = None
        self._mv: memoryview | None = None  # over the payload, for view and data; never handed out
        self._view: PayloadView | None = None
        self._unsafe: memoryview | None = None

    @property
    def id(self) -> int:
        """The task's id, unique in its queue, growing in push order."""
        return self._batch._buf[self._o + W_ID]

    @property
    def kind(self) -> Kind:
        return _KINDS.get((self._batch._buf[self._o + W_LENKIND] >> 32) & 0xFFFF, Kind.STRING)

    @property
    def attempt(self) -> int:
        """1 on the first delivery, 2 on the first retry, ..."""
        return self._batch._buf[self._o + W_LENKIND] >> 48

    @property
    def enqueued_ns(self) -> int:
        """CLOCK_MONOTONIC time of the task's first push, in ns."""
        return self._batch._buf[self._o + W_ENQ]

    @property
    def _ptr(self) -> int:
        return self._batch._buf[self._o + W_DATA]

    @property
    def _value(self) -> int:
        return self._batch._buf[self._o + W_VALUE]

    def __repr__(self) -> str:
        what = f"value={self._value}" if self.kind == Kind.INT else f"len={len(self)}"
        return f"<taskq.Task id={self.id} {self.kind} {what} attempt={self.attempt}>"

    def __len__(self) -> int:
        return self._batch._buf[self._o + W_LENKIND] & _LEN_MASK

    @property
    def value(self) -> int:
        """An integer task's value (ValueError for a payload task)."""
        w = self._batch._buf
        if (w[self._o + W_LENKIND] >> 32) & 0xFFFF != KIND_INT:
            raise ValueError(f"task {self.id} is a {self.kind} task: use data, view or json()")
        return w[self._o + W_VALUE]

    def _gone(self) -> ValueError:
        return ValueError(f"task {self.id} was acked or failed, or its queue closed: its payload is no longer "
                          "held (read data before, to keep a copy)")

    def _mem(self) -> memoryview:
        """The memoryview over the payload, made once while the task is held
        and the handle open (else ValueError); released with the lease."""
        mv = self._mv
        if mv is None:
            if self.kind == Kind.INT:
                raise ValueError(f"task {self.id} is an integer task: use value")
            b = self._batch
            q = b._q
            with q._lock:  # atomic with close(), which releases the views before unmapping
                if b._settled[self._i] or q._h is None:  # closing: still mapped until the calls end
                    raise self._gone()
                n = len(self)
                if n:
                    arr = (ctypes.c_char * n).from_address(self._ptr)
                    arr._owner = b  # type: ignore[attr-defined]  # a view keeps its batch and queue alive
                    mv = memoryview(arr).cast("B")
                else:
                    mv = memoryview(b"")
                self._mv = mv
                q._viewed.add(b)
        return mv

    @property
    def view(self) -> PayloadView:
        """The payload read in place in shared memory (a
        :class:`PayloadView`): no copy of the whole; slices are ``bytes``
        copies of the bytes sliced. Valid until the task is acked or failed
        or the queue closes (then ValueError); raises ValueError after that
        or for an integer task."""
        if self._view is None:
            self._view = PayloadView(self, self._mem())
        return self._view

    def unsafe_view(self) -> memoryview:
        """The payload as a read-only ``memoryview`` straight over shared
        memory: no copy at all, for APIs that take a buffer. Released (as
        :attr:`view`) when the task is acked or failed or the queue closes;
        but slices of it and buffers taken from it (``v[2:]``,
        ``memoryview(v)``, ``numpy.frombuffer(v)``) are not: they stay
        pointed at the task's place in the queue, which holds another task's
        bytes after the ack, and is unmapped after close (reading it then
        crashes the process). Use them only while the lease is held."""
        if self._unsafe is None:
            self._unsafe = self._mem().toreadonly()
        return self._unsafe

    @property
    def data(self) -> bytes:
        """The payload copied out as bytes (an integer task: ValueError)."""
        if self._data is None:
            if self.kind == Kind.INT:
                raise ValueError(f"task {self.id} is an integer task: use value")
            b = self._batch
            q = b._q
            with q._lock:  # atomic with close(), which unmaps only after it
                if b._settled[self._i] or q._h is None:  # closing: still mapped until the calls end
                    raise self._gone()
                self._data = ctypes.string_at(self._ptr, len(self))
        return self._data

    def _release(self) -> None:
        """Ends the views (a BufferError of an export the user holds on
        unsafe_view() is ignored: that memoryview stays, as documented)."""
        for mv in (self._unsafe, self._mv):
            if mv is not None:
                try:
                    mv.release()
                except BufferError:
                    pass

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.data.decode()

    def json(self) -> Any:
        """The payload parsed as JSON (json.loads)."""
        return _json.loads(self.data)

    @property
    def payload(self) -> Any:
        """The int, the bytes, or the decoded JSON value."""
        if self.kind == Kind.INT:
            return self._value
        return self.json() if self.kind == Kind.JSON else self.data

    def ack(self) -> None:
        """Acknowledges the task as done (tq_ack). Raises LeaseLost if its
        lease was lost (it is or will be delivered again)."""
        self._batch._settle([self._i], None)

    def fail(self, reason: str | None = None, code: int = 1) -> None:
        """Fails the task (tq_fail) with error ``code`` and ``reason``: it is
        retried after a backoff, or dead once out of attempts."""
        self._batch._settle([self._i], (code, reason))

    def touch(self, extend: float | None = None) -> None:
        """Extends the lease to now + ``extend`` seconds (None: the queue's
        lease) (tq_touch)."""
        self._batch._touch([self._i], extend)


class Batch:
    """Tasks leased by one :meth:`Queue.take`, settled together.

    Iterate it (``for task in batch``), index it, or read every integer at
    once with :meth:`values`. As a context manager: when the block ends
    normally, every task not yet acked or failed is acked (one call). When
    it raises an Exception while a ``for task in batch`` loop is under way,
    the tasks the loop had moved past are acked and the rest (the one being
    handled, and those not reached) are failed with the exception's type
    and message; when it raises after the loop ended, or without one, every
    task not yet acked or failed is failed. The exception goes on. A
    KeyboardInterrupt or SystemExit (a BaseException that is no Exception)
    fails nothing (a failure would spend an attempt): the tasks the loop
    had moved past are acked, the rest stay leased until the handle closes
    (then they are ready again at once) or their lease expires.
    """

    __slots__ = ("_q", "_buf", "_n", "_settled", "_open", "_handled", "_iter", "_tasks", "__weakref__")

    def __init__(self, q: Queue, buf: array, n: int):
        self._q = q
        self._buf = buf
        self._n = n
        self._settled = bytearray(n)
        self._open = n  # tasks not yet acked or failed
        self._handled = 0
        self._iter = 0  # 0: never iterated, 1: a loop under way, 2: a loop ran to its end
        self._tasks: list[Task | None] | None = None

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def __repr__(self) -> str:
        return f"<taskq.Batch {self._n} tasks of {self._q.name!r}, {self._open} held>"

    def __getitem__(self, i: int) -> Task:
        if self._tasks is None:
            self._tasks = [None] * self._n
        t = self._tasks[i]
        if t is None:
            if i < 0:
                i += self._n
            t = self._tasks[i] = Task(self, i)
        return t

    def __iter__(self) -> Iterator[Task]:
        self._iter = 1
        self._handled = 0
        for i in range(self._n):
            yield self[i]
            self._handled = i + 1
        self._iter = 2

    def values(self) -> list[int]:
        """Every task's integer value, in order, without making Task
        objects (the fast path for integer tasks; for a payload task the
        value word means nothing: use its Task)."""
        return self._buf[W_VALUE:self._n * TASK_WORDS:TASK_WORDS].tolist()

    def ids(self) -> list[int]:
        """Every task's id, in order."""
        return self._buf[W_ID:self._n * TASK_WORDS:TASK_WORDS].tolist()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, et: type | None, ev: BaseException | None, tb: object) -> bool:
        if not self._open:
            return False
        if ev is None:
            if self._open == self._n:  # the common case: one call for the whole batch
                rc = self._q._call(lib.tq_ack, self._buf.buffer_info()[0], self._n)
                if rc and rc != LeaseLost.code:
                    raise error(rc, f"ack {self._q.name}")
                self._open = 0
                if self._tasks is None:
                    self._settled[:] = b"\x01" * self._n
                else:
                    self._release(range(self._n))
                if rc:
                    raise error(rc, f"ack {self._q.name}")
            else:
                self.ack()
            return False
        done = self._handled if self._iter == 1 else 0  # the tasks a loop under way had moved past
        reason = f"{type(ev).__name__}: {ev}"
        code = getattr(ev, "code", None)
        if not isinstance(code, int) or isinstance(code, bool) or not code or not -2**31 <= code < 2**31:
            code = 1
        # Nothing raised here may hide the exception that ended the block (a
        # lost lease: quiet; a handle closed meanwhile: its tasks went back).
        steps: list[tuple[range, tuple[int, str] | None]] = [(range(done), None)]
        if isinstance(ev, Exception):  # KeyboardInterrupt, SystemExit: the rest stay leased
            steps.append((range(done, self._n), (code, reason)))
        for idx, fail in steps:
            try:
                self._settle([i for i in idx if not self._settled[i]], fail, quiet=True)
            except Error:
                pass
        return False

    def ack(self) -> None:
        """Acks every task not yet acked or failed (tq_ack, one call)."""
        self._settle([i for i in range(self._n) if not self._settled[i]], None)

    def fail(self, reason: str | None = None, code: int = 1) -> None:
        """Fails every task not yet acked or failed (tq_fail)."""
        self._settle([i for i in range(self._n) if not self._settled[i]], (code, reason))

    def touch(self, extend: float | None = None) -> None:
        """Extends the leases of every task not yet acked or failed."""
        self._touch([i for i in range(self._n) if not self._settled[i]], extend)

    def _records(self, idx: list[int]) -> array:
        """The task records of tasks idx, all still held (else ValueError)."""
        for i in idx:
            if self._settled[i]:
                raise ValueError(f"task {self._buf[i * TASK_WORDS + W_ID]} was acked or failed already")
        if len(idx) == self._n:
            return self._buf
        out = array("Q")
        for i in idx:
            out.extend(self._buf[i * TASK_WORDS:(i + 1) * TASK_WORDS])
        return out

    def _release(self, idx: Iterable[int]) -> None:
        """Marks tasks idx acked or failed, and releases their views."""
        for i in idx:
            self._settled[i] = 1
            t = self._tasks[i] if self._tasks else None
            if t is not None:
                t._release()

    def _release_views(self) -> None:
        """Releases every view of the batch's tasks (the handle closes)."""
        for t in self._tasks or ():
            if t is not None:
                t._release()

    def _settle(self, idx: list[int], fail: tuple[int, str | None] | None, quiet: bool = False) -> None:
        if not idx:
            return
        recs = self._records(idx)
        if fail is None:
            rc = self._q._call(lib.tq_ack, recs.buffer_info()[0], len(idx))
            what = "ack"
        else:
            code, reason = fail
            if not isinstance(code, int) or isinstance(code, bool) or not -2**31 <= code < 2**31 or code == 0:
                raise InvalidArgument(f"fail {self._q.name}: code must be a non-zero C int, got {code!r}")
            msg = None if reason is None else str(reason).encode("utf-8", "replace")
            rc = self._q._call(lib.tq_fail, recs.buffer_info()[0], len(idx), code, msg)
            what = "fail"
        if rc and rc != LeaseLost.code:
            raise error(rc, f"{what} {self._q.name}")
        self._open -= len(idx)
        self._release(idx)
        if rc and not quiet:
            raise error(rc, f"{what} {self._q.name}")

    def _touch(self, idx: list[int], extend: float | None) -> None:
        if not idx:
            return
        recs = self._records(idx)
        rc = self._q._call(lib.tq_touch, recs.buffer_info()[0], len(idx),
                          0 if extend is None else seconds_to_ns(extend, "extend"))
        if rc:
            raise error(rc, f"touch {self._q.name}")


class DeadLetters:
    """A queue's dead-letter area: tasks that failed max_attempts times."""

    __slots__ = ("_q",)

    def __init__(self, q: Queue):
        self._q = q

    def list(self, max: int | None = None) -> list[dict[str, Any]]:
        """The dead tasks, oldest first (tq_dead_list; up to ``max``, None:
        all), as dicts with the fields of ``taskq dead NAME list --json``:
        id, kind, attempts, last_error, last_message, dead_seconds, and
        value (int tasks) or data (the payload bytes). Memory: the rows,
        and the longest payload listed once per row (not max_payload)."""
        q = self._q
        if max is None:
            s = _lib.Stats()
            q._call(lib.tq_stats_get, byref(s))
            max = s.dead + 64
        if max <= 0:
            return []
        out = (_lib.DeadInfo * max)()
        n = q._call(lib.tq_dead_list, out, max, None, 0)  # the rows and lengths, no payloads yet
        stride = 0
        data = None
        for _ in range(3):  # room for the longest payload listed (a list in between may differ)
            longest = 0
            for d in out[:n if n > 0 else 0]:
                if d.kind != KIND_INT and d.len > longest:
                    longest = d.len
            if n < 0 or longest <= stride:
                break
            stride = longest
            data = ctypes.create_string_buffer(n * stride)
            n = q._call(lib.tq_dead_list, out, n, data, stride)
        if n < 0:
            raise error(n, f"dead list {q.name}")
        base = ctypes.addressof(data) if data is not None else 0
        now = lib.tq_now_ns()
        res = []
        for i, d in enumerate(out[:n]):
            e: dict[str, Any] = {"id": d.id, "kind": str(Kind(d.kind)) if d.kind in (1, 2, 3) else "invalid",
                                 "attempts": d.attempts, "last_error": d.last_err,
                                 "last_message": d.last_msg.decode("utf-8", "replace"),
                                 "dead_seconds": _age_s(now, d.died_ns)}
            if d.kind == KIND_INT:
                e["value"] = d.value
            else:
                ln = d.len if d.len < stride else stride
                e["data"] = ctypes.string_at(base + i * stride, ln) if ln else b""
            res.append(e)
        return res

    def kick(self, id: int | None = None) -> int:
        """Puts dead task ``id`` (None: every dead task, room permitting)
        back to ready with its attempts reset; returns how many. Raises
        TaskNotFound, WouldBlock (no room for that task)."""
        rc = self._q._call(lib.tq_dead_kick, _lib.ALL if id is None else id)
        if rc < 0:
            raise error(rc, f"dead kick {self._q.name}")
        return rc

    def purge(self, id: int | None = None) -> int:
        """Deletes dead task ``id`` (None: all); returns how many."""
        rc = self._q._call(lib.tq_dead_purge, _lib.ALL if id is None else id)
        if rc < 0:
            raise error(rc, f"dead purge {self._q.name}")
        return rc

    def __len__(self) -> int:
        s = _lib.Stats()
        self._q._call(lib.tq_stats_get, byref(s))
        return s.dead
