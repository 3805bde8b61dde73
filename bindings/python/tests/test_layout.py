# SPDX-License-Identifier: MIT
"""The ctypes declarations against include/taskq.h: a C program prints each
struct's size and field offsets as the compiler lays them out."""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest
from conftest import REPO

from taskq import _lib

STRUCTS = {
    "tq_config": _lib.Config, "tq_task": _lib.Task, "tq_counters": _lib.Counters, "tq_latency": _lib.Latency,
    "tq_stats": _lib.Stats, "tq_proc_info": _lib.ProcInfo, "tq_dead_info": _lib.DeadInfo,
    "tq_event_info": _lib.EventInfo, "tq_worker_config": _lib.WorkerConfig, "tq_worker_result": _lib.WorkerResult,
}


def test_structs_match_the_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <taskq.h>", "int main(void) {"]
    for cname, st in STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for f, _ in st._fields_:
            lines.append(f'printf("{cname}.{f} %zu\\n", offsetof({cname}, {f}));')
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", str(REPO / "include"), "-o", str(exe), str(src)], check=True, timeout=60)
    want = dict(line.split() for line in subprocess.run([str(exe)], capture_output=True, text=True, check=True,
                                                        timeout=10).stdout.splitlines())
    got = {}
    for cname, st in STRUCTS.items():
        got[cname] = str(ctypes.sizeof(st))
        for f, _ in st._fields_:
            got[f"{cname}.{f}"] = str(getattr(st, f).offset)
    assert got == want
    assert ctypes.sizeof(_lib.Task) == 8 * _lib.TASK_WORDS
    for name, word in (("id", _lib.W_ID), ("value", _lib.W_VALUE), ("data", _lib.W_DATA), ("len", _lib.W_LENKIND),
                       ("enqueued_ns", _lib.W_ENQ)):
        assert getattr(_lib.Task, name).offset == 8 * word
    assert _lib.Task.kind.offset == 8 * _lib.W_LENKIND + 4 and _lib.Task.attempt.offset == 8 * _lib.W_LENKIND + 6


def test_constants_match_the_header():
    header = (REPO / "include" / "taskq.h").read_text()
    for name, value in (("TQ_NAME_MAX 200", _lib.NAME_MAX), ("TQ_MAX_BATCH 4096", _lib.MAX_BATCH),
                        ("TQ_ERRMSG_MAX 1024", _lib.ERRMSG_MAX), ("TQ_EVENT_MSG_MAX 128", _lib.EVENT_MSG_MAX),
                        ("TQ_MAX_PROCS 1024", _lib.MAX_PROCS), ("TQ_TAKE_AHEAD_MAX 64", _lib.TAKE_AHEAD_MAX)):
        assert f"#define {name}" in header and name.endswith(str(value))
    assert f"#define TQ_VERSION_MINOR {_lib.SONAME.rsplit('.', 1)[1]}" in header
