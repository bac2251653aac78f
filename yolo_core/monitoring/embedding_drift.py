"""Data drift on backbone embeddings: a kernel two-sample test (MMD) of served against reference vectors.

Why MMD: an embedding has hundreds of dimensions, and a shift moves many of them a little rather
than one a lot; per-dimension tests would need a correction over all of them and miss a shift
spread thinly. The maximum mean discrepancy with an RBF kernel compares the two samples as whole
distributions in one number. Its p-value comes from a permutation test over a kernel matrix
computed once, so it needs no asymptotic formula and stays exact for small windows.

The reference vectors travel as a JSON document next to the model (`embedding_reference`), so the
monitor needs neither the training images nor a GPU to rebuild them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from yolo_core.errors import UserInputError
from yolo_core.monitoring.checks import MMD2, Outcome

FEATURE = "embedding.backbone"
MAX_ROWS = 300  # per sample: bounds the kernel matrix at 600 x 600 and a permutation at 90k lookups
MIN_ROWS = 5  # below this per sample, a permutation test has too few arrangements to mean anything
DOCUMENT_KIND, DOCUMENT_VERSION = "embedding_reference", 1
_LOOKUPS_PER_BATCH = 4_000_000  # gathered kernel values held at once by the vectorised statistic


def mmd_outcome(
    reference: np.ndarray, current: np.ndarray, permutations: int = 500, seed: int = 0
) -> Outcome:
    """Unbiased squared MMD of `current` against `reference` (rows are embeddings) and its
    permutation p-value; statistic and effect are the same number (effect floored at 0).

    The unbiased estimate is the effect because its expectation is 0 without drift whatever the
    sample sizes; the biased one grows as windows shrink, which would tie `Policy.min_mmd2` to a
    window size. Before the kernel, each dimension is standardised with the pooled sample's mean
    and spread: a backbone's channels differ in scale (threefold in an untrained yolo11n), and
    without this the loudest channels weigh most in the distance whichever channels shifted. Pooled
    (not reference-only) statistics, like the median bandwidth, do not depend on which rows are
    which, so the permutation test stays exact. Each sample is capped at MAX_ROWS random rows
    (drawn with `seed`). Fewer than MIN_ROWS rows on a side: no evidence (0, p 1), never an error;
    vectors of different lengths (another model's reference) raise ValueError.

    `permutations` bounds the smallest p-value at 1 / (permutations + 1): a run corrected with
    Holm over m checks at alpha needs at least m / alpha of them (`permutations_for`).
    """
    rng = np.random.default_rng(seed)
    ref, cur = _rows(reference, rng), _rows(current, rng)
    sizes = f"reference n={len(ref)}, served n={len(cur)}"
    if len(ref) < MIN_ROWS or len(cur) < MIN_ROWS:
        return Outcome(FEATURE, "mmd", 0.0, 1.0, 0.0, f"too few embeddings to compare ({sizes})", MMD2)
    if ref.shape[1] != cur.shape[1]:  # another model's reference: a setup error, not a drift
        raise ValueError(f"embeddings of {ref.shape[1]} and {cur.shape[1]} dimensions cannot be compared")
    kernel, bandwidth = rbf_kernel(_standardised(np.vstack([ref, cur])))
    statistic = _unbiased_mmd2_of(kernel)
    result = stats.permutation_test(
        (np.arange(len(ref)), np.arange(len(ref), len(kernel))),
        statistic,
        permutation_type="independent",
        vectorized=True,
        n_resamples=permutations,
        alternative="greater",
        batch=max(1, _LOOKUPS_PER_BATCH // len(ref) ** 2),
        random_state=rng,
    )
    observed = float(result.statistic)
    p_value = float(result.pvalue) if math.isfinite(result.pvalue) else 1.0
    detail = f"{sizes}, RBF bandwidth {bandwidth:.4g} (median, standardised), {permutations} permutations"
    return Outcome(FEATURE, "mmd", observed, p_value, max(0.0, observed), detail, MMD2)


def permutations_for(family_size: int, alpha: float) -> int:
    """Enough permutations that the smallest p-value, times the family size (Holm's worst case),
    can still reach alpha, with a factor 2 so a clear shift does not sit at that edge."""
    return max(500, math.ceil(2 * family_size / alpha))


def rbf_kernel(points: np.ndarray) -> tuple[np.ndarray, float]:
    """exp(-d^2 / (2 s^2)) over all pairs, s the median pairwise distance (the median heuristic:
    no tuning, and the kernel neither saturates at 0 nor at 1 for the data at hand)."""
    distances = pdist(points)
    positive = distances[distances > 0]
    bandwidth = float(np.median(positive)) if positive.size else 1.0
    return np.exp(-(squareform(distances) ** 2) / (2 * bandwidth**2)), bandwidth


def _unbiased_mmd2_of(kernel: np.ndarray):
    """The statistic over index samples of the pooled kernel matrix, as permutation_test calls it:
    x and y are (..., n_x) and (..., n_y) row indices, a permutation costs n_x^2 lookups."""
    row_sums, total = kernel.sum(axis=1), kernel.sum()

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        x, y = np.moveaxis(x, axis, -1).astype(np.intp), np.moveaxis(y, axis, -1)
        nx, ny = x.shape[-1], y.shape[-1]
        within_x = kernel[x[..., :, None], x[..., None, :]].sum(axis=(-2, -1))
        between = row_sums[x].sum(axis=-1) - within_x
        within_y = total - within_x - 2 * between
        # The diagonal is exp(0) = 1: nx and ny ones left out of the within-sample means.
        return (within_x - nx) / (nx * (nx - 1)) + (within_y - ny) / (ny * (ny - 1)) - 2 * between / (nx * ny)

    return statistic


def _rows(sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sample as a float64 (n, d) array, at most MAX_ROWS rows drawn without replacement."""
    array = np.asarray(sample, np.float64)
    array = array.reshape(len(array), -1) if array.size else np.zeros((0, 0))
    if len(array) > MAX_ROWS:
        array = array[np.sort(rng.choice(len(array), MAX_ROWS, replace=False))]
    return array


def _standardised(points: np.ndarray) -> np.ndarray:
    """Each column centred and scaled by its spread; constant columns stay 0 (they carry no signal)."""
    spread = points.std(axis=0)
    return (points - points.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def embedding_reference(embeddings: np.ndarray, max_rows: int = MAX_ROWS, seed: int = 0) -> dict:
    """The reference document: at most `max_rows` vectors (random rows, `seed`), 5 significant
    digits each, which keeps 300 x 256 vectors near 0.7 MB and loses nothing a test can see."""
    array = np.asarray(embeddings, np.float64)
    if array.ndim != 2:
        raise ValueError(f"embeddings must be an (n, d) array, got shape {array.shape}")
    if len(array) > max_rows:
        array = array[np.sort(np.random.default_rng(seed).choice(len(array), max_rows, replace=False))]
    vectors = [[float(f"{value:.5g}") for value in row] for row in array]
    return {
        "version": DOCUMENT_VERSION,
        "kind": DOCUMENT_KIND,
        "dimensions": int(array.shape[1]),
        "vectors": vectors,
    }


def reference_vectors(document: dict, where: str) -> np.ndarray:
    """The (n, d) float32 vectors of a reference document, or UserInputError naming `where`."""
    if not isinstance(document, dict) or document.get("kind") != DOCUMENT_KIND:
        raise UserInputError(f"{where}: not an embedding reference (expected kind {DOCUMENT_KIND!r})")
    if document.get("version") != DOCUMENT_VERSION:
        version = document.get("version")
        raise UserInputError(f"{where}: unsupported version {version!r}, expected {DOCUMENT_VERSION}")
    dimensions, vectors = document.get("dimensions"), document.get("vectors")
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        raise UserInputError(f"{where}: 'dimensions' must be a positive integer, got {dimensions!r}")
    rows_ok = isinstance(vectors, list) and all(isinstance(v, list) and len(v) == dimensions for v in vectors)
    if not rows_ok:
        raise UserInputError(f"{where}: 'vectors' must be a list of lists of {dimensions} numbers each")
    try:
        array = np.array(vectors, dtype=np.float32).reshape(len(vectors), dimensions)
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"{where}: 'vectors' holds a value that is not a number") from exc
    if not np.isfinite(array).all():
        raise UserInputError(f"{where}: 'vectors' holds a non-finite value")
    return array
