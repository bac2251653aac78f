"""One drift check's result, and the rule that turns a run's raw tests into violations.

Why one rule for the whole run: every check of a monitoring run (image statistics, predictions,
box sizes) is one family; Holm's correction over all of them bounds the chance that an unchanged
stream raises any alarm by `alpha`, and the minimum effect keeps large samples from flagging
differences too small to matter. A check is violated only when both hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from yolo_core.monitoring.two_sample import holm

DRIFT_CHECK = "baseline_drift_check"  # Model Monitor's name for a distribution-drift constraint


@dataclass(frozen=True)
class Policy:
    """The stated thresholds: family-wise significance level and minimum PSI worth an alarm."""

    alpha: float = 0.01
    min_psi: float = 0.1  # the usual "moderate shift" boundary of the population stability index


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Outcome:
    """A raw test before correction: the statistic, its uncorrected p-value and the effect (PSI)."""

    feature_name: str
    test: str  # "ks" or "chi2"
    statistic: float
    p_value: float
    psi: float
    detail: str  # what a person needs to see the shift: e.g. the medians of both samples


@dataclass(frozen=True)
class Check:
    """A decided check, in the fields Model Monitor's documents and the report read."""

    feature_name: str
    constraint_check_type: str
    statistic: float
    p_value: float  # Holm-adjusted over the run
    threshold: float  # alpha, which the adjusted p-value is compared against
    psi: float
    min_psi: float
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
    large = outcome.psi >= policy.min_psi
    verdict = "drift" if significant and large else "no drift"
    description = (
        f"{outcome.feature_name}: {verdict}: {outcome.test} statistic {outcome.statistic:.4g}, "
        f"Holm-adjusted p {adjusted_p:.3g} ({'<=' if significant else '>'} alpha {policy.alpha}), "
        f"PSI {outcome.psi:.3f} ({'>=' if large else '<'} {policy.min_psi}); {outcome.detail}"
    )
    return Check(
        feature_name=outcome.feature_name,
        constraint_check_type=DRIFT_CHECK,
        statistic=round(outcome.statistic, 6),
        p_value=float(f"{adjusted_p:.6g}"),
        threshold=policy.alpha,
        psi=round(outcome.psi, 6),
        min_psi=policy.min_psi,
        violated=significant and large,
        description=description,
    )
