"""The inference backends a user may pick, without importing torch: command lines check their
flags against these at once, before seconds of imports (the precision names are
`yolo_core.vocabulary`'s, shared with training).

"auto" measures the engines this host can run on the model's real input shape and keeps the
fastest that gives the same boxes as fp32 (`yolo_core.infer.engine_choice`).
"""

BACKENDS = ("auto", "torch", "onnx", "openvino", "tensorrt")
ENGINES = BACKENDS[1:]
