"""The documents Model Monitor's bring-your-own-container contract expects, from decided checks.

Why here: `constraint_violations.json` and `statistics.json` are read by Model Monitor, by the
alert and by a person; building them as plain dicts keeps the entry point to writing files.
`checks.json` keeps every check, violated or not, for the report and the MLflow run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_core.monitoring.checks import Check
from yolo_core.monitoring.image_drift import DRIFT_FEATURES, PREFIX, feature_values
from yolo_core.monitoring.prediction_drift import NUMERIC
from yolo_core.monitoring.prediction_drift import PREFIX as PREDICTION_PREFIX


def violations_document(checks: Sequence[Check]) -> dict:
    """`constraint_violations.json`: one entry per violated check, in Model Monitor's fields."""
    return {
        "violations": [
            {
                "feature_name": check.feature_name,
                "constraint_check_type": check.constraint_check_type,
                "description": check.description,
            }
            for check in checks
            if check.violated
        ]
    }


def checks_document(checks: Sequence[Check]) -> dict:
    """Every check with its statistic, adjusted p-value and thresholds."""
    return {"checks": [check.to_dict() for check in checks]}


def statistics_document(served_images: Sequence[dict], served_predictions: dict | None = None) -> dict:
    """`statistics.json` of the served window, in Model Monitor's shape (numerical and string
    features with their `common` counts)."""
    features = [_numerical(PREFIX + name, feature_values(served_images, name)) for name in DRIFT_FEATURES]
    if served_predictions is not None:
        features += [
            _numerical(PREDICTION_PREFIX + name, np.asarray(served_predictions[name], float))
            for name in NUMERIC
        ]
        features.append(_categorical(PREDICTION_PREFIX + "class", served_predictions["class_counts"]))
    return {"version": 0.0, "dataset": {"item_count": len(served_images)}, "features": features}


def _numerical(name: str, values: np.ndarray) -> dict:
    summary = {"common": {"num_present": int(values.size), "num_missing": 0}}
    if values.size:
        summary |= {
            "mean": float(values.mean()),
            "sum": float(values.sum()),
            "std_dev": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return {"name": name, "inferred_type": "Fractional", "numerical_statistics": summary}


def _categorical(name: str, counts: dict[str, int]) -> dict:
    buckets = [{"value": value, "count": count} for value, count in sorted(counts.items())]
    return {
        "name": name,
        "inferred_type": "String",
        "string_statistics": {
            "common": {"num_present": sum(counts.values()), "num_missing": 0},
            "distinct_count": len(counts),
            "distribution": {"categorical": {"buckets": buckets}},
        },
    }
