"""Batched, sliced and ONNX inference that returns detections in source-image pixels."""
