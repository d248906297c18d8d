"""Shared fixtures.

``core`` runs a test once on the readable twin (fastlb._pycore, id
``py-core``) and once on the native core (fastlb._core, id ``c-core``): both
must honour the same contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from types import ModuleType
from typing import Any, Iterator

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cores() -> list[ModuleType]:
    import fastlb._core
    import fastlb._pycore

    return [fastlb._pycore, fastlb._core]


CORES = _cores()


@pytest.fixture(params=CORES, ids=["py-core", "c-core"])
def core(request: pytest.FixtureRequest) -> ModuleType:
    return request.param


@pytest.fixture
def backends() -> Iterator[list[Any]]:
    """Two real HTTP/1.1 test backends, s1 and s2 (tests/backend_server.py)."""
    from backend_server import Backend

    started = [Backend("s1").start(), Backend("s2").start()]
    yield started
    for b in started:
        b.stop()


def venv_tool(name: str) -> str:
    """Path of a console script installed beside this interpreter."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(path):
        return path
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (make test installs it)")
    return found


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command from the repo root, with this venv's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def balancer(tmp_path: Any) -> Iterator[Any]:
    """``start(config_text, port, poll=)``: a real ``fastlb run`` on
    ``tmp_path/lb.toml`` (tests/running.py), returned once ``port`` answers
    (polled every ``poll`` s), stopped with all its processes at the end."""
    from running import Balancer, write
    made: list[Any] = []

    def start(text: str, port: int, poll: float = 0.05) -> Any:
        path = os.path.join(str(tmp_path), "lb.toml")
        write(path, text)
        b = Balancer(path, port, poll)
        made.append(b)
        return b

    yield start
    for b in made:
        b.stop()
