"""Build resources from the platform settings (the one place that decides local vs networked)."""

from __future__ import annotations

import dagster as dg

from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.resources.market_data import SANDBOX_API_KEY, MarketDataResource
from mlops_pipeline.resources.object_store import LocalObjectStore, ObjectStore, S3ObjectStore


def object_store_from_settings(settings: PlatformSettings) -> ObjectStore:
    if settings.storage == "s3":
        return S3ObjectStore(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    return LocalObjectStore(root=str(settings.storage_root_path))


def market_data_from_settings(settings: PlatformSettings) -> MarketDataResource:
    budget_path = str(settings.home_dir / "alphavantage-budget.sqlite")
    if settings.market_data == "sandbox":
        return MarketDataResource(
            source="sandbox",
            base_url=settings.sandbox_url or f"http://127.0.0.1:{settings.sandbox_port}",
            api_key=SANDBOX_API_KEY,
            premium=True,
            daily_budget=0,
            min_interval_s=0.0,
            budget_path=budget_path,
        )
    return MarketDataResource(
        source="alphavantage",
        base_url=settings.alphavantage_base_url,
        api_key=dg.EnvVar("ALPHAVANTAGE_API_KEY"),
        premium=settings.alphavantage_premium,
        daily_budget=settings.alphavantage_daily_budget,
        min_interval_s=settings.alphavantage_min_interval_s,
        budget_path=budget_path,
    )
