"""The model run on a chunk a latent frame (or a few) at a time (vtoken/codec/slices.py) gives
what one call on the whole chunk gives, on key and continuing chunks and on a finer grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vtoken.codec import slices
from vtoken.codec.frames import last_copies, pad_frames, repeat_frames, to_frames, to_tensor
from vtoken.models import load_model
from vtoken.models.stream import StreamState

from clips import moving_pattern


def test_latent_pieces_and_their_frames():
    assert slices.latent_pieces(5, 0) == [(0, 5)]
    assert slices.latent_pieces(5, 1) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert slices.latent_pieces(5, 2) == [(0, 2), (2, 4), (4, 5)]
    # A key chunk of 17 frames: latent frame 0 is frame 0 alone, then 4 frames each.
    assert [slices.frame_range(a, b, True, 4) for a, b in slices.latent_pieces(5, 2)] == [(0, 5), (5, 13), (13, 17)]
    # A continuing chunk of 16 frames: 4 frames per latent frame from its start.
    assert [slices.frame_range(a, b, False, 4) for a, b in slices.latent_pieces(4, 1)] == [(0, 4), (4, 8), (8, 12),
                                                                                           (12, 16)]


def test_devices_without_a_setting_take_the_whole_chunk(monkeypatch):
    from vtoken import defaults

    monkeypatch.setattr(defaults, "MODEL_LATENTS_PER_CALL", {"cpu": 2})
    assert slices.latents_per_call("cpu") == 2
    assert slices.latents_per_call(torch.device("cpu")) == 2
    assert slices.latents_per_call("cuda") == 0


@pytest.mark.parametrize("repeat", [1, 2])
def test_sliced_model_calls_match_one_call_per_chunk(tiny_model_json, repeat):
    """A key chunk then a continuing one, the model called per latent frame (and per two)
    against once per chunk: the same latents to float rounding, the same signs, the same
    decoded frames within one level."""
    model = load_model(tiny_model_json)
    tf, sf = model.config.temporal_factor, model.config.spatial_factor
    clip = moving_pattern(17, 32, 48)
    chunks = [(clip[:9], True), (clip[9:], False)]
    whole_state, whole_z, whole_frames = StreamState(), [], []
    dec_whole = StreamState()
    with torch.inference_mode():
        for frames, key in chunks:
            padded = pad_frames(repeat_frames(frames, repeat, key), tf, sf, continuing=not key)
            z = model.encode(to_tensor(padded, "cpu"), state=whole_state)[0]
            whole_z.append(z)
            bits = (z >= 0).to(torch.uint8)[None]
            video = model.decode_bits(bits, state=dec_whole, frames=last_copies(repeat, key))
            whole_frames.append(to_frames(video, video.shape[2], 32, 48))
        for per_call in (1, 2):
            enc, dec = StreamState(), StreamState()
            for (frames, key), z_ref, f_ref in zip(chunks, whole_z, whole_frames):
                padded = pad_frames(repeat_frames(frames, repeat, key), tf, sf, continuing=not key)
                z = slices.encode(model, padded, enc, key, "cpu", per_call)
                assert z.shape == z_ref.shape
                assert torch.allclose(z, z_ref, atol=1e-5)
                bits = (z_ref >= 0).to(torch.uint8)[None]
                firm = z_ref.abs() > 1e-4  # a sign this close to zero may round either way
                assert torch.equal((z >= 0)[firm], (z_ref >= 0)[firm]) and firm.float().mean() > 0.99
                out = slices.decode(model, bits, bits.shape[1], dec, key, repeat, 32, 48, per_call)
                assert out.shape == f_ref.shape
                assert np.abs(out.astype(int) - f_ref.astype(int)).max() <= 1
            # More calls went through each state than there were chunks: it was sliced.
            assert enc.chunks > len(chunks) and dec.chunks > len(chunks)
