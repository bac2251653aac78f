"""Evaluate a model artifact on a dataset split: metrics, plots, and a COCO cross-check."""
