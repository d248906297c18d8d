"""config: read a TOML config file into plain data; never touches the world.

``load(path)`` reads and parses the file and reports any failure as
``ConfigError(file, key, reason)``.  It sets up no logging, reads no
environment, opens no socket and never exits.  The schema (frontends,
backends, servers, sticky sessions) arrives with the data plane; until then
``load`` checks TOML syntax and the top-level tables only.
"""

from __future__ import annotations

import tomllib
from typing import Any

from .errors import ConfigError

TOP_LEVEL = ("global", "frontends", "backends", "admin", "sessions")


def load(path: str) -> dict[str, Any]:
    """Parse ``path``; raise ConfigError naming the file, key and reason."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(path, "", e.strerror or str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"invalid TOML: {e}") from None
    for key, value in data.items():
        if key not in TOP_LEVEL:
            raise ConfigError(path, key, f"unknown table; expected one of {', '.join(TOP_LEVEL)}")
        if not isinstance(value, dict):
            raise ConfigError(path, key, "must be a table")
    return data
