"""The SageMaker inference server: request decoding, per-request options, micro-batching, capture.

A request passes through plain stages (`stages`: read, decode, infer through the batcher, encode,
capture) over one `state.ServerState`; `app.create_app` wires them to Starlette routes, and
`entrypoints/serve.py` reads the container contract and runs it under uvicorn.
"""
