"""Monitoring of served traffic: the checks, one run over a capture window, its documents and report.

- `two_sample`: the tests (KS, chi-square with sparse categories pooled), PSI and Holm's correction;
- `checks`: a check's result and the rule (family-wise alpha, a minimum effect per kind) that marks
  violations; `constraints`: the document of thresholds and references a run reads;
- `image_drift`, `prediction_drift`: image statistics against baseline.json, answers against the
  model's prediction profile; `embeddings`, `embedding_drift`: the backbone's pooled features (MMD);
- `ground_truth`, `quality`: labels by inference id, and mAP/precision/recall against the registered;
- `capture`: captured records of a window, measured; `reference`: what evaluation registers;
- `drift`: a run's checks in one call; `run`: the whole run; `documents`, `report`: what it writes;
- `shifts`, `power`: synthetic shifts and the power and false-alarm simulation over seeds.
No AWS or MLflow here: `pipeline/monitoring` publishes, the `monitor` entry point reads the contract.
"""
