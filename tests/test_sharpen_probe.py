"""benchmarks/sharpen_probe.py: the unsharp mask it scores."""

from __future__ import annotations

import numpy as np

from scripts import load_benchmark


def test_unsharp_mask_keeps_flat_areas_and_steepens_an_edge():
    probe = load_benchmark("sharpen_probe")
    frames = np.full((2, 16, 16, 3), 100, np.uint8)
    frames[:, :, 8:] = 160  # a vertical edge
    assert np.array_equal(probe.unsharp(frames, 1.0, 0.0), frames)
    out = probe.unsharp(frames, 1.0, 1.0)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert np.array_equal(out[:, :, :4], frames[:, :, :4]) and np.array_equal(out[:, :, 12:], frames[:, :, 12:])
    assert out[0, 5, 7, 0] < 100 and out[0, 5, 8, 0] > 160  # undershoot and overshoot at the edge
    assert np.array_equal(out[..., 0], out[..., 2])  # every channel alike
