"""One monitoring check's result, and the rule that turns a run's raw tests into violations.

Why one rule for the whole run: every check of a monitoring run (image statistics, embeddings,
predictions, box sizes, model quality) is one family; Holm's correction over all of them bounds the
chance that an unchanged stream raises any alarm by `alpha`, and a minimum effect per kind of test
keeps large samples from flagging differences too small to matter. A check is violated only when
both hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from yolo_core.monitoring.two_sample import holm

DRIFT_CHECK = "baseline_drift_check"  # Model Monitor's name for a distribution-drift constraint


PSI, MMD2, QUALITY_DROP = "psi", "mmd2", "quality_drop"  # the effect sizes a check can carry


@dataclass(frozen=True)
class Policy:
    """The stated thresholds: family-wise significance level and the minimum effect worth an alarm,
    one per kind of effect."""

    alpha: float = 0.01
    min_psi: float = 0.1  # the usual "moderate shift" boundary of the population stability index
    # Unbiased squared MMD of backbone embeddings (RBF, median bandwidth): unshifted windows reach
    # 0.009, a 10% darker stream 0.034 at least (benchmarks/drift_power.py --embeddings, 20 seeds).
    min_mmd2: float = 0.02
    min_quality_drop: float = 0.05  # absolute drop of mAP50-95, precision or recall below the registered

    def min_effect(self, effect_name: str) -> float:
        """The minimum of one kind of effect (a typo in a test's effect name fails loudly)."""
        return {PSI: self.min_psi, MMD2: self.min_mmd2, QUALITY_DROP: self.min_quality_drop}[effect_name]


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Outcome:
    """A raw test before correction: the statistic, its uncorrected p-value and the effect size."""

    feature_name: str
    test: str  # "ks", "chi2", "mmd", "binomial", "bootstrap"
    statistic: float
    p_value: float
    effect: float
    detail: str  # what a person needs to see the shift: e.g. the medians of both samples
    effect_name: str = PSI  # which Policy minimum the effect is held to


@dataclass(frozen=True)
class Check:
    """A decided check, in the fields Model Monitor's documents and the report read."""

    feature_name: str
    constraint_check_type: str
    test: str
    statistic: float
    p_value: float  # Holm-adjusted over the run
    threshold: float  # alpha, which the adjusted p-value is compared against
    effect: float
    effect_name: str
    min_effect: float
    violated: bool
    description: str

    def to_dict(self) -> dict:
        return asdict(self)


def decide(outcomes: Sequence[Outcome], policy: Policy = DEFAULT_POLICY) -> list[Check]:
    """Holm-correct the run's p-values together and mark the checks both significant and large."""
    adjusted = holm([outcome.p_value for outcome in outcomes])
    return [_check(outcome, p, policy) for outcome, p in zip(outcomes, adjusted, strict=True)]


def _check(outcome: Outcome, adjusted_p: float, policy: Policy) -> Check:
    significant = adjusted_p <= policy.alpha
    minimum = policy.min_effect(outcome.effect_name)
    large = outcome.effect >= minimum
    verdict = "drift" if significant and large else "no drift"
    description = (
        f"{outcome.feature_name}: {verdict}: {outcome.test} statistic {outcome.statistic:.4g}, "
        f"Holm-adjusted p {adjusted_p:.3g} ({'<=' if significant else '>'} alpha {policy.alpha}), "
        f"{outcome.effect_name} {outcome.effect:.3f} ({'>=' if large else '<'} {minimum}); {outcome.detail}"
    )
    return Check(
        feature_name=outcome.feature_name,
        constraint_check_type=DRIFT_CHECK,
        test=outcome.test,
        statistic=round(outcome.statistic, 6),
        p_value=float(f"{adjusted_p:.6g}"),
        threshold=policy.alpha,
        effect=round(outcome.effect, 6),
        effect_name=outcome.effect_name,
        min_effect=minimum,
        violated=significant and large,
        description=description,
    )
