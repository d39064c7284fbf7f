"""``mlops storage``: prepare the S3 buckets (MinIO, AWS, any S3 endpoint) the settings point at."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlops_pipeline.console import console, fail, settings_or_exit, usage_error

storage_app = typer.Typer(no_args_is_help=True)


@storage_app.callback()
def storage() -> None:
    """S3 buckets: objects, the DVC remote and MLflow's artifacts."""


@storage_app.command("init")
def init_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Create and check every S3 bucket the settings use; enable versioning and a retention rule.

    Safe to run again: existing buckets and their objects are kept. Nothing is created unless every
    bucket name is valid and every endpoint accepts the credentials.
    """
    from mlops_pipeline.s3.buckets import init_buckets, planned_buckets, validate_names
    from mlops_pipeline.s3.minio_client import S3SetupError, credentials_from_env

    settings = settings_or_exit()
    specs = planned_buckets(settings)
    if not specs:
        console.print(
            "nothing to initialize: the object store, the DVC remote and MLflow's artifacts are local "
            "(set MLOPS_STORAGE=s3, an s3:// MLOPS_DVC_REMOTE_URL or MLOPS_MLFLOW_ARTIFACTS_DESTINATION)"
        )
        return
    try:
        validate_names(specs)
    except S3SetupError as exc:
        usage_error(str(exc))
    try:
        reports = init_buckets(
            specs, credentials_from_env(), settings.s3_versioning, settings.s3_noncurrent_version_days
        )
    except S3SetupError as exc:
        fail(str(exc))
    if as_json:
        rows = [
            {
                "role": report.spec.role,
                "bucket": report.spec.name,
                "endpoint": report.spec.endpoint.url,
                "created": report.created,
                "versioning": report.versioning,
                "lifecycle": report.lifecycle,
                "checked": report.checked,
            }
            for report in reports
        ]
        console.print_json(json.dumps(rows))
    else:
        table = Table(title="S3 buckets")
        for column in ("role", "bucket", "endpoint", "state", "versioning", "lifecycle", "read/write"):
            table.add_column(column)
        for report in reports:
            table.add_row(
                report.spec.role,
                escape(report.spec.name),
                escape(report.spec.endpoint.url or "AWS"),
                "created" if report.created else "existed",
                report.versioning,
                report.lifecycle,
                "ok" if report.checked else "[red]read back differs[/]",
            )
        console.print(table)
    if not all(report.checked for report in reports):
        fail("a probe object read back differently from what was written; the endpoint is not usable")
