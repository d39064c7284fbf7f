"""Team overlays: ``teams/base.yaml`` holds the defaults, ``teams/<team>.yaml`` overlays it.

A team is added by adding a file: ``teams/green.yaml`` makes a team ``green``. Every resolved
config is validated by the pydantic models below; any problem raises :class:`ConfigError` naming
the file, the key path and the problem, and no team is returned at all (never a partial graph).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlops_pipeline.config.errors import ConfigError, ConfigIssue
from mlops_pipeline.config.git_source import (
    ConfigSource,
    parse_git_source,
    read_git_overlay,
    repository_root,
)
from mlops_pipeline.config.overlay import (
    deep_merge,
    format_key_path,
    parse_yaml_mapping,
    read_yaml_mapping,
    source_of,
)
from mlops_pipeline.market.tickers import TICKER_PATTERN

BASE_FILE = "base.yaml"
SOURCES_KEY = "teams"  # base.yaml: teams: {red: {source: "git:team/red:teams/red.yaml"}}
TEAM_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
RESERVED_TEAM_NAMES = frozenset({"market", "platform", "base"})

Ticker = Annotated[str, StringConstraints(pattern=TICKER_PATTERN)]
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Fraction = Annotated[float, Field(gt=0, le=1)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(StrictModel):
    """Which Ludwig config the team trains, and on how much history."""

    ludwig_config: str = Field(description="File name inside ludwig_configs/")
    train_window_days: int | None = Field(
        default=None, ge=60, description="Trading days of history; None = all"
    )

    @field_validator("ludwig_config")
    @classmethod
    def _config_file_exists(cls, value: str, info: ValidationInfo) -> str:
        if Path(value).name != value:
            raise ValueError(f"must be a file name inside ludwig_configs/, not a path: {value!r}")
        configs_dir = (info.context or {}).get("ludwig_configs_dir")
        if configs_dir is not None and not (Path(configs_dir) / value).is_file():
            available = sorted(p.name for p in Path(configs_dir).glob("*.yaml"))
            raise ValueError(
                f"{value!r} not found in {configs_dir} (available: {', '.join(available) or 'none'})"
            )
        if configs_dir is not None:
            _check_ludwig_config(Path(configs_dir) / value)
        return value


def _check_ludwig_config(path: Path) -> None:
    """Validate the Ludwig config against Ludwig's schema (a cached export; ludwig is not imported)."""
    from mlops_pipeline.config.ludwig import load_ludwig_config

    try:
        load_ludwig_config(path)
    except ConfigError as exc:
        raise ValueError("; ".join(str(issue) for issue in exc.issues)) from None


class EvaluationSpec(StrictModel):
    """Walk-forward evaluation shared by every candidate model of a ticker."""

    folds: int = Field(default=3, ge=3, le=20)
    test_days: int = Field(default=60, ge=10, description="Trading days in each fold's test window")
    purge_days: int = Field(
        default=30, ge=1, description="Gap between train and test (>= horizon + lookback)"
    )


class PromotionPolicy(StrictModel):
    """When a challenger becomes the champion."""

    metric: Literal["mae", "rmse", "directional_accuracy"] = "mae"
    min_skill_vs_naive: float = Field(default=0.0, description="Required skill over the persistence forecast")
    bootstrap_tolerance: float = Field(
        default=0.05,
        ge=0,
        description=(
            "While no model meets min_skill_vs_naive, the best model within this much below it serves, "
            "flagged 'below naive' (0: never)"
        ),
    )


class StrategyParams(StrictModel):
    """Parameters every strategy takes."""

    min_holdings: int = Field(
        default=0,
        ge=0,
        description=(
            "Tickers held at all times: when fewer pass the entry rule, the best-ranked others are "
            "held too (0: none)"
        ),
    )


class RotateBestGainParams(StrategyParams):
    threshold: float = Field(gt=0, description="Predicted return (fraction) needed to act")
    max_holdings: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _min_within_max(self) -> RotateBestGainParams:
        if self.min_holdings > self.max_holdings:
            raise ValueError(f"min_holdings {self.min_holdings} exceeds max_holdings {self.max_holdings}")
        return self


class ThresholdLongFlatParams(StrategyParams):
    threshold: float = Field(ge=0, description="Predicted return (fraction) above which to be long")


class DirectionClassifierParams(StrategyParams):
    min_confidence: float = Field(default=0.55, gt=0.5, le=1)


class RotateBestGain(StrictModel):
    name: Literal["rotate_best_gain"]
    params: RotateBestGainParams


class ThresholdLongFlat(StrictModel):
    name: Literal["threshold_long_flat"]
    params: ThresholdLongFlatParams


class DirectionClassifier(StrictModel):
    name: Literal["direction_classifier"]
    params: DirectionClassifierParams = DirectionClassifierParams()


StrategySpec = Annotated[
    RotateBestGain | ThresholdLongFlat | DirectionClassifier, Field(discriminator="name")
]


class RiskLimits(StrictModel):
    max_position_pct: Fraction = 0.25
    max_gross_exposure: Fraction = 1.0
    cash_buffer_pct: float = Field(default=0.02, ge=0, lt=1)
    max_orders_per_day: int = Field(default=10, ge=0)
    max_notional_per_day: float = Field(default=100_000.0, ge=0)
    kill_switch_env: EnvVarName = "MLOPS_KILL_SWITCH"
    kill_switch_file: str | None = Field(
        default=None, description="Orders are blocked while this file exists"
    )


class CostModel(StrictModel):
    commission_bps: float = Field(default=0.0, ge=0)
    slippage_bps: float = Field(default=5.0, ge=0)


class MonitoringSpec(StrictModel):
    window_days: int = Field(default=20, ge=5)
    drift_share_threshold: Fraction = 0.5
    drift_severity: Literal["WARN", "ERROR"] = "WARN"
    performance_tolerance: float = Field(default=1.5, gt=1, description="Allowed live/eval error ratio")


class RetrainPolicy(StrictModel):
    cron: str = Field(default="0 6 * * 6", description="Weekly retraining (America/New_York)")
    on_drift: bool = False
    cooldown_days: int = Field(default=5, ge=0)


class ScheduleSpec(StrictModel):
    daily_cron: str = Field(default="30 17 * * 1-5", description="Daily loop, after the close")
    timezone: str = "America/New_York"

    @field_validator("daily_cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"must be a 5-field cron expression, got {value!r}")
        return value


class BrokerSpec(StrictModel):
    """The NAMES of the environment variables that hold the team's Alpaca paper keys."""

    api_key_env: EnvVarName
    secret_key_env: EnvVarName


class LeaderboardSpec(StrictModel):
    """How the leaderboard ranks teams (set in base.yaml; the value most teams agree on is used)."""

    rank_by: Literal[
        "return", "backtest_return", "sharpe", "sortino", "max_drawdown", "directional_accuracy", "skill"
    ] = "return"


class TeamConfig(StrictModel):
    """One team's resolved configuration (base.yaml deep-merged with the team's overlay)."""

    name: str
    display_name: str | None = None
    tickers: list[Ticker] = Field(min_length=1, max_length=50)
    model: ModelSpec
    evaluation: EvaluationSpec = EvaluationSpec()
    promotion: PromotionPolicy = PromotionPolicy()
    strategy: StrategySpec
    risk: RiskLimits = RiskLimits()
    costs: CostModel = CostModel()
    monitoring: MonitoringSpec = MonitoringSpec()
    retrain: RetrainPolicy = RetrainPolicy()
    schedule: ScheduleSpec = ScheduleSpec()
    broker: BrokerSpec
    leaderboard: LeaderboardSpec = LeaderboardSpec()

    _source: ConfigSource | None = PrivateAttr(default=None)

    @property
    def source(self) -> ConfigSource | None:
        """Where the overlay was read from (file, or git ref and resolved commit); not in the hash."""
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _default_broker_env_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and "broker" not in data and isinstance(data.get("name"), str):
            prefix = data["name"].upper()
            data = {
                **data,
                "broker": {
                    "api_key_env": f"{prefix}_ALPACA_API_KEY",
                    "secret_key_env": f"{prefix}_ALPACA_SECRET_KEY",
                },
            }
        return data

    @field_validator("tickers")
    @classmethod
    def _unique_tickers(cls, tickers: list[str]) -> list[str]:
        seen: set[str] = set()
        for ticker in tickers:
            if ticker in seen:
                raise ValueError(f"duplicate ticker {ticker!r}")
            seen.add(ticker)
        return tickers

    @field_validator("strategy")
    @classmethod
    def _min_holdings_within_tickers(cls, strategy: StrategySpec, info: ValidationInfo) -> StrategySpec:
        tickers = info.data.get("tickers")
        minimum = strategy.params.min_holdings
        if tickers is not None and minimum > len(tickers):
            raise ValueError(f"params.min_holdings {minimum} exceeds the team's {len(tickers)} tickers")
        return strategy

    @property
    def config_hash(self) -> str:
        """A stable short hash of the resolved config (recorded on every run)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def team_files(teams_dir: Path) -> dict[str, Path]:
    """``{team name: overlay path}`` for every ``*.yaml`` in ``teams_dir`` except ``base.yaml``."""
    if not teams_dir.is_dir():
        raise ConfigError.single(str(teams_dir), "", "team overlay folder not found (set MLOPS_TEAMS_DIR)")
    files = {path.stem: path for path in sorted(teams_dir.glob("*.yaml")) if path.name != BASE_FILE}
    misnamed = sorted(path.name for path in teams_dir.glob("*.yml"))
    if misnamed:
        raise ConfigError.single(
            f"{teams_dir.name}/{misnamed[0]}", "", "overlays must use the .yaml extension"
        )
    return files


def resolve_team(
    name: str,
    overlay: dict[str, Any],
    overlay_source: str,
    base: dict[str, Any],
    base_source: str,
    ludwig_configs_dir: Path,
) -> TeamConfig:
    """Merge ``overlay`` onto ``base`` and validate the result as team ``name``."""
    if not TEAM_NAME_PATTERN.match(name):
        raise ConfigError.single(
            overlay_source,
            "",
            f"team name {name!r} must match {TEAM_NAME_PATTERN.pattern} (it becomes an asset key)",
        )
    if name in RESERVED_TEAM_NAMES:
        raise ConfigError.single(overlay_source, "", f"team name {name!r} is reserved; rename the file")
    if "name" in overlay or "name" in base:
        raise ConfigError.single(
            overlay_source if "name" in overlay else base_source,
            "name",
            "set by the file name; remove this key",
        )
    merged, provenance = deep_merge([(base_source, base), (overlay_source, overlay)])
    try:
        return TeamConfig.model_validate(
            {"name": name, **merged}, context={"ludwig_configs_dir": ludwig_configs_dir}
        )
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            # Discriminated unions add the tag to the location: strategy.rotate_best_gain.params -> drop it.
            loc = tuple(part for part in loc if not (isinstance(part, str) and part in _STRATEGY_TAGS))
            message = error["msg"]
            if error["type"] == "missing":
                message = "required key is missing"
            elif (
                "input" in error
                and error["type"] not in {"extra_forbidden"}
                and not isinstance(error["input"], dict | list)
            ):
                message = f"{message} (got {error['input']!r})"
            elif error["type"] == "extra_forbidden":
                message = "unknown key"
            file = source_of(loc, provenance) or overlay_source
            if error["type"] == "missing" and base:
                file = f"{overlay_source} (merged with {base_source})"
            issues.append(ConfigIssue(file, format_key_path(loc), message))
        raise ConfigError(issues) from exc


_STRATEGY_TAGS = {"rotate_best_gain", "threshold_long_flat", "direction_classifier"}


def load_teams(
    teams_dir: Path,
    ludwig_configs_dir: Path,
    only: list[str] | None = None,
    sources: Mapping[str, str] | None = None,
    source_errors: dict[str, ConfigError] | None = None,
) -> dict[str, TeamConfig]:
    """Load and validate every team overlay; raise one :class:`ConfigError` listing every problem.

    A team's overlay can come from a git ref: ``sources`` (settings ``MLOPS_TEAM_SOURCES`` or
    ``--config-ref``) maps a team to ``git:<ref>[:<path>]`` and wins over ``teams: {<team>: {source:
    ...}}`` in base.yaml. When ``source_errors`` is a dict, a git-sourced team that fails is left out
    and its error stored there under the team's name, so one broken branch blocks only its own
    team; problems in working-tree files always raise.
    """
    files = team_files(teams_dir)
    base_path = teams_dir / BASE_FILE
    base_source = _display(base_path, teams_dir)
    issues: list[ConfigIssue] = []
    base: dict[str, Any] = {}
    if base_path.is_file():
        try:
            base = read_yaml_mapping(base_path, base_source)
        except ConfigError as exc:
            raise ConfigError(exc.issues) from exc
    git_sources = {
        **_base_sources(base.pop(SOURCES_KEY, None), base_source),
        **{
            name: (spec, "team sources (MLOPS_TEAM_SOURCES / --config-ref)", name)
            for name, spec in (sources or {}).items()
        },
    }
    known = [*files, *sorted(set(git_sources) - set(files))]
    if only:
        unknown = [team for team in only if team not in known]
        if unknown:
            raise ConfigError.single(
                str(teams_dir),
                "",
                f"unknown team(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}",
            )
        known = list(only)
    if not known:
        raise ConfigError.single(
            _display(teams_dir, teams_dir), "", "no team overlays (*.yaml besides base.yaml)"
        )
    teams: dict[str, TeamConfig] = {}
    repo: Path | None = None
    for name in known:
        spec, where, key = git_sources.get(name, (None, "", ""))
        try:
            if spec is None:
                source = _display(files[name], teams_dir)
                overlay = read_yaml_mapping(files[name], source)
                origin = ConfigSource(path=source)
            else:
                repo = repo or repository_root(teams_dir)
                default_path = (teams_dir / f"{name}.yaml").resolve().relative_to(repo.resolve()).as_posix()
                git_spec = parse_git_source(spec, default_path, where, key)
                text, origin = read_git_overlay(repo, git_spec)
                source = origin.display
                overlay = parse_yaml_mapping(text, source)
            team = resolve_team(name, overlay, source, base, base_source, ludwig_configs_dir)
            team._source = origin
            teams[name] = team
        except ConfigError as exc:
            if spec is not None and source_errors is not None:
                source_errors[name] = exc
            else:
                issues.extend(exc.issues)
    if issues:
        raise ConfigError(issues)
    return teams


def _base_sources(raw: Any, base_source: str) -> dict[str, tuple[str, str, str]]:
    """``teams: {red: {source: "git:team/red:teams/red.yaml"}}`` in base.yaml as
    ``{team: (spec, file, key)}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError.single(base_source, SOURCES_KEY, "must be a mapping of team name to {source: ...}")
    sources: dict[str, tuple[str, str, str]] = {}
    issues: list[ConfigIssue] = []
    for name, entry in raw.items():
        key = f"{SOURCES_KEY}.{name}"
        if not isinstance(entry, dict) or set(entry) != {"source"} or not isinstance(entry["source"], str):
            issues.append(ConfigIssue(base_source, key, 'must be {source: "git:<ref>[:<path>]"}'))
            continue
        sources[str(name)] = (entry["source"], base_source, f"{key}.source")
    if issues:
        raise ConfigError(issues)
    return sources


def _display(path: Path, teams_dir: Path) -> str:
    """Name files as the project does: ``teams/red.yaml`` (relative to the teams folder's parent)."""
    try:
        return path.resolve().relative_to(teams_dir.resolve().parent).as_posix()
    except ValueError:
        return str(path)
