"""Plain defaults of the monitoring UI, importable without loading evidently, pandas or settings."""

DEFAULT_EVIDENTLY_PORT = 8000
