"""cli: the ``fastlb`` command: arguments, logging set-up and exit codes.

The only module that exits the process.  Commands:
  fastlb --version
  fastlb check -c FILE     validate a config file; exit 1 listing every problem,
                           one line each
  fastlb run -c FILE       load the config, resolve the sticky secrets from
                           the environment, bind every frontend and serve
                           under a master with ``global.workers`` workers
  fastlb reload -c FILE    POST /reload to the admin API FILE's [admin] names
                           (its token from admin.token_env); exit 1 with the
                           problems when the balancer refuses the new config

Exit codes: 0 after a clean stop (SIGTERM/SIGINT) or a reload done, 1 for
a bad config or a missing secret (naming the file, key and reason) or a
reload refused, 2 for bad usage (reload without [admin]), 3 when a
frontend's or the admin API's address cannot be listened on (naming it)
or the admin API cannot be reached.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from typing import Mapping

from . import config
from ._version import __version__
from .errors import ConfigError, ConfigErrors, ListenError
from .sticky import make_store

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_LISTEN = 3

log = logging.getLogger("fastlb")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastlb", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"fastlb {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command")
    for name, help_ in (("check", "validate a config file"), ("run", "start the balancer"),
                        ("reload", "ask the running balancer to reload (its admin API)")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("-c", "--config", required=True, metavar="FILE", help="TOML config")
    return p


def serve(cfg: config.Config) -> int:
    """Bind every frontend, then run the master and its workers until stopped."""
    from .admin import load_token
    from .control import Balancer, validate
    from .master import Master, hold_signals
    from .proxy.listener import bind, bind_frontends
    from .worker import serve as serve_worker

    # Build every backend once here, before binding or forking, so a backend
    # the runtime rejects stops start-up instead of crash-looping the workers.
    try:
        validate(cfg, os.environ)
        token = load_token(cfg, os.environ)
    except ValueError as e:
        log.error("%s", e)
        return EXIT_CONFIG
    except ConfigError as e:
        log.error("config error: %s", e)
        return EXIT_CONFIG
    hold_signals()     # until the master acts on them: see fastlb.master
    admin_sock = None
    if cfg.admin is not None:
        try:
            admin_sock = bind("admin", cfg.admin.bind, 1)[0]
        except ListenError as e:
            log.error("%s: admin.bind: cannot listen on %s: %s", cfg.path, e.address, e.reason)
            return EXIT_LISTEN
    try:
        sockets = bind_frontends(cfg.frontends.values(), cfg.global_.workers)
    except ListenError as e:
        if admin_sock is not None:
            admin_sock.close()
        log.error("%s: %s", cfg.path, e)
        return EXIT_LISTEN

    # Learn-mode tables live in shared memory made here, before the fork, so
    # a session learned by one worker routes on every worker.
    balancer = Balancer(cfg, {name: make_store(be) for name, be in cfg.backends.items()},
                        admin_sock, token)

    def worker(index: int, socks: Mapping[str, Mapping[int, socket.socket]],
               ch: socket.socket) -> None:
        # Runs in the forked worker, with the master's state at the fork.
        serve_worker(index, sockets=socks, channel=ch, **balancer.worker_args())

    for fe in cfg.frontends.values():
        log.info("frontend %s: %s on %s -> backend %s", fe.name, fe.mode, fe.bind, fe.backend)
    return Master(sockets, None, cfg.global_.workers, cfg.global_.grace,
                  serve_worker=worker, app=balancer).run()


def reload(cfg: config.Config) -> int:
    """Ask the balancer running with ``cfg``'s [admin] to reload its file."""
    import http.client

    import orjson

    from .admin import load_token

    if cfg.admin is None:
        log.error("%s: no [admin] section: send SIGHUP to the master (the `fastlb run` "
                  "process) to reload", cfg.path)
        return EXIT_USAGE
    token = load_token(cfg, os.environ)
    addr = cfg.admin.bind
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token.decode()
    conn = http.client.HTTPConnection(addr.host, addr.port, timeout=60)
    try:
        conn.request("POST", "/reload", body=b"{}", headers=headers)
        r = conn.getresponse()
        body = r.read()
    except OSError as e:
        log.error("cannot reach the admin API on %s: %s", addr, e)
        return EXIT_LISTEN
    finally:
        conn.close()
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = {}
    if r.status == 200:
        print(f"{cfg.path}: reloaded")
        return EXIT_OK
    for line in answer.get("errors") or [answer.get("error") or f"HTTP {r.status}"]:
        log.error("reload refused: %s", line)
    return EXIT_CONFIG


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        cfg = config.load(args.config)
    except ConfigError as e:
        for err in e.errors if isinstance(e, ConfigErrors) else [e]:
            log.error("config error: %s", err)
        return EXIT_CONFIG
    if args.command == "check":
        print(f"{args.config}: ok")
        return EXIT_OK
    if args.command == "reload":
        try:
            return reload(cfg)
        except ConfigError as e:
            log.error("config error: %s", e)
            return EXIT_CONFIG
    log.info("fastlb %s starting from %s", __version__, args.config)
    return serve(cfg)
