"""metrics: the stats dict (docs/admin.md) as Prometheus text exposition format 0.0.4.

``render(stats)`` is a pure function of the dict ``Control.stats()``
returns; it keeps no counters of its own and reads nothing else, so
``/stats`` and ``/metrics`` always agree.  Every family is written with its
HELP and TYPE lines even when it has no sample (no server, say), so the set
of families does not depend on the config.  Names follow the Prometheus
conventions: prefix ``fastlb_``, counters end in ``_total``, durations in
seconds, label values escaped as the format says (backslash, double quote,
newline).  ``FAMILIES`` lists every family as (name, type, help); a test
checks the output holds exactly these.

Limits: a key missing from the dict is a bug in the caller and raises
``KeyError``; the admin server answers 500 and logs it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
OUTCOMES = ("none", "valid", "invalid", "expired", "repinned", "spilled")
SERVER_STATES = ("up", "down", "drain", "maint")
ADMIN_STATES = ("ready", "drain", "maint")

# name (without prefix), type, help: the order of the output
FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("info", "gauge", "Always 1; the version label says which fastlb runs."),
    ("uptime_seconds", "gauge", "Seconds since the master started."),
    ("workers", "gauge", "Worker processes configured."),
    ("reloads_total", "counter", "Config reloads done (the stats' generation)."),
    # frontends
    ("frontend_connections_active", "gauge", "Client connections open now."),
    ("frontend_connections_total", "counter", "Client connections accepted."),
    ("frontend_requests_total", "counter", "Requests received (HTTP frontends)."),
    ("frontend_bytes_in_total", "counter", "Bytes received from clients."),
    ("frontend_bytes_out_total", "counter", "Bytes sent to clients."),
    ("frontend_responses_total", "counter", "Responses sent to clients, by status class."),
    ("frontend_errors_total", "counter", "Requests or connections ended by an error."),
    # backends
    ("backend_requests_total", "counter", "Requests sent to the backend's servers."),
    ("backend_bytes_in_total", "counter", "Bytes received from the backend's servers."),
    ("backend_bytes_out_total", "counter", "Bytes sent to the backend's servers."),
    ("backend_responses_total", "counter", "Responses from the backend, by status class."),
    ("backend_errors_total", "counter", "Requests that failed on the backend."),
    ("backend_retries_total", "counter", "Connection attempts retried on the backend."),
    ("backend_redispatches_total", "counter", "Requests sent to another server after a failure."),
    ("backend_queued", "gauge", "Requests waiting for a free server slot."),
    ("backend_persistence_total", "counter",
     "Sticky-session outcomes, by outcome (none, valid, invalid, expired, repinned, spilled)."),
    ("backend_sessions", "gauge", "Learned sessions stored (sticky learn mode only)."),
    ("backend_latency_seconds", "histogram", "Request latency of the backend's servers."),
    # servers
    ("server_up", "gauge", "1 when the server takes new traffic (state up), else 0."),
    ("server_state", "gauge", "The server's state, one-hot over up, down, drain, maint."),
    ("server_admin_state", "gauge", "The state set by the operator, one-hot over ready, "
                                    "drain, maint."),
    ("server_weight", "gauge", "The weight configured or set through the admin API."),
    ("server_effective_weight", "gauge", "The weight in use now (slow start, drain)."),
    ("server_backup", "gauge", "1 for a backup server."),
    ("server_active", "gauge", "Requests in flight on the server."),
    ("server_pooled", "gauge", "Idle keep-alive connections pooled to the server."),
    ("server_connections_total", "counter", "Connections opened to the server."),
    ("server_requests_total", "counter", "Requests sent to the server."),
    ("server_bytes_in_total", "counter", "Bytes received from the server."),
    ("server_bytes_out_total", "counter", "Bytes sent to the server."),
    ("server_responses_total", "counter", "Responses from the server, by status class."),
    ("server_errors_total", "counter", "Requests that failed on the server."),
    ("server_retries_total", "counter", "Connection attempts to the server retried."),
    ("server_redispatches_total", "counter", "Requests moved away from the server after a "
                                             "failure."),
    ("server_checked", "gauge", "1 when active health checks run for the server."),
    ("server_state_since_seconds", "gauge", "Unix time of the server's last state change."),
    ("server_check_ok", "gauge", "1 when the last health check passed (checked servers)."),
    ("server_check_duration_seconds", "gauge", "Duration of the last health check."),
    ("server_check_timestamp_seconds", "gauge", "Unix time of the last health check."),
    ("server_latency_seconds", "histogram", "Request latency of the server."),
)

Labels = tuple[tuple[str, str], ...]


def render(stats: dict[str, Any]) -> bytes:
    """The text exposition of ``stats``, families in ``FAMILIES`` order."""
    samples: dict[str, list[str]] = {name: [] for name, _, _ in FAMILIES}

    def add(family: str, labels: Labels, value: float, suffix: str = "") -> None:
        samples[family].append(f"fastlb_{family}{suffix}{_labels(labels)} {_value(value)}")

    def histogram(family: str, labels: Labels, h: dict[str, Any]) -> None:
        le, counts = h["le"], h["counts"]
        if len(counts) != len(le) + 1:
            raise ValueError(f"{family}: {len(counts)} counts for {len(le)} bounds")
        for bound, count in zip([*le, math.inf], counts):
            add(family, (*labels, ("le", _value(float(bound)))), count, "_bucket")
        add(family, labels, h["sum"], "_sum")
        add(family, labels, h["count"], "_count")

    add("info", (("version", str(stats["version"])),), 1)
    add("uptime_seconds", (), stats["uptime_s"])
    add("workers", (), stats["workers"])
    add("reloads_total", (), stats["generation"])

    for fname, f in stats["frontends"].items():
        lf: Labels = (("frontend", fname),)
        add("frontend_connections_active", lf, f["connections"]["active"])
        add("frontend_connections_total", lf, f["connections"]["total"])
        for key in ("requests", "bytes_in", "bytes_out", "errors"):
            add(f"frontend_{key}_total", lf, f[key])
        for cls in CLASSES:
            add("frontend_responses_total", (*lf, ("class", cls)), f["responses"][cls])

    for bname, b in stats["backends"].items():
        lb: Labels = (("backend", bname),)
        for key in ("requests", "bytes_in", "bytes_out", "errors", "retries", "redispatches"):
            add(f"backend_{key}_total", lb, b[key])
        for cls in CLASSES:
            add("backend_responses_total", (*lb, ("class", cls)), b["responses"][cls])
        add("backend_queued", lb, b["queued"])
        for outcome in OUTCOMES:
            add("backend_persistence_total", (*lb, ("outcome", outcome)), b["outcomes"][outcome])
        if b["sessions"] is not None:
            add("backend_sessions", lb, b["sessions"])
        histogram("backend_latency_seconds", lb, b["latency"])

        for sname, s in b["servers"].items():
            ls: Labels = (*lb, ("server", sname))
            add("server_up", ls, s["state"] == "up")
            for state in SERVER_STATES:
                add("server_state", (*ls, ("state", state)), s["state"] == state)
            for state in ADMIN_STATES:
                add("server_admin_state", (*ls, ("state", state)), s["admin"] == state)
            add("server_weight", ls, s["weight"])
            add("server_effective_weight", ls, s["effective_weight"])
            add("server_backup", ls, s["backup"])
            add("server_active", ls, s["active"])
            add("server_pooled", ls, s["pooled"])
            add("server_connections_total", ls, s["connections"]["total"])
            for key in ("requests", "bytes_in", "bytes_out", "errors", "retries",
                        "redispatches"):
                add(f"server_{key}_total", ls, s[key])
            for cls in CLASSES:
                add("server_responses_total", (*ls, ("class", cls)), s["responses"][cls])
            health = s["health"]
            add("server_checked", ls, health["checked"])
            add("server_state_since_seconds", ls, health["since"])
            last = health["last"]
            if last is not None:
                add("server_check_ok", ls, last["ok"])
                add("server_check_duration_seconds", ls, last["ms"] / 1000.0)
                add("server_check_timestamp_seconds", ls, last["at"])
            histogram("server_latency_seconds", ls, s["latency"])

    out: list[str] = []
    for name, kind, help_text in FAMILIES:
        out.append(f"# HELP fastlb_{name} {_escape_help(help_text)}")
        out.append(f"# TYPE fastlb_{name} {kind}")
        out.extend(samples[name])
    return ("\n".join(out) + "\n").encode("utf-8")


def _labels(labels: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
    return f"{{{inner}}}" if inner else ""


def escape_label(value: str) -> str:
    """A label value as the text format writes it: \\\\, \\" and \\n escaped."""
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float | bool) -> str:
    """A sample value: integers as digits, floats as Go's strconv would, +Inf/-Inf/NaN."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))
