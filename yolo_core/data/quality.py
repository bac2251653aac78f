"""Findings of validation and the JSON quality report built from them.

Every finding names the file (relative to the source folder) and, where there is one, the line
(text labels) or field (JSON). An `error` quarantines the image (it is listed in the report and
left out of the dataset); a `warning` was repaired (converted, clipped or dropped) and the image
is kept. The step fails only when the quarantined fraction exceeds the configured threshold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from yolo_core.data.json_io import write_json
from yolo_core.errors import UserInputError

ERROR, WARNING = "error", "warning"

# Kinds of findings: the vocabulary of the report.
IMAGE_ZERO_BYTES = "image_zero_bytes"
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_TRUNCATED = "image_truncated"
IMAGE_GRAYSCALE = "image_grayscale"
IMAGE_RGBA = "image_rgba"
IMAGE_16BIT = "image_16bit"
IMAGE_UNSUPPORTED = "image_unsupported_format"
IMAGE_SIZE_MISMATCH = "image_size_mismatch"
IMAGE_PATH_OUTSIDE = "image_path_outside_source"  # a file name that climbs out of its folder
IMAGE_WITHOUT_LABELS = "image_without_labels"
LABEL_WITHOUT_IMAGE = "label_without_image"
LABEL_UNREADABLE = "label_unreadable"
LABEL_FIELD_COUNT = "label_field_count"
LABEL_NOT_NUMBER = "label_not_number"
LABEL_OUT_OF_RANGE = "label_out_of_range"
LABEL_UNKNOWN_CLASS = "label_unknown_class"
LABEL_DUPLICATE_BOX = "label_duplicate_box"
LABEL_DEGENERATE_BOX = "label_degenerate_box"


@dataclass(frozen=True)
class Issue:
    """One finding: what is wrong, where, and what was done about it."""

    file: str
    kind: str
    severity: str
    action: str
    message: str
    line: int | None = None
    field: str | None = None

    def location(self) -> str:
        where = f":{self.line}" if self.line is not None else ""
        return f"{self.file}{where}" + (f" [{self.field}]" if self.field else "")


def error(file: str, kind: str, message: str, line: int | None = None, field: str | None = None) -> Issue:
    return Issue(file, kind, ERROR, "quarantined", message, line, field)


def warning(
    file: str, kind: str, action: str, message: str, line: int | None = None, field: str | None = None
) -> Issue:
    return Issue(file, kind, WARNING, action, message, line, field)


@dataclass
class QualityReport:
    """Everything validation found over one source folder."""

    source_dir: str
    source_format: str
    max_bad_fraction: float
    images_seen: int
    quarantined: dict[str, list[str]]
    issues: list[Issue]
    counts: Counter

    @property
    def bad_fraction(self) -> float:
        return len(self.quarantined) / self.images_seen if self.images_seen else 1.0

    @property
    def passed(self) -> bool:
        return self.images_seen > len(self.quarantined) and self.bad_fraction <= self.max_bad_fraction

    def failure_reason(self, report_path: Path) -> str:
        """One line for the exit message: how bad, the threshold, the first offender, the report."""
        if not self.images_seen:
            return f"no images found under {self.source_dir} (format {self.source_format})"
        first = next((issue for issue in self.issues if issue.severity == ERROR), None)
        example = f"; first: {first.location()} {first.kind}" if first else ""
        bad = f"{len(self.quarantined)} of {self.images_seen} images are bad ({self._rule_broken()})"
        return f"{bad}{example}; see {report_path}"

    def _rule_broken(self) -> str:
        """Which half of `passed` failed: a dataset needs a good image even when any share may be bad."""
        if self.bad_fraction > self.max_bad_fraction:
            return f"{self.bad_fraction:.1%} > max_bad_fraction {self.max_bad_fraction:.1%}"
        return "no good image is left to build a dataset from"

    def to_dict(self) -> dict:
        return {
            "source_dir": self.source_dir,
            "source_format": self.source_format,
            "passed": self.passed,
            "images_seen": self.images_seen,
            "images_kept": self.images_seen - len(self.quarantined),
            "images_quarantined": len(self.quarantined),
            "bad_fraction": round(self.bad_fraction, 6),
            "max_bad_fraction": self.max_bad_fraction,
            "counts": dict(sorted(self.counts.items())),
            "issue_counts": dict(sorted(Counter(issue.kind for issue in self.issues).items())),
            "quarantined": [
                {"file": f, "reasons": sorted(set(r))} for f, r in sorted(self.quarantined.items())
            ],
            "issues": [asdict(issue) for issue in self.issues],
        }

    def write(self, path: Path) -> Path:
        return write_json(path, self.to_dict())

    def raise_if_failed(self, report_path: Path) -> None:
        if not self.passed:
            raise UserInputError(self.failure_reason(report_path))
