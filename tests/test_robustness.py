"""Robustness checks that cut across the parts: the decoder survives mutated streams."""

from __future__ import annotations

from scripts import load_benchmark


def _fuzz_decoder():
    return load_benchmark("fuzz_decoder")


def test_mutated_streams_raise_only_vtoken_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("VTOKEN_MODEL_PATH", str(tmp_path))
    res = _fuzz_decoder().run(files=60, seed=1, folder=tmp_path)
    assert res["failures"] == []
    # The mutations must reach both outcomes, or the test proves nothing.
    assert any("decoded" in k for k in res["outcomes"])
    assert any("Error" in k for k in res["outcomes"])


def test_structure_aware_mutations_decode_or_fail_cleanly(tmp_path, monkeypatch):
    # Issue 11: header fields at their limits, empty/oversized segments, records out of order,
    # junk audio with a valid CRC; decoded through a Matroska writer (audio muxing included).
    monkeypatch.setenv("VTOKEN_MODEL_PATH", str(tmp_path))
    res = _fuzz_decoder().run(files=20, seed=3, folder=tmp_path, structured=True)
    assert res["failures"] == []
    assert any("decoded" in k for k in res["outcomes"]) and any("Error" in k for k in res["outcomes"])
    assert res["slowest"] < 5.0
