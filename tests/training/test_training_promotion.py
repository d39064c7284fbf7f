from __future__ import annotations

from mlops_pipeline.config.teams import PromotionPolicy
from mlops_pipeline.training.promotion import decide

NAN = float("nan")


def _scores(mae: float, skill: float, accuracy: float = 0.5, accuracy_skill: float = 0.0) -> dict:
    return {
        "mae": mae,
        "mae_skill": skill,
        "rmse": mae,
        "rmse_skill": skill,
        "directional_accuracy": accuracy,
        "directional_accuracy_skill": accuracy_skill,
    }


def test_first_challenger_meeting_the_policy_is_promoted() -> None:
    decision = decide(PromotionPolicy(metric="mae", min_skill_vs_naive=0.0), _scores(1.0, 0.05), None)
    assert decision.promote and decision.champion_score is None
    assert "no champion yet" in decision.reason


def test_challenger_below_the_naive_policy_is_refused_even_without_champion() -> None:
    policy = PromotionPolicy(metric="mae", min_skill_vs_naive=0.1, bootstrap_tolerance=0.0)
    decision = decide(policy, _scores(1.0, 0.05), None)
    assert not decision.promote and not decision.below_naive
    assert "below the required 0.1000" in decision.reason


def test_bootstrap_a_first_model_within_the_tolerance_serves_flagged_below_naive() -> None:
    policy = PromotionPolicy(metric="mae", min_skill_vs_naive=0.0, bootstrap_tolerance=0.05)
    first = decide(policy, _scores(1.0, -0.03), None)
    assert first.promote and first.below_naive
    assert "bootstrap" in first.reason and "below naive" in first.reason
    assert first.as_tags()["promotion.below_naive"] == "True"
    too_bad = decide(policy, _scores(1.0, -0.08), None)
    assert not too_bad.promote and "bootstrap tolerance 0.0500" in too_bad.reason


def test_bootstrap_champions_are_replaced_by_better_ones_and_never_replace_a_skilled_one() -> None:
    policy = PromotionPolicy(metric="mae", min_skill_vs_naive=0.0, bootstrap_tolerance=0.05)
    below = _scores(1.0, -0.03)
    closer = decide(policy, _scores(0.99, -0.02), below)
    assert closer.promote and closer.below_naive
    assert not decide(policy, _scores(1.01, -0.04), below).promote
    skilled = decide(policy, _scores(0.95, 0.02), below)
    assert skilled.promote and not skilled.below_naive  # the flag lifts
    refused = decide(policy, _scores(0.9, -0.01), _scores(1.0, 0.02))
    assert not refused.promote and "the champion meets it" in refused.reason


def test_worse_than_champion_is_refused_and_better_is_promoted() -> None:
    policy = PromotionPolicy(metric="mae", min_skill_vs_naive=0.0)
    worse = decide(policy, _scores(1.2, 0.01), _scores(1.0, 0.05))
    assert not worse.promote and worse.champion_score == 1.0
    assert "worse than the champion's 1" in worse.reason
    better = decide(policy, _scores(0.9, 0.08), _scores(1.0, 0.05))
    assert better.promote


def test_higher_is_better_for_directional_accuracy() -> None:
    policy = PromotionPolicy(metric="directional_accuracy", min_skill_vs_naive=0.0)
    assert decide(policy, _scores(1, 0, 0.56, 0.02), _scores(1, 0, 0.55, 0.01)).promote
    assert not decide(policy, _scores(1, 0, 0.54, 0.02), _scores(1, 0, 0.55, 0.01)).promote


def test_classifier_is_gated_on_directional_accuracy_when_the_policy_says_mae() -> None:
    decision = decide(PromotionPolicy(metric="mae"), _scores(NAN, NAN, 0.6, 0.05), None)
    assert decision.promote and decision.metric == "directional_accuracy"
    assert decision.reason.startswith("mae is undefined for this model")
    assert decision.as_tags()["promotion.promote"] == "True"
