"""A job step's cache key (`pipeline.job_key.cache_key`): a pure function of what can change the
step's outputs, checked without running anything."""

from __future__ import annotations

from dataclasses import replace

from pipeline import dag as d
from pipeline.job_key import cache_key
from pipeline.job_spec import JobSpec

TRAIN = d.build_dag().step(d.TRAIN)
SPEC = JobSpec(
    inputs={"dataset": "/data"},
    fingerprints={"dataset": "abc"},
    hyperparameters={"epochs": "2", "tracking_uri": "none"},
)


def test_the_key_follows_inputs_code_and_hyperparameters() -> None:
    key = cache_key(TRAIN, "code-1", SPEC)
    assert len(key) == 24 and key == cache_key(TRAIN, "code-1", replace(SPEC))
    assert cache_key(TRAIN, "code-2", SPEC) != key
    assert cache_key(TRAIN, "code-1", replace(SPEC, fingerprints={"dataset": "abd"})) != key
    assert (
        cache_key(TRAIN, "code-1", replace(SPEC, hyperparameters={"epochs": "3", "tracking_uri": "none"}))
        != key
    )


def test_where_a_run_is_logged_does_not_change_the_key() -> None:
    logged_elsewhere = {
        "epochs": "2",
        "tracking_uri": "http://mlflow:5000",
        "experiment_name": "x",
        "run_name": "y",
    }
    assert cache_key(TRAIN, "code-1", replace(SPEC, hyperparameters=logged_elsewhere)) == cache_key(
        TRAIN, "code-1", SPEC
    )
