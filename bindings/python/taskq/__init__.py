# SPDX-License-Identifier: MIT
"""taskq: crash-safe task queues in shared memory, from Python.

A binding of libtaskq (ctypes; no compile step)::

    import taskq

    with taskq.Queue.create("jobs", capacity=100_000, exist_ok=True) as q:
        q.push(1)
        q.push_json({"to": "a@b.c"})
        with q.take(max=64, timeout=1.0) as batch:
            for task in batch:
                print(task.payload)     # acked when the block ends; failed if it raises

See docs/python.md for the whole API.
"""
from ._lib import SONAME, path as library_path
from .errors import (BY_CODE, BadName, BadQueue, Busy, Error, Forked, InvalidArgument, LeaseLost, NotInitialized,
                     ObserverOnly, OutOfMemory, PayloadTooLarge, PermissionDenied, QueueEmpty, QueueExists,
                     QueueFull, QueueNotFound, Stopped, SystemFailure, TaskNotFound, Timeout, TooManyProcesses,
                     VersionMismatch, WouldBlock, strerror)
from .queue import Batch, DeadLetters, Kind, Queue, RunState, Task, destroy
from .worker import WorkResult, work

__version__ = "0.4.0"

__all__ = [
    "Queue", "Batch", "Task", "DeadLetters", "Kind", "RunState", "WorkResult", "work", "destroy", "strerror",
    "Error", "InvalidArgument", "BadName", "QueueExists", "QueueNotFound", "PermissionDenied", "BadQueue",
    "VersionMismatch", "PayloadTooLarge", "WouldBlock", "Timeout", "LeaseLost", "TooManyProcesses",
    "OutOfMemory", "Busy", "TaskNotFound", "SystemFailure", "NotInitialized", "Stopped", "Forked", "ObserverOnly",
    "QueueFull", "QueueEmpty", "BY_CODE", "SONAME", "library_path",
]
