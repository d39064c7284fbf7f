"""The champion/challenger gate.

A challenger becomes the champion only if (1) it meets the team's policy against the naive
persistence forecast and (2) it is at least as good as the current champion on the same
walk-forward folds of the same data (ties go to the challenger, trained on newer data). Both
scores and the reason are recorded on the version (MLflow tags) and in Dagster metadata.

Bootstrap: on real prices a daily model rarely beats the naive forecast, and a team without a
champion cannot trade at all. So while no champion meets the policy, a challenger whose skill is
below the required skill by at most ``promotion.bootstrap_tolerance`` serves (when there is no
champion, or it beats a champion that is itself below naive). Such a champion is marked
``below_naive`` (tag ``promotion.below_naive``), and the leaderboard flags it until a model that
meets the policy replaces it. A champion that meets the policy is never replaced by one below it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mlops_pipeline.config.teams import PromotionPolicy
from mlops_pipeline.training.metrics import LOWER_IS_BETTER

SKILL_OF = {"mae": "mae_skill", "rmse": "rmse_skill", "directional_accuracy": "directional_accuracy_skill"}


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    challenger_score: float
    champion_score: float | None
    challenger_skill: float
    required_skill: float
    below_naive: bool = False

    def as_tags(self) -> dict[str, str]:
        return {f"promotion.{key}": str(value) for key, value in asdict(self).items()}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_metric(policy: PromotionPolicy, challenger: dict[str, float]) -> tuple[str, str]:
    """The metric to compare on, and a note when the policy's metric does not apply to the model
    (a direction classifier predicts no price, so it is compared on directional accuracy)."""
    if math.isnan(challenger.get(policy.metric, math.nan)):
        return "directional_accuracy", f"{policy.metric} is undefined for this model; "
    return policy.metric, ""


def decide(
    policy: PromotionPolicy, challenger: dict[str, float], champion: dict[str, float] | None
) -> GateDecision:
    """Compare mean walk-forward metrics; ``champion`` is None when there is no champion yet."""
    metric, note = gate_metric(policy, challenger)
    score = challenger[metric]
    skill = challenger[SKILL_OF[metric]]
    champion_score = None if champion is None else champion.get(metric, math.nan)

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(
            promote,
            note + reason,
            metric,
            score,
            champion_score,
            skill,
            policy.min_skill_vs_naive,
            below_naive=promote and not meets_policy,
        )

    required, tolerance = policy.min_skill_vs_naive, policy.bootstrap_tolerance
    meets_policy = not math.isnan(skill) and skill >= required
    if math.isnan(skill) or skill < required - tolerance:
        return decision(
            False,
            f"skill vs naive on {metric} is {skill:.4f}, below the required {required:.4f} "
            f"(bootstrap tolerance {tolerance:.4f})",
        )
    bootstrap = (
        ""
        if meets_policy
        else f"; bootstrap: skill vs naive {skill:.4f} is below the required {required:.4f} but within "
        f"the tolerance {tolerance:.4f}, so it serves flagged 'below naive'"
    )
    if not meets_policy and champion is not None and champion.get(SKILL_OF[metric], math.nan) >= required:
        return decision(
            False,
            f"skill vs naive on {metric} is {skill:.4f}, below the required {required:.4f}, "
            "and the champion meets it",
        )
    if champion_score is None:
        meets = bootstrap or " meets the policy"
        return decision(True, f"no champion yet; skill vs naive {skill:.4f}{meets}")
    if math.isnan(champion_score):
        return decision(True, f"champion has no {metric} on these folds{bootstrap}")
    better = score <= champion_score if metric in LOWER_IS_BETTER else score >= champion_score
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    if not better:
        return decision(
            False,
            f"{metric} {score:.6g} is worse than the champion's {champion_score:.6g} ({direction} is better)",
        )
    return decision(
        True,
        f"{metric} {score:.6g} vs champion {champion_score:.6g} ({direction} is better); "
        f"skill {skill:.4f}{bootstrap}",
    )
