"""Model serving: an ASGI server over exported Ludwig models, and launchers (Docker or a local process).

The server process imports neither ludwig nor dagster: it runs what was exported from a Ludwig model
(TorchScript preprocessing and postprocessing, the forward pass as an ONNX graph), so the serving
image needs torch and onnxruntime but not ludwig.
"""
