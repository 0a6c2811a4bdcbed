"""Argument checks shared by the CLI and the library: one clear sentence per mistake, as a
vtoken UsageError, instead of whatever numpy or torch would raise three calls deeper."""

from __future__ import annotations

import math
import numbers
import os
import re

from .defaults import PRECISIONS, REFINE, REFINE_AUTO, REFINE_LOSS, REFINE_LOSSES, REFINE_MAX
from .errors import UsageError
from .models.config import MAX_BITS


def plane_count(name: str, value, *, optional: bool = False):
    """A bit-plane count: 1 .. MAX_BITS (what a model and a .mvt reader may have)."""
    return integer(name, value, 1, MAX_BITS, optional=optional)


def integer(name: str, value, lo: int | None = None, hi: int | None = None, *, optional: bool = False):
    """`value` as an int in [lo, hi]; None passes when `optional`. Bools and non-integral
    numbers (2.5, "3") are refused: a quality of 2.5 is a mistake, not a rounding request."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if lo is not None and value < lo or hi is not None and value > hi:
        span = f"from {lo} to {hi}" if lo is not None and hi is not None else \
            f"at least {lo}" if lo is not None else f"at most {hi}"
        raise UsageError(f"{name} must be {span}, got {value}")
    return value


def positive_number(name: str, value, *, optional: bool = False):
    """`value` as a finite float > 0; None passes when `optional`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) <= 0:
        raise UsageError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def choice(name: str, value, options) -> str:
    if not isinstance(value, str) or value not in options:
        raise UsageError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, got {value!r}")
    return value


def path(name: str, value) -> str:
    """A str or os.PathLike naming a file; the path as a str."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text or "\0" in text:
        raise UsageError(f"{name} must be a non-empty path, got {value!r}")
    return text


def device_name(value) -> str:
    if not isinstance(value, str) or not (value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value)):
        raise UsageError(f"device must be auto, cpu or cuda, got {value!r}")
    return value


def model_spec(value) -> None:
    """A model is named by None (the default), a name, or the path of its .json."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, os.PathLike))):
        raise UsageError(f"model must be a Tokenizer, a model name or the path of its .json, got {type(value).__name__}")


def _array(value, what: str):
    """np.asarray(value), refusing scalars, strings, paths and ragged nests with `what`."""
    import numpy as np

    if value is None or isinstance(value, (str, bytes, os.PathLike, numbers.Number)):
        raise UsageError(f"{what}, got {type(value).__name__}")
    try:
        return np.asarray(value)
    except (ValueError, TypeError):
        raise UsageError(f"{what}; this one is ragged") from None


def frames_array(frames):
    """uint8 RGB frames [T, H, W, 3] (an image [H, W, 3] becomes one frame)."""
    import numpy as np

    arr = _array(frames, "frames must be a uint8 array [T, H, W, 3]")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise UsageError(f"frames must have shape [T, H, W, 3] or [H, W, 3] (RGB), got {list(arr.shape)}")
    if arr.dtype != np.uint8:
        raise UsageError(f"frames must be uint8 (0..255), got {arr.dtype}; convert with .astype(np.uint8)")
    if min(arr.shape[:3]) < 1:
        raise UsageError(f"frames must hold at least one frame of at least 1x1 pixels, got {list(arr.shape)}")
    return arr


def token_grid(tokens):
    """An integer token grid [T', H', W'] (a [H', W'] grid becomes one latent frame)."""
    import numpy as np

    grid = _array(tokens, "tokens must be an integer array [T', H', W']")
    if grid.ndim == 2:
        grid = grid[None]
    if grid.ndim != 3:
        raise UsageError(f"tokens must have shape [T', H', W'] or [H', W'], got {list(grid.shape)}")
    if grid.dtype == np.bool_ or not np.issubdtype(grid.dtype, np.integer):
        raise UsageError(f"tokens must be integers, got {grid.dtype}")
    if min(grid.shape) < 1:
        raise UsageError(f"tokens must hold at least one token, got shape {list(grid.shape)}")
    return grid




def temporal_factor_option(value, bpp) -> None:
    """An integer (the model's grids are checked by the Codec) or "auto", which needs bpp."""
    from .codec.factor_choice import AUTO, NEEDS_BPP

    if isinstance(value, str) and value != AUTO:
        raise UsageError(f"temporal factor must be an integer (one of the model's grids) or {AUTO}, got {value!r}")
    if value != AUTO:
        integer("temporal factor", value, 1, 64, optional=True)
    elif bpp is None:
        raise UsageError(NEEDS_BPP)


def encode_options(*, src, dst, planes, quality, bpp, device: str, chunk_frames, key_interval, precision,
                   overwrite, progress, temporal_factor=None, hold=0.0, refine=None,
                   refine_loss=REFINE_LOSS, plane_map=False) -> None:
    """Every encode argument, range-checked before anything is opened or loaded."""
    path("src", src)
    path("dst", dst)
    plane_count("planes (bits)", planes, optional=True)
    integer("quality", quality, 1, 8, optional=True)
    positive_number("bpp", bpp, optional=True)
    if sum(x is not None for x in (planes, quality, bpp)) > 1:
        raise UsageError("give only one of planes/bits, quality or bpp")
    if isinstance(device, str):  # a torch.device object is taken as it is
        device_name(device)
    integer("chunk frames", chunk_frames, 1, 1025)
    integer("key interval", key_interval, 1, 0xFFFFFFFF)
    temporal_factor_option(temporal_factor, bpp)
    hold_threshold(hold)
    refine_loss_name(refine_loss, refine=refine_steps(refine, temporal_factor=temporal_factor))
    flag("plane_map", plane_map)
    choice("precision", precision, PRECISIONS)
    flag("overwrite", overwrite)
    flag("progress", progress)


def hold_threshold(value, name: str = "hold") -> float:
    """The encoder hysteresis threshold as a float: finite and >= 0 (0: off)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= float(value) < math.inf:
        raise UsageError(f"{name} must be a finite number >= 0 (0: off), got {value!r}")
    return float(value)


def refine_steps(value, name: str = "refine", temporal_factor=None) -> int:
    """The encoder's search steps as an int in 0..REFINE_MAX (0: off); None: the default for
    `temporal_factor` (refine_default)."""
    if value is None:
        return refine_default(temporal_factor)
    integer(name, value, 0, REFINE_MAX)
    return int(value)


def refine_default(temporal_factor) -> int:
    """The search steps an encode takes unless told: REFINE_AUTO with temporal factor "auto"
    (whose trials are most of its time already), REFINE on a fixed grid."""
    from .codec.factor_choice import AUTO

    return REFINE_AUTO if temporal_factor == AUTO else REFINE


def refine_loss_name(value, name: str = "refine_loss", refine=None) -> str:
    """The name of what the encoder's search minimises (defaults.REFINE_LOSSES); one other than
    the default needs a search (`refine` steps > 0) when `refine` is given."""
    choice(name, value, tuple(REFINE_LOSSES))
    if refine is not None and not refine and value != REFINE_LOSS:
        steps = "--refine N" if name.startswith("--") else "refine steps"
        raise UsageError(f"{name} {value} needs the search: give {steps} > 0")
    return value


def decode_options(*, src, start, frames, planes, tolerant, device, precision, dst=None, overwrite=False,
                   progress=False) -> None:
    """Every decode argument, range-checked before the stream or the model is opened."""
    path("src", src)
    if dst is not None:
        path("dst", dst)
    integer("start", start, 0, 100_000_000)
    integer("frames", frames, 1, optional=True)
    plane_count("planes", planes, optional=True)
    flag("tolerant", tolerant)
    if isinstance(device, str):
        device_name(device)
    choice("precision", precision, PRECISIONS)
    flag("overwrite", overwrite)
    flag("progress", progress)
