"""The model run on a chunk a few latent frames at a time.

The tokenizer is temporally causal and carries its state from call to call (StreamState), so
a chunk coded in slices of latent frames gives the numbers one call on the whole chunk gives
(to float rounding: max |dz| 8e-6 on 33 frames at 640x360, no bit changed). The codec does
it on the CPU, where it takes less memory and is no slower: the float frames, the activations
and the decoded float video exist for one slice at a time. Measured with the default model
(benchmarks/results/slices-cpu/, 2 threads): at 1920x1080 peak RSS encode / decode 2656 /
2360 -> 1804 / 1806 MiB with 17-frame chunks, 4346 / 3198 -> 2383 / 1614 MiB with 33-frame
ones; speed level at 17 frames, decode faster at 33 (0.74 -> 0.96 fps at 1080p). So memory no
longer grows with the chunk length beyond its frames. On a GPU the whole chunk is one call
(its parallelism; not measured sliced), with the encoder's split on out-of-memory as before.
"""

from __future__ import annotations

import numpy as np

from .. import defaults
from .frames import last_copies, to_frames, to_tensor


def latents_per_call(device) -> int:
    """Latent frames the model takes per call on `device`; 0: the whole chunk at once."""
    return defaults.MODEL_LATENTS_PER_CALL.get(getattr(device, "type", str(device)), 0)


def latent_pieces(latent_frames: int, per_call: int) -> list[tuple[int, int]]:
    """[a, b) ranges of latent frames, `per_call` each (the last may hold fewer); one range
    for per_call 0."""
    if per_call <= 0:
        return [(0, latent_frames)]
    return [(a, min(a + per_call, latent_frames)) for a in range(0, latent_frames, per_call)]


def frame_range(a: int, b: int, key: bool, temporal_factor: int) -> tuple[int, int]:
    """The model frames [first, stop) that latent frames [a, b) of a chunk code. A key chunk's
    latent frame 0 is its first frame alone, latent frame i >= 1 frames 1 + tf (i - 1) ...
    tf i; a continuing chunk's latent frame i is frames tf i ... tf (i + 1) - 1."""
    tf = temporal_factor
    if key:
        return (0 if a == 0 else 1 + tf * (a - 1)), 1 + tf * (b - 1)
    return tf * a, tf * b


def encode(model, padded: np.ndarray, state, key: bool, device, per_call: int, planes: int | None = None,
           features: bool = False):
    """The pre-quantization latent [K, T', H', W'] (a tensor on `device`) of one padded chunk
    (uint8 [T, H, W, 3], model input sizes) for a stream keeping `planes` planes (None: all;
    it matters to a model with plane heads), `state` continuing the stream; with `features`,
    the encoder's features before its heads instead (Tokenizer.latent_for makes z of them;
    `planes` is then not used).
    The caller holds the inference and precision contexts."""
    import torch

    tf = model.config.temporal_factor
    t = len(padded)
    latent = 1 + (t - 1) // tf if key else t // tf
    parts = []
    for a, b in latent_pieces(latent, per_call):
        first, stop = frame_range(a, b, key, tf)
        video = to_tensor(padded[first:stop], device)
        out = model.encode_features(video, state=state) if features else model.encode(video, state=state, planes=planes)
        parts.append(out[0])
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def decode(model, bits, planes: int, state, key: bool, repeat: int, height: int, width: int,
           per_call: int, limit=None) -> np.ndarray:
    """The frames, uint8 [T, height, width, 3], that bits [1, k, T', H', W'] (a tensor on the
    model's device) decode to, `state` continuing the stream; with `repeat` r > 1 (a finer
    grid than the model's) the last of each frame's r copies. `limit` [1, T', H', W']: a plane
    map (Tokenizer.decode_bits). The caller holds the inference and precision contexts and
    cuts the padded frames at the end."""
    out = []
    for a, b in latent_pieces(bits.shape[2], per_call):
        video = model.decode_bits(bits[:, :, a:b], planes=planes, state=state,
                                  frames=last_copies(repeat, key and a == 0),
                                  limit=None if limit is None else limit[:, a:b])
        out.append(to_frames(video, video.shape[2], height, width))
    return out[0] if len(out) == 1 else np.concatenate(out)
