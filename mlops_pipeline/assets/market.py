"""Shared market data, partitioned by session x ticker (the union of every team's tickers).

``market/prices`` stores, per session, the ticker's daily history as known after that session
(extended from the newest earlier snapshot: one request per ticker per session at most, none when
the snapshot exists); ``market/features`` turns it into the point-in-time feature table. Both carry
blocking checks, and both record their check outcomes in the stored object's manifest so that team
assets in later runs refuse data that failed them.
"""

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import BACKFILL_ID_TAG

from mlops_pipeline.asset_freshness import materialized_after
from mlops_pipeline.assets.automation import PER_TICKER_STAGE
from mlops_pipeline.assets.common import WAITING, check_result, check_specs, json_metadata
from mlops_pipeline.assets.sessions import (
    SAME_SESSION_AND_TICKER,
    session_of,
    session_ticker_key,
    session_ticker_partitions,
    ticker_of,
)
from mlops_pipeline.config.home import ALPHAVANTAGE_POOL
from mlops_pipeline.market.checks import check_point_in_time, check_targets, failed_names
from mlops_pipeline.market.features import build_features
from mlops_pipeline.market.history import infer_splits
from mlops_pipeline.market.session_prices import Snapshot, session_prices
from mlops_pipeline.market.store import features_key, no_features, read_features, read_prices
from mlops_pipeline.outcomes import Refused, Skipped
from mlops_pipeline.resources.market_data import MarketDataResource
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.training.dataset import frame_fingerprint

PRICES = dg.AssetKey(["market", "prices"])
FEATURES = dg.AssetKey(["market", "features"])


def features_dep(tickers: Sequence[str], market_tickers: Sequence[str] | None) -> dg.AssetDep:
    """How a team's session x ticker asset on ``tickers`` depends on the market features, whose
    tickers are every team's (``None``: the team's own): the same session and ticker.

    On the same tickers it is Dagster's identity, and both can run in one run. On other tickers
    it is mapped dimension by dimension: the identity between two different definitions lists
    every key of both (thousands of sessions x tickers) several times at each evaluation of the
    automation sensor (``make bench-automation`` measures a tick)."""
    if market_tickers is None or list(tickers) == list(market_tickers):
        return dg.AssetDep(FEATURES)
    return dg.AssetDep(FEATURES, partition_mapping=SAME_SESSION_AND_TICKER)


PRICE_CHECKS = {
    "price_schema": "Exactly the canonical columns and dtypes",
    "unique_dates": "No date appears twice",
    "trading_days": "Every NYSE session between first and last row is present, and nothing else",
    "positive_prices": "All prices are > 0",
    "price_ranges": "low <= open, close <= high",
    "freshness": "The last row is the as-of session",
}
FEATURE_CHECKS = {
    "point_in_time": "Features recomputed on truncated histories equal the stored ones (no look-ahead)",
    "targets": "Targets are the next session's prices",
}


def build_market_assets(
    sessions: dg.TimeWindowPartitionsDefinition, tickers: list[str]
) -> list[dg.AssetsDefinition]:
    partitions = session_ticker_partitions(sessions, tickers)

    # A multi-asset of one, so that the asset and its checks may all be skipped while the ticker waits
    # (an @asset's check outputs are always required).
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                PRICES,
                partitions_def=partitions,
                group_name="market",
                kinds={"parquet"},
                skippable=True,
                description="Daily prices per ticker: append-only history, at most one request per "
                "ticker a day (nothing is materialized while the day's request budget is used up).",
            )
        ],
        name="market__prices",
        pool=ALPHAVANTAGE_POOL,
        check_specs=check_specs(PRICES, PRICE_CHECKS),
        can_subset=True,
    )
    def prices(
        context: dg.AssetExecutionContext, market_data: MarketDataResource, object_store: ObjectStore
    ) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
        ticker, as_of = ticker_of(context), session_of(context)
        step = session_prices(ticker, as_of, object_store, market_data)
        if isinstance(step, Refused):
            raise dg.Failure(step.reason)
        if isinstance(step, Skipped):
            context.log.warning(step.reason)
            yield dg.AssetObservation(
                asset_key=PRICES, partition=context.partition_key, metadata={WAITING: step.reason}
            )
            return
        if step.unchanged and not _in_backfill(context) and _features_made_from_it(context):
            # Nothing new: no second materialization, so nothing downstream runs again for it.
            context.log.info(f"{ticker}: the snapshot of {as_of} is complete and unchanged")
            yield dg.AssetObservation(
                asset_key=PRICES,
                partition=context.partition_key,
                metadata={"unchanged": f"snapshot of {as_of} complete; no request", "api_calls": 0},
            )
            return
        context.log.info(f"{ticker}: {step.result.plan.reason}; {step.result.api_calls} request(s)")
        yield dg.MaterializeResult(
            metadata=_prices_metadata(as_of, step, market_data),
            check_results=[
                check_result(PRICES, outcome)
                for outcome in step.outcomes
                if dg.AssetCheckKey(PRICES, outcome.name) in context.selected_asset_check_keys
            ],
            data_version=dg.DataVersion(step.manifest["data_version"]),
        )

    @dg.asset(
        key=FEATURES,
        deps=[PRICES],
        partitions_def=partitions,
        automation_condition=PER_TICKER_STAGE,
        group_name="market",
        kinds={"parquet"},
        check_specs=check_specs(FEATURES, FEATURE_CHECKS),
        description="Point-in-time features and next-session targets, computed from split-adjusted prices.",
    )
    def features(context: dg.AssetExecutionContext, object_store: ObjectStore) -> dg.MaterializeResult:
        ticker, session = ticker_of(context), session_of(context)
        history, manifest = read_prices(object_store, ticker, session)
        if history is None:
            raise dg.Failure(f"no stored prices for {ticker} on {session}: materialize market/prices first")
        inferred_splits = 0
        if not manifest.get("adjusted", False):
            inference = infer_splits(history)
            history, inferred_splits = inference.frame, len(inference.splits)
        table = build_features(history)
        outcomes = [check_point_in_time(history, table), check_targets(history, table)]
        version = frame_fingerprint(table)
        uri = object_store.put_parquet(
            features_key(ticker, session),
            table,
            {
                "ticker": ticker,
                "as_of": manifest.get("as_of"),
                "prices_version": manifest.get("data_version"),
                "data_version": version,
                "failed_checks": failed_names(outcomes) + list(manifest.get("failed_checks", [])),
            },
        )
        return dg.MaterializeResult(
            metadata={
                "rows": len(table),
                "last_date": str(table["date"].iloc[-1].date()) if len(table) else "none",
                "inferred_splits": inferred_splits,
                "prices_version": str(manifest.get("data_version")),
                "columns": json_metadata(list(table.columns)),
                "preview": dg.MetadataValue.md(table.tail(5).to_markdown(index=False)),
                "uri": dg.MetadataValue.path(uri),
            },
            check_results=[check_result(FEATURES, outcome) for outcome in outcomes],
            data_version=dg.DataVersion(version),
        )

    return [prices, features]


def record_imported_prices(
    instance: dg.DagsterInstance, ticker: str, session: date, metadata: dict[str, Any]
) -> None:
    """Record an imported snapshot as a materialization of its ``market/prices`` partition, so the
    asset's history shows it and its downstream partitions are no longer up to date."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            PRICES,
            partition=str(session_ticker_key(session, ticker)),
            metadata={
                name: json_metadata(value) if isinstance(value, list | dict) else value
                for name, value in metadata.items()
            },
        )
    )


def stored_features(object_store: ObjectStore, ticker: str, session: date) -> pd.DataFrame:
    """The session's features of ``ticker``; a failure when they are not stored yet."""
    features, _ = read_features(object_store, ticker, session)
    if features is None:
        raise dg.Failure(no_features(ticker, session))
    return features


def _in_backfill(context: dg.AssetExecutionContext) -> bool:
    """Whether the run is one of a backfill's (``mlops compete``, a range launched in the UI): a
    backfill asked for this partition and what follows it in the run, and counts them failed unless
    they are materialized, so the stored snapshot is materialized again (without a request)."""
    return BACKFILL_ID_TAG in context.run.tags


def _features_made_from_it(context: dg.AssetExecutionContext) -> bool:
    """Whether ``market/features`` of this partition was materialized after its prices. A run killed
    between the two left the prices without their features: the prices are then materialized again
    (without a request), so that the features follow."""
    partition = str(context.partition_key)
    return materialized_after(context.instance, FEATURES, partition, [(PRICES, partition)])


def _prices_metadata(as_of: date, step: Snapshot, market_data: MarketDataResource) -> dict[str, object]:
    """What the session's snapshot holds, what was requested for it, and where it is stored."""
    result = step.result
    return {
        "as_of": as_of.isoformat(),
        "api_calls": result.api_calls,
        "fetch": result.plan.reason,
        "rows": len(result.history),
        "first_date": str(result.first_date),
        "last_date": str(result.last_date),
        "appended_rows": result.appended,
        "revised_values": len(result.revisions),
        "revisions": dg.MetadataValue.md(result.revisions.head(20).to_markdown(index=False))
        if len(result.revisions)
        else "none",
        "split_adjusted_source": result.adjusted,
        "source": market_data.source,
        "budget_remaining": market_data.budget_remaining() if market_data.daily_budget else "unlimited",
        "uri": dg.MetadataValue.path(step.uri),
    }
