"""Drift statistics for the monitor: pure functions over baseline and served samples.

- `two_sample`: the tests (KS, chi-square with sparse categories pooled), PSI and Holm's correction;
- `checks`: a check's result and the rule (family-wise alpha, minimum PSI) that marks violations;
- `image_drift`, `prediction_drift`: what is compared, against baseline.json and a prediction profile;
- `drift`: a run's checks in one call; `documents`: Model Monitor's JSON documents from them;
- `shifts`, `power`: synthetic shifts and the power and false-alarm simulation over seeds.
No AWS, MLflow or files here: the `monitor` entry point reads and writes.
"""
