"""End to end in embedded mode: Dagster assets, Ludwig, MLflow (SQLite), DVC (local remote), CLI."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
from _training_data import folder_bytes, put_market_data
from typer.testing import CliRunner

from mlops_pipeline.assets.sessions import nyse_sessions, session_ticker_key
from mlops_pipeline.assets.team import build_team_assets
from mlops_pipeline.assets.training import INFERENCE_BUNDLE, build_training_assets
from mlops_pipeline.commands.model import model_app, reproduce
from mlops_pipeline.config.teams import PromotionPolicy
from mlops_pipeline.model_registry import OOS_ARTIFACT
from mlops_pipeline.resources.dvc_versioning import dvc_versioning_from_settings
from mlops_pipeline.resources.mlflow_tracking import mlflow_tracking_from_settings
from mlops_pipeline.resources.object_store import object_store_from_settings
from mlops_pipeline.serving.bundle import ensure_run_bundle
from mlops_pipeline.team_store import dataset_key, team_store
from mlops_pipeline.training.retrain_policy import FORCE, RETRAIN_TAG

pytestmark = pytest.mark.integration

SESSIONS = nyse_sessions(date(2025, 6, 2), date(2025, 7, 1))


def _materialize(
    settings, team, selection: list[str], session: date, force: bool = False
) -> dg.ExecuteInProcessResult:
    """The selected team assets for the session x AAPL partition: the date is the partition's only."""
    assets = build_team_assets(team, settings.ludwig_configs_path, SESSIONS) + build_training_assets(
        team, settings, SESSIONS
    )
    return dg.materialize(
        assets,
        selection=dg.AssetSelection.assets(*[dg.AssetKey([team.name, name]) for name in selection]),
        partition_key=session_ticker_key(session, "AAPL"),
        tags={RETRAIN_TAG: FORCE} if force else {},
        resources={
            "object_store": object_store_from_settings(settings),
            "mlflow_tracking": mlflow_tracking_from_settings(settings),
            "dvc_versioning": dvc_versioning_from_settings(settings),
        },
    )


def _metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == name]
    assert event.materialization.partition == result.dagster_run.tags["dagster/partition"]
    return {key: value.value for key, value in event.materialization.metadata.items()}


def _aliases(client: mlflow.MlflowClient) -> dict[str, str]:
    return {
        alias: str(version) for alias, version in client.get_registered_model("green-AAPL").aliases.items()
    }


def test_train_track_version_promote_reproduce(small_team, tmp_path: Path, monkeypatch) -> None:
    settings, team = small_team
    put_market_data(settings, "AAPL", date(2025, 6, 30))
    dvc = dvc_versioning_from_settings(settings).store()
    working_dir = tmp_path / "cwd"  # in the platform image, the user cannot write the working directory
    working_dir.mkdir()
    monkeypatch.chdir(working_dir)

    first = _materialize(settings, team, ["training_dataset", "model", "champion"], date(2025, 6, 30))
    assert first.success
    assert list(working_dir.iterdir()) == []  # Ludwig's preprocessing lock included
    first_dataset = _metadata(first, "training_dataset")
    assert (first_dataset["as_of"], first_dataset["last_date"]) == ("2025-06-30", "2025-06-27")
    model = _metadata(first, "model")
    assert model["retrained"] is True and model["model_version"] == "1"
    assert isinstance(model["mae"], float) and model["mae"] > 0
    assert model["dvc_dataset_md5"] and model["dvc_model_md5"].endswith(".dir")
    champion = _metadata(first, "champion")
    assert champion["promoted"] is True and champion["champion"] == "1"
    assert "no champion yet" in champion["reason"]
    # the new champion is servable: its inference bundle is logged to its run, for serving to fetch
    assert champion[INFERENCE_BUNDLE] == "exported"
    assert ensure_run_bundle(settings.mlflow_tracking_uri, model["run_id"]) is False

    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    run = client.get_run(model["run_id"])
    assert {k: run.data.tags[k] for k in ("team", "ticker")} == {"team": "green", "ticker": "AAPL"}
    assert run.data.tags["config_hash"] == model["config_hash"]
    assert run.data.params["ludwig_config"] == "return_mlp.yaml"
    assert run.data.params["data.last_date"] == "2025-06-27"  # the last row with a known next close
    assert [p.step for p in client.get_metric_history(run.info.run_id, "fold_mae")] == [0, 1, 2]
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == "green-AAPL"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert artifacts == {OOS_ARTIFACT, "evaluation/predicted_vs_actual.png"}
    oos = pd.read_parquet(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=OOS_ARTIFACT, tracking_uri=settings.mlflow_tracking_uri
        )
    )
    assert list(oos.columns) == [
        "date",
        "ticker",
        "fold",
        "y_true",
        "y_pred",
        "prob_up",
        "close",
        "actual_return",
        "predicted_return",
    ]
    assert len(oos) == 30 and oos["prob_up"].isna().all()
    assert _aliases(client) == {"challenger": "1", "champion": "1"}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    loaded = mlflow.pyfunc.load_model("models:/green-AAPL@champion")
    datasets = team_store(object_store_from_settings(settings), "green")
    dataset = datasets.get_parquet(dataset_key("AAPL", date(2025, 6, 30)))
    assert "target_next_return_predictions" in loaded.predict(dataset.tail(3)).columns

    # The next session, with its own market data and dataset: the weekly retraining schedule has
    # not fired, so the model stays; the first session's dataset is left as it was.
    put_market_data(settings, "AAPL", date(2025, 7, 1))
    next_session = _materialize(settings, team, ["training_dataset", "model"], date(2025, 7, 1))
    next_dataset = _metadata(next_session, "training_dataset")
    assert (next_dataset["as_of"], next_dataset["last_date"]) == ("2025-07-01", "2025-06-30")
    not_due = _metadata(next_session, "model")
    assert not_due["retrained"] is False and not_due["run_id"] == model["run_id"]
    assert "next retrain at 2025-07-05 06:00" in not_due["skip_reason"]
    pd.testing.assert_frame_equal(datasets.get_parquet(dataset_key("AAPL", date(2025, 6, 30))), dataset)
    assert datasets.get_parquet(dataset_key("AAPL", date(2025, 7, 1)))["date"].max() == pd.Timestamp(
        "2025-06-30"
    )

    # The first session again, forced, but its data and config are unchanged: no retraining, and
    # nothing new in DVC.
    remote_bytes = folder_bytes(dvc.remote_url)
    again = _materialize(settings, team, ["model"], date(2025, 6, 30), force=True)
    skipped = _metadata(again, "model")
    assert skipped["retrained"] is False and skipped["run_id"] == model["run_id"]
    assert "unchanged" in skipped["skip_reason"]
    assert folder_bytes(dvc.remote_url) == remote_bytes

    runner = CliRunner()
    import typer

    cli = typer.Typer()
    cli.add_typer(model_app, name="model")
    cli.command("reproduce")(reproduce)
    reproduced = runner.invoke(cli, ["reproduce", "--run-id", model["run_id"]])
    assert reproduced.exit_code == 0, reproduced.output
    assert "all logged metrics reproduced exactly" in reproduced.output

    # The next session's data, forced, and a policy no model can meet: retrained, but the gate
    # keeps the champion.
    strict = team.model_copy(update={"promotion": PromotionPolicy(metric="mae", min_skill_vs_naive=1.0)})
    second = _materialize(
        settings, strict, ["training_dataset", "model", "champion"], date(2025, 7, 1), force=True
    )
    assert _metadata(second, "model")["model_version"] == "2"
    refused = _metadata(second, "champion")
    assert refused["promoted"] is False and refused["champion"] == "1"
    assert "below the required 1.0000" in refused["reason"]
    assert _aliases(client) == {"challenger": "2", "champion": "1"}
    assert client.get_model_version("green-AAPL", "2").tags["promotion.promote"] == "False"

    # The first session again, after the next one trained v2, forced and with a changed training
    # config: a past session never trains over a later model, and its gate, which would judge v2
    # on the past session's shorter features, decides nothing and records nothing.
    window = (team.model.train_window_days or 500) - 1
    changed = team.model_copy(update={"model": team.model.model_copy(update={"train_window_days": window})})
    past = _materialize(settings, changed, ["model", "champion"], date(2025, 6, 30), force=True)
    assert past.success
    kept = _metadata(past, "model")
    assert kept["retrained"] is False and kept["model_version"] == "2"
    assert "2025-06-30 is a past session, which never retrains, even when asked to" in kept["skip_reason"]
    assert [e.asset_key.path[-1] for e in past.get_asset_materialization_events()] == ["model"]
    assert _aliases(client) == {"challenger": "2", "champion": "1"}
    assert sorted(int(v.version) for v in client.search_model_versions("name = 'green-AAPL'")) == [1, 2]

    # Humans: promote, roll back, and every move is in the audit trail.
    assert runner.invoke(cli, ["model", "promote", "--team", "green", "--ticker", "AAPL"]).exit_code == 0
    assert _aliases(client)["champion"] == "2"
    rolled = runner.invoke(cli, ["model", "rollback", "--team", "green", "--ticker", "AAPL"])
    assert rolled.exit_code == 0, rolled.output
    assert _aliases(client)["champion"] == "1"
    listed = runner.invoke(cli, ["model", "list", "--team", "green", "--ticker", "AAPL"], terminal_width=250)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("champion") >= 4  # version row + 3 moves (gate, promote, rollback)
    assert "promotion gate" in listed.output and "rollback" in listed.output
