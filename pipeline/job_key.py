"""A job step's cache key as a pure function of what can change its outputs.

The local runner gathers the facts (the code's fingerprint, the inputs' fingerprints, the resolved
arguments and hyperparameters) and asks this module for the key; a step whose key is unchanged
reuses its stored outputs.
"""

from __future__ import annotations

from typing import Any

from pipeline import dag as d
from pipeline.fingerprint import digest_json

# Where a run is logged, not what it computes: left out of the key.
TRACKING_HYPERPARAMETERS = ("tracking_uri", "experiment_name", "run_name")


def cache_key(step: d.ProcessingStep | d.TrainingStep, code: str, spec: dict[str, Any]) -> str:
    """`code`: the image id or the entrypoint's code digest; `spec`: the runner's job spec
    (`fingerprints` of the inputs, `arguments` or `hyperparameters`)."""
    hyperparameters = spec.get("hyperparameters", {})
    payload = {
        "step": step.name,
        "entrypoint": step.entrypoint,
        "code": code,
        "inputs": spec["fingerprints"],
        "arguments": spec.get("arguments", []),
        "hyperparameters": {k: v for k, v in hyperparameters.items() if k not in TRACKING_HYPERPARAMETERS},
    }
    return digest_json(payload)[:24]
