"""The names a user may pick for precision and backend, without importing torch: command lines
check their flags against these at once, before seconds of imports."""

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnx")
