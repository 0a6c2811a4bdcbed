"""The bits a decoder in training reads when it should learn the encoder's hysteresis.

`vtoken encode --hold` (codec/hold.py) sends a predicted latent frame's unsure bits as the
previous latent frame's; a decoder trained only on raw signs never saw such bits. HeldSigns
runs the codec's own BitHold on a training clip's detached latents (each clip as the start
of a key chunk, at its sample's plane count), so training and coding hold the same bits."""

from __future__ import annotations

import numpy as np
import torch

from vtoken.codec.hold import PREV_WEIGHT, BitHold


class HeldSigns:
    """Callable z [B, K, T', H', W'] -> signs +-1 (z's dtype and device) through
    BitHold(threshold, prev_weight); `planes` (LongTensor [B] or None: all) scales the threshold
    as a stream keeping that many planes would. `fraction` is the share of bits the last call
    changed."""

    def __init__(self, threshold: float, planes: torch.Tensor | None = None, prev_weight: float = PREV_WEIGHT):
        self.threshold = float(threshold)
        self.prev_weight = float(prev_weight)
        self.planes = None if planes is None else [int(p) for p in planes.tolist()]
        self.fraction = 0.0

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        lat = z.detach().float().cpu().numpy()
        planes = self.planes or [None] * lat.shape[0]
        bits = np.stack([BitHold(self.threshold, self.prev_weight).bits(lat[b], key=True, planes=planes[b])
                         for b in range(lat.shape[0])])
        self.fraction = float(np.mean(bits != (lat >= 0)))
        return torch.from_numpy(bits).to(device=z.device, dtype=z.dtype) * 2 - 1
