"""LPIPS (Zhang et al. 2018), AlexNet backbone with the v0.1 linear heads, in plain torch.

Same computation as ``lpips.LPIPS(net='alex', version='0.1')`` with its defaults (lpips=True,
spatial=False, normalize=False): inputs in [-1, 1] are shifted and scaled to ImageNet
statistics, the five ReLU outputs of AlexNet's convolutions are unit-normalised along
channels, squared differences are weighted by the 1x1 heads, averaged over space and summed.
No torchvision, no lpips import: the weights come from one safetensors file built at install
time by ``vtoken.metrics.build_lpips_weights`` (``make install``), whose sha256 is checked
against the 8 hex digits in its name before use.

Inputs must be at least about 32x32 pixels (AlexNet's stride-4 stem and two 3x3/2 pools).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..hashing import sha256_file
from .build_lpips_weights import HEAD_CHANNELS, WEIGHTS_DIR, WEIGHTS_STEM

# lpips.pretrained_networks ScalingLayer constants
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10  # lpips.normalize_tensor


@functools.lru_cache(maxsize=4)
def _verified(path: str, size: int, mtime_ns: int) -> bool:
    sha8 = Path(path).stem.rsplit("-", 1)[-1]
    return sha256_file(path).startswith(sha8)


def weights_path() -> Path:
    """The verified LPIPS weights file; raises ModelError saying how to build it."""
    found = sorted(WEIGHTS_DIR.glob(f"{WEIGHTS_STEM}-*.safetensors"))
    if not found:
        raise ModelError(f"LPIPS weights not found in {WEIGHTS_DIR}: run `make install` "
                         "(or `python -m vtoken.metrics.build_lpips_weights`)")
    for path in found:
        st = path.stat()
        if _verified(str(path), st.st_size, st.st_mtime_ns):
            return path
    raise ModelError(f"LPIPS weights {found[0].name} do not match the sha256 in their name: "
                     "run `python -m vtoken.metrics.build_lpips_weights --force`")


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet ``features`` up to the 5th ReLU, returning the 5 ReLU outputs."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 11, stride=4, padding=2)
        self.conv2 = nn.Conv2d(64, 192, 5, padding=2)
        self.conv3 = nn.Conv2d(192, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        r1 = F.relu(self.conv1(x))
        r2 = F.relu(self.conv2(F.max_pool2d(r1, 3, 2)))
        r3 = F.relu(self.conv3(F.max_pool2d(r2, 3, 2)))
        r4 = F.relu(self.conv4(r3))
        r5 = F.relu(self.conv5(r4))
        return [r1, r2, r3, r4, r5]


class LPIPS(nn.Module):
    """LPIPS distance; ``forward(x0, x1)`` takes float [N, 3, H, W] in [-1, 1], returns [N].

    Frozen and always in eval mode (``train()`` is a no-op), so it can sit inside a training
    loss: gradients flow to the inputs, never to the weights. ``weights`` overrides the
    installed file (a path to a safetensors file in the same layout).
    """

    def __init__(self, weights: str | Path | None = None):
        super().__init__()
        from safetensors.torch import load_file

        self.net = AlexNetFeatures()
        for i, ch in enumerate(HEAD_CHANNELS):
            setattr(self, f"lin{i}", nn.Conv2d(ch, 1, 1, bias=False))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        path = Path(weights) if weights is not None else weights_path()
        self.load_state_dict(load_file(str(path)), strict=True)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "LPIPS":
        # A metric has no training mode; staying in eval keeps it identical inside any model.
        return self

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[1] != 3:
            raise ValueError(f"LPIPS needs two [N, 3, H, W] tensors of one shape, got "
                             f"{tuple(x0.shape)} and {tuple(x1.shape)}")
        n = x0.shape[0]
        # one backbone pass over both images: same result, half the Python overhead
        feats = self.features(torch.cat([x0, x1]))
        return self.distance([f[:n] for f in feats], [f[n:] for f in feats])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five unit-normalised feature maps of float [N, 3, H, W] images in [-1, 1]."""
        feats = self.net((x - self.shift) / self.scale)
        return [f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + _EPS) for f in feats]

    def distance(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS [N] between two sets of `features`."""
        total = 0
        for i, (a, b) in enumerate(zip(f0, f1)):
            total = total + getattr(self, f"lin{i}")((a - b) ** 2).mean(dim=(1, 2, 3))
        return total

    def block_distance(self, f0: list[torch.Tensor], f1: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        """LPIPS per block [N, BY, BX] of a grid over the image: each layer's distance map
        pooled to the grid before the layers are summed, so the blocks' mean is `distance`
        (exactly where each map's size is a multiple of the grid; otherwise blocks that
        share a row or column of a map weigh it a little differently)."""
        total = 0
        for i, (a, b) in enumerate(zip(f0, f1)):
            total = total + F.adaptive_avg_pool2d(getattr(self, f"lin{i}")((a - b) ** 2), grid)
        return total[:, 0]


@functools.lru_cache(maxsize=2)
def _cached_model(device: str) -> LPIPS:
    return LPIPS().to(device)


def get_lpips(device: str | torch.device = "cpu") -> LPIPS:
    """A shared LPIPS instance on ``device`` (loaded and verified once per device)."""
    return _cached_model(str(torch.device(device)))


def frames_to_tensor(frames: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [T, 3, H, W] in [-1, 1] (x / 127.5 - 1, as lpips.im2tensor)."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return t.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def fold_frames(video: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
    """Video [B, 3, T, H, W] -> images [B*t, 3, H, W] (optionally only frames `idx`): LPIPS
    takes images."""
    if idx is not None:
        video = video.index_select(2, idx)
    b, c, t, h, w = video.shape
    return video.transpose(1, 2).reshape(b * t, c, h, w)


def lpips_frames(ref: np.ndarray, dist: np.ndarray, device: str | torch.device = "cpu",
                 batch: int = 8, model: LPIPS | None = None) -> np.ndarray:
    """Per-frame LPIPS of uint8 [T, H, W, 3] RGB frames, float64 [T] (lower is more similar)."""
    from .psnr import check_pair

    check_pair(ref, dist)
    model = model if model is not None else get_lpips(device)
    dev = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, ref.shape[0], max(1, batch)):
            d = model(frames_to_tensor(ref[i:i + batch], dev), frames_to_tensor(dist[i:i + batch], dev))
            out.append(d.double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


class ReferenceLPIPS:
    """Per-frame LPIPS of many versions of the same uint8 [T, H, W, 3] frames (an encoder's
    trials): the reference's features are computed once and kept when they fit in `max_mib`
    (about 9 MB a frame at 640x360), else recomputed as `lpips_frames` does."""

    def __init__(self, ref: np.ndarray, device: str | torch.device = "cpu", batch: int = 8, max_mib: float = 512):
        self.ref, self.batch = ref, max(1, batch)
        self.model = get_lpips(device)
        self.device = next(self.model.parameters()).device
        self._feats: list[list[torch.Tensor]] | None = None
        with torch.inference_mode():
            first = self.model.features(frames_to_tensor(ref[:self.batch], self.device))
            per_frame = sum(f.numel() * f.element_size() for f in first) / max(1, len(ref[:self.batch]))
            if len(ref) * per_frame <= max_mib * 2**20:
                self._feats = [first] + [self.model.features(frames_to_tensor(ref[i:i + self.batch], self.device))
                                         for i in range(self.batch, len(ref), self.batch)]

    def __call__(self, dist: np.ndarray) -> np.ndarray:
        """float64 [T] LPIPS of `dist` against the reference."""
        return self._each(dist, self.model.distance)

    def blocks(self, dist: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """float64 [T, BY, BX]: the LPIPS of `dist` per block of a BY x BX grid over each
        frame (LPIPS.block_distance); the mean over the blocks is the frame's LPIPS."""
        return self._each(dist, lambda f0, f1: self.model.block_distance(f0, f1, grid))

    def _each(self, dist: np.ndarray, measure) -> np.ndarray:
        from .psnr import check_pair

        check_pair(self.ref, dist)
        out = []
        with torch.inference_mode():
            for j, i in enumerate(range(0, len(dist), self.batch)):
                d = self.model.features(frames_to_tensor(dist[i:i + self.batch], self.device))
                f0 = self._feats[j] if self._feats is not None else \
                    self.model.features(frames_to_tensor(self.ref[i:i + self.batch], self.device))
                out.append(measure(f0, d).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)
