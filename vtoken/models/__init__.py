"""The tokenizer: config (JSON), layers, causal 3D CNN, LFQ, weight store.

Names are imported lazily so `import vtoken.models` (e.g. for ModelIdentity) does not import
torch until a model is actually needed."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelIdentity": "identity",
    "TokenizerConfig": "config",
    "PRESETS": "config",
    "Tokenizer": "tokenizer",
    "TokenizerOutput": "tokenizer",
    "count_parameters": "tokenizer",
    "LFQ": "lfq",
    "LFQOutput": "lfq",
    "LFQLosses": "lfq",
    "bits_to_indices": "lfq",
    "indices_to_bits": "lfq",
    "save_model": "store",
    "load_model": "store",
    "load_model_by_identity": "store",
    "find_model": "store",
    "resolve_model": "store",
    "available_models": "store",
    "search_dirs": "store",
    "ZOO_DIR": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
