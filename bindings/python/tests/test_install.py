# SPDX-License-Identifier: MIT
"""The package installs offline with pip (Debian's setuptools, no build
isolation, no index) and then finds the library through pkg-config."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import BUILD, PKG

import taskq


def test_pip_install_offline_and_pkg_config(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, timeout=30).returncode:
        pytest.skip("pip is missing (Debian package python3-pip)")
    src = tmp_path / "src"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index",
                        "--disable-pip-version-check", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (target / "taskq" / "__init__.py").exists() and (target / "taskq" / "py.typed").exists()
    # taskq.pc naming this build's directory as libdir, as make install writes it for its LIBDIR.
    pc = tmp_path / "pkgconfig"
    pc.mkdir()
    (pc / "taskq.pc").write_text(f"prefix=/x\nlibdir={BUILD.resolve()}\nincludedir=/x\n\nName: taskq\n"
                                 "Description: t\nVersion: 0.4.0\nLibs: -L${libdir} -ltaskq\nCflags: -I${includedir}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("TASKQ_LIB", "PYTHONPATH")}
    env.update(PYTHONPATH=str(target), PKG_CONFIG_PATH=str(pc), PYTHONDONTWRITEBYTECODE="1")
    code = "import taskq; print(taskq.library_path); print(taskq.__file__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    lib, mod = r.stdout.split()
    assert lib == str(BUILD.resolve() / taskq.SONAME) and mod.startswith(str(target))
    # Without any way to find it: a clear ImportError.
    env["PKG_CONFIG_PATH"] = str(tmp_path / "none")
    env["TASKQ_LIB"] = str(tmp_path / "libtaskq-missing.so")
    r = subprocess.run([sys.executable, "-c", "import taskq"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=30)
    assert r.returncode != 0 and "cannot load libtaskq" in r.stderr and "TASKQ_LIB" in r.stderr


def test_another_soname_is_refused(tmp_path):
    real = (BUILD / taskq.SONAME).resolve()
    old = tmp_path / "libtaskq.so.0.2"  # the same code under the soname of another ABI
    old.write_bytes(real.read_bytes().replace(taskq.SONAME.encode(), b"libtaskq.so.0.2"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(PKG), TASKQ_LIB=str(old), PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c", "import taskq"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=30)
    assert r.returncode != 0 and "ImportError" in r.stderr
    assert "soname libtaskq.so.0.2, not libtaskq.so.0.4" in r.stderr
    env["TASKQ_LIB"] = str(real)
    r = subprocess.run([sys.executable, "-c", "import taskq"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=30)
    assert r.returncode == 0, r.stderr
