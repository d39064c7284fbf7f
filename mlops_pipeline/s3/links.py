"""Presigned links: an object in a private bucket that a browser can open for a limited time."""

from __future__ import annotations

from datetime import timedelta

from mlops_pipeline.s3.minio_client import Endpoint, credentials_from_env, minio_client

MAX_EXPIRY = timedelta(days=7)  # the longest a SigV4 presigned URL may live


def presigned_get_url(endpoint: Endpoint, bucket: str, key: str, expiry: timedelta = MAX_EXPIRY) -> str:
    """A GET URL for ``bucket/key`` signed with the environment's credentials, valid for ``expiry``
    (at most seven days). Signing is local: no request is made."""
    if not timedelta(seconds=1) <= expiry <= MAX_EXPIRY:
        raise ValueError(f"a presigned link lives between 1 s and 7 days, not {expiry}")
    return minio_client(endpoint, credentials_from_env()).presigned_get_object(bucket, key, expires=expiry)
