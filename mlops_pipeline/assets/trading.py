"""Per-team portfolio assets, partitioned by session.

``<team>/orders`` places the session's orders on the team's account from its predictions;
``<team>/reconciliation`` pulls orders, fills, positions and equity into the team's journal.
An account is path-dependent: both assets depend on their own previous session, so a backfill
trades and journals the sessions in order.
"""

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg

from mlops_pipeline.assets.automation import PER_TEAM_STAGE
from mlops_pipeline.assets.common import json_metadata
from mlops_pipeline.assets.sessions import PREVIOUS_SESSION, session_of
from mlops_pipeline.config.home import broker_account_pool
from mlops_pipeline.config.settings import PlatformSettings
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.resources.broker import BrokerResource
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.team_store import team_store
from mlops_pipeline.trading.broker_client import BrokerError
from mlops_pipeline.trading.daily import latest_traded_session, place_daily_orders, reconcile
from mlops_pipeline.trading.predictions import PredictionsError


def _metadata(values: dict[str, Any]) -> dict[str, Any]:
    """Lists and mappings as JSON metadata, scalars as they are."""
    return {
        name: json_metadata(value) if isinstance(value, list | dict) else value
        for name, value in values.items()
    }


def build_trading_assets(
    team: TeamConfig, settings: PlatformSettings, sessions: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    del settings  # the broker resource carries the broker settings
    orders_key = dg.AssetKey([team.name, "orders"])
    reconciliation_key = dg.AssetKey([team.name, "reconciliation"])
    team_metadata = {"team": team.name, "config_hash": team.config_hash, "strategy": team.strategy.name}
    # Two runs of a session (a sensor's, a click in the UI, `mlops run`) wait for each other here.
    account_pool = broker_account_pool(team.name)

    @dg.asset(
        key=orders_key,
        deps=[
            dg.AssetKey([team.name, "predictions"]),
            dg.AssetDep(orders_key, partition_mapping=PREVIOUS_SESSION),
        ],
        partitions_def=sessions,
        automation_condition=PER_TEAM_STAGE,
        group_name=team.name,
        kinds={"alpaca"},
        pool=account_pool,
        tags={"team": team.name},
        metadata=team_metadata,
        description=f"Team {team.name}: the trading date's {team.strategy.name} orders, placed once.",
    )
    def orders(
        context: dg.AssetExecutionContext,
        object_store: ObjectStore,
        broker: BrokerResource,
    ) -> dg.MaterializeResult:
        trading_date = session_of(context)
        try:
            client = broker.client_for(team, trading_date)
            report = place_daily_orders(
                team, client, team_store(object_store, team.name), trading_date, os.environ
            )
        except (BrokerError, PredictionsError) as exc:
            raise dg.Failure(f"team {team.name}, {trading_date}: {exc}") from None
        metadata = _metadata(report.metadata())
        if report.warning:
            context.log.warning(f"team {team.name}, {trading_date}: {report.warning}")
        if report.failures:
            raise dg.Failure(
                f"team {team.name}, {trading_date}: {len(report.failures)} order(s) refused: "
                + "; ".join(f"{item.intent.client_order_id}: {item.error}" for item in report.failures),
                metadata=metadata,
            )
        return dg.MaterializeResult(metadata={**team_metadata, **metadata})

    @dg.asset(
        key=reconciliation_key,
        deps=[orders_key, dg.AssetDep(reconciliation_key, partition_mapping=PREVIOUS_SESSION)],
        partitions_def=sessions,
        automation_condition=PER_TEAM_STAGE,
        group_name=team.name,
        kinds={"alpaca", "parquet"},
        pool=account_pool,
        tags={"team": team.name},
        metadata=team_metadata,
        output_required=False,
        description=f"Team {team.name}: orders, fills, positions and equity journaled from the broker "
        "(a past session re-run after later ones leaves the journal as it is).",
    )
    def reconciliation(
        context: dg.AssetExecutionContext,
        object_store: ObjectStore,
        broker: BrokerResource,
    ) -> Iterator[dg.MaterializeResult]:
        trading_date = session_of(context)
        later = latest_traded_session(team_store(object_store, team.name), team.name)
        if later is not None and later > trading_date:
            context.log.info(
                f"the account already traded {later}: the journal of {trading_date} stays as it is"
            )
            return
        try:
            client = broker.client_for(team, trading_date)
            report = reconcile(team, client, team_store(object_store, team.name), trading_date)
        except BrokerError as exc:
            raise dg.Failure(f"team {team.name}, {trading_date}: {exc}") from None
        if not report.problems.empty:
            context.log.warning(
                f"team {team.name}: {len(report.problems)} rejected or canceled order(s): "
                + ", ".join(report.problems["client_order_id"])
            )
        yield dg.MaterializeResult(
            metadata={
                **team_metadata,
                **_metadata(report.metadata()),
                **{f"{name}_uri": dg.MetadataValue.path(uri) for name, uri in report.uris.items()},
            }
        )

    return [orders, reconciliation]
