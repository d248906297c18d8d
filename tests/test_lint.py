"""Lint is a test: flake8 on Python, cython-lint on .pyx/.pxd, mypy on the control plane."""

from __future__ import annotations

import glob
import os

from conftest import ROOT, run, venv_tool


def test_flake8() -> None:
    r = run([venv_tool("flake8"), "fastlb", "tests", "bench", "setup.py"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_cython_lint() -> None:
    files = sorted(
        glob.glob(os.path.join(ROOT, "fastlb", "*.pyx"))
        + glob.glob(os.path.join(ROOT, "fastlb", "*.pxd"))
        + glob.glob(os.path.join(ROOT, "fastlb", "_cy", "*.pyx"))
        + glob.glob(os.path.join(ROOT, "fastlb", "proxy", "*.pyx"))
        + glob.glob(os.path.join(ROOT, "fastlb", "proxy", "*.pxd"))
        + glob.glob(os.path.join(ROOT, "fastlb", "proxy", "_cy", "*.pyx"))
    )
    assert files
    r = run([venv_tool("cython-lint"), *files])
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy() -> None:
    r = run([venv_tool("mypy")])
    assert r.returncode == 0, r.stdout + r.stderr
