"""The SageMaker inference server: request decoding, per-request options, micro-batching, capture.

`create_app` builds the Starlette app from plain settings and a predictor factory;
`entrypoints/serve.py` reads the container contract and runs it under uvicorn.
"""
