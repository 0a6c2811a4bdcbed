"""Arithmetic precision of the model's forward passes.

"fp32" unless bf16 is asked for or "auto" picks it. "bf16" runs the convolutions under bf16
autocast (LFQ keeps fp32, see models/lfq.py): on a GPU with bf16 tensor cores that is the fast
path. "auto" takes bf16 for decoding on CUDA and on a CPU that computes bf16 itself
(native_bf16): the decoder's output is rounded to 8 bits anyway (on the eval clips LPIPS within
0.00015 of fp32's, decoding 1.3-1.4x the fps on an AVX-512 BF16 CPU;
benchmarks/results/speed-cpu-bf16-decode/), whereas the encoder's bits are the stream, so the
encoder stays fp32 (a bf16 encoder codes slightly different bits than the same input elsewhere),
and so do the decodes that choose bits (temporal factor auto's trials, factor_choice.py). "auto"
also takes bf16 for the encoder's search (refine.py) wherever the hardware computes bf16 itself:
the search only chooses which bits to send, by gradients that bf16 gives as well as fp32 (the
eval clips, 4 steps: the same BD-rates within 0.3 point, in about 0.7x the time on an AVX-512
BF16 CPU; benchmarks/results/refine_bf16_cpu.md). Either way every stream decodes bit-exactly
everywhere: the entropy coder never sees the model's floats.
"""

from __future__ import annotations

import contextlib

from ..errors import UsageError

from ..defaults import PRECISIONS


def resolve_precision(precision: str | None, device, job: str) -> str:
    """'fp32' or 'bf16' for `job` ('encode', 'decode' or 'search': the encoder's search) on
    `device`."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if job == "search":
        return "bf16" if native_bf16(device) else "fp32"
    on_cuda = getattr(device, "type", str(device)).startswith("cuda")
    return "bf16" if job == "decode" and (on_cuda or native_bf16(device)) else "fp32"


def native_bf16(device) -> bool:
    """Whether `device` computes bf16 in hardware: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 or AMX instructions. Elsewhere PyTorch emulates bf16, no faster than fp32."""
    import torch

    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":  # Ampere and later; torch.cuda.is_bf16_supported() also counts emulation
        return bool(torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8)
    if kind == "cpu":
        checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(check()) for check in checks if check is not None)
    return False


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
