"""The sandbox HTTP server: AlphaVantage-compatible market data from the synthetic market or a
recording (see :mod:`mlops_pipeline.sandbox.recorded`), and an Alpaca-compatible paper broker.

Routes:

* ``GET /query``: AlphaVantage (see :mod:`mlops_pipeline.sandbox.alphavantage_api`).
* ``/v2/...``: Alpaca trading and market data for alpaca-py (see :mod:`mlops_pipeline.sandbox.alpaca_api`).
* ``GET /_sandbox/health``: ``{"status": "ok"}``.
* ``GET /_sandbox/clock`` / ``PUT /_sandbox/clock``: the sandbox's today, ``{"today": "2024-01-02"}``;
  ``{"today": null}`` follows the real New York date again.
* ``POST /_sandbox/alpaca/faults``: ``{"status": 503, "times": 2}`` answers the next ``/v2``
  requests with that error status.
* ``POST /_sandbox/throttle``: ``{"kind": "burst" | "daily" | null, "times": 1}`` answers the next
  ``times`` ``/query`` requests with that throttle body (``null`` clears it).
* ``GET /_sandbox/stats``: ``{"query_requests": N}``, the ``/query`` requests served so far.
* ``GET /_sandbox/market``: ``{"recorded": ["AAPL", ...], "synthetic": true}``, the recorded
  symbols and whether other symbols come from the synthetic market.

Per-request sessions: ``X-Sandbox-Session: YYYY-MM-DD`` on ``/query`` and ``/v2`` requests (or
``sandbox_session=YYYY-MM-DD`` on ``/query``) makes that NYSE session today for that request only;
the global clock stays as it is. A session after the configured ``today``, or that is no session,
is refused: ``/query`` answers HTTP 400 ``{"Error Message": ...}``, ``/v2`` 422
``{"code": 40010001, "message": ...}`` (see :mod:`mlops_pipeline.sandbox.sessions`). The
``/_sandbox`` routes ignore the header.

Other services are added as further routers on the same app (e.g. Alpaca under ``/v2``); the
shared market and clock are on ``app.state``. The server never redirects (no trailing-slash
redirects). Handlers run on the event loop, so the emulators' state needs no locking.
"""

from __future__ import annotations

from datetime import date

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, Field

from mlops_pipeline.market.recording import load_recordings
from mlops_pipeline.sandbox.alpaca_api import alpaca_routers
from mlops_pipeline.sandbox.alpaca_broker import PaperBroker
from mlops_pipeline.sandbox.alphavantage_api import AlphaVantageEmulator, ThrottleKind, error_response
from mlops_pipeline.sandbox.clock import SandboxClock
from mlops_pipeline.sandbox.config import SandboxConfig
from mlops_pipeline.sandbox.defaults import DEFAULT_HOST, DEFAULT_PORT
from mlops_pipeline.sandbox.market import Market, SyntheticMarket
from mlops_pipeline.sandbox.recorded import RecordedMarket
from mlops_pipeline.sandbox.sessions import SessionPolicy, SessionRefusedError


class ClockState(BaseModel):
    today: date | None


class ThrottleRequest(BaseModel):
    kind: ThrottleKind | None
    times: int = Field(default=1, ge=1)


def alphavantage_router(emulator: AlphaVantageEmulator, sessions: SessionPolicy) -> APIRouter:
    router = APIRouter()

    @router.get("/query")
    async def query(request: Request) -> Response:
        try:
            session = sessions.from_request(request.headers, request.query_params)
        except SessionRefusedError as refused:
            answer = error_response(str(refused))
            return Response(content=answer.body, media_type=answer.media_type, status_code=400)
        with emulator.clock.session(session):
            answer = emulator.handle(request.query_params)
        return Response(content=answer.body, media_type=answer.media_type)

    return router


class MarketState(BaseModel):
    recorded: list[str]
    synthetic: bool


def admin_router(clock: SandboxClock, alphavantage: AlphaVantageEmulator, market: MarketState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")

    @router.get("/market")
    async def get_market() -> MarketState:
        return market

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/clock")
    async def get_clock() -> ClockState:
        return ClockState(today=clock.global_today())

    @router.put("/clock")
    async def set_clock(state: ClockState) -> ClockState:
        clock.pinned = state.today
        return ClockState(today=clock.global_today())

    @router.post("/throttle")
    async def throttle(throttle: ThrottleRequest) -> ThrottleRequest:
        alphavantage.force_throttle(throttle.kind, throttle.times)
        return throttle

    @router.get("/stats")
    async def stats() -> dict[str, int]:
        return {"query_requests": alphavantage.query_requests}

    return router


def market_for(config: SandboxConfig) -> tuple[Market, frozenset[str]]:
    """The market the sandbox serves, and the symbols its broker lists as assets.

    Raises :class:`~mlops_pipeline.market.recording.RecordingError` for a malformed recording.
    """
    synthetic = SyntheticMarket(seed=config.seed, start=config.market_start, splits=config.splits)
    if config.recorded is None:
        return synthetic, config.alpaca_assets
    market = RecordedMarket(load_recordings(config.recorded), None if config.recorded_only else synthetic)
    if config.recorded_only:
        return market, market.recorded_symbols
    return market, config.alpaca_assets | market.recorded_symbols


def create_app(config: SandboxConfig) -> FastAPI:
    """A sandbox app with its own market, clock, session policy and request counters.

    Raises :class:`~mlops_pipeline.market.recording.RecordingError` for a malformed recording.
    """
    market, asset_symbols = market_for(config)
    clock = SandboxClock(config.today)
    sessions = SessionPolicy.from_config(config)
    alphavantage = AlphaVantageEmulator(market, clock, config)
    broker = PaperBroker(
        market,
        clock,
        config.broker_db,
        starting_cash=config.starting_cash,
        asset_symbols=asset_symbols,
    )
    app = FastAPI(
        title="mlops-pipeline sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    recorded = sorted(market.recorded_symbols) if isinstance(market, RecordedMarket) else []
    state = MarketState(recorded=recorded, synthetic=not config.recorded_only)
    app.include_router(admin_router(clock, alphavantage, state))
    app.include_router(alphavantage_router(alphavantage, sessions))
    for router in alpaca_routers(broker, sessions):
        app.include_router(router)
    app.state.config = config
    app.state.market = market
    app.state.clock = clock
    app.state.broker = broker
    return app


def serve(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run a sandbox app (see :func:`create_app`) in the foreground until interrupted."""
    uvicorn.run(app, host=host, port=port, log_level="warning")
