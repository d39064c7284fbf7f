"""Recorded history: `mlops market record` writes it, the sandbox serves it exactly as it serves the
synthetic market, the broker fills at its prices, and a malformed recording stops the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlops_pipeline.cli import app
from mlops_pipeline.market.alphavantage import daily_csv
from mlops_pipeline.market.recording import RecordingError, read_recording, write_recording
from mlops_pipeline.sandbox.market import SyntheticMarket
from mlops_pipeline.sandbox.sessions import SESSION_HEADER

PREMIUM_KEY = "sandbox-premium"
TODAY = date(2024, 6, 14)  # the test sandboxes' today (a Friday)
MARKET = SyntheticMarket()
HEADER = "timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,split_coefficient"


def query(base_url: str, session: str | None = None, **params: str) -> httpx.Response:
    headers = {SESSION_HEADER: session} if session else {}
    response = httpx.get(
        f"{base_url}/query", params={"apikey": PREMIUM_KEY, **params}, headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    return response


def alpaca(base_url: str, method: str, path: str, session: str, **kwargs: object) -> httpx.Response:
    headers = {"APCA-API-KEY-ID": "rec-key", "APCA-API-SECRET-KEY": "rec-secret", SESSION_HEADER: session}
    return httpx.request(method, f"{base_url}/v2/{path}", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


def record(monkeypatch: pytest.MonkeyPatch, project: Path, sandbox: str, out: Path, *args: str) -> str:
    monkeypatch.setenv("MLOPS_SANDBOX_URL", sandbox)
    result = CliRunner().invoke(app, ["market", "record", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return result.output


# -- round trip -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("project")
def test_record_then_serve_gives_the_identical_series_on_every_endpoint(
    start_sandbox: Callable[..., str], monkeypatch: pytest.MonkeyPatch, project: Path, tmp_path: Path
) -> None:
    synthetic = start_sandbox()
    out = tmp_path / "recording"
    output = record(monkeypatch, project, synthetic, out, "--symbols", "msft,TSLA")
    assert sorted(path.name for path in out.iterdir()) == ["MSFT.csv", "TSLA.csv"]
    assert "MSFT: " in output and f"..{TODAY}" in output
    assert (out / "MSFT.csv").read_bytes().startswith(HEADER.encode() + b"\r\n")

    recorded = start_sandbox(recorded=out, recorded_only=True)
    market = httpx.get(f"{recorded}/_sandbox/market").json()
    assert market == {"recorded": ["MSFT", "TSLA"], "synthetic": False}
    for symbol in ("MSFT", "TSLA"):
        for session in (None, "2024-03-27", "2022-06-03"):  # as of today, and replayed sessions
            for params in (
                {"function": "TIME_SERIES_DAILY_ADJUSTED", "outputsize": "full", "datatype": "csv"},
                {"function": "TIME_SERIES_DAILY_ADJUSTED", "outputsize": "compact"},
                {"function": "TIME_SERIES_DAILY", "outputsize": "full"},
            ):
                wanted = query(synthetic, session, symbol=symbol, **params)
                served = query(recorded, session, symbol=symbol, **params)
                assert served.text == wanted.text, (symbol, session, params)
        bars = {"symbols": symbol, "timeframe": "1Day", "start": "2024-05-01"}
        assert (
            alpaca(recorded, "GET", "stocks/bars", "2024-06-13", params=bars).json()
            == alpaca(synthetic, "GET", "stocks/bars", "2024-06-13", params=bars).json()
        )
    # recorded only: no other symbol is listed
    unknown = query(recorded, symbol="AAPL", function="TIME_SERIES_DAILY").json()
    assert list(unknown) == ["Error Message"]


@pytest.mark.usefixtures("project")
def test_record_until_a_past_session_writes_what_was_known_then(
    start_sandbox: Callable[..., str], monkeypatch: pytest.MonkeyPatch, project: Path, tmp_path: Path
) -> None:
    synthetic = start_sandbox()
    record(monkeypatch, project, synthetic, tmp_path, "--symbols", "NVDA", "--until", "2024-06-07")
    frame = read_recording(tmp_path / "NVDA.csv")
    assert frame["date"].iloc[-1].date() == date(2024, 6, 7)
    # NVDA splits 10:1 on 2024-06-10: the recording holds the pre-split prices, unadjusted
    wanted = MARKET.history("NVDA", date(2024, 6, 7))
    pd.testing.assert_frame_equal(frame, wanted.drop(columns="adjusted_close"))


@pytest.mark.usefixtures("project")
def test_record_refuses_bad_symbols_with_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "recording"
    result = CliRunner().invoke(app, ["market", "record", "--symbols", "AAPL,no-such", "--out", str(out)])
    assert result.exit_code == 2
    assert "--symbols: 'no-such' is not a valid symbol" in result.output
    assert not out.exists()


# -- serving ----------------------------------------------------------------------------------------


def _recording(directory: Path, symbol: str, frame: pd.DataFrame) -> Path:
    path = directory / f"{symbol}.csv"
    write_recording(frame, path)
    return path


def test_broker_fills_at_recorded_prices_and_waits_over_a_gap(
    start_sandbox: Callable[..., str], tmp_path: Path
) -> None:
    real = MARKET.history("AAPL", TODAY).copy()
    real[["open", "high", "low", "close"]] *= 3.0  # recorded prices unlike the synthetic ones
    gap = pd.Timestamp("2024-06-12")
    _recording(tmp_path, "AAPL", real[real["date"] != gap])
    base_url = start_sandbox(recorded=tmp_path)  # other symbols stay synthetic

    order = {"symbol": "AAPL", "qty": "2", "side": "buy", "type": "market", "time_in_force": "gtc"}
    placed = alpaca(base_url, "POST", "orders", "2024-06-11", json=order).json()
    assert placed["status"] == "accepted"
    waiting = alpaca(base_url, "GET", f"orders/{placed['id']}", "2024-06-12").json()
    assert waiting["status"] == "accepted"  # no recorded bar on 2024-06-12
    filled = alpaca(base_url, "GET", f"orders/{placed['id']}", "2024-06-13").json()
    recorded_open = float(real.loc[real["date"] == pd.Timestamp("2024-06-13"), "open"].iloc[0])
    assert filled["status"] == "filled"
    assert float(filled["filled_avg_price"]) == pytest.approx(recorded_open)

    served = query(base_url, symbol="AAPL", function="TIME_SERIES_DAILY", outputsize="compact").json()
    days = list(served["Time Series (Daily)"])
    assert "2024-06-12" not in days and days[0] == TODAY.isoformat()  # a gap, served as a gap
    synthetic = query(base_url, symbol="MSFT", function="TIME_SERIES_DAILY").json()
    assert synthetic["Meta Data"]["2. Symbol"] == "MSFT"
    assert httpx.get(f"{base_url}/_sandbox/market").json() == {"recorded": ["AAPL"], "synthetic": True}


def test_recorded_history_never_goes_beyond_the_sandbox_today(
    start_sandbox: Callable[..., str], tmp_path: Path
) -> None:
    _recording(tmp_path, "MSFT", MARKET.history("MSFT", date(2024, 9, 30)))
    base_url = start_sandbox(recorded=tmp_path, recorded_only=True)
    body = query(base_url, symbol="MSFT", function="TIME_SERIES_DAILY_ADJUSTED").json()
    assert body["Meta Data"]["3. Last Refreshed"] == TODAY.isoformat()
    refused = httpx.get(
        f"{base_url}/query",
        params={"apikey": PREMIUM_KEY, "symbol": "MSFT", "function": "TIME_SERIES_DAILY"},
        headers={SESSION_HEADER: "2024-06-17"},
        timeout=10,
    )
    assert refused.status_code == 400


# -- malformed recordings ------------------------------------------------------------------------------

GOOD_ROWS = [
    "2024-06-14,10.0,11.0,9.0,10.5,10.5,1000,0.0000,1.0",
    "2024-06-13,10.0,11.0,9.0,10.2,10.2,1000,0.0000,1.0",
    "2024-06-12,10.0,11.0,9.0,10.1,10.1,1000,0.0000,1.0",
]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([HEADER.replace(",adjusted_close", ""), *GOOD_ROWS], "on line 1, expected 'timestamp,"),
        ([HEADER, GOOD_ROWS[0], GOOD_ROWS[2], GOOD_ROWS[1]], "line 4: 2024-06-13 comes after 2024-06-12"),
        ([HEADER, GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[1]], "line 4: 2024-06-13 appears more than once"),
        ([HEADER, GOOD_ROWS[0], GOOD_ROWS[1].replace("10.2,10.2", "-10.2,10.2")], "line 3: close -10.2"),
        ([HEADER], "line 1: a header and no rows after it"),
        ([HEADER, "2024-06-15,10.0,11.0,9.0,10.5,10.5,1000,0.0000,1.0"], "line 2: 2024-06-15 is not an NYSE"),
        ([HEADER, GOOD_ROWS[0].replace(",1000,", ",many,")], "line 2: volume"),
    ],
    ids=["missing-column", "unsorted", "duplicate", "negative-price", "no-rows", "weekend", "not-a-number"],
)
def test_a_malformed_recording_is_refused_naming_file_line_and_problem(
    tmp_path: Path, lines: list[str], problem: str
) -> None:
    path = tmp_path / "AAPL.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    with pytest.raises(RecordingError) as refused:
        read_recording(path)
    assert str(path) in str(refused.value)
    assert problem in str(refused.value)


@pytest.mark.unit
@pytest.mark.usefixtures("project")
def test_sandbox_serve_refuses_to_start_on_a_malformed_recording(tmp_path: Path) -> None:
    (tmp_path / "AAPL.csv").write_text(daily_csv(MARKET.history("AAPL", TODAY).tail(3), adjusted=True))
    (tmp_path / "MSFT.csv").write_text(f"{HEADER}\r\n{GOOD_ROWS[0]}\r\n{GOOD_ROWS[0]}\r\n")
    result = CliRunner().invoke(app, ["sandbox", "serve", "--recorded", str(tmp_path), "--port", "1"])
    assert result.exit_code == 2
    assert f"{tmp_path / 'MSFT.csv'}" in result.output and "line 3" in result.output
    only = CliRunner().invoke(app, ["sandbox", "serve", "--recorded-only", "--port", "1"])
    assert only.exit_code == 2 and "--recorded-only needs --recorded" in only.output


@pytest.mark.unit
def test_a_failed_recording_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = _recording(tmp_path, "MSFT", MARKET.history("MSFT", TODAY).tail(5))
    before = path.read_text()
    broken = MARKET.history("MSFT", TODAY).tail(5).copy()
    broken.loc[broken.index[0], "close"] = -1.0
    with pytest.raises(RecordingError):
        write_recording(broken, path)
    assert path.read_text() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["MSFT.csv"]


@pytest.mark.usefixtures("project")
def test_record_with_a_free_key_writes_the_stored_history(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLOPS_MARKET_DATA", "alphavantage")
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "a-free-key")
    monkeypatch.setenv("MLOPS_ALPHAVANTAGE_BASE_URL", "http://127.0.0.1:9")  # never asked: nothing to fetch
    source = tmp_path / "downloaded"
    _recording(source, "MSFT", MARKET.history("MSFT", TODAY))
    imported = CliRunner().invoke(app, ["market", "import", str(source)])
    assert imported.exit_code == 0, imported.output

    out = tmp_path / "recording"
    result = CliRunner().invoke(app, ["market", "record", "--symbols", "MSFT,TSLA", "--out", str(out)])
    assert result.exit_code == 1  # TSLA has no stored history, MSFT is still written
    assert "TSLA: not recorded: no stored history" in result.output
    assert (out / "MSFT.csv").read_bytes() == (source / "MSFT.csv").read_bytes()
    assert not (out / "TSLA.csv").exists()


@pytest.mark.integration
@pytest.mark.usefixtures("project")
def test_the_embedded_sandbox_serves_the_configured_recording_and_no_other_market(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from _net import free_port

    from mlops_pipeline.config.settings import load_settings
    from mlops_pipeline.sandbox_service import SandboxUnavailableError, ensure_sandbox

    recording = tmp_path / "recording"
    _recording(recording, "MSFT", MARKET.history("MSFT", TODAY))
    monkeypatch.setenv("MLOPS_SANDBOX_PORT", str(free_port()))
    monkeypatch.setenv("MLOPS_SANDBOX_TODAY", TODAY.isoformat())
    synthetic_settings = load_settings()
    monkeypatch.setenv("MLOPS_SANDBOX_RECORDED", str(recording))
    monkeypatch.setenv("MLOPS_SANDBOX_RECORDED_ONLY", "true")
    with ensure_sandbox(load_settings()) as url:
        assert httpx.get(f"{url}/_sandbox/market").json() == {"recorded": ["MSFT"], "synthetic": False}
        with (
            pytest.raises(SandboxUnavailableError, match="serves another market"),
            ensure_sandbox(synthetic_settings),
        ):
            pass  # a run that wants the synthetic market never silently uses the recording

    (recording / "TSLA.csv").write_text(f"{HEADER}\r\n{GOOD_ROWS[1]}\r\n{GOOD_ROWS[0]}\r\n")
    with pytest.raises(SandboxUnavailableError) as refused, ensure_sandbox(load_settings()):
        pass
    assert f"{recording / 'TSLA.csv'}: line 3" in str(refused.value)
