"""A replayed month of sandbox trading for both default teams, with synthetic predictions.

Predictions are a noisy oracle of the synthetic market's next-session return, so the strategies
have something to act on. The sandbox is already at the month's end; the broker is addressed by
session (``X-Sandbox-Session``), as the session partitions are, and its clock is never moved.
Every session is run twice: the rerun must place no new order.
"""

from __future__ import annotations

import math
import time
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from _trading_helpers import Sandbox, prediction_frame, put_prediction

from mlops_pipeline.config.teams import load_teams
from mlops_pipeline.market.calendar import next_trading_day, trading_days
from mlops_pipeline.resources.broker import BrokerResource
from mlops_pipeline.resources.object_store import ObjectStore
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.serving.predictions import read_predictions
from mlops_pipeline.trading.daily import place_daily_orders, reconcile

REPO = Path(__file__).resolve().parents[2]
MONTH = (date(2024, 6, 3), date(2024, 6, 28))


def synthetic_prediction(market: SyntheticMarket, ticker: str, day: date, rng: np.random.Generator) -> float:
    following = market.bar(ticker, next_trading_day(day))
    actual = math.log(following.close * following.split_coefficient / market.bar(ticker, day).close)
    return 0.5 * actual + float(rng.normal(0, 0.01))


@pytest.mark.integration
def test_replay_a_month_for_both_default_teams(tmp_path: Path, store: ObjectStore) -> None:
    teams = load_teams(REPO / "teams", REPO / "ludwig_configs")
    market = SyntheticMarket()
    rng = np.random.default_rng(0)
    sandbox = Sandbox(tmp_path / "broker.sqlite", MONTH[1])
    try:
        broker = BrokerResource(mode="sandbox", url=sandbox.url)
        new_orders = {name: 0 for name in teams}
        rerun_orders = {name: 0 for name in teams}
        latencies: list[float] = []
        days = [stamp.date() for stamp in trading_days(*MONTH)]
        for day in days:
            for name, team in teams.items():
                client = broker.client_for(team, day, environ={})
                team_store = store.scoped(f"teams/{name}")
                for ticker in team.tickers:
                    predicted = synthetic_prediction(market, ticker, day, rng)
                    is_direction = team.strategy.name == "direction_classifier"
                    prob_up = 1 / (1 + math.exp(-predicted / 0.005)) if is_direction else math.nan
                    frame = prediction_frame(
                        name, ticker, day, math.nan if is_direction else predicted, prob_up
                    )
                    put_prediction(team_store, frame)
                first = place_daily_orders(team, client, team_store, day, {})
                again = place_daily_orders(team, client, team_store, day, {})
                assert not first.failures and not again.failures, first.metadata()
                assert first.warning is None, first.warning
                assert first.clock.next_open.date() == next_trading_day(day)
                new_orders[name] += first.count("submitted")
                rerun_orders[name] += again.count("submitted")
                reconcile(team, client, team_store, day)
                started = time.perf_counter()
                client.account()
                latencies.append(time.perf_counter() - started)

        for name, team in teams.items():
            team_store = store.scoped(f"teams/{name}")
            equity = team_store.get_parquet("journal/equity.parquet")
            assert [stamp.date() for stamp in equity["date"]] == days
            for ticker in team.tickers:  # every session kept its own prediction
                assert [stamp.date() for stamp in read_predictions(team_store, ticker)["as_of_date"]] == days
            print(
                f"{name}: {new_orders[name]} orders over {len(days)} sessions, "
                f"{rerun_orders[name]} on reruns, equity {equity['equity'].iloc[-1]:.2f} "
                f"({equity['return_since_start'].iloc[-1]:+.2%})"
            )
        median_ms, max_ms = np.median(latencies) * 1000, max(latencies) * 1000
        print(f"get_account latency: median {median_ms:.1f} ms, max {max_ms:.1f} ms")
        assert rerun_orders == {name: 0 for name in teams}
        assert all(count > 0 for count in new_orders.values())
    finally:
        sandbox.stop()
