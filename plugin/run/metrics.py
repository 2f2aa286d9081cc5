"""--metrics-addr: Prometheus metrics on /metrics, liveness on /healthz, readiness on /readyz.

The counters are not kept twice: a Collector reads the engine's Stats (and, in serve, the buffer
and the listeners) when Prometheus scrapes, so the hot path pays nothing per event. Only the batch
latency histogram is observed as it happens, once per batch. Every Metrics has its own registry,
never prometheus-client's global one. docs/metrics.md lists the metrics.

`run` serves from a thread (wsgiref with the library's WSGI app); `serve` from its own event loop
(aiohttp routes, the library's generate_latest). The scrape thread reads counters the loop thread
writes: ints are read whole; a dict that grows while it is copied is copied again.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shellsieve.run.engine import Engine
from shellsieve.run.stats import MALFORMED_REASONS

__all__ = ["Metrics", "parse_addr", "MetricsThread", "CONTENT_TYPE"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

T = TypeVar("T")

# Per batch, seconds: a batch of a few hundred lines takes about a millisecond.
BATCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def parse_addr(text: str) -> tuple[str, int]:
    """HOST:PORT ([v6]:PORT for IPv6; port 0: any free port) -> (host, port); ValueError says why."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"must be HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c in host for c in "[]/ "):
        raise ValueError(f"must be HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), got {text!r}")
    return host, int(port)


def _settled(read: Callable[[], list[T]]) -> list[T]:
    # the loop thread may add a key to a dict while the scrape thread copies it: copy again
    for _ in range(100):
        try:
            return read()
        except RuntimeError:
            continue
    return []


def _copy(counter: Mapping[str, int]) -> list[tuple[str, int]]:
    return _settled(lambda: sorted(counter.items()))


class Metrics(Collector):
    """The registry, the readiness state and the batch histogram of one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.engine: Engine | None = None
        self.ready = False  # the database is in and the filter reads
        self.live = True  # false once the loop has ended
        self.serve_state: Callable[[], Iterable[Metric]] | None = None  # serve's own metrics
        self.batch_seconds = Histogram("shellsieve_batch_seconds", "Seconds to process one batch of input",
                                       registry=self.registry, buckets=BATCH_BUCKETS)
        self.registry.register(self)

    def attach(self, engine: Engine) -> None:
        """The engine is in: its counters are scraped from now on, and the process is ready."""
        self.engine = engine
        self.ready = True

    def stopping(self) -> None:
        self.ready = False

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        if engine is None:
            return
        stats = engine.stats
        lines = stats.lines()
        events = CounterMetricFamily("shellsieve_events", "Input lines by what became of them", labels=["direction"])
        for direction in ("in", "out", "dropped", "undelivered"):
            events.add_metric([direction], lines[f"events_{direction}"])
        yield events
        yield GaugeMetricFamily("shellsieve_events_pending", "Lines read whose output is not written yet",
                                value=lines["events_pending"])
        fam = CounterMetricFamily("shellsieve_bytes", "Input bytes", labels=["direction"])
        fam.add_metric(["in"], stats.bytes_in)
        yield fam
        yield CounterMetricFamily("shellsieve_alerts", "Events that left as alerts", value=stats.alerts)
        for name, what, counter in (("rule_hits", "Hits alerted, per rule", stats.hits),
                                    ("excepted", "Hits an exception held back, per rule", stats.excepted),
                                    ("suppressed", "Hits suppression held back, per rule", stats.suppressed)):
            fam = CounterMetricFamily(f"shellsieve_{name}", what, labels=["rule_id"])
            for rule_id, n in _copy(counter):
                fam.add_metric([rule_id], n)
            yield fam
        malformed = dict(_copy(stats.malformed))
        fam = CounterMetricFamily("shellsieve_malformed", "Malformed input lines, by reason", labels=["reason"])
        for reason in MALFORMED_REASONS:
            fam.add_metric([reason], malformed.get(reason, 0))
        yield fam
        yield CounterMetricFamily("shellsieve_line_too_long", "Lines over --max-line-bytes, forwarded unscanned",
                                  value=malformed.get("line_too_long", 0))
        open_sequences, evictions = _settled(lambda: [engine.sequence_counts()])[0]
        yield GaugeMetricFamily("shellsieve_open_sequences", "Sequences begun and waiting for their next step",
                                value=open_sequences)
        yield CounterMetricFamily("shellsieve_sequence_evictions", "Open sequences evicted for room",
                                  value=evictions)
        corr = _settled(lambda: [engine.correlation_counts()])[0]
        yield GaugeMetricFamily("shellsieve_correlation_groups", "Sigma correlation groups held",
                                value=corr["correlation_groups"])
        yield CounterMetricFamily("shellsieve_correlation_evictions", "Sigma correlation groups evicted for room",
                                  value=corr["correlation_evictions"])
        ruleset = engine.ruleset  # read once: a reload may swap it while this scrape runs
        loaded = Counter(cr.rule.ruleset for cr in ruleset.rules)
        by_format = GaugeMetricFamily("shellsieve_rules_loaded", "Rules running, by rule format", labels=["format"])
        for fmt, n in sorted(loaded.items()):
            by_format.add_metric([fmt], n)
        yield by_format
        yield GaugeMetricFamily("shellsieve_compile_seconds",
                                "Seconds the running rules took to load and compile (at the start or the last "
                                "reload)", value=engine.compile_seconds)
        fam = CounterMetricFamily("shellsieve_reloads", "Rule reloads, by result", labels=["result"])
        for result in ("ok", "failed"):
            fam.add_metric([result], stats.reloads[result])
        yield fam
        if self.serve_state is not None:
            yield from self.serve_state()

    def health(self, path: str) -> tuple[int, bytes] | None:
        """(status, body) for /healthz and /readyz; None for any other path."""
        if path == "/healthz":
            return (200, b"ok\n") if self.live else (503, b"stopped\n")
        if path == "/readyz":
            return (200, b"ready\n") if self.ready else (503, b"not ready\n")
        return None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)



class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds the exit


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # stderr carries the filter's JSON logs only


class MetricsThread:
    """`run`'s metrics server: bound at once (OSError if the address is taken), served from a thread."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        library = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            health = metrics.health(environ.get("PATH_INFO", ""))
            if health is None:
                page: Iterable[bytes] = library(environ, start_response)  # the stub types it Any
                return page
            status, body = health
            start_response(f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                           [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
            return [body]

        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        self.server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
        bound_host, bound_port = self.server.server_address[:2]
        assert isinstance(bound_host, str)  # an IP server's (the stub allows bytes, for AF_UNIX)
        self.address = (bound_host, bound_port)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.metrics.live = False
        self.server.shutdown()
        self.server.server_close()
