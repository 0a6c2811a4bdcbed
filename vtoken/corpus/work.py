"""What a worker does: load the model once, then turn sources into records (tokenize) or
.mvt files (encode). Both engines run exactly this code, so their results are the same.

Workers pin torch to `threads` threads: many workers on one machine must not oversubscribe
the cores (and fp32 results on the CPU were checked equal for 1 and 2 threads).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..codec.overlap import ahead


@dataclass(frozen=True)
class TokenizeJob:
    """Everything a worker needs, in plain values (it travels to processes and Ray actors)."""

    model_path: str
    model_sha256: str
    planes: int | None
    clip_frames: int
    max_side: int | None
    device: str
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EncodeJob:
    model_path: str
    model_sha256: str
    device: str
    threads: int
    options: dict  # keyword arguments of vtoken.encode (planes, quality, bpp, chunk_frames, ...)


def _set_threads(threads: int) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def load_worker_model(model_path: str, model_sha256: str, device: str, threads: int):
    import vtoken

    from ..errors import ModelError

    _set_threads(threads)
    net = vtoken.load_model(model_path, device=_device(device))
    if net.identity is None or net.identity.sha256 != model_sha256:
        raise ModelError(f"worker loaded {model_path} with a different sha256 than the driver")
    return net


def _device(device: str) -> str:
    from ..api import resolve_device

    return str(resolve_device(device))


class Tokenizing:
    """A loaded model and the job's settings: `clip(meta, index, first, frames) -> record`."""

    def __init__(self, job: TokenizeJob):
        self.job = job
        self.model = load_worker_model(job.model_path, job.model_sha256, job.device, job.threads)
        self.planes = job.planes or self.model.config.token_bits

    def clip(self, meta: dict, clip_index: int, first_frame: int, frames):
        import vtoken

        from .records import make_record

        tokens = vtoken.tokenize(frames, model=self.model, planes=self.planes, device=self.job.device)
        ident = self.model.identity
        return make_record(meta, clip_index, first_frame, frames, tokens, ident.name, ident.sha256, self.planes)

    def source(self, path: str) -> tuple[list[dict], str | None]:
        """Every record of one source, or the one-line error that stopped it."""
        from ..errors import VtokenError
        from .sources import read_clips

        records: list[dict] = []
        try:
            meta, clips = read_clips(path, self.job.clip_frames, self.job.max_side)
            for i, (first, frames) in enumerate(ahead(clips, name="vtoken-corpus-read")):
                records.append(self.clip(meta.to_dict(), i, first, frames))
        except (VtokenError, OSError) as exc:
            return records, one_line(exc)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop a corpus
            return records, f"internal error: {type(exc).__name__}: {one_line(exc)}"
        if not records:
            return records, "no frames could be decoded"
        return records, None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Encoding:
    def __init__(self, job: EncodeJob):
        self.job = job
        self.model = load_worker_model(job.model_path, job.model_sha256, job.device, job.threads)

    def file(self, src: str, dst: str) -> tuple[dict | None, str | None]:
        import vtoken

        from ..errors import VtokenError

        try:
            res = vtoken.encode(src, dst, model=self.model, device=self.job.device, **self.job.options)
        except (VtokenError, OSError) as exc:
            return None, one_line(exc)
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop a batch
            return None, f"internal error: {type(exc).__name__}: {one_line(exc)}"
        return res.to_dict(), None
