"""Small helpers shared by the asset modules."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.market.checks import CheckOutcome
from mlops_pipeline.resources.object_store import ObjectStore

TEAM_TAG = "mlops/team"
CONFIG_HASH_TAG = "mlops/config_hash"
SETTINGS_TAG = "mlops/settings"
# The settings recorded on every run the platform starts itself (secrets masked).
_RECORDED_SETTINGS = (
    "storage",
    "market_data",
    "broker",
    "mlflow_tracking_uri",
    "dvc_remote_url",
    "serving_launcher",
)
# Metadata key of an observation recorded instead of a materialization when an asset has to wait
# (the day's market-data budget is used up, too little history to train): its value says why.
WAITING = "waiting"


def settings_tag(settings: PlatformSettings) -> dict[str, str]:
    """The run tag that records the resolved settings (secrets masked) of a run."""
    redacted = settings.redacted()
    return {SETTINGS_TAG: json.dumps({name: redacted[name] for name in _RECORDED_SETTINGS}, sort_keys=True)}


def check_result(asset_key: dg.AssetKey, outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if outcome.severity == "ERROR" else dg.AssetCheckSeverity.WARN,
        description=outcome.description,
        metadata={"details": dg.MetadataValue.json(json.loads(json.dumps(outcome.details, default=str)))},
    )


def check_specs(asset_key: dg.AssetKey, descriptions: dict[str, str]) -> list[dg.AssetCheckSpec]:
    """Blocking checks: a failure stops everything downstream of the asset in the same run."""
    return [
        dg.AssetCheckSpec(name, asset=asset_key, blocking=True, description=description)
        for name, description in descriptions.items()
    ]


def json_metadata(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))


def object_link(store: ObjectStore, key: str) -> dg.MetadataValue:
    """Where a person opens a stored page or chart: a presigned link on S3, else its path."""
    url = store.browser_url(key)
    return dg.MetadataValue.url(url) if url else dg.MetadataValue.path(store.uri(key))
