"""The serving image holds only part of the project (``image.PACKAGE_FILES`` and the serving
package): every module its entry point imports must load from that part alone, else the container
exits before it is ready (a Docker engine is needed to see that any other way)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from mlops_pipeline.serving import cli, image

# Imported by the entry point only where a container never goes: the platform's settings, read for
# the tracking URI when none is given (a container serves bundles, or has MLFLOW_TRACKING_URI).
OUTSIDE_THE_IMAGE = {"mlops_pipeline.config.settings"}


def _entry_point_modules() -> list[str]:
    """The container's entry point and the project's modules it imports, lazily or not."""
    tree = ast.parse(Path(cli.__file__).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlops_pipeline.")
    }
    return sorted({cli.WORKER_MODULE, *imported} - OUTSIDE_THE_IMAGE)


def test_the_images_package_loads_the_servers_modules_on_its_own(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (tmp_path / "context").mkdir()
    context = image.build_context(tmp_path / "context", wheelhouse)
    modules = _entry_point_modules()
    assert "mlops_pipeline.serving.app" in modules
    script = (
        "import importlib, sys\n"
        # the checkout's editable install would otherwise supply what the image lacks
        "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in str(f.__module__)]\n"
        "sys.path_hooks[:] = [h for h in sys.path_hooks if '__editable__' not in str(h.__module__)]\n"
        "sys.path_importer_cache.clear()\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import mlops_pipeline\n"
        "print(mlops_pipeline.__path__[0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=context, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.strip()) == context / "mlops_pipeline"  # the image's copy, not the checkout
