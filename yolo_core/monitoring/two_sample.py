"""Two-sample tests and effect sizes: is the served sample drawn from the baseline's distribution?

Why these: the Kolmogorov-Smirnov test needs no binning and no distribution shape, so one test
fits brightness, sharpness and box sizes alike; a chi-square test of homogeneity compares counts
(classes, histogram bins) and pools sparse categories first, so that its p-value stays valid.
A p-value says a difference is real, not that it matters: the population stability index (PSI)
is the effect size beside it, so that ten thousand served images do not flag a trivial change.
Holm's step-down correction keeps the chance of any false alarm in a run of many checks at alpha.
Samples may be empty or constant (frame width often is): every function returns finite numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

PSI_BINS = 10
MIN_EXPECTED = 5.0  # the usual validity rule of the chi-square approximation
POOLED = "(pooled)"


def ks_test(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """(KS statistic D, p-value); (0, 1) when a side is empty: no evidence either way."""
    if len(reference) == 0 or len(current) == 0:
        return 0.0, 1.0
    result = stats.ks_2samp(np.asarray(reference, float), np.asarray(current, float))
    return _finite(result.statistic, 0.0), _finite(result.pvalue, 1.0)


def psi(reference: Sequence[float], current: Sequence[float], bins: int = PSI_BINS) -> float:
    """PSI of `current` against `reference`, over the reference's quantile bins (or its values,
    when it takes at most `bins` distinct ones: a constant resolution stays one category)."""
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    if ref.size == 0 or cur.size == 0:
        return 0.0
    distinct = np.unique(ref)
    if distinct.size <= bins:
        return psi_of_counts(*_category_counts(distinct, ref, cur))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    return psi_of_counts(ref_counts, cur_counts)


def psi_of_counts(reference: Sequence[float], current: Sequence[float]) -> float:
    """PSI of two count vectors over the same bins, half a count added to each bin so that an
    empty bin weighs as a rare one instead of an infinite one."""
    ref = np.asarray(reference, float) + 0.5
    cur = np.asarray(current, float) + 0.5
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _category_counts(categories: np.ndarray, ref: np.ndarray, cur: np.ndarray) -> tuple[list, list]:
    """Counts per reference value plus one bin for values the reference never took."""
    ref_counts = [int(np.sum(ref == value)) for value in categories] + [0]
    known = np.isin(cur, categories)
    cur_counts = [int(np.sum(cur == value)) for value in categories] + [int(np.sum(~known))]
    return ref_counts, cur_counts


def pool_sparse(
    reference: dict[str, int], current: dict[str, int], min_expected: float = MIN_EXPECTED
) -> tuple[list[str], np.ndarray]:
    """Categories (sparse ones merged into POOLED) and the 2 x k table of counts over them.

    A category is sparse when its expected count under homogeneity falls below `min_expected`
    in either sample; the rule reads only the margins, so it does not peek at the difference.
    """
    names = sorted(set(reference) | set(current))
    table = np.array([[reference.get(n, 0) for n in names], [current.get(n, 0) for n in names]], float)
    total = table.sum()
    if total == 0:
        return names, table
    smaller_row = table.sum(axis=1).min()
    sparse = table.sum(axis=0) * smaller_row / total < min_expected
    if sparse.sum() < 2:
        return names, table
    kept = [n for n, s in zip(names, sparse, strict=True) if not s]
    pooled = table[:, sparse].sum(axis=1, keepdims=True)
    return [*kept, POOLED], np.hstack([table[:, ~sparse], pooled])


def homogeneity_test(reference: dict[str, int], current: dict[str, int]) -> tuple[float, float, float]:
    """(chi-square, p-value, PSI) of two samples' category counts, sparse categories pooled."""
    _, table = pool_sparse(reference, current)
    nonzero = table[:, table.sum(axis=0) > 0]
    if nonzero.shape[1] < 2 or (nonzero.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0.0
    result = stats.chi2_contingency(nonzero)
    return _finite(result.statistic, 0.0), _finite(result.pvalue, 1.0), psi_of_counts(*nonzero)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values: reject where adjusted <= alpha, family-wise error <= alpha."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size - np.arange(p.size))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()


def _finite(value: float, fallback: float) -> float:
    value = float(value)
    return value if np.isfinite(value) else fallback
