"""The embedded server's Prometheus metrics, served at METRICS_PATH on the REST port.

- `serving_requests_total{model, version, signature, api, method, code}`: requests
  answered, `api` rest or grpc, `code` the canonical status (OK, INVALID_ARGUMENT, ...)
  whichever API answered;
- `serving_request_latency_seconds{model, api, method}`: a histogram of the same;
- `serving_model_versions{model, version, state}` (1 per version, its state now) and
  `serving_version_labels{model, label, version}`;
- `serving_model_load_failures_total{model, version}`.
Requests the HTTP layer refuses before they are routed (no Content-Length, a bad one,
a body over the limit or sent too slowly, the connection limit) are counted in
`serving_requests_total` with `api` rest and `model`, `method` "" (not in the latency
histogram: nothing ran).
Each server has its own registry (not prometheus-client's global one), so servers in
one process do not mix. Label values come from the server, never verbatim from a
request: a model, signature or version the server does not have is recorded as "",
so clients cannot grow the series without bound. Warmup requests are not counted.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

METRICS_PATH = "/monitoring/prometheus/metrics"
# The `method` label values, the same for REST and gRPC so that both add up.
PREDICT, CLASSIFY, METADATA, STATUS = "predict", "classify", "metadata", "status"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Request latencies of a CPU model: a millisecond (status) to tens of seconds (a full
# batch on a busy machine).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0)


@dataclasses.dataclass
class RequestRecord:
    """What one request was, filled in as it is handled (what is unknown stays "")."""
    api: str
    method: str = ""
    model: str = ""
    version: str = ""
    signature: str = ""
    started: float = dataclasses.field(default_factory=time.perf_counter)


class _StoreCollector:
    """The store's versions, labels and load failures, read at each scrape."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        name = self.store.model_name
        versions = GaugeMetricFamily("serving_model_versions",
                                     "Versions of the model and their state (1 = in it now)",
                                     labels=["model", "version", "state"])
        for status in self.store.statuses_now():
            versions.add_metric([name, str(status.version), status.state], 1)
        yield versions
        labels = GaugeMetricFamily("serving_version_labels",
                                   "The version each label answers with (1)",
                                   labels=["model", "label", "version"])
        for label, version in sorted(self.store.labels().items()):
            labels.add_metric([name, label, str(version)], 1)
        yield labels
        failures = CounterMetricFamily("serving_model_load_failures",
                                       "Loads of a version that failed (its warmup included)",
                                       labels=["model", "version"])
        for version, count in sorted(self.store.load_failures().items()):
            failures.add_metric([name, str(version)], count)
        yield failures


class ServerMetrics:
    """A server's metrics; `store` None for a server that holds no model (the logging
    proxy), whose requests count under `model_name`."""

    def __init__(self, store, model_name: str = ""):
        self.store = store
        self.model_name = store.model_name if store is not None else model_name
        self.registry = CollectorRegistry()
        self.requests = Counter("serving_requests", "Requests answered",
                                ["model", "version", "signature", "api", "method", "code"],
                                registry=self.registry)
        self.latency = Histogram("serving_request_latency_seconds",
                                 "Time from a request's arrival to its answer",
                                 ["model", "api", "method"], buckets=_LATENCY_BUCKETS,
                                 registry=self.registry)
        if store is not None:
            self.registry.register(_StoreCollector(store))

    def known_model(self, name: str) -> str:
        return name if name == self.model_name else ""

    def observe(self, record: RequestRecord, code: str) -> None:
        self.requests.labels(record.model, record.version, record.signature, record.api,
                             record.method, code).inc()
        self.latency.labels(record.model, record.api, record.method).observe(
            time.perf_counter() - record.started)

    def refused(self, code: str) -> None:
        """A REST request refused before routing, with the canonical code it got."""
        self.requests.labels("", "", "", "rest", "", code).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def code_of_http_status(status: int) -> str:
    """The canonical code of an HTTP refusal (errors.py maps the other way)."""
    return {408: "DEADLINE_EXCEEDED", 413: "RESOURCE_EXHAUSTED", 501: "UNIMPLEMENTED",
            503: "UNAVAILABLE"}.get(status, "INVALID_ARGUMENT" if status < 500 else
                                    "INTERNAL")


def record_loaded(record: Optional[RequestRecord], loaded, signature: str = "") -> None:
    """Notes the version that answers, and the signature if the version has it."""
    if record is not None:
        record.version = str(loaded.version)
        if isinstance(signature, str) and signature in loaded.signatures:
            record.signature = signature
