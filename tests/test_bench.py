"""vtoken bench: command lines, arithmetic, y4m, cache keys, records, reports and plots.
Real encodes of tiny clips are in test_bench_codecs.py."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vtoken.bench import baselines as bl
from vtoken.bench.cache import BaselineCache, settings_key
from vtoken.bench.measure import bpp
from vtoken.bench.reference import reference_command, reference_key
from vtoken.bench.curves import curves
from vtoken.bench.report import bd_pairs, bd_table, write_outputs
from vtoken.bench.yuv import raw_to_planes, read_y4m, write_y4m, yuv420_to_rgb
from vtoken.errors import InputError, UsageError

FF = "/ff/ffmpeg"

# The pinned command lines: any change here changes what the committed results mean, so it
# must be deliberate (and bump the cache: settings_key hashes the arguments).
EXPECTED_ENCODE = {
    ("hevc", "default"): ["-c:v", "libx265", "-preset", "medium", "-x265-params", "pools=2:info=0:log-level=error", "-crf", "30"],
    ("hevc", "lowdelay"): ["-c:v", "libx265", "-preset", "medium", "-tune", "zerolatency", "-x265-params",
                           "pools=2:info=0:log-level=error", "-crf", "30"],
    ("vvc", "default"): ["-pix_fmt", "yuv420p10le", "-c:v", "libvvenc", "-preset", "medium", "-threads", "2", "-qp", "30"],
    ("vvc", "lowdelay"): ["-pix_fmt", "yuv420p10le", "-c:v", "libvvenc", "-preset", "medium", "-threads", "2",
                          "-vvenc-params", "PicReordering=0:GOPSize=8:DecodingRefreshType=none", "-qp", "30"],
    ("av1", "default"): ["-c:v", "libsvtav1", "-preset", "8", "-svtav1-params", "lp=2", "-crf", "30"],
    ("av1", "lowdelay"): ["-c:v", "libsvtav1", "-preset", "8", "-svtav1-params", "lp=2:pred-struct=1", "-crf", "30"],
}
FORMATS = {"hevc": ("hevc", "yuv420p"), "vvc": ("vvc", "yuv420p10le"), "av1": ("obu", "yuv420p")}


@pytest.mark.parametrize("codec,config", sorted(EXPECTED_ENCODE))
def test_encode_and_decode_command_lines_are_pinned(codec, config):
    spec = bl.make_spec(codec, config, threads=2)
    fmt, pix = FORMATS[codec]
    assert bl.encode_command(FF, spec, 30, "ref.y4m", "out.bin") == [
        FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", "ref.y4m", "-an",
        *EXPECTED_ENCODE[(codec, config)], "-f", fmt, "out.bin"]
    assert bl.decode_command(FF, spec, "out.bin", "out.yuv") == [
        FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-threads", "2", "-i", "out.bin",
        "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix, "out.yuv"]
    assert spec.bit_depth == (10 if codec == "vvc" else 8)
    assert ("low delay" in spec.structure) == (config == "lowdelay")


def test_threads_reach_every_encoder():
    assert "pools=4:info=0:log-level=error" in bl.make_spec("hevc", "default", 4).encoder_args
    assert bl.make_spec("vvc", "default", 4).encoder_args[-1] == "4"
    assert "lp=4" in bl.make_spec("av1", "default", 4).encoder_args


def test_unknown_codec_or_config_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown codec"):
        bl.make_spec("h264", "default")
    with pytest.raises(UsageError, match="unknown config"):
        bl.make_spec("hevc", "fast")


def test_reference_command_is_pinned():
    assert reference_command(FF, "in.mp4", "ref.y4m", 33, 640, 360) == [
        FF, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", "in.mp4", "-map", "0:v:0", "-an",
        "-frames:v", "33", "-fps_mode", "passthrough", "-vf",
        "scale=640:360:flags=bicubic:out_range=tv,format=yuv420p", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe",
        "ref.y4m"]
    assert reference_key("a" * 64, 33, 640, 360) != reference_key("a" * 64, 17, 640, 360)
    assert reference_key("a" * 64, 33, 640, 360) != reference_key("b" * 64, 33, 640, 360)


def test_bpp_arithmetic():
    assert bpp(1000, 10, 64, 48) == pytest.approx(8000 / (10 * 64 * 48))
    assert bpp(2304, 33, 640, 360) == pytest.approx(0.0024242424)
    with pytest.raises(ValueError):
        bpp(10, 0, 64, 64)


def test_y4m_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 256, (3, 24, 16), dtype=np.uint8)  # 16x16 frames: 16*1.5 rows
    write_y4m(tmp_path / "a.y4m", planes, (30000, 1001))
    header, back = read_y4m(tmp_path / "a.y4m")
    assert (header.width, header.height, header.fps_num, header.fps_den) == (16, 16, 30000, 1001)
    np.testing.assert_array_equal(back, planes)
    (tmp_path / "b.y4m").write_bytes(b"RIFF nonsense\n")
    with pytest.raises(InputError, match="not a y4m"):
        read_y4m(tmp_path / "b.y4m")


def test_ten_bit_output_is_rounded_to_eight_bits():
    # 8-bit value v widened as v << 2 (or by bit replication) must come back as v
    v = np.arange(256, dtype=np.uint16)
    widened = np.concatenate([v << 2, (v << 2) | (v >> 6)])
    frame = np.resize(widened, 4 * 4 * 3 // 2 * 2).astype("<u2")
    planes = raw_to_planes(frame.tobytes(), 4, 4, 10)
    assert planes.shape == (2, 6, 4) and planes.dtype == np.uint8
    np.testing.assert_array_equal(planes.ravel(), np.resize(np.concatenate([v, v]), 48))
    assert raw_to_planes(np.array([1023, 2, 1, 0] * 6, "<u2").tobytes(), 4, 4, 10).ravel()[:4].tolist() == [255, 1, 0, 0]
    with pytest.raises(InputError):
        raw_to_planes(b"\0" * 10, 4, 4, 8)


def test_rgb_conversion_is_the_one_vtoken_reads_with(tmp_path):
    """The metrics' reference RGB must equal what vtoken.media gives vtoken for the same y4m."""
    from vtoken.media import VideoReader

    rng = np.random.default_rng(1)
    planes = rng.integers(16, 236, (2, 48, 32), dtype=np.uint8)
    write_y4m(tmp_path / "r.y4m", planes)
    ours = yuv420_to_rgb(planes)
    with VideoReader(tmp_path / "r.y4m") as reader:
        theirs = np.stack(list(reader.frames()))
    np.testing.assert_array_equal(ours, theirs)
    grey = np.full((1, 48, 32), 128, np.uint8)
    grey[0, :32] = 235  # white luma, neutral chroma -> RGB white in limited range
    assert yuv420_to_rgb(grey)[0].min() >= 254


def test_cache_keys_and_round_trip(tmp_path):
    spec = bl.make_spec("hevc", "default")
    base = {"spec": spec.describe(), "quality": 30}
    k = settings_key("ref1", base)
    assert settings_key("ref1", base) == k
    assert settings_key("ref2", base) != k
    assert settings_key("ref1", {**base, "quality": 31}) != k
    assert settings_key("ref1", {"spec": bl.make_spec("hevc", "lowdelay").describe(), "quality": 30}) != k
    assert settings_key("ref1", {"spec": bl.make_spec("hevc", "default", threads=1).describe(), "quality": 30}) != k

    cache = BaselineCache(tmp_path)
    assert cache.get(k, "n9") is None
    cache.put(k, "n9", {"bytes": 5})
    assert cache.get(k, "n9") == {"bytes": 5}
    assert cache.get(k, "n10") is None          # a different ffmpeg recomputes
    assert cache.get(k, None) == {"bytes": 5}   # no ffmpeg at all: any version's result
    assert BaselineCache(None).get(k, "n9") is None


def _rec(clip, codec, q, rate, psnr, lp, config="default"):
    return {"codec": codec, "config": config, "clip": clip, "quality_param": "crf", "quality": q,
            "bytes": int(rate * 1000), "bpp": rate, "frames": 3, "width": 64, "height": 64,
            "metrics": {"psnr_rgb": psnr, "psnr_y": psnr + 1, "lpips": lp},
            "per_frame": {"psnr_rgb": [psnr] * 3, "psnr_y": [psnr + 1] * 3, "lpips": [lp] * 3},
            "timings": {"encode_s": 0.1, "decode_s": 0.05, "encode_fps": 30.0, "decode_fps": 60.0},
            "memory": {"encode_peak_rss_mib": 50.0, "decode_peak_rss_mib": 30.0, "encode_peak_gpu_mib": None,
                       "decode_peak_gpu_mib": None},
            "device": "cpu", "settings": {}, "commands": {}, "reference_sha256": "x", "ffmpeg": "n9",
            "measured_on": {"cpu": "test", "cores": 2}, "cached": False}


def _synthetic_results():
    """vtoken needs exactly half of HEVC's rate for the same quality on clip a: BD-rate -50 %.
    On clip b the curves do not overlap: undefined, and the overall mean says so."""
    out = []
    for i, q in enumerate([22, 27, 32, 37]):
        rate = 0.2 / 2 ** i
        psnr, lp = 40 - 3 * i, 0.05 + 0.05 * i
        out.append(_rec("a", "hevc", q, rate, psnr, lp))
        out.append(_rec("a", "vtoken", i, rate / 2, psnr, lp))
        out.append(_rec("b", "hevc", q, rate, psnr, lp))
        out.append(_rec("b", "vtoken", i, rate, psnr + 20, lp / 100))
    return out


def test_bd_aggregation_per_clip_and_overall():
    rows = bd_table(_synthetic_results())
    by = {(r["clip"], r["metric"]): r for r in rows}
    assert by[("a", "psnr_rgb")]["bd_rate_pct"] == pytest.approx(-50.0, abs=1e-6)
    assert by[("a", "lpips")]["bd_rate_pct"] == pytest.approx(-50.0, abs=1e-6)
    assert by[("b", "psnr_rgb")]["bd_rate_pct"] is None and "overlap" in by[("b", "psnr_rgb")]["bd_rate_note"]
    overall = by[("overall", "psnr_rgb")]
    assert overall["bd_rate_pct"] == pytest.approx(-50.0, abs=1e-6)
    assert "1 of 2" in overall["bd_rate_note"]
    # BD-PSNR on clip a: at equal rate vtoken is one rate-halving step (3 dB) better
    assert by[("a", "psnr_rgb")]["bd_metric"] == pytest.approx(3.0, abs=1e-6)


def test_bd_pairs_without_vtoken_use_hevc_as_anchor():
    assert bd_pairs(["hevc", "vvc", "av1"]) == [("vvc", "hevc"), ("av1", "hevc")]
    assert bd_pairs(["vvc", "vtoken", "hevc-lowdelay"]) == [("vtoken", "vvc"), ("vtoken", "hevc-lowdelay")]
    assert bd_pairs([]) == []


def test_vtoken_temporal_factors_get_their_series_and_a_pareto_front():
    """vtoken at factor 2 (config t2) beside the model's own: series vtoken and vtoken-t2, and
    vtoken-best, the points no cheaper point matches on LPIPS; every vtoken series is read
    against every baseline."""
    recs = [_rec("a", "vtoken", 4, 0.01, 20, 0.40), _rec("a", "vtoken", 8, 0.02, 22, 0.30),
            _rec("a", "vtoken", 18, 0.04, 23, 0.28), _rec("a", "vtoken", 64, 0.09, 24, 0.25),
            _rec("a", "vtoken", 8, 0.03, 23, 0.26, config="t2"), _rec("a", "vtoken", 18, 0.06, 25, 0.21, config="t2"),
            _rec("a", "vtoken", 64, 0.16, 26, 0.22, config="t2"),
            _rec("a", "hevc", 30, 0.01, 30, 0.20), _rec("a", "hevc", 40, 0.004, 26, 0.35)]
    # On the Pareto front (only 0.01 is cheaper, and worse) but above vtoken's curve read
    # between its points (0.35 lies between 0.40 at 0.01 and 0.30 at 0.02 bpp): left out.
    recs.append(_rec("a", "vtoken", 4, 0.019, 21, 0.35, config="t2"))
    cv = curves(recs)["a"]
    assert list(cv) == ["vtoken", "vtoken-t2", "hevc", "vtoken-best"]
    best = cv["vtoken-best"]
    assert [(r["config"], r["bpp"], r["metrics"]["lpips"]) for r in best] == [
        ("best", 0.01, 0.40), ("best", 0.02, 0.30), ("best", 0.03, 0.26), ("best", 0.06, 0.21)]
    assert all(r["config"] == "t2" for r in cv["vtoken-t2"])  # the records themselves are untouched
    assert bd_pairs(list(cv)) == [("vtoken", "hevc"), ("vtoken-t2", "hevc"), ("vtoken-best", "hevc")]
    assert "vtoken-best" not in curves([r for r in recs if r["config"] != "t2"])["a"]
    assert [r["bpp"] for r in curves(recs[:-1] + [_rec("a", "vtoken", 4, 0.011, 21, 0.35, config="t2")])["a"][
        "vtoken-best"]][:2] == [0.01, 0.011]  # below vtoken's curve there: kept


def test_bench_temporal_factors_option_and_suite_form(tiny_model_json):
    from vtoken.bench.cli import _temporal_factors

    model = str(tiny_model_json)
    assert _temporal_factors(None, {}, model, False) == {None: None}
    assert _temporal_factors("4,2,1", {}, model, False) == {None: None, 2: None, 1: None}
    assert _temporal_factors("2", {}, model, False) == {None: None, 2: None}
    suite = {"vtoken_temporal_factors": {"2": [8, 18], "1": [18]}}
    assert _temporal_factors(None, suite, model, False) == {None: None, 2: [8, 18], 1: [18]}
    assert _temporal_factors(None, suite, model, True) == {None: None}
    assert _temporal_factors("16,8,4", {}, model, False) == {None: None, 16: None, 8: None}
    for bad in ("3", "64"):
        with pytest.raises(UsageError, match=r"must be one of \[1, 2, 4, 8, 12, 16, 20, 24, 28, 32\] for a model "
                                             r"with temporal factor 4"):
            _temporal_factors(bad, {}, model, False)


def test_bench_chunk_frames_must_hold_every_swept_factor():
    from vtoken.bench.cli import _check_chunk_frames

    _check_chunk_frames(33, {None: None, 32: None, 16: None, 8: None}, 4)
    _check_chunk_frames(17, {None: None, 16: None}, 4)
    with pytest.raises(UsageError, match=r"temporal factors \[32\] do not fit --chunk-frames 17"):
        _check_chunk_frames(17, {None: None, 32: None, 16: None}, 4)
    with pytest.raises(UsageError, match=r"temporal factors \[4\] do not fit --chunk-frames 10"):  # the model's own grid
        _check_chunk_frames(10, {None: None}, 4)
    with pytest.raises(UsageError, match="--chunk-frames must be at least 1"):
        _check_chunk_frames(0, {None: None}, 4)


def test_curves_group_by_clip_and_series_sorted_by_rate():
    recs = [_rec("a", "hevc", 40, 0.01, 30, 0.3), _rec("a", "hevc", 20, 0.1, 40, 0.1),
            _rec("a", "hevc", 30, 0.05, 35, 0.2, config="lowdelay")]
    cv = curves(recs)
    assert list(cv["a"]) == ["hevc", "hevc-lowdelay"]
    assert [r["quality"] for r in cv["a"]["hevc"]] == [40, 20]


def test_outputs_json_csv_summary_and_plots(tmp_path):
    results = _synthetic_results()
    run = {"environment": {"date": "2026-01-01T00:00:00+00:00", "machine": {"cpu": "test", "cores": 2, "memory_gib": 1},
                           "versions": {"torch": "x", "av": "y", "vtoken": "0"}, "ffmpeg": "n9", "gpu": None},
           "settings": {"frames": 3, "size": [64, 64], "threads": 2, "configs": ["default"], "metrics_device": "cpu",
                        "qualities": {"hevc": [22, 27, 32, 37]}, "baselines": [bl.make_spec("hevc", "default").describe()]},
           "references": [], "results": results}
    paths = write_outputs(run, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["rd_lpips.png", "rd_psnr.png", "results.csv", "results.json", "summary.md"]
    for p in paths:
        assert p.stat().st_size > 0
    assert (tmp_path / "rd_psnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data) >= {"environment", "settings", "references", "results", "bd"}
    assert len(data["results"]) == len(results)
    assert {r["clip"] for r in data["bd"]} == {"a", "b", "overall"}
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == len(results)
    assert float(rows[0]["bpp"]) == pytest.approx(results[0]["bpp"])
    assert rows[0]["psnr_rgb"] and rows[0]["ms_ssim"] == ""   # missing metric: empty cell, not 0
    md = (tmp_path / "summary.md").read_text()
    assert "| a | vtoken | hevc | psnr_rgb | -50.0 |" in md
    assert "the curves do not overlap" in md


def test_cli_option_parsing(tmp_path):
    from vtoken.bench.cli import load_suite, parse_list, parse_size

    assert parse_list(("hevc,vvc", "av1", "hevc"), allowed=("hevc", "vvc", "av1", "all")) == ["hevc", "vvc", "av1"]
    assert parse_list(["4, 6,8"], kind=int) == [4, 6, 8]
    with pytest.raises(UsageError, match="h264"):
        parse_list(["h264"], allowed=("hevc",), name="--codec")
    with pytest.raises(UsageError, match="not a valid int"):
        parse_list(["4,x"], kind=int)
    assert parse_size("640x360") == (640, 360)
    with pytest.raises(UsageError, match="WIDTHxHEIGHT"):
        parse_size("640")
    (tmp_path / "benchmarks" / "suites").mkdir(parents=True)
    suite = tmp_path / "benchmarks" / "suites" / "s.json"
    suite.write_text('{"frames": 9}')
    assert load_suite(suite) == {"frames": 9, "_root": str(tmp_path)}
    suite.write_text("{nope")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_suite(suite)


def test_bench_refuses_a_bad_hold_before_running_anything(tmp_path):
    from click.testing import CliRunner

    from vtoken.cli import main

    for bad in ("-0.5", "nan", "inf"):
        res = CliRunner().invoke(main, ["bench", "--no-vtoken", "--hold", bad, "--out", str(tmp_path / "out")])
        assert res.exit_code == 2 and "--hold" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bench_refuses_bad_rate_targets_before_running_anything(tmp_path, tiny_model_json):
    from click.testing import CliRunner

    from vtoken.cli import main

    (tmp_path / "clips").mkdir()
    for bad, says in (("abc", "not a valid float"), ("0", "positive"), ("0.01,-1", "positive"), ("nan", "positive")):
        res = CliRunner().invoke(main, ["bench", "--model", str(tiny_model_json), "--videos", str(tmp_path / "clips"),
                                        "--bpp-targets", bad, "--out", str(tmp_path / "out")])
        assert res.exit_code == 2 and says in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "out").exists()


def test_videos_option_relocates_a_suite_keeping_its_clip_list(tmp_path):
    from vtoken.bench.cli import _videos

    for name in ("a.mp4", "b.mkv", "c.mp4"):
        (tmp_path / name).write_bytes(b"")
    suite = {"videos": "elsewhere", "clips": ["c.mp4", "a.mp4"], "_root": str(tmp_path / "nowhere")}
    assert [p.name for p in _videos(str(tmp_path), suite, tmp_path)] == ["c.mp4", "a.mp4"]
    assert [p.name for p in _videos(str(tmp_path), {}, tmp_path)] == ["a.mp4", "b.mkv", "c.mp4"]
    with pytest.raises(UsageError, match="suite clips not found"):
        _videos(str(tmp_path), {**suite, "clips": ["d.mp4"]}, tmp_path)
    with pytest.raises(UsageError, match="video folder elsewhere does not exist"):
        _videos(None, suite, tmp_path)


def test_shipped_eval_suite_is_consistent():
    from vtoken.bench.cli import REPO_ROOT, load_suite

    for name in ("eval.json", "eval-temporal.json"):
        suite = load_suite(REPO_ROOT / "benchmarks" / "suites" / name)
        assert suite["frames"] == 33 and suite["size"] == "640x360"
        assert set(suite["qualities"]) == {"hevc", "vvc", "av1", "vtoken"}
        for codec in ("hevc", "vvc", "av1"):
            q = suite["qualities"][codec]
            assert q == sorted(q) and 0 <= q[0] and q[-1] <= 63
    assert suite["vtoken_temporal_factors"] == {"2": [8, 18, 32, 64], "1": [8, 18, 32, 64]}
    # The eval bench shows what a user gets at a rate target over the range a codec needs.
    targets = load_suite(REPO_ROOT / "benchmarks" / "suites" / "eval.json")["vtoken_bpp_targets"]
    assert targets == sorted(targets) and targets[0] <= 0.005 and targets[-1] >= 0.08


def test_default_vtoken_sweep_follows_the_model_planes():
    from vtoken.defaults import bench_planes

    assert bench_planes(80) == (1, 2, 4, 8, 12, 18, 24, 32, 48, 64, 80)
    assert bench_planes(64) == (1, 2, 4, 8, 12, 18, 24, 32, 48, 64)
    assert bench_planes(32) == (1, 2, 4, 8, 12, 18, 24, 32)
    assert bench_planes(18) == (1, 2, 4, 8, 12, 18)
    assert bench_planes(6) == (1, 2, 4, 6)
