"""Per-team assets, under the team's key prefix and partitioned by session x the team's tickers."""

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd

from mlops_pipeline.assets.automation import PER_TICKER_STAGE
from mlops_pipeline.assets.common import json_metadata
from mlops_pipeline.assets.market import features_dep
from mlops_pipeline.assets.sessions import session_of, session_ticker_partitions, ticker_of
from mlops_pipeline.config.errors import ConfigError
from mlops_pipeline.config.ludwig import load_ludwig_config
from mlops_pipeline.config.teams import TeamConfig
from mlops_pipeline.market.store import MarketInputs, no_features, read_market_inputs
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.team_store import dataset_key, team_store
from mlops_pipeline.training.dataset import DatasetError, build_training_dataset, frame_fingerprint


def checked_market_inputs(
    object_store: ObjectStore, ticker: str, session: date, blocked: str
) -> MarketInputs:
    """The session's market data of ``ticker``; a failure when it is missing or failed a blocking
    check (``blocked`` says what that stops)."""
    inputs = read_market_inputs(object_store, ticker, session)
    if inputs.features is None:
        raise dg.Failure(no_features(ticker, session))
    if inputs.failed_checks:
        raise dg.Failure(
            f"market data for {ticker} failed checks {inputs.failed_checks}: {blocked}",
            metadata={"failed_checks": json_metadata(inputs.failed_checks)},
        )
    return inputs


def build_team_assets(
    team: TeamConfig,
    ludwig_configs_dir: Path,
    sessions: dg.TimeWindowPartitionsDefinition,
    market_tickers: Sequence[str] | None = None,
) -> list[dg.AssetsDefinition]:
    partitions = session_ticker_partitions(sessions, team.tickers)
    ludwig_path = ludwig_configs_dir / team.model.ludwig_config
    team_metadata = {
        "team": team.name,
        "config_hash": team.config_hash,
        "ludwig_config": team.model.ludwig_config,
    }

    @dg.asset(
        key=[team.name, "training_dataset"],
        deps=[features_dep(team.tickers, market_tickers)],
        partitions_def=partitions,
        automation_condition=PER_TICKER_STAGE,
        group_name=team.name,
        kinds={"parquet"},
        tags={"team": team.name},
        metadata=team_metadata,
        description=f"Team {team.name}: columns of {team.model.ludwig_config} from checked features.",
    )
    def training_dataset(
        context: dg.AssetExecutionContext, object_store: ObjectStore
    ) -> dg.MaterializeResult:
        ticker, as_of = ticker_of(context), session_of(context)
        inputs = checked_market_inputs(object_store, ticker, as_of, "training data blocked")
        features, manifest = inputs.features, inputs.features_manifest
        assert features is not None
        if not inputs.features_current:
            raise dg.Failure(f"features for {ticker} are older than its prices: materialize market/features")
        try:
            ludwig = load_ludwig_config(ludwig_path)
            # Rows up to the as-of session only: a re-run of a past day never trains on later data.
            known = features[features["date"] <= pd.Timestamp(as_of)]
            dataset = build_training_dataset(known, ludwig, team.model.train_window_days)
        except (ConfigError, DatasetError) as exc:
            raise dg.Failure(f"team {team.name}, {ticker}: {exc}") from exc
        version = frame_fingerprint(dataset)
        uri = team_store(object_store, team.name).put_parquet(
            dataset_key(ticker, as_of),
            dataset,
            {
                **team_metadata,
                "ticker": ticker,
                "features_version": manifest.get("data_version"),
                "data_version": version,
            },
        )
        return dg.MaterializeResult(
            metadata={
                **team_metadata,
                "as_of": as_of.isoformat(),
                "rows": len(dataset),
                "first_date": str(dataset["date"].iloc[0].date()),
                "last_date": str(dataset["date"].iloc[-1].date()),
                "inputs": json_metadata(ludwig.input_features),
                "outputs": json_metadata(ludwig.output_features),
                "features_version": str(manifest.get("data_version")),
                "uri": dg.MetadataValue.path(uri),
            },
            data_version=dg.DataVersion(version),
        )

    return [training_dataset]
