# SPDX-License-Identifier: MIT
"""Loading libtaskq and the C declarations of include/taskq.h (ctypes).

The shared library is looked for, in order:

1. the path in the environment variable ``TASKQ_LIB``;
2. the project's build directory, when this package runs from the source
   tree (``bindings/python/taskq`` -> ``build/libtaskq.so``);
3. ``pkg-config --variable=libdir taskq`` (an installed taskq.pc);
4. the dynamic loader's own search (``libtaskq.so.0.4``, then whatever
   ``ctypes.util.find_library("taskq")`` names).

A library is used only if its soname (DT_SONAME, read from the file the
loader mapped) is ``libtaskq.so.0.4``: another one (0.2, ...) has other
struct layouts, which ctypes cannot see.

ctypes releases the GIL around every call into the library, so a thread
blocked in ``tq_take`` or ``tq_push`` lets the others run.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import subprocess
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_int, c_int32, c_size_t,
                    c_uint16, c_uint32, c_uint64, c_void_p)
from pathlib import Path

#: The soname this binding was written for: the ABI of libtaskq 0.4.
SONAME = "libtaskq.so.0.4"

# include/taskq.h constants.
NAME_MAX = 200
MAX_CAPACITY = 1 << 24
MAX_PAYLOAD = 1 << 24
MAX_PROCS = 1024
ERRMSG_MAX = 1024
EVENT_MSG_MAX = 128
MAX_ATTEMPTS = 65535
LEASE_MIN_NS = 1_000_000
TIME_MAX_NS = 365 * 86400 * 1_000_000_000
WAIT_FOREVER = (1 << 64) - 1
ALL = (1 << 64) - 1
MAX_BATCH = 4096
TAKE_AHEAD_MAX = 64
KIND_INT, KIND_STRING, KIND_JSON = 1, 2, 3


class Config(Structure):
    _fields_ = [("capacity", c_uint32), ("max_payload", c_uint32), ("mode", c_uint32),
                ("max_attempts", c_uint32), ("dead_capacity", c_uint32), ("delay_capacity", c_uint32),
                ("lease_ns", c_uint64),
                ("backoff_base_ns", c_uint64), ("backoff_max_ns", c_uint64), ("payload_bytes", c_uint64)]


class Task(Structure):
    _fields_ = [("id", c_uint64), ("value", c_uint64), ("data", c_void_p), ("len", c_uint32),
                ("kind", c_uint16), ("attempt", c_uint16), ("enqueued_ns", c_uint64), ("priv", c_uint64 * 2)]


#: A task record is this many 64-bit words; the word index of each field
#: (the binding reads and writes task records as arrays of words).
TASK_WORDS = 7
W_ID, W_VALUE, W_DATA, W_LENKIND, W_ENQ = 0, 1, 2, 3, 4


class Counters(Structure):
    _fields_ = [(n, c_uint64) for n in ("pushed", "taken", "acked", "failed", "retried", "dead", "expired",
                                         "recovered", "dead_overflow", "lost")]


class Latency(Structure):
    _fields_ = [(n, c_uint64) for n in ("count", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns")]


class Stats(Structure):
    _fields_ = [("total", Counters), ("wait", Latency), ("processing", Latency),
                ("pushed_per_s", c_double * 3), ("done_per_s", c_double * 3)] + \
               [(n, c_uint32) for n in ("capacity", "ready", "leased", "delayed", "dead", "free_slots", "slots",
                                        "dead_capacity", "dead_over", "delay_capacity", "delay_over", "procs",
                                        "recoveries")] + \
               [("run_state", c_int), ("oldest_ready_ns", c_uint64)]


class ProcInfo(Structure):
    _fields_ = [("slot", c_uint32), ("pid", c_int32), ("attached_ns", c_uint64), ("last_seen_ns", c_uint64),
                ("leased", c_uint32), ("waiting", c_uint32), ("done_per_s", c_double), ("counters", Counters)]


class DeadInfo(Structure):
    _fields_ = [("id", c_uint64), ("value", c_uint64), ("len", c_uint32), ("kind", c_uint16),
                ("attempts", c_uint16), ("last_err", c_int32), ("last_msg", c_char * ERRMSG_MAX),
                ("died_ns", c_uint64)]


class EventInfo(Structure):
    _fields_ = [("seq", c_uint64), ("t_ns", c_uint64), ("pid", c_int32), ("type", c_int), ("a", c_uint64),
                ("b", c_uint64), ("msg", c_char * EVENT_MSG_MAX)]


HANDLER = CFUNCTYPE(c_int, POINTER(Task), c_void_p, c_void_p, c_size_t)


class WorkerConfig(Structure):
    _fields_ = [("batch", c_size_t), ("idle_exit_ns", c_uint64), ("max_tasks", c_uint64),
                ("stop", POINTER(c_int))]


class WorkerResult(Structure):
    _fields_ = [(n, c_uint64) for n in ("handled", "acked", "failed", "lost", "skipped")] + [("end", c_int)]


# (name, result type, argument types); c_void_p for the handle and for task
# arrays, which the binding passes as addresses.
_PROTOS = [
    ("tq_strerror", c_char_p, [c_int]),
    ("tq_config_init", None, [POINTER(Config)]),
    ("tq_create", c_int, [c_char_p, POINTER(Config), POINTER(c_void_p)]),
    ("tq_open", c_int, [c_char_p, POINTER(c_void_p)]),
    ("tq_open_observer", c_int, [c_char_p, POINTER(c_void_p)]),
    ("tq_close", c_int, [c_void_p]),
    ("tq_destroy", c_int, [c_char_p]),
    ("tq_push", c_int, [c_void_p, c_void_p, c_size_t, c_uint64]),
    ("tq_push_delayed", c_int, [c_void_p, c_void_p, c_size_t, c_uint64, c_uint64]),
    ("tq_push_ints", c_int, [c_void_p, c_void_p, c_size_t, c_uint64]),
    ("tq_push_int", c_int, [c_void_p, c_uint64, c_uint64]),
    ("tq_push_data", c_int, [c_void_p, c_uint16, c_char_p, c_uint32, c_uint64]),
    ("tq_take", c_int, [c_void_p, c_void_p, c_size_t, c_uint64]),
    ("tq_ack", c_int, [c_void_p, c_void_p, c_size_t]),
    ("tq_fail", c_int, [c_void_p, c_void_p, c_size_t, c_int, c_char_p]),
    ("tq_touch", c_int, [c_void_p, c_void_p, c_size_t, c_uint64]),
    ("tq_finished_below", c_int, [c_void_p, POINTER(c_uint64)]),
    ("tq_dead_list", c_int, [c_void_p, POINTER(DeadInfo), c_size_t, c_void_p, c_size_t]),
    ("tq_dead_kick", c_int, [c_void_p, c_uint64]),
    ("tq_dead_purge", c_int, [c_void_p, c_uint64]),
    ("tq_worker_config_init", None, [POINTER(WorkerConfig)]),
    ("tq_worker_run", c_int, [c_void_p, HANDLER, c_void_p, POINTER(WorkerConfig), POINTER(WorkerResult)]),
    ("tq_set_run_state", c_int, [c_void_p, c_int]),
    ("tq_run_state", c_int, [c_void_p]),
    ("tq_stats_get", c_int, [c_void_p, POINTER(Stats)]),
    ("tq_counters_self", c_int, [c_void_p, POINTER(Counters)]),
    ("tq_procs", c_int, [c_void_p, POINTER(ProcInfo), c_size_t]),
    ("tq_events", c_int, [c_void_p, c_uint64, POINTER(EventInfo), c_size_t]),
    ("tq_event_name", c_char_p, [c_int]),
    ("tq_config_get", c_int, [c_void_p, POINTER(Config)]),
    ("tq_instance", c_int, [c_void_p, POINTER(c_uint64)]),
    ("tq_payload_area", c_int, [c_void_p, POINTER(c_uint64), POINTER(c_uint64), POINTER(c_uint64)]),
    ("tq_recover", c_int, [c_void_p]),
    ("tq_set_take_ahead", c_int, [c_void_p, c_uint32]),
    ("tq_now_ns", c_uint64, []),
]


def _candidates() -> list[str]:
    found = []
    env = os.environ.get("TASKQ_LIB")
    if env:
        return [env]  # when set, nothing else: a wrong path is an error, not a silent fallback
    tree = Path(__file__).resolve().parent.parent.parent.parent / "build"
    for name in (SONAME, "libtaskq.so"):
        if (tree / name).exists():
            found.append(str(tree / name))
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "taskq"], capture_output=True, text=True,
                                timeout=10, check=False).stdout.strip()
        if libdir:
            found.append(os.path.join(libdir, SONAME))
    except (OSError, subprocess.SubprocessError):
        pass
    found.append(SONAME)
    util = ctypes.util.find_library("taskq")
    if util:
        found.append(util)
    return found


class _LinkMap(Structure):  # the head of glibc's struct link_map (<link.h>)
    _fields_ = [("l_addr", c_void_p), ("l_name", c_char_p), ("l_ld", c_void_p)]


def loaded_file(lib: ctypes.CDLL) -> str | None:
    """The file the dynamic loader mapped for lib (dlinfo RTLD_DI_LINKMAP)."""
    try:
        dlinfo = ctypes.CDLL(None).dlinfo
    except AttributeError:
        return None
    lm = POINTER(_LinkMap)()
    if dlinfo(ctypes.c_void_p(lib._handle), 2, ctypes.byref(lm)) != 0 or not lm:
        return None
    name = lm.contents.l_name
    return os.fsdecode(name) if name else None


def elf_soname(path: str) -> str | None:
    """DT_SONAME of the ELF shared object at path (None: no soname, or not
    an ELF file this reads): the dynamic section's entry, an offset into
    the string table its section header links to."""
    try:
        with open(path, "rb") as f:
            elf = f.read()
    except OSError:
        return None
    if elf[:4] != b"\x7fELF" or elf[4] not in (1, 2) or elf[5] not in (1, 2):
        return None
    bits64, end = elf[4] == 2, "<" if elf[5] == 1 else ">"
    try:
        if bits64:
            shoff, = struct.unpack_from(end + "Q", elf, 0x28)
            shentsize, shnum = struct.unpack_from(end + "HH", elf, 0x3A)
            sh, dyn = end + "IIQQQQIIQQ", end + "qQ"
        else:
            shoff, = struct.unpack_from(end + "I", elf, 0x20)
            shentsize, shnum = struct.unpack_from(end + "HH", elf, 0x2E)
            sh, dyn = end + "IIIIIIIIII", end + "iI"
        secs = [struct.unpack_from(sh, elf, shoff + i * shentsize) for i in range(shnum)]
        for _name, typ, _fl, _addr, off, size, link, _info, _al, entsize in secs:
            if typ != 6:  # SHT_DYNAMIC
                continue
            stroff = secs[link][4]
            for j in range(0, size, entsize or struct.calcsize(dyn)):
                tag, val = struct.unpack_from(dyn, elf, off + j)
                if tag == 0:  # DT_NULL
                    break
                if tag == 14:  # DT_SONAME
                    start = stroff + val
                    return elf[start:elf.index(b"\0", start)].decode("utf-8", "replace")
    except (struct.error, IndexError, ValueError):
        return None
    return None


def load() -> tuple[ctypes.CDLL, str]:
    """Loads libtaskq (see the module's docstring) and declares its functions."""
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
            continue
        file = loaded_file(lib) or path
        soname = elf_soname(file)
        if soname != SONAME:
            errors.append(f"{path} ({file}): soname {soname or 'none'}, not {SONAME} (another ABI)")
            continue
        for name, res, args in _PROTOS:
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        return lib, path
    raise ImportError("taskq: cannot load libtaskq (build it with `make lib`, install it with `make install`, "
                      "or set TASKQ_LIB to its path): " + "; ".join(errors))


lib, path = load()
