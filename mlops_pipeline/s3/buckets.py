"""The buckets the platform writes to, created and checked: ``mlops storage init``.

Which buckets: the object store's (``MLOPS_STORAGE=s3``), the DVC remote's (an ``s3://`` remote) and
the MLflow server's artifact bucket (``MLOPS_MLFLOW_ARTIFACTS_DESTINATION``). Nothing is created
until every name is valid and every endpoint answers with the given credentials, so a typo never
leaves half the buckets made. Then each bucket is created if missing, versioning is enabled and a
lifecycle rule added where the endpoint supports them, and a probe object is written, read back
and removed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from minio.commonconfig import ENABLED, Filter
from minio.error import S3Error
from minio.helpers import check_bucket_name
from minio.lifecycleconfig import (
    AbortIncompleteMultipartUpload,
    LifecycleConfig,
    NoncurrentVersionExpiration,
    Rule,
)
from minio.versioningconfig import VersioningConfig
from urllib3.exceptions import HTTPError

from mlops_pipeline.s3.minio_client import Credentials, Endpoint, S3SetupError, minio_client

if TYPE_CHECKING:
    from minio import Minio

    from mlops_pipeline.config.settings import PlatformSettings

LIFECYCLE_RULE_ID = "mlops-retention"
PROBE_KEY = ".mlops/storage-check"
_UNSUPPORTED = {"NotImplemented", "MethodNotAllowed", "XNotImplemented"}
_AUTH_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}


@dataclass(frozen=True)
class BucketSpec:
    """A bucket the platform needs: its role, name, the setting that names it and its endpoint."""

    role: str  # "objects" | "dvc" | "mlflow"
    name: str
    setting: str
    endpoint: Endpoint


@dataclass(frozen=True)
class BucketReport:
    spec: BucketSpec
    created: bool
    versioning: str  # "enabled" | "off" | "not supported"
    lifecycle: str  # "noncurrent versions expire after N days" | "off" | "not supported"
    checked: bool  # a probe object was written, read back and removed


def _bucket_of(url: str) -> str:
    return urlsplit(url).netloc


def planned_buckets(settings: PlatformSettings) -> list[BucketSpec]:
    """Every S3 bucket the settings point at, in a stable order; empty when everything is local."""
    objects = Endpoint(settings.s3_endpoint_url, settings.s3_region, "MLOPS_S3_ENDPOINT_URL")
    specs = []
    if settings.storage == "s3":
        specs.append(BucketSpec("objects", settings.s3_bucket, "MLOPS_S3_BUCKET", objects))
    if settings.dvc_remote_url and settings.dvc_remote_url.startswith("s3://"):
        endpoint = objects
        if settings.dvc_remote_endpoint_url:
            endpoint = Endpoint(
                settings.dvc_remote_endpoint_url, settings.s3_region, "MLOPS_DVC_REMOTE_ENDPOINT_URL"
            )
        specs.append(BucketSpec("dvc", _bucket_of(settings.dvc_remote_url), "MLOPS_DVC_REMOTE_URL", endpoint))
    destination = settings.mlflow_artifacts_destination
    if destination and destination.startswith("s3://"):
        specs.append(
            BucketSpec("mlflow", _bucket_of(destination), "MLOPS_MLFLOW_ARTIFACTS_DESTINATION", objects)
        )
    return specs


def validate_names(specs: list[BucketSpec]) -> None:
    """S3's naming rules, checked before anything is created."""
    for spec in specs:
        try:
            check_bucket_name(spec.name, strict=True, s3_check=True)
        except ValueError as exc:
            raise S3SetupError(f"{spec.setting}: {spec.name!r} is not a valid bucket name ({exc})") from None


def _describe(exc: Exception, endpoint: Endpoint) -> str:
    if isinstance(exc, S3Error):
        if exc.code in _AUTH_ERRORS:
            return (
                f"S3 endpoint {endpoint.display} refused the credentials ({exc.code}): "
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return f"S3 endpoint {endpoint.display} answered {exc.code}: {exc.message}"
    reason = getattr(exc, "reason", None) or exc
    return f"S3 endpoint {endpoint.display} unreachable: {str(reason).splitlines()[0]}"


def _reachable_clients(specs: list[BucketSpec], credentials: Credentials) -> dict[Endpoint, Minio]:
    """One client per endpoint, each proven to answer and accept the credentials (list buckets)."""
    clients: dict[Endpoint, Minio] = {}
    for spec in specs:
        if spec.endpoint in clients:
            continue
        client = minio_client(spec.endpoint, credentials)
        try:
            client.list_buckets()
        except (S3Error, HTTPError) as exc:
            raise S3SetupError(_describe(exc, spec.endpoint)) from None
        clients[spec.endpoint] = client
    return clients


def _enable_versioning(client: Minio, name: str) -> str:
    try:
        client.set_bucket_versioning(name, VersioningConfig(ENABLED))
        return "enabled" if client.get_bucket_versioning(name).status == ENABLED else "off"
    except S3Error as exc:
        if exc.code in _UNSUPPORTED:
            return "not supported"
        raise


def _set_lifecycle(client: Minio, name: str, noncurrent_days: int, versioned: bool) -> str:
    """Our rule (replacing an earlier one of ours, keeping everyone else's): noncurrent versions
    expire after ``noncurrent_days``; incomplete multipart uploads are aborted after a week."""
    ours = Rule(
        ENABLED,
        rule_filter=Filter(prefix=""),
        rule_id=LIFECYCLE_RULE_ID,
        abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(days_after_initiation=7),
        noncurrent_version_expiration=NoncurrentVersionExpiration(noncurrent_days=noncurrent_days)
        if versioned
        else None,
    )
    try:
        existing = client.get_bucket_lifecycle(name)
        kept = [rule for rule in (existing.rules if existing else []) if rule.rule_id != LIFECYCLE_RULE_ID]
        client.set_bucket_lifecycle(name, LifecycleConfig([*kept, ours]))
    except S3Error as exc:
        if exc.code in _UNSUPPORTED:
            return "not supported"
        raise
    if versioned:
        return f"noncurrent versions expire after {noncurrent_days} days"
    return "incomplete uploads aborted after 7 days"


def _probe(client: Minio, name: str) -> bool:
    """Write, read back and remove a small object (its version too, on a versioned bucket)."""
    payload = secrets.token_bytes(32)
    written = client.put_object(name, PROBE_KEY, BytesIO(payload), len(payload))
    response = client.get_object(name, PROBE_KEY, version_id=written.version_id)
    try:
        read = response.read()
    finally:
        response.close()
        response.release_conn()
    client.remove_object(name, PROBE_KEY, version_id=written.version_id)
    return read == payload


def init_buckets(
    specs: list[BucketSpec], credentials: Credentials, versioning: bool = True, noncurrent_days: int = 30
) -> list[BucketReport]:
    """Create, configure and check every bucket of ``specs``; see the module's docstring."""
    validate_names(specs)
    clients = _reachable_clients(specs, credentials)
    reports = []
    for spec in specs:
        client = clients[spec.endpoint]
        try:
            created = not client.bucket_exists(spec.name)
            if created:
                client.make_bucket(spec.name)
            state = _enable_versioning(client, spec.name) if versioning else "off"
            lifecycle = _set_lifecycle(client, spec.name, noncurrent_days, state == "enabled")
            checked = _probe(client, spec.name)
        except (S3Error, HTTPError) as exc:
            raise S3SetupError(
                f"bucket {spec.name!r} ({spec.setting}): {_describe(exc, spec.endpoint)}"
            ) from None
        reports.append(BucketReport(spec, created, state, lifecycle, checked))
    return reports
