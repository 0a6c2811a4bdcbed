"""vtoken as a benchmarked codec: a thin adapter over the library API (vtoken.encode /
vtoken.decode_frames), timed end to end (file in, file out, entropy coding included).

Memory: peak GPU memory from torch.cuda.max_memory_allocated (reset before each step) on
CUDA; peak RSS of this process per step (VmHWM reset through /proc/self/clear_refs, see
measure.reset_peak_rss)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import defaults
from ..errors import VtokenError
from .measure import peak_rss_mib, reset_peak_rss


@dataclass
class LearnedOutput:
    bytes: int
    frames: np.ndarray            # uint8 [T, H, W, 3]
    encode_seconds: float
    decode_seconds: float
    encode_rss_mib: float | None
    decode_rss_mib: float | None
    encode_gpu_mib: float | None
    decode_gpu_mib: float | None
    device: str
    settings: dict = field(default_factory=dict)
    encode_cpu_seconds: float | None = None   # CPU time of this process (all threads)
    decode_cpu_seconds: float | None = None
    stage_timings: dict = field(default_factory=dict)


def _cuda_reset(device: str) -> None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _cuda_peak(device: str) -> float | None:
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def resolve(device: str) -> str:
    from ..device import resolve_device
    return str(resolve_device(device))


def run_vtoken(ref_y4m: str | Path, planes: int | None, workdir: str | Path, device: str = "auto",
               model: str | None = None, temporal_factor: int | str | None = None,
               hold: float = defaults.HOLD, chunk_frames: int = defaults.CHUNK_FRAMES,
               bpp: float | None = None, refine: int | None = None,
               refine_loss: str = defaults.REFINE_LOSS, precision: str = defaults.PRECISION,
               plane_map: bool = False) -> LearnedOutput:
    """Encode the reference y4m keeping `planes` bit-planes, or at the rate target `bpp`
    (planes None), at the stream temporal factor `temporal_factor` (None: the model's;
    "auto": chosen by the encoder's trials, which needs `bpp`), with the encoder hysteresis
    `hold`, `refine` steps of its search (minimising `refine_loss`; None: vtoken.encode's default
    for the factor) and chunks of `chunk_frames`,
    in the arithmetic `precision` (vtoken.codec.precision, encode and decode), with plane maps
    or not; decode it back, time both."""
    import vtoken
    from vtoken.codec.precision import resolve_precision
    from vtoken.validate import refine_steps

    dev = resolve(device)
    refine = refine_steps(refine, temporal_factor=temporal_factor)  # the settings record the steps taken
    dst = Path(workdir) / f"{Path(ref_y4m).stem}-{f'p{planes}' if bpp is None else f'b{bpp:g}'}.mvt"
    try:
        reset_peak_rss()
        _cuda_reset(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        enc = vtoken.encode(ref_y4m, dst, model=model, planes=planes, bpp=bpp, device=dev, overwrite=True,
                            temporal_factor=temporal_factor, hold=hold, chunk_frames=chunk_frames, refine=refine,
                            refine_loss=refine_loss, precision=precision, plane_map=plane_map)
        _cuda_peak(dev)  # synchronises, so the wall clock covers the GPU work
        t_enc, c_enc = time.perf_counter() - t0, time.process_time() - c0
        enc_gpu = _cuda_peak(dev)
        enc_rss = peak_rss_mib()
        nbytes = dst.stat().st_size

        reset_peak_rss()
        _cuda_reset(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        chunks = list(vtoken.decode_frames(dst, model=model, device=dev, precision=precision))
        _cuda_peak(dev)
        t_dec, c_dec = time.perf_counter() - t0, time.process_time() - c0
        dec_gpu = _cuda_peak(dev)
        dec_rss = peak_rss_mib()
        try:
            stream_info = vtoken.info(dst)
        except (VtokenError, OSError):  # info is descriptive only; a failure must not lose the point
            stream_info = {}
    finally:
        dst.unlink(missing_ok=True)
    frames = np.concatenate(chunks, axis=0) if chunks else np.zeros((0,), np.uint8)
    settings = {"planes": planes if bpp is None else enc.planes, "model": enc.model, "hold": hold, "refine": refine,
                **({"refine_loss": refine_loss} if refine else {}), **({"plane_map": True} if plane_map else {}),
                "vtoken_version": vtoken.__version__,
                "chunk_frames": enc.chunk_frames, "key_interval": enc.key_interval, "precision": enc.precision,
                "decode_precision": resolve_precision(precision, dev, "decode"),
                "temporal_factor": enc.temporal_factor,
                "stream": stream_info}
    if bpp is not None:
        settings.update(bpp_target=bpp, factor_trials=enc.factor_trials)
    return LearnedOutput(nbytes, frames, t_enc, t_dec, enc_rss, dec_rss, enc_gpu, dec_gpu, dev, settings,
                         encode_cpu_seconds=c_enc, decode_cpu_seconds=c_dec,
                         stage_timings={"encode": enc.timings})


def warm_up(ref_y4m: str | Path, planes: int, workdir: str | Path, device: str = "auto", model: str | None = None,
            frames: int = 5) -> None:
    """One untimed encode/decode of a few frames so model loading, CUDA context and kernel
    selection are not charged to the first measured point."""
    from .yuv import read_y4m, write_y4m

    header, planes_arr = read_y4m(ref_y4m)
    small = Path(workdir) / "warmup.y4m"
    write_y4m(small, planes_arr[:frames], (header.fps_num, header.fps_den))
    try:
        run_vtoken(small, planes, workdir, device=device, model=model)
    finally:
        small.unlink(missing_ok=True)
