"""benchmarks/rate_groups.py: its stand-in for the controller before groups."""

from __future__ import annotations

from scripts import load_benchmark

from vtoken.codec.rate import RateController


def _controller():
    rc = RateController(8, bpp=880 * 8 / 3400)
    rc.key_interval, rc.inter_pixels, rc.total_pixels = 4, 800, 3400
    return rc


def test_chunk_by_chunk_budgets_a_key_chunk_alone_and_is_undone_after():
    script = load_benchmark("rate_groups")
    key = dict(pixels=1000, key=True, latent_frames=2)
    assert _controller().choose([100] * 8, **key) == 4  # its group's share: 4 planes everywhere
    with script.chunk_by_chunk():
        assert _controller().choose([100] * 8, **key) == 3  # its own pixels' share
        # ... and the coder stops at that share (259 bytes), not the group's
        assert _controller().enough([100] * 3, **key) and not _controller().enough([100] * 2, **key)
    assert _controller().choose([100] * 8, **key) == 4
    assert not _controller().enough([100] * 4, **key) and _controller().enough([100] * 5, **key)
