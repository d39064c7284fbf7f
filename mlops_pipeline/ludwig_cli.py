"""``mlops-ludwig``: the ``ludwig`` command line with the torch import shim applied first.

Use it wherever the stock ``ludwig`` script would be used, e.g.
``mlops-ludwig serve --model_path models/x --host 127.0.0.1 --port 8000``.
"""

from __future__ import annotations

import mlops_pipeline.torch_shim  # noqa: F401  (must run before ludwig is imported)


def main() -> None:
    from ludwig.cli import main as ludwig_main

    ludwig_main()


if __name__ == "__main__":
    main()
