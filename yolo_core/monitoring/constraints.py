"""The monitoring reference of a registered model: the `baseline_constraints` document.

Why one document: Model Monitor hands the container one constraints file, unread, beside the
baseline statistics; everything the checks compare served traffic against, other than preprocess's
baseline.json, travels in it and is written once, when the model is evaluated:

    {"version": 1, "kind": "drift_constraints",
     "monitoring_config": {"alpha": 0.01, "min_psi": 0.1, ...},   # Policy's thresholds
     "prediction_profile": {...},      # the model's detections on the validation split
     "embedding_reference": {...},     # its backbone embeddings of those images
     "registered_evaluation": {...}}   # evaluation.json's metrics and the serving conf

Every key but `kind` is optional: a check whose reference is absent is not run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from yolo_core.errors import UserInputError
from yolo_core.jsonfile import read_json_object
from yolo_core.monitoring.checks import DEFAULT_POLICY, Policy
from yolo_core.monitoring.prediction_drift import PROFILE_KIND

CONSTRAINTS_KIND = "drift_constraints"
CONSTRAINTS_FILE = "monitoring_constraints.json"  # beside evaluation.json
POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(Policy))


@dataclass(frozen=True)
class Constraints:
    """A read constraints document; None where a reference is absent."""

    policy: Policy = DEFAULT_POLICY
    prediction_profile: dict | None = None
    embedding_reference: dict | None = None
    registered_evaluation: dict | None = None


def constraints_document(
    prediction_profile: dict | None = None,
    policy: Policy = DEFAULT_POLICY,
    embedding_reference: dict | None = None,
    registered_evaluation: dict | None = None,
) -> dict:
    """The document, with only the references given."""
    document = {"version": 1, "kind": CONSTRAINTS_KIND, "monitoring_config": dataclasses.asdict(policy)}
    optional = {
        "prediction_profile": prediction_profile,
        "embedding_reference": embedding_reference,
        "registered_evaluation": registered_evaluation,
    }
    return document | {key: value for key, value in optional.items() if value}


def read_constraints(path: Path | None) -> Constraints:
    """The document at `path` (None: the defaults, image checks only), each part checked."""
    if path is None:
        return Constraints()
    document = read_json_object(path, "baseline_constraints file")
    profile = document.get("prediction_profile")
    if profile is not None and (not isinstance(profile, dict) or profile.get("kind") != PROFILE_KIND):
        raise UserInputError(f"{path}: prediction_profile is not a {PROFILE_KIND} document")
    for key in ("embedding_reference", "registered_evaluation"):
        if document.get(key) is not None and not isinstance(document[key], dict):
            raise UserInputError(f"{path}: {key} must be a JSON object")
    return Constraints(
        policy=policy_from_config(document.get("monitoring_config", {}), str(path)),
        prediction_profile=profile,
        embedding_reference=document.get("embedding_reference"),
        registered_evaluation=document.get("registered_evaluation"),
    )


def policy_from_config(config: object, where: str) -> Policy:
    """The thresholds, each checked: alpha a probability, every minimum effect a number >= 0."""
    if not isinstance(config, dict):
        raise UserInputError(f"{where}: monitoring_config must be a JSON object")
    unknown = sorted(set(config) - set(POLICY_FIELDS))
    if unknown:
        raise UserInputError(f"{where}: monitoring_config: unknown keys {unknown} (known: {POLICY_FIELDS})")
    values = {name: config.get(name, getattr(DEFAULT_POLICY, name)) for name in POLICY_FIELDS}
    for name, value in values.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise UserInputError(f"{where}: monitoring_config.{name} {value!r} is not a number >= 0")
    if not 0 < values["alpha"] < 1:
        raise UserInputError(f"{where}: monitoring_config.alpha {values['alpha']!r} is not between 0 and 1")
    return Policy(**{name: float(value) for name, value in values.items()})
