"""serve's --metrics-addr: /metrics, /healthz and /readyz from serve's own event loop (aiohttp), with
the buffer and per-listener counters besides the engine's (run/metrics.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from shellsieve.run.metrics import CONTENT_TYPE, Metrics
from shellsieve.serve.pipeline import REFUSALS

__all__ = ["MetricsSite"]


class MetricsSite:
    """Serves `server`'s metrics (a serve.app._Server) on the bound socket `sock`."""

    def __init__(self, sock: socket.socket, server: Any) -> None:
        self.sock, self.server = sock, server
        self.state = Metrics()
        self.state.serve_state = self._collect
        server.pipeline.observe = self.state.batch_seconds.observe
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/readyz", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> None:
        """Listeners are up: from now on the process is ready."""
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()
        self.state.attach(self.server.engine)

    async def close(self) -> None:
        self.state.live = False
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.state.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _health(self, request: web.Request) -> web.Response:
        status, body = self.state.health(request.path) or (404, b"not found\n")
        return web.Response(status=status, body=body, content_type="text/plain")

    def _collect(self) -> Iterator[Metric]:
        pipeline, listeners = self.server.pipeline, self.server.listeners
        yield GaugeMetricFamily("shellsieve_buffer_events", "Events accepted and not yet delivered",
                                value=pipeline.pending)
        yield GaugeMetricFamily("shellsieve_buffer_capacity_events", "--buffer-events", value=pipeline.capacity)
        events = CounterMetricFamily("shellsieve_listener_events", "Events per listener: in, and delivered",
                                     labels=["listener", "direction"])
        refused = CounterMetricFamily("shellsieve_listener_requests_refused", "Requests refused, by reason",
                                      labels=["listener", "reason"])
        for ls in listeners:
            st = ls.stats
            events.add_metric([st.name, "in"], st.events_in)
            events.add_metric([st.name, "delivered"], st.events_done)
            for reason in REFUSALS:
                refused.add_metric([st.name, reason], st.refused[reason])
        yield events
        yield refused
