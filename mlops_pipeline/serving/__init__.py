"""Model serving: an ASGI server over exported Ludwig models, and launchers (Docker or a local process).

The server process imports neither ludwig nor dagster: it runs TorchScript modules exported from a
Ludwig model (preprocessing, model, postprocessing), so the serving image needs torch but not ludwig.
"""
