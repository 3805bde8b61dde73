# SPDX-License-Identifier: MIT
"""Fixtures: unique queue names removed afterwards, the taskq command, and
Python helper processes (run with this same interpreter), all bounded in
time."""
from __future__ import annotations

import itertools
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import taskq

REPO = Path(__file__).resolve().parents[3]
BUILD = Path(os.environ.get("TASKQ_BUILD", REPO / "build"))
TASKQ = BUILD / "taskq"
PKG = Path(__file__).resolve().parents[1]
_seq = itertools.count()


def unique_name(tag: str = "q") -> str:
    return f"pytest-{tag}-{os.getpid()}-{next(_seq)}"


def _destroy(name: str) -> None:
    try:
        taskq.destroy(name)
    except taskq.QueueNotFound:
        pass


@pytest.fixture
def qname():
    """A fresh queue name; the queue is destroyed at the end if it exists."""
    name = unique_name()
    yield name
    _destroy(name)


@pytest.fixture
def make_queue():
    """make_queue(**config) -> a created Queue, closed and destroyed at the end."""
    made: list[taskq.Queue] = []

    def make(**cfg: Any) -> taskq.Queue:
        q = taskq.Queue.create(unique_name(), **cfg)
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()
        _destroy(q.name)


@pytest.fixture
def q(make_queue):
    return make_queue(capacity=1000, max_payload=256)


def cli(*args: str, input: bytes | None = None, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
    """Runs build/taskq with args; fails the test on a non-zero exit when check."""
    if not TASKQ.exists():
        pytest.fail(f"{TASKQ} is missing: make builds it")
    r = subprocess.run([str(TASKQ), *args], input=input, capture_output=True, timeout=timeout)
    if check and r.returncode:
        pytest.fail(f"taskq {' '.join(args)}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args).stdout)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PKG) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["TASKQ_LIB"] = os.path.abspath(taskq.library_path)
    return env


def spawn(code: str, *args: str) -> subprocess.Popen:
    """Starts `python -c code args...` with this interpreter and the package
    on its path; stdout is a pipe of text lines."""
    return subprocess.Popen([sys.executable, "-c", code, *args], env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(cond: Callable[[], Any], timeout: float = 10, what: str = "condition") -> Any:
    """Polls cond until it returns something true, or fails the test after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


class Lines:
    """The lines a child started by spawn() writes to stdout, each waited
    for with a deadline (a test fails instead of hanging on a child that
    says nothing). Reads the pipe itself: do not mix with child.stdout."""

    def __init__(self, child: subprocess.Popen, timeout: float = 20):
        self.child = child
        self.fd = child.stdout.fileno()
        self.buf = b""
        self.deadline = time.monotonic() + timeout

    def __iter__(self) -> "Lines":
        return self

    def __next__(self) -> str:
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"timed out waiting for a line from the child; it wrote {self.buf!r}")
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    raise StopIteration
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode() + "\n"

    def readline(self) -> str:
        return next(self, "")

    def rest(self, timeout: float = 20) -> tuple[str, str]:
        """Waits for the child's end: (the rest of stdout, stderr)."""
        out, err = self.child.communicate(timeout=timeout)
        return self.buf.decode() + out, err
