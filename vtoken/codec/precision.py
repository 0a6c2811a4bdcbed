"""Arithmetic precision of the model's forward passes.

"fp32" everywhere by default. "bf16" runs the convolutions under bf16 autocast (LFQ keeps fp32,
see models/lfq.py): on a GPU with bf16 tensor cores that is the fast path. "auto" takes bf16
only for decoding on CUDA: the decoder's output is rounded to 8 bits anyway, whereas the
encoder's bits are the stream, so a bf16 encoder codes slightly different bits than the same
input on a CPU. Either way every stream decodes bit-exactly everywhere: the entropy coder
never sees the model's floats.
"""

from __future__ import annotations

import contextlib

from ..errors import UsageError

from ..defaults import PRECISIONS


def resolve_precision(precision: str | None, device, job: str) -> str:
    """'fp32' or 'bf16' for `job` ('encode' or 'decode') on `device`."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    on_cuda = getattr(device, "type", str(device)).startswith("cuda")
    return "bf16" if on_cuda and job == "decode" else "fp32"


@contextlib.contextmanager
def autocast(device, precision: str):
    """The autocast context of `precision` ('fp32' or 'bf16') for a model on `device`."""
    import torch

    kind = getattr(device, "type", str(device).split(":")[0])
    if precision == "bf16":
        with torch.autocast(kind, dtype=torch.bfloat16):
            yield
    else:
        with torch.autocast(kind, enabled=False):
            yield
