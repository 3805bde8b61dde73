# SPDX-License-Identifier: MIT
"""Python exceptions for the library's TQ_E* codes.

Every exception raised for a library error is a :class:`Error`, carrying
the code (``code``), its C name (``code_name``) and the library's own
description (``tq_strerror``). Each code has its class; where a standard
exception means the same, the class derives from it too (``QueueNotFound``
is a ``FileNotFoundError``, ``Timeout`` a ``TimeoutError``, ...).
``QueueFull`` is raised by pushes that found no room (``WouldBlock`` with
timeout 0, ``Timeout`` otherwise, both at once) and is a ``queue.Full``.
A code this binding does not know raises :class:`Error` itself.
"""
from __future__ import annotations

import queue as _queue

from ._lib import lib


class Error(Exception):
    """A libtaskq error: ``code`` is the negative TQ_E* value."""

    code: int = 0
    code_name: str = "TQ_E?"

    def __init__(self, message: str, code: int | None = None):
        if code is not None:
            self.code = code
        super().__init__(message)

    @property
    def strerror(self) -> str:
        """The library's description of the code (tq_strerror)."""
        return strerror(self.code)


def _cls(name: str, code: int, cname: str, *bases: type, doc: str) -> type:
    return type(name, (Error, *bases), {"code": code, "code_name": cname, "__doc__": doc})


InvalidArgument = _cls("InvalidArgument", -1, "TQ_EINVAL", ValueError, doc="A bad argument.")
BadName = _cls("BadName", -2, "TQ_ENAME", ValueError,
               doc="A queue name that is empty, too long or has characters outside [A-Za-z0-9_.-].")
QueueExists = _cls("QueueExists", -3, "TQ_EEXIST", FileExistsError, doc="Queue.create: the queue exists already.")
QueueNotFound = _cls("QueueNotFound", -4, "TQ_ENOENT", FileNotFoundError, doc="No queue of that name.")
PermissionDenied = _cls("PermissionDenied", -5, "TQ_EPERM", PermissionError,
                        doc="The OS refused access to the queue's segment.")
BadQueue = _cls("BadQueue", -6, "TQ_EBADQUEUE", doc="The segment is not a taskq queue, or is damaged.")
VersionMismatch = _cls("VersionMismatch", -7, "TQ_EVERSION", doc="The segment has another layout version.")
PayloadTooLarge = _cls("PayloadTooLarge", -8, "TQ_E2BIG", ValueError,
                       doc="A payload larger than the queue's max_payload.")
WouldBlock = _cls("WouldBlock", -9, "TQ_EAGAIN", BlockingIOError,
                  doc="Timeout 0 and nothing could be done now (full, or no room for a kick).")
Timeout = _cls("Timeout", -10, "TQ_ETIMEDOUT", TimeoutError, doc="The timeout passed before anything was done.")
LeaseLost = _cls("LeaseLost", -11, "TQ_ELOST", doc="A lease was lost (expired and retaken, or recovered); "
                 "the task is or will be delivered again.")
TooManyProcesses = _cls("TooManyProcesses", -12, "TQ_EPROCS", doc="Too many handles attached to the queue.")
OutOfMemory = _cls("OutOfMemory", -13, "TQ_ENOMEM", MemoryError, doc="Out of memory, or the segment could not be sized.")
Busy = _cls("Busy", -14, "TQ_EBUSY", doc="A queue lock stayed held by a live process for 10 s.")
TaskNotFound = _cls("TaskNotFound", -15, "TQ_ENOTFOUND", LookupError, doc="No task with that id in that state.")
SystemFailure = _cls("SystemFailure", -16, "TQ_ESYS", OSError, doc="An unexpected OS error.")
NotInitialized = _cls("NotInitialized", -17, "TQ_EINIT",
                      doc="The queue is still being created, or its creator died doing so.")
Stopped = _cls("Stopped", -18, "TQ_ESTOPPED", doc="The queue's run state is draining or stopped.")
Forked = _cls("Forked", -19, "TQ_EFORKED", doc="A handle opened before fork(), used in the child.")
ObserverOnly = _cls("ObserverOnly", -20, "TQ_EOBSERVER", doc="The call changes tasks, and the handle is an observer.")

#: Every code's class.
BY_CODE: dict[int, type] = {c.code: c for c in (
    InvalidArgument, BadName, QueueExists, QueueNotFound, PermissionDenied, BadQueue, VersionMismatch,
    PayloadTooLarge, WouldBlock, Timeout, LeaseLost, TooManyProcesses, OutOfMemory, Busy, TaskNotFound,
    SystemFailure, NotInitialized, Stopped, Forked, ObserverOnly)}


class QueueFull(Error, _queue.Full):
    """A push found no room: also a WouldBlock (timeout 0) or a Timeout.

    ``pushed`` is how many items of the call went in before it (push_many).
    """

    pushed: int = 0


def strerror(code: int) -> str:
    """The library's description of a TQ_E* code (tq_strerror)."""
    s = lib.tq_strerror(code)
    return s.decode() if s else f"error {code}"


class QueueEmpty(Error, _queue.Empty):
    """Queue.get found no task: also a WouldBlock (timeout 0) or a Timeout."""


def _now_and_late(base: type) -> tuple[type, type]:
    """The two concrete classes of QueueFull or QueueEmpty: with WouldBlock
    (timeout 0) and with Timeout; both carry the base's name."""
    ns = {"__qualname__": base.__name__, "__module__": __name__}
    return type(base.__name__, (base, WouldBlock), ns), type(base.__name__, (base, Timeout), ns)


_FullNow, _FullTimeout = _now_and_late(QueueFull)
_EmptyNow, _EmptyTimeout = _now_and_late(QueueEmpty)


def error(code: int, what: str, *, full: bool = False, empty: bool = False) -> Error:
    """The exception for code ``code`` returned by ``what`` (a short context,
    such as ``"push jobs"``). ``full``: the call was a push, so EAGAIN and
    ETIMEDOUT become :class:`QueueFull`; ``empty``: a get, so they become
    :class:`QueueEmpty`."""
    cls: type = BY_CODE.get(code, Error)
    if full and code == WouldBlock.code:
        cls = _FullNow
    elif full and code == Timeout.code:
        cls = _FullTimeout
    elif empty and code == WouldBlock.code:
        cls = _EmptyNow
    elif empty and code == Timeout.code:
        cls = _EmptyTimeout
    name = cls.code_name if cls is not Error else f"code {code}"
    return cls(f"{what}: {strerror(code)} ({name})", code)
