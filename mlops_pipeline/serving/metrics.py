"""Prometheus metrics in the text exposition format: requests, latency histogram, errors by model."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ServerMetrics:
    """Counters and one latency histogram per endpoint; thread-safe, no external dependency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        self._rows: dict[str, int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
        self._sums: dict[str, float] = defaultdict(float)

    def observe(self, endpoint: str, model: str, status: int, seconds: float, rows: int = 0) -> None:
        with self._lock:
            self._requests[(endpoint, model, str(status))] += 1
            self._buckets[endpoint][bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            self._sums[endpoint] += seconds
            if rows:
                self._rows[model] += rows

    def error(self, model: str, reason: str) -> None:
        with self._lock:
            self._errors[(model, reason)] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data, for ``render`` in another process."""
        with self._lock:
            return {
                "requests": [[*key, count] for key, count in self._requests.items()],
                "errors": [[*key, count] for key, count in self._errors.items()],
                "rows": dict(self._rows),
                "buckets": {endpoint: list(counts) for endpoint, counts in self._buckets.items()},
                "sums": dict(self._sums),
            }

    def _add(self, snapshot: dict[str, Any]) -> None:
        for endpoint, model, status, count in snapshot["requests"]:
            self._requests[(endpoint, model, status)] += count
        for model, reason, count in snapshot["errors"]:
            self._errors[(model, reason)] += count
        for model, count in snapshot["rows"].items():
            self._rows[model] += count
        for endpoint, counts in snapshot["buckets"].items():
            totals = self._buckets[endpoint]
            totals[:] = [total + count for total, count in zip(totals, counts, strict=True)]
        for endpoint, seconds in snapshot["sums"].items():
            self._sums[endpoint] += seconds

    def render(self, others: Iterable[dict[str, Any]] = ()) -> str:
        """The text exposition of these counters plus those of ``others`` (other processes' snapshots)."""
        merged = ServerMetrics()
        for snapshot in (self.snapshot(), *others):
            merged._add(snapshot)
        return merged._render()

    def _render(self) -> str:
        with self._lock:
            lines = [
                "# HELP mlops_serving_requests_total Requests by endpoint, model and HTTP status.",
                "# TYPE mlops_serving_requests_total counter",
            ]
            for (endpoint, model, status), count in sorted(self._requests.items()):
                labels = _labels(endpoint=endpoint, model=model, status=status)
                lines.append(f"mlops_serving_requests_total{labels} {count}")
            lines += [
                "# HELP mlops_serving_errors_total Failed requests by model and reason.",
                "# TYPE mlops_serving_errors_total counter",
            ]
            for (model, reason), count in sorted(self._errors.items()):
                lines.append(f"mlops_serving_errors_total{_labels(model=model, reason=reason)} {count}")
            lines += [
                "# HELP mlops_serving_rows_total Rows predicted by model.",
                "# TYPE mlops_serving_rows_total counter",
            ]
            for model, count in sorted(self._rows.items()):
                lines.append(f"mlops_serving_rows_total{_labels(model=model)} {count}")
            lines += [
                "# HELP mlops_serving_request_seconds Request latency in the server.",
                "# TYPE mlops_serving_request_seconds histogram",
            ]
            for endpoint, buckets in sorted(self._buckets.items()):
                cumulative = 0
                for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), buckets, strict=True):
                    cumulative += count
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    bucket_labels = _labels(endpoint=endpoint, le=le)
                    lines.append(f"mlops_serving_request_seconds_bucket{bucket_labels} {cumulative}")
                labels = _labels(endpoint=endpoint)
                lines.append(f"mlops_serving_request_seconds_sum{labels} {self._sums[endpoint]}")
                lines.append(f"mlops_serving_request_seconds_count{labels} {cumulative}")
        return "\n".join(lines) + "\n"
