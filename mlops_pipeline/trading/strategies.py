"""Strategies: pure functions from signals and current holdings to per-ticker decisions.

Thresholds are simple returns (``0.003`` = +0.3 %); predicted log returns are converted with
``expm1`` before comparing. Every strategy only decides *what* to hold; how much is decided by
:mod:`mlops_pipeline.trading.planning` within the team's risk limits. Every strategy takes
``min_holdings``: the tickers it holds at all times, the best-ranked by its score when fewer pass
its entry rule (a rule of relative value: always invested in what the model ranks highest).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from mlops_pipeline.config.teams import (
    DirectionClassifier,
    RotateBestGain,
    StrategySpec,
    ThresholdLongFlat,
)
from mlops_pipeline.trading.model import Decision, Signal


def simple_return(log_return: float) -> float:
    return math.expm1(log_return)


def rotate_best_gain(signals: list[Signal], held: set[str], spec: RotateBestGain) -> list[Decision]:
    """Sell holdings predicted to fall more than the threshold; rotate into the best predicted
    gains above the threshold while fewer than ``max_holdings`` are held."""
    threshold, max_holdings = spec.params.threshold, spec.params.max_holdings
    decisions: list[Decision] = []
    kept = 0
    candidates: list[Signal] = []
    for signal in signals:
        gain = simple_return(signal.predicted_return)
        if signal.ticker in held:
            if gain < -threshold:
                decisions.append(
                    Decision(signal.ticker, "exit", gain, f"predicted {gain:+.4f} < -{threshold}")
                )
            else:
                kept += 1
                decisions.append(Decision(signal.ticker, "keep", gain, f"predicted {gain:+.4f}: hold"))
        elif gain > threshold:
            candidates.append(signal)
        else:
            decisions.append(Decision(signal.ticker, "keep", gain, f"predicted {gain:+.4f} <= {threshold}"))
    kept += len(held - {signal.ticker for signal in signals})  # held without a signal stay held
    slots = max(max_holdings - kept, 0)
    ranked = sorted(candidates, key=lambda signal: (-signal.predicted_return, signal.ticker))
    for rank, signal in enumerate(ranked):
        gain = simple_return(signal.predicted_return)
        if rank < slots:
            decisions.append(Decision(signal.ticker, "enter", gain, f"best gain #{rank + 1}: {gain:+.4f}"))
        else:
            decisions.append(
                Decision(
                    signal.ticker, "keep", gain, f"predicted {gain:+.4f} but {max_holdings} holdings max"
                )
            )
    return decisions


def threshold_long_flat(signals: list[Signal], held: set[str], spec: ThresholdLongFlat) -> list[Decision]:
    """Per ticker: long when the predicted return exceeds the threshold, flat otherwise."""
    threshold = spec.params.threshold
    decisions = []
    for signal in signals:
        gain = simple_return(signal.predicted_return)
        if gain > threshold:
            decisions.append(Decision(signal.ticker, "enter", gain, f"predicted {gain:+.4f} > {threshold}"))
        else:
            decisions.append(Decision(signal.ticker, "exit", gain, f"predicted {gain:+.4f} <= {threshold}"))
    return decisions


def direction_classifier(signals: list[Signal], held: set[str], spec: DirectionClassifier) -> list[Decision]:
    """Long when P(up) reaches the confidence bar, flat when P(down) does, otherwise unchanged."""
    bar = spec.params.min_confidence
    decisions = []
    for signal in signals:
        prob_up = signal.prob_up
        if prob_up >= bar:
            decisions.append(Decision(signal.ticker, "enter", prob_up, f"P(up)={prob_up:.3f} >= {bar}"))
        elif prob_up <= 1 - bar:
            decisions.append(
                Decision(signal.ticker, "exit", prob_up, f"P(up)={prob_up:.3f} <= {1 - bar:.3f}")
            )
        else:
            decisions.append(Decision(signal.ticker, "keep", prob_up, f"P(up)={prob_up:.3f}: not confident"))
    return decisions


Strategy = Callable[[list[Signal], set[str], StrategySpec], list[Decision]]
STRATEGIES: dict[str, Strategy] = {
    "rotate_best_gain": rotate_best_gain,  # type: ignore[dict-item]
    "threshold_long_flat": threshold_long_flat,  # type: ignore[dict-item]
    "direction_classifier": direction_classifier,  # type: ignore[dict-item]
}


def decide(signals: list[Signal], held: set[str], spec: StrategySpec) -> list[Decision]:
    decisions = STRATEGIES[spec.name](signals, held, spec)
    return hold_best_ranked(decisions, held, spec.params.min_holdings)


def hold_best_ranked(decisions: list[Decision], held: set[str], min_holdings: int) -> list[Decision]:
    """The ``min_holdings`` rule: while the strategy's decisions leave fewer than ``min_holdings``
    tickers held, the best-scored of the others are held too (entered, or kept instead of sold)."""

    def holds(decision: Decision) -> bool:
        return decision.action == "enter" or (decision.action == "keep" and decision.ticker in held)

    holding = sum(holds(decision) for decision in decisions)
    holding += len(held - {decision.ticker for decision in decisions})  # held without a signal
    others = sorted((d for d in decisions if not holds(d)), key=lambda d: (-d.score, d.ticker))
    rule = f"best-ranked, min_holdings {min_holdings}"
    added = {
        d.ticker: Decision(d.ticker, "keep", d.score, f"{d.reason}; kept: {rule}")
        if d.ticker in held
        else Decision(d.ticker, "enter", d.score, f"{d.reason}; entered: {rule}")
        for d in others[: max(min_holdings - holding, 0)]
    }
    return [added.get(decision.ticker, decision) for decision in decisions]


def usable_value(signal: Signal, spec: StrategySpec) -> float:
    """The number the strategy acts on: P(up) for the direction classifier, else the return."""
    return signal.prob_up if isinstance(spec, DirectionClassifier) else signal.predicted_return


def target_slots(spec: StrategySpec, n_tickers: int) -> int:
    """How many positions the strategy may hold at once (it divides the exposure among them)."""
    return spec.params.max_holdings if isinstance(spec, RotateBestGain) else n_tickers
