"""Make PyPI's CUDA-built torchvision/torchaudio importable next to the CPU-only torch wheel.

ludwig imports torchvision and torchaudio at module level. Their compiled extensions need
``libc10_cuda.so``, which a CPU torch does not ship, so ``import ludwig`` would fail. This module
defines the two torchvision operator schemas that torchvision's Python code registers fakes for,
and loads torchaudio with its C++ extension switched off. Numeric and timeseries features (all
this platform uses) need neither extension. On a CUDA torch it does nothing.

Import this module before anything imports ludwig, transformers, torchvision or torchaudio.
"""

from __future__ import annotations

import importlib.util
import sys

import torch

_TORCHVISION_LIBRARY: torch.library.Library | None = None


def _apply() -> None:
    global _TORCHVISION_LIBRARY  # noqa: PLW0603 - the Library object must outlive this call
    if torch.version.cuda is not None:
        return
    if "torchvision" not in sys.modules and _TORCHVISION_LIBRARY is None:
        _TORCHVISION_LIBRARY = torch.library.Library("torchvision", "DEF")
        _TORCHVISION_LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_LIBRARY.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    if "torchaudio" not in sys.modules:
        spec = importlib.util.find_spec("torchaudio")
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["torchaudio"] = module  # before find_spec of a submodule, which imports the parent
        ext_spec = importlib.util.find_spec("torchaudio._extension")
        assert ext_spec is not None and ext_spec.loader is not None
        extension = importlib.util.module_from_spec(ext_spec)
        sys.modules["torchaudio._extension"] = extension
        import torchaudio._extension.utils as extension_utils

        extension_utils._load_lib = lambda _lib: False
        ext_spec.loader.exec_module(extension)
        spec.loader.exec_module(module)


_apply()
