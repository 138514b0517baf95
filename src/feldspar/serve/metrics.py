"""Prometheus metrics at /metrics: requests, latency, tokens and tokens/s, guard actions.

Each application has its own registry, so two servers in one process (tests) do not mix
their counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from feldspar.datatypes import Completion

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("feldspar_requests", "HTTP requests answered.",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("feldspar_request_seconds", "Time to answer a request (for "
                                 "a stream, to its first byte).", ["route"],
                                 registry=registry)
        self.in_progress = Gauge("feldspar_requests_in_progress", "Requests holding or "
                                 "waiting for a model.", registry=registry)
        self.tokens = Counter("feldspar_tokens", "Tokens read and generated.",
                              ["model", "kind"], registry=registry)
        self.generation = Histogram("feldspar_generation_tokens_per_second", "Completion "
                                    "tokens per second of each generation.", ["model"],
                                    buckets=(1, 5, 10, 25, 50, 100, 200, 400, 800),
                                    registry=registry)
        self.guard = Counter("feldspar_guard_decisions", "The guard's decisions.",
                             ["direction", "action"], registry=registry)

    def completion(self, model: str, done: Completion) -> None:
        """Count a finished generation's tokens and speed."""
        self.tokens.labels(model, "prompt").inc(done.usage.prompt_tokens)
        self.tokens.labels(model, "completion").inc(done.usage.completion_tokens)
        if done.timings.total_s > 0 and done.usage.completion_tokens:
            self.generation.labels(model).observe(
                done.usage.completion_tokens / done.timings.total_s)

    def decision(self, direction: str, action: str) -> None:
        self.guard.labels(direction, action).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
