"""Checks shared by the tests of a stream's time grid: what the file holds against what the
model gives without the pipeline."""

from __future__ import annotations

import numpy as np

import vtoken


def assert_stream_is(mvt, model, expected, factor: int, frame_counts: list[int]) -> np.ndarray:
    """The .mvt `mvt` has temporal factor `factor`, chunks of `frame_counts` frames, and per
    chunk the entropy-decoded bits and decoded frames of `expected` [(bits, frames), ...].
    Returns all decoded frames."""
    from vtoken.bitstream import open_mvt
    from vtoken.entropy import coder_for

    coder = coder_for(model)
    with open_mvt(mvt) as reader:
        assert reader.header.temporal_factor == factor
        assert [e.frame_count for e in reader.entries] == frame_counts
        for i, (want, _) in enumerate(expected):
            chunk = reader.read_chunk(i)
            if chunk.key:
                coder.reset()
            np.testing.assert_array_equal(coder.decode(list(chunk.segments), tuple(chunk.latent_shape)), want)
    # fp32: the expected frames are the fp32 model's (auto decodes in bf16 on a CPU that has it)
    decoded = np.concatenate(list(vtoken.decode_frames(mvt, device="cpu", precision="fp32")))
    np.testing.assert_array_equal(decoded, np.concatenate([f for _, f in expected]))
    return decoded
