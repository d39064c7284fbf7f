"""The platform's HTTP clients, which share one TLS context per process.

httpx builds a TLS context for every client it makes, and ``httpx.get`` makes a client for every
request: loading the CA bundle costs about 20 ms of CPU each time (a run's code location asked the
sandbox for its date that way, a model server's start-up was polled ten times a second that way).
The context is httpx's default one (certifi's CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``),
built at the first client of the process.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verification context, built once per process."""
    return httpx.create_ssl_context()


def client(**options: Any) -> httpx.Client:
    """An ``httpx.Client`` with ``options`` that verifies TLS with :func:`tls_context`."""
    return httpx.Client(verify=tls_context(), **options)


def get(url: str, timeout: float | httpx.Timeout) -> httpx.Response:
    """One GET request, as ``httpx.get`` makes it, on a client with the shared context."""
    with client(timeout=timeout) as http:
        return http.get(url)
