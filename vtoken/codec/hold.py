"""The encoder's hysteresis on predicted latent frames (no format change: the decoder reads
bits, whatever chose them).

The tokenizer's sign bits are noisy where a latent value sits near zero: on a still scene a
bit flips from one latent frame to the next because the pixels' noise moved z across the
boundary, and the entropy coder, which predicts each bit from the previous latent frame moved
by its block motion (vtoken.entropy.motion), pays several bits for each such flip. With
`threshold` > 0 a bit of a predicted latent frame is held, takes the value of the previous
latent frame's bit at the position the motion search points to, when

    abs(z) + PREV_WEIGHT * abs(z_prev) < threshold

with z_prev the previous latent frame's value there (0 where that bit was itself held against
its sign). The default PREV_WEIGHT 0 decides by abs(z) alone: the sign the encoder was unsure
of becomes the one the coder expects. A weight > 0 holds only bits the encoder was unsure of
in both frames and sends a firm value that only just crosses zero (a change in the content):
on the eval bench it did not beat abs(z) alone (defaults.py, lever 51). Key latent frames
(the first of a key chunk) are coded as the model gives them.

The trade is worth more the fewer planes a stream keeps: at a low rate a byte saved buys
more quality than at a high one, where the curve is flat and the detail a held bit loses
shows. The threshold applies in full up to FULL_PLANES kept planes and falls as
FULL_PLANES / planes above: on the eval clip with the most motion, a flat threshold of 0.4
at 64 planes cut 12 % of the bytes for LPIPS +0.016, where going from 32 to 64 planes buys
0.012 for 61 % more bytes; at 4 and 8 planes the same threshold paid.

The motion field follows the coder's rule (block mismatches of the first MOTION_PLANES planes
against the previous frame, the shortest shift among equal matches), searched once with the
current frame's own signs; the coder searches plane by plane from the held bits, so for the
lowest planes its field can differ and a held bit may not be the one it predicts (no harm to
decoding, a little less saved). The first latent frame of a chunk holds only the planes of
the previous chunk the decoder received (`sent`)."""

from __future__ import annotations

import math

import numpy as np

from .. import defaults
from ..entropy import motion as mo

FULL_PLANES = defaults.HOLD_FULL_PLANES
PREV_WEIGHT = defaults.HOLD_PREV_WEIGHT


class BitHold:
    """Bits of one stream's latents, chunk by chunk, with the hysteresis above. One per
    stream: it remembers the last latent frame it gave and how many of its planes were sent."""

    def __init__(self, threshold: float = 0.0, prev_weight: float = PREV_WEIGHT):
        if not 0 <= threshold < math.inf:  # also refuses NaN
            raise ValueError(f"hold threshold must be finite and >= 0, got {threshold}")
        if not 0 <= prev_weight < math.inf:
            raise ValueError(f"hold prev_weight must be finite and >= 0, got {prev_weight}")
        self.threshold = float(threshold)
        self.prev_weight = float(prev_weight)
        self._last: np.ndarray | None = None  # uint8 [K, H', W']
        self._last_abs: np.ndarray | None = None  # its abs(z), 0 where it was held against its sign
        self._sent: int | None = None  # planes of _last the decoder has (None: all)

    def bits(self, z: np.ndarray, key: bool, planes: int | None = None, commit: bool = True) -> np.ndarray:
        """uint8 bits [K, T', H', W'] of pre-quantization latents z [K, T', H', W'] of the next
        chunk (`key`: it starts a key chunk, its first latent frame is not held), for a stream
        that keeps `planes` planes (None: all). `commit` False: a trial, the stream's state is
        left as it was."""
        bits = (z >= 0).astype(np.uint8)
        size = np.abs(z).astype(np.float32)  # abs(z), 0 where a bit is held against its sign
        prev, prev_abs = (None, None) if key else (self._last, self._last_abs)
        threshold = self.threshold * min(1.0, FULL_PLANES / (planes or z.shape[0]))
        if threshold > 0:
            k, t, h, w = bits.shape
            for i in range(t):
                if i:
                    prev, prev_abs = bits[:, i - 1], size[:, i - 1]
                if prev is None or prev.shape != (k, h, w):
                    continue
                own = bits[:, i]
                cost = sum(mo.block_sums(mo.mismatch(own[p], prev[p])) for p in range(min(mo.MOTION_PLANES, k)))
                index = mo.gather_index(mo.best_field(cost), h, w)
                moved = mo.compensate(prev, index)
                doubt = size[:, i]
                if self.prev_weight:  # the default 0 skips moving the previous values
                    doubt = doubt + self.prev_weight * mo.compensate(prev_abs, index)
                unsure = doubt < threshold
                if not i and self._sent is not None:
                    unsure[self._sent:] = False  # planes of the previous chunk the decoder never got
                against = unsure & (own != moved)
                own[against] = moved[against]
                size[:, i][against] = 0
        if commit:
            self._last, self._last_abs, self._sent = bits[:, -1].copy(), size[:, -1].copy(), None
        return bits

    def replace(self, bits: np.ndarray, z: np.ndarray) -> None:
        """The chunk just given went out as `bits` instead (a later encoder stage, refine.py,
        changed some): the next chunk holds toward these; a bit against z's sign counts as
        held (its size 0)."""
        last = bits[:, -1]
        self._last = last.copy()
        self._last_abs = np.where(last == (z[:, -1] >= 0), np.abs(z[:, -1]), 0).astype(np.float32)

    def sent(self, planes: int) -> None:
        """The chunk just given was sent with its first `planes` planes: the next chunk's first
        latent frame holds only those toward it."""
        self._sent = planes
