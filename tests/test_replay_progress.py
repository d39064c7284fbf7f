"""``mlops compete`` without a daemon iterates a session's backfill on progress only."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_pipeline.config.home import ensure_home
from mlops_pipeline.config.settings import load_settings
from mlops_pipeline.replay import _progress_mark


def test_a_replay_iterates_its_backfill_on_progress_not_on_every_event(isolated_env: Path) -> None:
    """``mlops compete`` without a daemon iterates a backfill when an asset partition was
    materialized or failed or a run ended, not on the other entries of the event log's index."""
    ensure_home(load_settings())

    @dg.asset
    def prices() -> int:
        return 1

    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        run = dg.materialize([prices], instance=instance).dagster_run
        after_the_run = _progress_mark(storage)
        materialized = instance.fetch_materializations(dg.AssetKey("prices"), limit=1).records
        assert after_the_run.asset == materialized[0].storage_id
        assert after_the_run.run_end == storage.get_maximum_record_id()  # RUN_SUCCESS, the last entry

        check = dg.AssetCheckEvaluation(asset_key=dg.AssetKey("prices"), check_name="fresh", passed=True)
        instance.report_runless_asset_event(check)
        assert storage.get_maximum_record_id() > after_the_run.run_end
        assert _progress_mark(storage) == after_the_run

        instance.report_run_failed(run)
        failed = _progress_mark(storage)
        assert failed == (after_the_run.asset, storage.get_maximum_record_id())
        assert failed.run_end > after_the_run.run_end
