"""Versioning of report HTML with DVC, through the platform's DVC resource when it is installed.

The platform's DVC support lives in ``mlops_pipeline.resources.dvc_versioning``. Monitoring uses it
only through :func:`dvc_report_versioner`, which returns a callable ``(key, data) -> version`` or
``None`` when the module is not part of the installation. The resource is built with the module's
``dvc_versioning_from_settings(settings)`` and must offer ``version_bytes(key, data)``; that call
is the single place to adapt if the resource names its method differently.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from mlops_pipeline.config.settings import PlatformSettings

DVC_MODULE = "mlops_pipeline.resources.dvc_versioning"
DVC_FACTORY = "dvc_versioning_from_settings"
DVC_METHOD = "version_bytes"

ReportVersioner = Callable[[str, bytes], str]


def dvc_report_versioner(settings: PlatformSettings) -> ReportVersioner | None:
    """The DVC versioning call for report files, or ``None`` when the DVC resource is not installed."""
    if importlib.util.find_spec(DVC_MODULE) is None:
        return None
    module = importlib.import_module(DVC_MODULE)
    factory = getattr(module, DVC_FACTORY, None)
    if factory is None:
        return None
    method = getattr(factory(settings), DVC_METHOD, None)
    return method if callable(method) else None
