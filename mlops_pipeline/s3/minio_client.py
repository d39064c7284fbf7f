"""One way to build a ``minio`` client: endpoint and credentials from the settings, bounded
timeouts and retries, errors that name the endpoint and the variable that set it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from minio import Minio

AWS_ENDPOINT = "https://s3.amazonaws.com"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
RETRIES = 3  # connection errors and 5xx answers, with backoff


class S3SetupError(RuntimeError):
    """The endpoint, a credential or a bucket name is unusable; the message names the setting."""


@dataclass(frozen=True)
class Endpoint:
    """An S3 endpoint and the variable that chose it (for error messages)."""

    url: str | None  # None: AWS
    region: str
    setting: str

    @property
    def display(self) -> str:
        return f"{self.url or AWS_ENDPOINT} ({self.setting})"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print a secret
        return "Credentials(access_key=***, secret_key=***)"


def credentials_from_env() -> Credentials:
    """The standard AWS variables, as boto3 reads them; a missing one is named."""
    missing = [name for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not os.environ.get(name)]
    if missing:
        raise S3SetupError(f"S3 credentials missing: set {' and '.join(missing)} (environment or .env)")
    return Credentials(
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_SESSION_TOKEN"),
    )


def minio_client(endpoint: Endpoint, credentials: Credentials) -> Minio:
    """A client for ``endpoint``: path-style addressing, 5 s connect and 30 s read timeouts, three
    retries of connection errors and 5xx answers."""
    parts = urlsplit(endpoint.url or AWS_ENDPOINT)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
        raise S3SetupError(
            f"{endpoint.setting}={endpoint.url!r} is not an S3 endpoint: expected http(s)://host[:port]"
        )
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
        retries=urllib3.Retry(
            total=RETRIES, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504), allowed_methods=None
        ),
    )
    return Minio(
        parts.netloc,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.session_token,
        secure=parts.scheme == "https",
        region=endpoint.region,
        http_client=http,
    )
