"""vtoken: a MAGVIT-v2 style neural video codec and visual tokenizer.

The public API is imported lazily, so `import vtoken` (and `vtoken.bitstream`) stays cheap
and works without torch until a function that needs the model is called.

    vtoken.encode("in.mp4", "out.mvt", quality=4)
    vtoken.decode("out.mvt", "out.mp4")
    vtoken.info("out.mvt")
    tokens = vtoken.tokenize(frames)            # int64 [T', H', W'] token grid
    frames = vtoken.detokenize(tokens)          # uint8 [T, H, W, 3]
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "encode": "vtoken.api",
    "decode": "vtoken.api",
    "decode_frames": "vtoken.api",
    "info": "vtoken.api",
    "tokenize": "vtoken.api",
    "detokenize": "vtoken.api",
    "EncodeResult": "vtoken.api",
    "DecodeResult": "vtoken.api",
    "load_model": "vtoken.models",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'vtoken' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(__all__)
