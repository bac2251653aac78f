"""The inference backends a user may pick, without importing torch: command lines check their
flags against these at once, before seconds of imports (the precision names are
`yolo_core.vocabulary`'s, shared with training)."""

BACKENDS = ("auto", "torch", "onnx")
