"""A job step's cache key as a pure function of what can change its outputs.

The local runner gathers the facts (the code's fingerprint, the inputs' fingerprints, the resolved
arguments and hyperparameters) and asks this module for the key; a step whose key is unchanged
reuses its stored outputs.
"""

from __future__ import annotations

from pipeline import dag as d
from pipeline.fingerprint import digest_json
from pipeline.job_spec import JobSpec

# Where a run is logged, not what it computes: left out of the key.
TRACKING_HYPERPARAMETERS = ("tracking_uri", "experiment_name", "run_name")


def cache_key(step: d.ProcessingStep | d.TrainingStep, code: str, spec: JobSpec) -> str:
    """`code`: the image id or the entrypoint's code digest; `spec`: what the job is told
    (`pipeline.job_spec`), of which the inputs count by fingerprint, not location."""
    hyperparameters = spec.hyperparameters
    payload = {
        "step": step.name,
        "entrypoint": step.entrypoint,
        "code": code,
        "inputs": spec.fingerprints,
        "arguments": list(spec.arguments),
        "hyperparameters": {k: v for k, v in hyperparameters.items() if k not in TRACKING_HYPERPARAMETERS},
    }
    return digest_json(payload)[:24]
