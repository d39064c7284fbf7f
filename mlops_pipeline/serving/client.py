"""Calling a model server over HTTP (MLflow scoring protocol) with a timeout and bounded retries."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from mlops_pipeline import http_clients

RETRY_STATUSES = frozenset({502, 503, 504})


class ServingClientError(RuntimeError):
    """The server refused the request or could not be reached; the message says which and why."""


def invoke(
    endpoint_url: str,
    model: str,
    records: Sequence[Mapping[str, Any]],
    *,
    token: str | None = None,
    timeout_s: float = 10.0,
    attempts: int = 3,
    backoff_s: float = 0.5,
) -> tuple[list[dict[str, Any]], float]:
    """Predictions for ``records`` from ``model`` and the round-trip latency of the successful call (ms).

    Connection errors, timeouts and 502/503/504 are retried (``attempts`` in all); 4xx answers are not.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{endpoint_url.rstrip('/')}/invocations"
    body = {"dataframe_records": list(records)}
    problem = ""
    with http_clients.client(timeout=timeout_s, headers=headers) as http:
        for attempt in range(1, attempts + 1):
            start = time.perf_counter()
            try:
                response = http.post(url, params={"model": model}, json=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                latency_ms = (time.perf_counter() - start) * 1000
                if response.status_code == 200:
                    return response.json()["predictions"], latency_ms
                problem = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt < attempts:
                time.sleep(backoff_s * attempt)
    raise ServingClientError(f"model {model!r} at {url}: {problem}")
