"""Replay ranges and team lists are validated before anything runs."""

from __future__ import annotations

from datetime import date

import pytest

from mlops_pipeline.competition.replay_range import ReplayRangeError, replay_teams, replay_trading_days


def test_trading_days_skip_weekends_and_holidays() -> None:
    days = replay_trading_days(date(2024, 1, 12), date(2024, 1, 17))
    # Jan 13-14 weekend, Jan 15 Martin Luther King Jr. Day
    assert days == [date(2024, 1, 12), date(2024, 1, 16), date(2024, 1, 17)]
    assert len(replay_trading_days(date(2024, 1, 2), date(2024, 3, 28))) == 61


def test_no_trading_days_names_the_closures() -> None:
    with pytest.raises(ReplayRangeError) as err:
        replay_trading_days(date(2024, 3, 29), date(2024, 3, 31))
    assert str(err.value) == (
        "no NYSE trading days from 2024-03-29 to 2024-03-31: "
        "2024-03-29 (Good Friday), 2024-03-30 (weekend), 2024-03-31 (weekend)"
    )


def test_range_outside_history() -> None:
    with pytest.raises(ReplayRangeError, match="--from 2024-03-28 is after --to 2024-01-02"):
        replay_trading_days(date(2024, 3, 28), date(2024, 1, 2))
    with pytest.raises(ReplayRangeError, match=r"--to 2024-03-28 is after the last day .* \(2024-02-01\)"):
        replay_trading_days(date(2024, 1, 2), date(2024, 3, 28), history_end=date(2024, 2, 1))
    with pytest.raises(ReplayRangeError) as err:
        replay_trading_days(
            date(2000, 1, 10), date(2000, 2, 1), history_start=date(2000, 1, 3), warmup_days=10
        )
    # five sessions (Jan 3-7) precede Jan 10; the 11th session of 2000 is Jan 18 (Jan 17 was a holiday)
    assert "has 5 session(s) of market history before it" in str(err.value)
    assert str(err.value).endswith("start on 2000-01-18 or later")
    assert replay_trading_days(date(2000, 1, 18), date(2000, 1, 18), date(2000, 1, 3), warmup_days=10)
    with pytest.raises(ReplayRangeError, match="outside the trading calendar"):
        replay_trading_days(date(1980, 1, 2), date(1980, 1, 3))


def test_team_list() -> None:
    assert replay_teams(None, ["red", "blue"]) == ["red", "blue"]
    assert replay_teams("blue, red,blue", ["red", "blue"]) == ["blue", "red"]
    with pytest.raises(ReplayRangeError, match="unknown team\\(s\\) green; known: red, blue"):
        replay_teams("red,green", ["red", "blue"])
    with pytest.raises(ReplayRangeError, match="--teams is empty"):
        replay_teams(" , ", ["red"])
