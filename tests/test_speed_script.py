"""benchmarks/speed.py on a tiny clip with the tiny random model: the report's shape, not its
timings (those depend on the machine)."""

from __future__ import annotations

import json

import pytest

from scripts import load_benchmark


def _load():
    return load_benchmark("speed")


def test_speed_report_shape(tmp_path, tiny_model_json, capsys):
    from vtoken.bench.ffmpeg import find_ffmpeg

    if find_ffmpeg() is None:
        pytest.skip("needs the static ffmpeg of imageio-ffmpeg")
    speed = _load()
    out = tmp_path / "speed.md"
    rc = speed.main(["--sizes", "64x48", "--frames", "5", "--chunk-frames", "5", "--device", "cpu",
                     "--threads", "1", "--model", str(tiny_model_json), "--codecs", "hevc,vvc", "--out", str(out)])
    assert rc == 0
    md = out.read_text()
    assert md == capsys.readouterr().out
    assert "| 64x48 | encode |" in md and "| 64x48 | decode |" in md and "libx265" in md and "libvvenc" in md
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["settings"]["device"] == "cpu" and report["environment"]["machine"]["cores"] >= 1
    assert report["settings"]["latents_per_call"] == 1 and "latent frames per model call: 1" in md  # the CPU's
    (row,) = report["results"]
    assert (row["width"], row["height"], row["frames"]) == (64, 48, 5)
    for job in ("encode", "decode"):
        j = row[job]
        assert j["frames"] == 5 and j["fps"] > 0 and j["peak_rss_mib"] > 0 and j["model"] == "test-tiny"
        assert {"model", "entropy", "write"} <= set(j["timings"])
        assert j["entropy_symbols"] == 6 * 2 * 6 * 8  # bits * T' * H/8 * W/8 for one 5-frame chunk
        assert j["entropy_symbols_per_s"] > 0 and j["other_s"] >= 0
        assert "peak_gpu_mib" not in j and j["cpu_seconds"] > 0
    assert "read" in row["encode"]["timings"]
    assert [b["codec"] for b in row["baselines"]] == ["hevc", "vvc"]
    for b in row["baselines"]:
        assert b["bytes"] > 0 and b["encode"]["fps"] > 0 and b["decode"]["fps"] > 0 and b["threads"] == 1


def test_speed_rejects_bad_size():
    speed = _load()
    with pytest.raises(SystemExit):
        speed.main(["--sizes", "641x360"])


def test_speed_runs_without_the_ffmpeg_program(tmp_path, tiny_model_json, monkeypatch):
    """The GPU machine has PyAV but no ffmpeg program: the clip comes from PyAV's lavfi, x265 is
    timed through PyAV's libx265, vvenc is left out; the speed-up switches are recorded."""
    import vtoken.bench.ffmpeg as ffmpeg

    monkeypatch.setattr(ffmpeg, "find_ffmpeg", lambda: None)
    speed = _load()
    out = tmp_path / "speed.md"
    rc = speed.main(["--sizes", "64x48", "--frames", "5", "--chunk-frames", "5", "--device", "cpu",
                     "--threads", "1", "--model", str(tiny_model_json), "--codecs", "hevc,vvc",
                     "--precision", "bf16", "--no-overlap", "--channels-last", "--latents-per-call", "0",
                     "--out", str(out)])
    assert rc == 0
    report = json.loads(out.with_suffix(".json").read_text())
    s = report["settings"]
    assert (s["precision"], s["overlap"], s["channels_last"], s["latents_per_call"]) == ("bf16", False, True, 0)
    (row,) = report["results"]
    assert row["encode"]["frames"] == 5 and row["decode"]["frames"] == 5
    assert row["encode"]["precision"] == row["decode"]["precision"] == "bf16"
    (b,) = row["baselines"]
    assert b["encoder"] == "libx265 (PyAV)" and b["bytes"] > 0 and b["decode"]["fps"] > 0
    md = out.read_text()
    assert "precision bf16" in md and "overlapped in threads: no" in md and "libx265 (PyAV)" in md
    assert "latent frames per model call: the whole chunk" in md


def test_speed_times_a_coarse_stream_grid(tmp_path, tiny_model_json):
    speed = _load()
    out = tmp_path / "speed.md"
    rc = speed.main(["--sizes", "64x48", "--frames", "9", "--chunk-frames", "9", "--device", "cpu", "--threads", "1",
                     "--model", str(tiny_model_json), "--codecs", "", "--temporal-factor", "8", "--out", str(out)])
    assert rc == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["settings"]["temporal_factor"] == 8 and "stream temporal factor 8" in out.read_text()
    (row,) = report["results"]
    assert row["encode"]["frames"] == row["decode"]["frames"] == 9
    assert row["encode"]["entropy_symbols"] == 6 * 2 * 6 * 8  # 2 latent frames: 5 of the 9 frames coded
