"""cli: the ``fastlb`` command: arguments, logging set-up and exit codes.

The only module that exits the process.  Commands:
  fastlb --version
  fastlb check -c FILE     validate a config file; exit 1 naming every problem
  fastlb run -c FILE       load the config and start (the data plane lands
                           with the proxy; until then it prints the config)
"""

from __future__ import annotations

import argparse
import logging

from . import config
from ._version import __version__
from .errors import ConfigError

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2

log = logging.getLogger("fastlb")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastlb", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"fastlb {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command")
    for name, help_ in (("check", "validate a config file"), ("run", "start the balancer")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        cfg = config.load(args.config)
    except ConfigError as e:
        log.error("config error: %s", e)
        return EXIT_CONFIG
    if args.command == "check":
        print(f"{args.config}: ok")
        return EXIT_OK
    log.info("loaded %s", args.config)
    for fe in cfg.frontends.values():
        print(f"frontend {fe.name}: {fe.mode} bind {fe.bind} -> backend {fe.backend}")
    for be in cfg.backends.values():
        servers = ", ".join(f"{s.name}={s.address}" for s in be.servers)
        sticky = f", sticky {be.sticky.mode}" if be.sticky else ""
        print(f"backend {be.name}: balance {be.balance}{sticky}: {servers}")
    print("the data plane is not built yet (issue: the proxy); exiting after loading")
    return EXIT_OK
