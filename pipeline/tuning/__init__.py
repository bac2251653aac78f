"""Hyperparameter tuning, two ways from one search space.

`space` declares what is searched (fields of `yolo_core.hyperparams.Hyperparameters`, checked
there); `sagemaker_job` renders it as a SageMaker tuning job request (Bayesian, mAP50-95, metric
regexes over the train command's per-epoch line); `local_search` runs a few short trials here with
Optuna, each a child MLflow run; `ranking` orders the trials and makes their table; `cli` is
`python -m pipeline tune`.
"""
