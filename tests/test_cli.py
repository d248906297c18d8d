"""The fastlb command: version, config check, error messages naming file and key."""

from __future__ import annotations

import os
import sys

from conftest import ROOT, run, venv_tool

from fastlb import __version__


def test_version_console_script() -> None:
    r = run([venv_tool("fastlb"), "--version"])
    assert r.returncode == 0
    assert r.stdout.strip() == f"fastlb {__version__}"


def test_version_module() -> None:
    r = run([sys.executable, "-m", "fastlb", "--version"])
    assert r.returncode == 0
    assert r.stdout.strip() == f"fastlb {__version__}"


def test_check_example_config() -> None:
    r = run([sys.executable, "-m", "fastlb", "check", "-c", "examples/fastlb.toml"])
    assert r.returncode == 0, r.stderr


def test_bad_toml_names_file(tmp_path: object) -> None:
    bad = os.path.join(str(tmp_path), "bad.toml")
    with open(bad, "w") as f:
        f.write("[global\nworkers = 2\n")
    r = run([sys.executable, "-m", "fastlb", "check", "-c", bad])
    assert r.returncode == 1
    assert bad in r.stderr and "invalid TOML" in r.stderr


def test_unknown_table_names_key(tmp_path: object) -> None:
    bad = os.path.join(str(tmp_path), "bad.toml")
    with open(bad, "w") as f:
        f.write("[frontend.web]\nbind = '127.0.0.1:1'\n")
    r = run([sys.executable, "-m", "fastlb", "check", "-c", bad])
    assert r.returncode == 1
    assert f"{bad}: frontend: unknown key; did you mean 'frontends'?" in r.stderr


def test_missing_file(tmp_path: object) -> None:
    missing = os.path.join(str(tmp_path), "nope.toml")
    r = run([sys.executable, "-m", "fastlb", "check", "-c", missing])
    assert r.returncode == 1
    assert missing in r.stderr


def test_root_is_repo() -> None:
    assert os.path.exists(os.path.join(ROOT, "setup.py"))
