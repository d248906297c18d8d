"""End-to-end bench: fastlb, HAProxy and nginx side by side in front of the same backends.

    .venv/bin/python bench/e2e/run.py [--duration 5] [--rounds 2] [--only NAME ...]
                                      [--proxies fastlb,haproxy,nginx] [--connections 50]

Installs haproxy, nginx (with its stream module) and wrk from Debian
packages when missing (apt-get; needs root).  Starts two fast backends (one
nginx worker answering a small static body on two ports), then, per
scenario, each proxy on its own port and runs wrk against them interleaved
(A B C A B C ...) for a bounded time each.  Per proxy it reports req/s, p50,
p99, the proxy's CPU time per request (user + system of every process of
the proxy during the run, from /proc/PID/stat, divided by requests) and the
peak RSS (VmHWM summed over its processes), each with its ratio to
HAProxy's.  The reload scenario instead runs wrk without and with a reload
of the proxy every second and reports req/s, the dip and failed requests.
The JSON goes to bench/results/e2e-<git sha>.json with the command and the
machine.  Speed is reported here, never asserted.

Every process it starts is stopped by PID when it ends, also on failure.
A proxy that cannot start (e.g. fastlb before its data plane can serve) is
reported as unavailable with the reason; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from heads import BROWSER_HEAD  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXIES = ("fastlb", "haproxy", "nginx")
APT = {"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk"}
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"
BIG = 100 * 1024 * 1024
DEMO_SECRET = "bench-secret-not-for-production"


# ---------------------------------------------------------------- scenarios

@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    mode: str = "http"            # http | tcp
    sticky: str = ""              # "" | "new" (no cookie sent) | "valid" (a valid cookie sent)
    connections: int | None = None   # None: --connections
    threads: int = 1              # wrk threads
    workers: int = 1              # proxy workers / threads
    browser: bool = False         # send bench/heads.py BROWSER_HEAD
    big: bool = False             # one 100 MiB response, MB/s
    idle: int = 0                 # hold this many idle keep-alive clients; RSS
    reload: bool = False          # wrk without and with a reload every second
    close: bool = False           # every request says Connection: close (a new connection each)


SCENARIOS = (
    Scenario("keepalive", "plain keep-alive GET /, round robin"),
    Scenario("close", "plain GET / with Connection: close: one request per new client "
             "connection, round robin", close=True),
    Scenario("browser-head", "~700-byte browser head (bench/heads.py), round robin",
             browser=True),
    Scenario("insert-new", "insert-mode sticky cookie, new clients (no cookie sent)",
             sticky="new"),
    Scenario("insert-valid", "insert-mode sticky cookie, clients send a valid cookie "
             "(one per server, alternating)",
             sticky="valid"),
    Scenario("latency-1conn", "one connection (latency)", connections=1),
    Scenario("workers-2", "2 workers (fastlb) / nbthread 2 / 2 nginx workers",
             workers=2, threads=2),
    Scenario("tcp", "TCP mode, keep-alive GET / through the relay", mode="tcp"),
    Scenario("big-100mb", "one 100 MiB response over one connection (MB/s)", big=True),
    Scenario("idle-1000", "RSS with 1,000 idle keep-alive clients (one request each)",
             idle=1000),
    Scenario("reload", "keep-alive and Connection: close GET /, without and with a "
             "reload every second", reload=True),
)

# The reload scenario's two wrk variants: the keepalive scenario's settings,
# and the same with every request on a new connection (what exercises the
# listeners while the proxy swaps its configuration or its processes).
RELOAD_VARIANTS: tuple[tuple[str, list[str]], ...] = (
    ("keepalive", []), ("close", ["-H", "Connection: close"]))
# HAProxy's reload: master-worker mode (-W), SIGUSR2 to the master.  The master
# re-executes itself, the new worker takes the listening sockets over the
# master's socketpair ("-x sockpair@"; master-worker mode needs no stats socket
# with "expose-fd listeners", see that keyword in HAProxy 2.6's
# configuration.txt and -x in its management.txt) and the old worker soft-stops.
# hard-stop-after bounds how long old workers may linger.  A soft-stopping
# worker closes idle keep-alive connections at once, racing a client's next
# request (wrk counts a read error); "option idle-close-on-response" (2.6) makes
# it answer that request with "Connection: close" instead, as HAProxy < 2.4 did.
HAPROXY_RELOAD_GLOBAL = "    hard-stop-after 30s"
HAPROXY_RELOAD_DEFAULTS = "    option idle-close-on-response"


# ---------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pids``, all threads of each."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user / CLK_TCK, system / CLK_TCK


def peak_rss_mb(pids: list[int], field: str = "VmHWM") -> tuple[float, float]:
    """(sum, largest) of the processes' peak RSS (VmHWM) or current one (VmRSS), MiB."""
    kbs = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        kbs.append(int(line.split()[1]))
        except OSError:
            pass
    return sum(kbs) / 1024, max(kbs, default=0) / 1024


class Procs:
    """Every process the bench starts; ``stop_all`` ends them by PID."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], env: dict[str, str] | None = None,
              log: str | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "wb") if log else subprocess.DEVNULL
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True, cwd=ROOT)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        pids = tree(p.pid)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for pid in pids:   # stragglers (nginx workers, fastlb workers)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p.poll() is None:
            p.wait(5)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            self.stop(p)
        self.procs.clear()


# ------------------------------------------------------------------ configs

def render(template: str, dest: str, values: dict[str, Any]) -> str:
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        raise ValueError(f"{template}: unfilled placeholders {left}")
    with open(dest, "w") as f:
        f.write(text)
    return dest


def server_lines(proxy: str, sc: Scenario, b1: int, b2: int, gen: int | None) -> str:
    """The backend's two server lines in ``proxy``'s syntax.

    ``gen`` is the config generation of the reload scenario (None in the
    others: no weights written).  Even generations list s1, s2 at weight 10;
    odd ones s2, s1 with s1 at weight 9, so that each reload really changes
    the server order and a weight.
    """
    servers = [("s1", b1, 10), ("s2", b2, 10)]
    if gen is not None and gen % 2:
        servers = [("s2", b2, 10), ("s1", b1, 9)]
    lines = []
    for name, port, w in servers:
        if proxy == "haproxy":
            extra = f" weight {w}" if gen is not None else ""
            extra += f" cookie {name}" if sc.sticky else ""
            lines.append(f"    server {name} 127.0.0.1:{port}{extra}")
        elif proxy == "nginx":
            extra = f" weight={w}" if gen is not None else ""
            lines.append(f"        server 127.0.0.1:{port}{extra};")
        else:
            extra = f", weight = {w}" if gen is not None else ""
            lines.append(f'  {{ name = "{name}", address = "127.0.0.1:{port}"{extra} }},')
    return "\n".join(lines)


# Per proxy: the log it writes (in its directory), the line it logs once per
# completed reload (to count the reloads that really happened), and the lines
# worth showing: warnings and errors, less the ones every reload logs
# (HAProxy's old worker reports its proxies stopped and the master its exit).
RELOAD_LOG = {
    "fastlb": ("proxy.log", re.compile(r"reloaded .*: generation \d+")),
    "haproxy": ("proxy.log", re.compile(r"Loading success")),
    "nginx": ("error.log", re.compile(r"start worker processes")),
}
LOG_PROBLEM = {
    "fastlb": re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback"),
    "haproxy": re.compile(r"\[(WARNING|ALERT)\]"),
    "nginx": re.compile(r"\[(warn|error|crit|alert|emerg)\]"),
}
LOG_BENIGN = re.compile(r"Proxy \S+ stopped \(cumulated conns|"
                        r"Former worker \(\d+\) exited with code 0")


class Proxy:
    def __init__(self, name: str, work: str, procs: Procs, b1: int, b2: int) -> None:
        self.name, self.work, self.procs, self.b1, self.b2 = name, work, procs, b1, b2
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.dir = os.path.join(work, name)
        self.cfg = ""
        self.gen = 0            # config generation (reload scenario)

    def supports(self, sc: Scenario) -> str | None:
        """None, or why this proxy cannot run the scenario."""
        if self.name == "nginx" and sc.sticky:
            return "nginx (open source) has no cookie-insert stickiness"
        return None

    def write_config(self, sc: Scenario) -> str:
        """Render this proxy's config for ``sc`` (and ``self.gen`` in the reload
        scenario) into its directory; the path."""
        d = self.dir
        v: dict[str, Any] = {
            "PORT": self.port, "WORKERS": sc.workers, "THREADS": sc.workers,
            "MODE": sc.mode, "PREFIX": d,
            "SERVERS": server_lines(self.name, sc, self.b1, self.b2,
                                    self.gen if sc.reload else None)}
        if self.name == "haproxy":
            v["HTTP_DEFAULTS"] = ("    option http-keep-alive\n    http-reuse safe"
                                  if sc.mode == "http" else "")
            if sc.reload:
                v["HTTP_DEFAULTS"] += "\n" + HAPROXY_RELOAD_DEFAULTS
            v["COOKIE"] = ("    cookie SRVID insert indirect nocache httponly"
                           if sc.sticky else "")
            v["GLOBAL"] = HAPROXY_RELOAD_GLOBAL if sc.reload else ""
            return render("haproxy.cfg", os.path.join(d, "haproxy.cfg"), v)
        if self.name == "nginx":
            tpl = "nginx-proxy-tcp.conf" if sc.mode == "tcp" else "nginx-proxy.conf"
            # notice: nginx logs "reconfiguring" per reload, which the bench counts.
            v["LOG_LEVEL"] = "notice" if sc.reload else "warn"
            return render(tpl, os.path.join(d, "nginx.conf"), v)
        v["STICKY"] = ('sticky = { mode = "insert", cookie = "SRVID", '
                       'secret_env = "FASTLB_SECRET" }' if sc.sticky else "")
        return render("fastlb.toml", os.path.join(d, "fastlb.toml"), v)

    def start(self, sc: Scenario) -> None:
        self.port = free_port()
        d = self.dir
        os.makedirs(d, exist_ok=True)
        log = os.path.join(d, "proxy.log")
        env = dict(os.environ)
        self.gen = 0
        cfg = self.cfg = self.write_config(sc)
        if self.name == "haproxy":
            # -W: master-worker, so that SIGUSR2 to the master reloads (reload scenario).
            cmd = ["haproxy", *(["-W"] if sc.reload else []), "-db", "-f", cfg]
        elif self.name == "nginx":
            cmd = ["nginx", "-p", d, "-c", cfg, "-g", "daemon off;"]
        else:
            cmd = [sys.executable, "-m", "fastlb", "run", "-c", cfg]
            env["FASTLB_SECRET"] = DEMO_SECRET
        self.proc = self.procs.start(cmd, env=env, log=log)
        try:
            wait_port(self.port, self.proc)
            if sc.mode == "http" and not sc.big:
                status, _ = http_get(self.port, "/")
                if status != 200:
                    raise RuntimeError(f"GET / answered {status}")
        except (RuntimeError, OSError) as e:
            with open(log, "rb") as f:
                lines = f.read()[-2000:].decode(errors="replace").strip().splitlines()
            tail = lines[-1] if lines else "(empty)"
            self.stop()
            raise RuntimeError(f"{e}; log: {tail}") from None

    def pids(self) -> list[int]:
        return tree(self.proc.pid) if self.proc else []

    def reload(self, sc: Scenario) -> None:
        """Write the next config generation and reload the proxy the way its
        operators do: fastlb SIGHUP to its master; HAProxy (-W) SIGUSR2 to its
        master; nginx ``nginx -s reload`` (SIGHUP to the master in its pid file)."""
        assert self.proc is not None
        self.gen += 1
        self.write_config(sc)
        if self.name == "fastlb":
            os.kill(self.proc.pid, signal.SIGHUP)
        elif self.name == "haproxy":
            os.kill(self.proc.pid, signal.SIGUSR2)
        else:
            r = subprocess.run(["nginx", "-p", self.dir, "-c", self.cfg, "-s", "reload"],
                               capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                raise RuntimeError(f"nginx -s reload: {(r.stderr or r.stdout).strip()}")

    def log_lines(self) -> list[str]:
        """The lines of the log the reload count comes from."""
        try:
            with open(os.path.join(self.dir, RELOAD_LOG[self.name][0]), "rb") as f:
                return f.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc:
            self.procs.stop(self.proc)
            self.procs.procs.remove(self.proc)
            self.proc = None


# ------------------------------------------------------------------- clients

def http_get(port: int, path: str, headers: str = "") -> tuple[int, str]:
    """One GET on a new connection: (status, raw head)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            got = s.recv(65536)
            if not got:
                break
            data += got
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    m = re.match(r"HTTP/1\.[01] (\d{3})", head)
    return (int(m.group(1)) if m else 0), head


def valid_cookies(port: int) -> list[str]:
    """One valid affinity cookie per backend server (by its X-Backend header),
    so the clients of the insert-valid scenario spread over both servers like
    round robin instead of all pinning one (which measures one hot server)."""
    found: dict[str, str] = {}
    for _ in range(20):
        _, head = http_get(port, "/")
        m = re.search(r"(?im)^set-cookie:\s*(SRVID=[^;\r\n]*)", head)
        b = re.search(r"(?im)^x-backend:\s*(\S+)", head)
        if m and b:
            found.setdefault(b.group(1), m.group(1))
        if len(found) == 2:
            return sorted(found.values())
    raise RuntimeError(f"no SRVID cookie for both servers (got {sorted(found)})")


def lua_script(path: str, sc: Scenario, cookies: list[str]) -> str:
    lines = ['wrk.method = "GET"']
    if sc.browser:
        head = BROWSER_HEAD.decode("latin-1").split("\r\n")
        target = head[0].split(" ")[1]
        lines.append(f'wrk.path = "{target}"')
        for line in head[1:]:
            if line:
                k, _, val = line.partition(": ")
                lines.append(f'wrk.headers["{k}"] = "{val}"')
    if sc.close:
        # wrk reconnects after each response that closes: every request on a
        # new connection (accept, connect upstream or reuse, close).
        lines.append('wrk.headers["Connection"] = "close"')
    if cookies:
        # Requests alternate between the servers' cookies.
        lines.append("cookies = {" + ", ".join(f'"{c}"' for c in cookies) + "}")
        lines += ["n = 0", "request = function()", "  n = n + 1",
                  '  wrk.headers["Cookie"] = cookies[(n % #cookies) + 1]',
                  "  return wrk.format()", "end"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk_cmd(port: int, sc: Scenario, duration: float, conns: int, script: str,
            headers: list[str] | None = None) -> list[str]:
    return ["wrk", f"-t{sc.threads}", f"-c{max(conns, sc.threads)}", f"-d{int(duration)}s",
            "--latency", *(headers or []), "-s", script, f"http://127.0.0.1:{port}/"]


def run_wrk(port: int, sc: Scenario, duration: float, conns: int,
            script: str) -> dict[str, Any]:
    cmd = wrk_cmd(port, sc, duration, conns, script)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    return parse_wrk(r.returncode, r.stdout, r.stderr)


def parse_wrk(returncode: int, out: str, stderr: str) -> dict[str, Any]:
    """wrk's summary: requests, req/s, p50/p99, non-2xx/3xx and socket errors."""
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if returncode != 0 or not (m and rps and p50 and p99):
        raise RuntimeError(f"wrk failed: {stderr.strip() or out}")
    if int(m.group(1)) == 0:
        raise RuntimeError("wrk got no response at all in the run")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    # "Socket errors: connect 0, read 3, write 0, timeout 0" (only when not all zero)
    kinds = {k: 0 for k in ("connect", "read", "write", "timeout")}
    for k, n in re.findall(r"(connect|read|write|timeout) (\d+)",
                           errors.group(1) if errors else ""):
        kinds[k] = int(n)
    n_non2xx = int(non2xx.group(1)) if non2xx else 0
    return {"requests": int(m.group(1)), "req_s": float(rps.group(1)),
            "p50_ms": _ms(p50.group(1)), "p99_ms": _ms(p99.group(1)),
            "non_2xx": n_non2xx,
            "socket_errors": errors.group(1).strip() if errors else "",
            "errors": kinds, "failed": n_non2xx + sum(kinds.values())}


def read_response(s: socket.socket, buf: memoryview | None = None) -> int:
    """Read one Content-Length response from ``s``; its body length.

    The body goes into ``buf`` (reused, so a 100 MiB body costs no
    allocation) or a 64 KiB scratch buffer.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        got = s.recv(65536)
        if not got:
            raise RuntimeError("connection closed before the response head")
        data += got
    head, body = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if not m:
        raise RuntimeError(f"no Content-Length: {head[:200]!r}")
    length = int(m.group(1))
    left = length - len(body)
    view = buf if buf is not None else memoryview(bytearray(65536))
    while left > 0:
        n = s.recv_into(view)
        if not n:
            raise RuntimeError(f"closed with {left} body bytes left")
        left -= n
    return length


def idle_clients(px: Proxy, n: int) -> dict[str, Any]:
    """Open ``n`` keep-alive clients, one request each, then RSS while they idle."""
    before = peak_rss_mb(px.pids(), "VmRSS")
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", px.port), timeout=10)
            socks.append(s)
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        for s in socks:
            read_response(s)
        time.sleep(1.0)
        after = peak_rss_mb(px.pids(), "VmRSS")
    except OSError as e:
        raise RuntimeError(f"idle clients: {e}") from None
    finally:
        for s in socks:
            s.close()
    return {"requests": n, "rss_before_mb": before[0], "rss_before_one_mb": before[1],
            "rss_mb": after[0], "rss_one_mb": after[1]}


def big_transfer(port: int) -> dict[str, Any]:
    view = memoryview(bytearray(1 << 20))
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        size = read_response(s, view)
    secs = time.perf_counter() - t0
    return {"requests": 1, "mb_s": size / (1 << 20) / secs, "seconds": secs}


# ---------------------------------------------------------------- the bench

@dataclass
class Result:
    proxy: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mb: float = 0.0           # summed over the proxy's processes
    peak_rss_one_mb: float = 0.0       # the largest single process (a worker)
    skipped: str = ""

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)


def measure(px: Proxy, sc: Scenario, args: argparse.Namespace, script: str) -> dict[str, Any]:
    pids = px.pids()
    c0 = cpu_seconds(pids)
    if sc.big:
        out = big_transfer(px.port)
    elif sc.idle:
        out = idle_clients(px, sc.idle)
    else:
        out = run_wrk(px.port, sc, args.duration, sc.connections or args.connections, script)
    pids = sorted(set(pids) | set(px.pids()))
    c1 = cpu_seconds(pids)
    out["cpu_user_s"], out["cpu_sys_s"] = c1[0] - c0[0], c1[1] - c0[1]
    cpu = out["cpu_s"] = out["cpu_user_s"] + out["cpu_sys_s"]
    out["cpu_us_per_req"] = cpu / max(out["requests"], 1) * 1e6
    return out


def run_scenario(sc: Scenario, proxies: list[Proxy], args: argparse.Namespace,
                 work: str) -> list[Result]:
    results = {px.name: Result(px.name) for px in proxies}
    live: list[Proxy] = []
    scripts: dict[str, str] = {}
    try:
        for px in proxies:
            why = px.supports(sc)
            if why:
                results[px.name].skipped = why
                continue
            try:
                px.start(sc)
                cookies = valid_cookies(px.port) if sc.sticky == "valid" else []
            except RuntimeError as e:
                results[px.name].skipped = f"did not start: {e}"
                px.stop()
                continue
            scripts[px.name] = lua_script(os.path.join(work, f"{px.name}.lua"), sc, cookies)
            live.append(px)
            if not (sc.big or sc.idle):   # warm-up, not measured
                warm = Scenario("warm", "", connections=sc.connections, threads=sc.threads)
                try:
                    run_wrk(px.port, warm, 1, sc.connections or args.connections,
                            scripts[px.name])
                except RuntimeError as e:
                    results[px.name].skipped = f"failed in the warm-up: {e}"
                    px.stop()
                    live.remove(px)
        for _ in range(args.rounds):        # interleaved: A B C A B C ...
            for px in list(live):
                try:
                    results[px.name].runs.append(measure(px, sc, args, scripts[px.name]))
                except RuntimeError as e:
                    results[px.name].runs.clear()
                    results[px.name].skipped = f"failed: {e}"
                    px.stop()
                    live.remove(px)
        for px in live:
            results[px.name].peak_rss_mb, results[px.name].peak_rss_one_mb = \
                peak_rss_mb(px.pids())
    finally:
        for px in live:
            px.stop()
    return [results[px.name] for px in proxies]


def reload_run(px: Proxy, sc: Scenario, args: argparse.Namespace, script: str,
               headers: list[str], reloading: bool) -> dict[str, Any]:
    """One wrk run; with ``reloading``, a reload every second while it runs.

    Reloads go at 1, 2, ... s after wrk starts, at most ``duration - 1`` of
    them, none after wrk ends.  Afterwards it waits (at most 5 s) until the
    proxy logged every reload as done, then checks that it still answers.
    """
    mark = len(px.log_lines())
    cmd = wrk_cmd(px.port, sc, args.duration, sc.connections or args.connections, script,
                  headers)
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sent = 0
    try:
        t0 = time.monotonic()
        for i in range(1, args.duration if reloading else 0):
            left = t0 + i - time.monotonic()
            if left > 0:
                try:
                    wrk.wait(left)        # returns early only if wrk ended
                    break
                except subprocess.TimeoutExpired:
                    pass
            if wrk.poll() is not None:
                break
            px.reload(sc)
            sent += 1
        out, err = wrk.communicate(timeout=args.duration + 60)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait(5)
    res = parse_wrk(wrk.returncode, out, err)
    pattern = RELOAD_LOG[px.name][1]
    deadline = time.monotonic() + 5
    while True:
        new = px.log_lines()[mark:]
        done = sum(1 for line in new if pattern.search(line))
        if done >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    res.update(reloads_sent=sent, reloads_done=done,
               log_problems=[line for line in new if LOG_PROBLEM[px.name].search(line)
                             and not LOG_BENIGN.search(line)][:20])
    if px.proc is None or px.proc.poll() is not None:
        raise RuntimeError("the proxy exited during the run")
    status, _ = http_get(px.port, "/")
    if status != 200:
        raise RuntimeError(f"GET / answered {status} after the run")
    return res


def run_reload_scenario(sc: Scenario, proxies: list[Proxy], args: argparse.Namespace,
                        work: str) -> list[Result]:
    """Per round and proxy (interleaved), per wrk variant, a baseline run and
    a run with a reload every second, back to back; the order of the two
    alternates from round to round so that drift does not favour either."""
    results = {px.name: Result(px.name) for px in proxies}
    live: list[Proxy] = []
    script = lua_script(os.path.join(work, "reload.lua"), sc, [])
    try:
        for px in proxies:
            try:
                px.start(sc)
                run_wrk(px.port, sc, 1, sc.connections or args.connections, script)  # warm-up
            except RuntimeError as e:
                results[px.name].skipped = f"did not start: {e}"
                px.stop()
                continue
            live.append(px)
        for rnd in range(args.rounds):
            order = (False, True) if rnd % 2 == 0 else (True, False)
            for px in list(live):
                try:
                    for variant, headers in RELOAD_VARIANTS:
                        for reloading in order:
                            res = reload_run(px, sc, args, script, headers, reloading)
                            res.update(variant=variant, reloading=reloading, round=rnd)
                            results[px.name].runs.append(res)
                except (RuntimeError, OSError) as e:
                    results[px.name].runs.clear()
                    results[px.name].skipped = f"failed: {e}"
                    px.stop()
                    live.remove(px)
    finally:
        for px in live:
            px.stop()
    return [results[px.name] for px in proxies]


def report_reload(sc: Scenario, results: list[Result]) -> list[dict[str, Any]]:
    """Per proxy and variant: median req/s without and with reloads, the dip
    (1 - median with / median without) and failed requests per run (median
    and total over the rounds), with ratios to HAProxy."""
    print(f"\n## {sc.name}: {sc.what}")
    print(f"{'proxy':8} {'variant':9} {'req/s':>8} {'(vs HA)':>8} {'reloading':>9} "
          f"{'(vs HA)':>8} {'dip':>6} {'failed':>6} {'reloading':>9} {'(vs HA)':>8} "
          f"{'total':>6} {'reloads':>8} {'p99 ms':>7} {'reloading':>9}")
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        for variant, _ in RELOAD_VARIANTS:
            base = [x for x in r.runs if x["variant"] == variant and not x["reloading"]]
            rel = [x for x in r.runs if x["variant"] == variant and x["reloading"]]
            if not (base and rel):
                continue
            med = statistics.median
            s = summary[(r.proxy, variant)] = {
                "req_s": med(x["req_s"] for x in base),
                "req_s_reloading": med(x["req_s"] for x in rel),
                "failed": med(x["failed"] for x in base),
                "failed_reloading": med(x["failed"] for x in rel),
                "failed_total": sum(x["failed"] for x in base),
                "failed_reloading_total": sum(x["failed"] for x in rel),
                "p99_ms": med(x["p99_ms"] for x in base),
                "p99_ms_reloading": med(x["p99_ms"] for x in rel),
                "reloads_sent": sum(x["reloads_sent"] for x in rel),
                "reloads_done": sum(x["reloads_done"] for x in rel),
                "errors_reloading": {k: sum(x["errors"][k] for x in rel)
                                     for k in rel[0]["errors"]},
                "non_2xx_reloading": sum(x["non_2xx"] for x in rel),
                "dips_per_round": [1 - b["req_s"] / a["req_s"] for a, b in
                                   zip(sorted(base, key=lambda x: x["round"]),
                                       sorted(rel, key=lambda x: x["round"]))]}
            s["dip"] = 1 - s["req_s_reloading"] / s["req_s"]
    rows = []
    for r in results:
        row: dict[str, Any] = {"proxy": r.proxy, "runs": r.runs}
        if not r.runs:
            print(f"{r.proxy:8} n/a: {r.skipped}")
            row["skipped"] = r.skipped
            rows.append(row)
            continue
        for variant, _ in RELOAD_VARIANTS:
            if (r.proxy, variant) not in summary:
                continue
            s = summary[(r.proxy, variant)]
            b: dict[str, Any] = summary.get(("haproxy", variant)) or {}
            print(f"{r.proxy:8} {variant:9} {s['req_s']:8.0f} "
                  f"{ratio(s['req_s'], b.get('req_s')):>8} "
                  f"{s['req_s_reloading']:9.0f} "
                  f"{ratio(s['req_s_reloading'], b.get('req_s_reloading')):>8} "
                  f"{s['dip'] * 100:5.1f}% {s['failed']:6.0f} {s['failed_reloading']:9.0f} "
                  f"{ratio(s['failed_reloading'], b.get('failed_reloading')):>8} "
                  f"{s['failed_reloading_total']:6d} "
                  f"{s['reloads_done']:>3}/{s['reloads_sent']:<4} "
                  f"{s['p99_ms']:7.2f} {s['p99_ms_reloading']:9.2f}")
            dips = ", ".join(f"{d * 100:.1f}%" for d in s["dips_per_round"])
            errs = ", ".join(f"{k} {n}" for k, n in s["errors_reloading"].items() if n)
            print(f"{'':8} {'':9} dip per round {dips}; failed while reloading, all rounds: "
                  f"{errs or 'no socket errors'}, non-2xx/3xx {s['non_2xx_reloading']}")
            problems = [line for x in r.runs if x["variant"] == variant
                        for line in x["log_problems"]]
            for line in problems[:5]:
                print(f"{'':8} log: {line[:160]}")
            row[variant] = s
        rows.append(row)
    return rows


def ratio(v: float, base: float | None) -> str:
    return f"{v / base:.2f}x" if base else "-"


def report(sc: Scenario, results: list[Result]) -> list[dict[str, Any]]:
    base = next((r for r in results if r.proxy == "haproxy" and r.runs), None)
    rows = []
    print(f"\n## {sc.name}: {sc.what}")
    if sc.idle:
        print(f"{'proxy':8} {'RSS MB idle':>12} {'(vs HA)':>8} {'largest process':>16} "
              f"{'(vs HA)':>8} {'MB before':>10}")
    elif sc.big:
        print(f"{'proxy':8} {'MB/s':>9} {'(vs HA)':>8} {'CPU ms/100MB':>13} {'(vs HA)':>8} "
              f"{'peak RSS MB':>12} {'(vs HA)':>8}")
    else:
        print(f"{'proxy':8} {'req/s':>9} {'(vs HA)':>8} {'p50 ms':>8} {'(vs HA)':>8} "
              f"{'p99 ms':>8} {'(vs HA)':>8} {'CPU us/req':>11} {'(vs HA)':>8} "
              f"{'peak RSS MB':>12} {'(vs HA)':>8}")
    for r in results:
        row: dict[str, Any] = {"proxy": r.proxy, "runs": r.runs,
                               "peak_rss_one_process_mb": r.peak_rss_one_mb}
        if not r.runs:
            print(f"{r.proxy:8} n/a: {r.skipped}")
            row["skipped"] = r.skipped
            rows.append(row)
            continue
        rss = r.peak_rss_mb
        b_rss = base.peak_rss_mb if base else None
        if sc.idle:
            vals = {k: r.median(k) for k in ("rss_mb", "rss_one_mb", "rss_before_mb")}
            b = {k: (base.median(k) if base else None) for k in vals}
            print(f"{r.proxy:8} {vals['rss_mb']:12.1f} {ratio(vals['rss_mb'], b['rss_mb']):>8} "
                  f"{vals['rss_one_mb']:16.1f} "
                  f"{ratio(vals['rss_one_mb'], b['rss_one_mb']):>8} "
                  f"{vals['rss_before_mb']:10.1f}")
            row.update(vals)
        elif sc.big:
            mbs, cpu = r.median("mb_s"), r.median("cpu_s") * 1e3
            b_mbs = base.median("mb_s") if base else None
            b_cpu = base.median("cpu_s") * 1e3 if base else None
            print(f"{r.proxy:8} {mbs:9.0f} {ratio(mbs, b_mbs):>8} "
                  f"{cpu:13.1f} {ratio(cpu, b_cpu):>8} "
                  f"{rss:12.1f} {ratio(rss, b_rss):>8}")
            row.update(mb_s=mbs, cpu_ms=cpu, peak_rss_mb=rss)
        else:
            vals = {k: r.median(k) for k in ("req_s", "p50_ms", "p99_ms", "cpu_us_per_req")}
            b = {k: (base.median(k) if base else None) for k in vals}
            print(f"{r.proxy:8} {vals['req_s']:9.0f} {ratio(vals['req_s'], b['req_s']):>8} "
                  f"{vals['p50_ms']:8.3f} {ratio(vals['p50_ms'], b['p50_ms']):>8} "
                  f"{vals['p99_ms']:8.3f} {ratio(vals['p99_ms'], b['p99_ms']):>8} "
                  f"{vals['cpu_us_per_req']:11.1f} "
                  f"{ratio(vals['cpu_us_per_req'], b['cpu_us_per_req']):>8} "
                  f"{rss:12.1f} {ratio(rss, b_rss):>8}")
            errs = [x for x in r.runs if x["non_2xx"] or x["socket_errors"]]
            if errs:
                print(f"{'':8} errors: non-2xx {sum(x['non_2xx'] for x in r.runs)}, "
                      f"socket errors {[x['socket_errors'] for x in errs]}")
            row.update(vals, peak_rss_mb=rss)
        rows.append(row)
    return rows


def ensure_packages() -> None:
    missing = [pkg for tool, pkg in APT.items() if shutil.which(tool) is None]
    if not os.path.exists(NGINX_STREAM):
        missing.append("libnginx-mod-stream")
    if not missing:
        return
    print(f"installing {' '.join(missing)} (apt-get)", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def git_sha() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                       capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "nogit") + ("-dirty" if dirty else "")


def version(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    return (r.stdout + r.stderr).strip().splitlines()[0]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=2, help="interleaved runs per proxy")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--proxies", default=",".join(PROXIES))
    p.add_argument("--only", nargs="*", choices=[s.name for s in SCENARIOS])
    args = p.parse_args(argv)
    if not 0 < args.duration <= 120 or not 0 < args.rounds <= 10:
        p.error("--duration must be in (0, 120] and --rounds in 1..10")
    names = [n for n in args.proxies.split(",") if n]
    bad = set(names) - set(PROXIES)
    if bad:
        p.error(f"unknown proxies {sorted(bad)}; choose from {', '.join(PROXIES)}")
    ensure_packages()
    procs = Procs()
    work = tempfile.mkdtemp(prefix="fastlb-e2e-")
    out: dict[str, Any] = {
        "git": git_sha(), "command": " ".join([sys.executable, *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "loadavg_at_start": os.getloadavg(),
                    "haproxy": version(["haproxy", "-v"]), "nginx": version(["nginx", "-v"]),
                    "python": platform.python_version()},
        "settings": {"duration_s": args.duration, "rounds": args.rounds,
                     "connections": args.connections},
        "scenarios": {}}
    try:
        b1, b2 = free_port(), free_port()
        be_dir = os.path.join(work, "backends")
        os.makedirs(be_dir)
        with open(os.path.join(be_dir, "big.bin"), "wb") as f:
            f.truncate(BIG)
        cfg = render("nginx-backends.conf", os.path.join(be_dir, "nginx.conf"),
                     {"B1": b1, "B2": b2, "PREFIX": be_dir})
        backend = procs.start(["nginx", "-p", be_dir, "-c", cfg, "-g", "daemon off;"])
        wait_port(b1, backend)
        wait_port(b2, backend)
        proxies = [Proxy(n, work, procs, b1, b2) for n in names]
        for sc in SCENARIOS:
            if args.only and sc.name not in args.only:
                continue
            if sc.reload:
                results = run_reload_scenario(sc, proxies, args, work)
                rows = report_reload(sc, results)
            else:
                results = run_scenario(sc, proxies, args, work)
                rows = report(sc, results)
            out["scenarios"][sc.name] = {"what": sc.what, "results": rows}
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["loadavg_at_end"] = os.getloadavg()
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", f"e2e-{out['git']}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nsaved {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
