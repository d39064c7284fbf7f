"""Where the sandbox listens and which key it treats as premium, unless told otherwise."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_PREMIUM_KEY = "sandbox-premium"
