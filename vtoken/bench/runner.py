"""The sweep: for each clip, one reference; for each codec, config and quality, one record.

Every record has the same shape for learned and classic codecs (see `make_record`). Baseline
records are cached (cache.py); vtoken records are always recomputed."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import defaults
from ..errors import UsageError
from ..metrics.registry import METRICS
from ..validate import refine_steps
from . import baselines as bl
from .cache import BaselineCache, settings_key
from .curves import AUTO
from .env import environment, machine
from .ffmpeg import FfmpegError, ffmpeg_version, find_ffmpeg
from .measure import bpp, means, quality
from .points_log import PointLog, point_key
from .reference import make_reference
from .yuv import RGB_CONVERSION, read_y4m, yuv420_to_rgb


@dataclass
class BenchSettings:
    videos: list[Path]
    codecs: list[str] = field(default_factory=lambda: list(bl.CODECS))
    configs: list[str] = field(default_factory=lambda: ["default"])
    frames: int = defaults.BENCH_FRAMES
    width: int = defaults.BENCH_SIZE[0]
    height: int = defaults.BENCH_SIZE[1]
    qualities: dict[str, list[int]] = field(default_factory=lambda: {k: list(v) for k, v in bl.DEFAULT_QUALITIES.items()})
    vtoken_planes: list[int] = field(default_factory=lambda: list(defaults.BENCH_PLANES))
    # Stream temporal factors to sweep vtoken at, each with its plane counts (None: the
    # vtoken_planes sweep). Factor None is the model's own: its records have config "default";
    # a factor f's have "t<f>", so series vtoken-t<f>; curves.py adds vtoken-best.
    vtoken_temporal_factors: dict[int | None, list[int] | None] = field(default_factory=lambda: {None: None})
    # Rate targets for series vtoken-auto (config "auto"): `vtoken encode --bpp X
    # --temporal-factor auto` at each, what a user gets without choosing a grid or planes.
    vtoken_bpp_targets: list[float] = field(default_factory=list)

    def vtoken_points(self) -> list[tuple[int | str | None, int | None, float | None]]:
        """(temporal factor, planes, bpp target) of every vtoken point of a clip, in sweep
        order: the plane sweeps, then the auto points."""
        return ([(tf, p, None) for tf, planes in self.vtoken_temporal_factors.items()
                 for p in (self.vtoken_planes if planes is None else planes)]
                + [(AUTO, None, b) for b in self.vtoken_bpp_targets])
    run_vtoken: bool = True
    device: str = "auto"
    model: str | None = None
    hold: float = defaults.HOLD  # vtoken's encoder hysteresis (vtoken.codec.hold)
    # vtoken's encoder search steps (vtoken.codec.refine); None: each point's default (refine_for)
    refine: int | None = None
    refine_loss: str = defaults.REFINE_LOSS  # what the search minimises (defaults.REFINE_LOSSES)
    plane_map: bool = False  # vtoken's plane maps (vtoken.codec.plane_choice)
    chunk_frames: int = defaults.CHUNK_FRAMES  # vtoken's chunk length (a coarse grid may need longer ones)
    precision: str = defaults.PRECISION  # vtoken's arithmetic, encode and decode (vtoken.codec.precision)
    cache_dir: Path | None = None
    threads: int = defaults.BENCH_THREADS
    nice: int = 0
    metrics: tuple[str, ...] = tuple(METRICS)
    metrics_device: str | None = None   # default: vtoken's device (cpu for baselines-only runs)
    pictures_dir: Path | None = None     # side-by-side PNGs (source | vtoken | x265) per clip
    # The folder where vtoken points are logged as they finish (points_log.py; None: not
    # logged), and whether to go on from the points an earlier run of the same settings logged.
    log_dir: Path | None = None
    resume: bool = False

    def refine_for(self, tf) -> int:
        """The search steps of a point at temporal factor `tf` (AUTO for the vtoken-auto
        points): `refine` where given, else vtoken encode's default for that factor."""
        return refine_steps(self.refine, temporal_factor=tf)

    def refine_auto(self) -> int | None:
        """The vtoken-auto points' search steps, where they differ from the plane sweeps'."""
        steps = self.refine_for(AUTO)
        return steps if self.vtoken_bpp_targets and steps != self.refine_for(None) else None

    def searched(self) -> bool:
        """Whether any vtoken point is searched."""
        return self.run_vtoken and bool(self.refine_for(None) or self.refine_auto())

    def check(self) -> None:
        if any(not 0 < b < float("inf") for b in self.vtoken_bpp_targets):
            raise UsageError("--bpp-targets: each must be a positive number of bits per pixel")
        if not self.videos:
            raise UsageError("no videos to benchmark; pass --videos DIR (or a suite listing clips)")
        if self.frames < 1:
            raise UsageError("--frames must be >= 1")
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise UsageError(f"--size {self.width}x{self.height}: width and height must be positive and even")
        for c in self.codecs:
            if c not in bl.CODECS:
                raise UsageError(f"unknown codec {c!r}; use hevc, vvc, av1 or all")
        for c in self.configs:
            if c not in bl.CONFIGS:
                raise UsageError(f"unknown config {c!r}; use default, lowdelay or both")
        if not self.codecs and not self.run_vtoken:
            raise UsageError("nothing to run: no baseline codec and --no-vtoken")

    def points(self) -> int:
        """How many (clip, codec, config, quality) points the sweep has: the progress total."""
        per_clip = sum(len(self.qualities.get(c, [])) for c in self.codecs) * len(self.configs)
        if self.run_vtoken:
            per_clip += len(self.vtoken_points())
        return per_clip * len(self.videos)


def list_videos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--videos {folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in defaults.VIDEO_EXTENSIONS)


def make_record(*, codec: str, config: str, clip: str, quality_param: str, quality_value: int, nbytes: int,
                frames: int, width: int, height: int, per_frame: dict, encode_s: float, decode_s: float,
                encode_rss_mib: float | None, decode_rss_mib: float | None, gpu_encode_mib: float | None,
                gpu_decode_mib: float | None, device: str, settings: dict, reference_sha256: str,
                ffmpeg: str | None, measured_on: dict, commands: dict | None = None,
                encode_cpu_s: float | None = None, decode_cpu_s: float | None = None) -> dict:
    """The one record shape of the benchmark (classic and learned codecs alike)."""
    return {
        "codec": codec, "config": config, "clip": clip,
        "quality_param": quality_param,
        "quality": float(quality_value) if quality_param == "bpp_target" else int(quality_value),
        "bytes": int(nbytes), "bpp": bpp(nbytes, frames, width, height),
        "frames": int(frames), "width": int(width), "height": int(height),
        "metrics": means(per_frame), "per_frame": per_frame,
        "timings": {"encode_s": encode_s, "decode_s": decode_s,
                    "encode_fps": frames / encode_s if encode_s > 0 else None,
                    "decode_fps": frames / decode_s if decode_s > 0 else None,
                    "encode_cpu_s": encode_cpu_s, "decode_cpu_s": decode_cpu_s},
        "memory": {"encode_peak_rss_mib": encode_rss_mib, "decode_peak_rss_mib": decode_rss_mib,
                   "encode_peak_gpu_mib": gpu_encode_mib, "decode_peak_gpu_mib": gpu_decode_mib},
        "device": device, "settings": settings, "commands": commands or {},
        "reference_sha256": reference_sha256, "ffmpeg": ffmpeg, "measured_on": measured_on,
        "cached": False,
    }


def _portable(cmd: list[str], workdir: Path) -> list[str]:
    """A command line as recorded: 'ffmpeg' for the binary, file names without folders."""
    out = ["ffmpeg"]
    for a in cmd[1:]:
        out.append(Path(a).name if a.startswith(str(workdir)) else a)
    return out


def baseline_settings(spec: bl.BaselineSpec, quality_value: int, metrics: tuple[str, ...]) -> dict:
    """What a cached baseline result depends on, besides the reference and ffmpeg version."""
    return {"spec": spec.describe(), "quality": int(quality_value), "metrics": list(metrics),
            "rgb": RGB_CONVERSION}


def run_benchmark(s: BenchSettings, workdir: str | Path | None = None,
                  on_point: Callable[[dict], None] | None = None) -> dict:
    """Run the whole sweep; returns {"environment", "settings", "references", "results"}.
    `on_point(record)` is called after each point (the CLI's progress bar)."""
    s.check()
    exe = find_ffmpeg()
    fver = ffmpeg_version(exe) if exe else None
    cache = BaselineCache(s.cache_dir)
    here = machine()
    vdev = None
    if s.run_vtoken:
        from .learned import resolve
        vdev = resolve(s.device)
    mdev = s.metrics_device or vdev or "cpu"
    specs = [bl.make_spec(c, cfg, s.threads) for c in s.codecs for cfg in s.configs]
    results: list[dict] = []
    references: list[dict] = []
    pictures: list[str] = []
    log = None
    if s.run_vtoken and s.log_dir is not None:
        log = PointLog(s.log_dir, _log_settings(s, vdev, mdev), s.resume)
    with tempfile.TemporaryDirectory(prefix="vtoken-bench-", dir=workdir) as tmp:
        tmp = Path(tmp)
        warmed = False
        for video in s.videos:
            ref_path, ref_info = make_reference(exe, video, tmp, s.frames, s.width, s.height, s.cache_dir)
            references.append(ref_info)
            clip = Path(video).stem
            ref_planes = read_y4m(ref_path)[1]
            ref_rgb = yuv420_to_rgb(ref_planes)
            t = ref_rgb.shape[0]
            for spec in specs:
                for q in s.qualities.get(spec.codec, []):
                    key = settings_key(ref_info["y4m_sha256"], baseline_settings(spec, q, s.metrics))
                    rec = cache.get(key, fver)
                    if rec is not None:
                        rec["cached"] = True
                    elif exe is None:
                        raise FfmpegError(
                            f"no static ffmpeg and no cached {spec.codec} {spec.config} {spec.quality_param}={q} "
                            f"result for {clip}; pip install imageio-ffmpeg or copy the cache of a machine that ran it")
                    else:
                        out = bl.run_baseline(exe, spec, q, ref_path, s.width, s.height, tmp, nice=s.nice)
                        rgb = yuv420_to_rgb(out.planes)
                        if rgb.shape != ref_rgb.shape:
                            raise FfmpegError(f"{spec.codec} decoded {rgb.shape[0]} frames of {clip}, expected {t}")
                        rec = make_record(
                            codec=spec.codec, config=spec.config, clip=clip, quality_param=spec.quality_param,
                            quality_value=q, nbytes=out.bytes, frames=t, width=s.width, height=s.height,
                            per_frame=quality(ref_rgb, rgb, mdev, s.metrics),
                            encode_s=out.encode.seconds, decode_s=out.decode.seconds,
                            encode_cpu_s=out.encode.cpu_seconds, decode_cpu_s=out.decode.cpu_seconds,
                            encode_rss_mib=out.encode.max_rss_kib / 1024, decode_rss_mib=out.decode.max_rss_kib / 1024,
                            gpu_encode_mib=None, gpu_decode_mib=None, device="cpu",
                            settings=spec.describe(), reference_sha256=ref_info["y4m_sha256"], ffmpeg=fver,
                            measured_on=here,
                            commands={"encode": _portable(out.encode_command, tmp),
                                      "decode": _portable(out.decode_command, tmp)})
                        cache.put(key, fver, rec)
                    results.append(rec)
                    if on_point:
                        on_point(rec)
            if s.run_vtoken:
                from .learned import warm_up
                if not warmed and not _all_logged(s, log, ref_info):
                    warm_up(ref_path, s.vtoken_planes[0] if s.vtoken_planes else 1, tmp, vdev, s.model)
                    warmed = True
                # The middle frames of the model grid's sweep and of the auto points, for the picture,
                # by (config, quality).
                shown: dict[tuple[str, object], object] = {}
                for tf, p, target in s.vtoken_points():
                    key = point_key(ref_info["y4m_sha256"], tf, p, target)
                    pictured = tf is None or tf == AUTO
                    rec = log.get(key) if log is not None else None
                    if rec is not None:
                        middle = log.frame(key) if pictured else None
                    else:
                        rec, middle = _vtoken_point(s, ref_path, ref_rgb, ref_info, clip, tf, p, target, tmp,
                                                    vdev, mdev, here)
                        if log is not None:
                            log.put(key, rec, middle if pictured else None)
                    if middle is not None and pictured and s.pictures_dir is not None:
                        shown[(rec["config"], rec["quality"])] = middle
                    results.append(rec)
                    if on_point:
                        on_point(rec)
                if s.pictures_dir is not None and exe is not None and "hevc" in s.codecs:
                    picture = _side_by_side(s, exe, clip, ref_path, ref_rgb, shown, results, tmp)
                    if picture is not None:
                        pictures.append(picture.name)
    settings = {"frames": s.frames, "size": [s.width, s.height], "codecs": s.codecs, "configs": s.configs,
                "qualities": {c: s.qualities.get(c, []) for c in s.codecs}, "vtoken_planes": s.vtoken_planes if s.run_vtoken else [],
                "vtoken_temporal_factors": ({"model" if tf is None else str(tf): planes
                                             for tf, planes in s.vtoken_temporal_factors.items()}
                                            if s.run_vtoken else {}),
                "vtoken_bpp_targets": s.vtoken_bpp_targets if s.run_vtoken else [],
                "vtoken_hold": s.hold if s.run_vtoken else None,
                "vtoken_refine": s.refine_for(None) if s.run_vtoken else None,
                "vtoken_refine_auto": s.refine_auto() if s.run_vtoken else None,
                "vtoken_refine_loss": s.refine_loss if s.searched() else None,
                "vtoken_refine_precision": _searched_in(results) if s.searched() else None,
                "vtoken_refine_method": _searched_in(results, "refine_method") if s.searched() else None,
                "vtoken_plane_map": s.plane_map if s.run_vtoken else None,
                "vtoken_chunk_frames": s.chunk_frames if s.run_vtoken else None,
                "vtoken_precision": s.precision if s.run_vtoken else None,
                "vtoken_decode_precision": _one_or_each(r["settings"].get("decode_precision") for r in results
                                                        if r["codec"] == "vtoken") if s.run_vtoken else None,
                "threads": s.threads, "device": vdev, "metrics_device": mdev, "metrics": list(s.metrics),
                "rgb_conversion": RGB_CONVERSION, "baselines": [sp.describe() for sp in specs]}
    if log is not None:
        log.clear()  # the run's results hold every point now
    env = environment(fver, torch_info=s.run_vtoken)
    models = sorted({str(r["settings"].get("model")) for r in results if r["codec"] == "vtoken"})
    env["vtoken_model"] = models[0] if len(models) == 1 else (models or None)
    return {"environment": env, "settings": settings,
            "references": references, "results": results, "pictures": pictures}


def _vtoken_point(s: BenchSettings, ref_path: Path, ref_rgb, ref_info: dict, clip: str, tf, p, target, tmp: Path,
                  vdev: str, mdev: str, here) -> tuple[dict, object]:
    """One vtoken point coded, decoded and scored: (its record, the middle decoded frame)."""
    from .learned import run_vtoken

    t = ref_rgb.shape[0]
    steps = s.refine_for(tf)  # a sweep point may be unsearched where the auto points search: no loss for it
    out = run_vtoken(ref_path, p, tmp, vdev, s.model, temporal_factor=tf, hold=s.hold, refine=steps,
                     refine_loss=s.refine_loss if steps else defaults.REFINE_LOSS, chunk_frames=s.chunk_frames,
                     bpp=target, precision=s.precision, plane_map=s.plane_map)
    if out.frames.shape != ref_rgb.shape:
        raise UsageError(f"vtoken decoded frames {out.frames.shape} of {clip}, expected {ref_rgb.shape}")
    rec = make_record(
        codec="vtoken", config="default" if tf is None else AUTO if tf == AUTO else f"t{tf}",
        clip=clip, quality_param="planes" if target is None else "bpp_target",
        quality_value=p if target is None else target,
        nbytes=out.bytes, frames=t, width=s.width, height=s.height,
        per_frame=quality(ref_rgb, out.frames, mdev, s.metrics),
        encode_s=out.encode_seconds, decode_s=out.decode_seconds,
        encode_cpu_s=out.encode_cpu_seconds, decode_cpu_s=out.decode_cpu_seconds,
        encode_rss_mib=out.encode_rss_mib, decode_rss_mib=out.decode_rss_mib,
        gpu_encode_mib=out.encode_gpu_mib, gpu_decode_mib=out.decode_gpu_mib, device=out.device,
        settings=out.settings, reference_sha256=ref_info["y4m_sha256"], ffmpeg=None,
        measured_on=here)
    rec["stage_timings"] = out.stage_timings
    return rec, out.frames[t // 2].copy()


def _log_settings(s: BenchSettings, vdev: str, mdev: str) -> dict:
    """What every logged vtoken point depends on besides its clip, grid, planes and target."""
    from ..models.store import model_identity

    ident = model_identity(s.model)
    auto = s.refine_auto()
    return {"model": f"{ident.name} sha256:{ident.sha256}", "device": vdev, "metrics_device": mdev,
            "metrics": list(s.metrics), "frames": s.frames, "size": [s.width, s.height], "hold": s.hold,
            "refine": s.refine_for(None), "chunk_frames": s.chunk_frames,
            # only when it is not the default, so the logs of runs from before the option still resume
            **({"refine_auto": auto} if auto is not None else {}),
            **({"refine_loss": s.refine_loss} if s.searched() and s.refine_loss != defaults.REFINE_LOSS else {}),
            **({"precision": s.precision} if s.precision != defaults.PRECISION else {}),
            **({"plane_map": True} if s.plane_map else {})}


def _all_logged(s: BenchSettings, log: PointLog | None, ref_info: dict) -> bool:
    """Whether the clip's every vtoken point is in the log (no warm-up needed)."""
    return log is not None and all(log.get(point_key(ref_info["y4m_sha256"], *pt)) is not None
                                   for pt in s.vtoken_points())


def _side_by_side(s: BenchSettings, exe: str, clip: str, ref_path: Path, ref_rgb, vtoken_frames: dict,
                  results: list[dict], tmp: Path) -> Path | None:
    """The clip's picture: the middle point of vtoken's sweep on the model's grid (of the
    vtoken-auto points when the run has no sweep), the vtoken-auto point at the nearest rate
    where the run has both (what a user gets at a target), and x265 (in the run's first
    config) at the rate nearest the first, re-encoded here because cached baseline records keep
    no frames. `vtoken_frames`: middle frames by (config, quality). None when the run has no
    x265 point for the clip, or the first point's frame was lost."""
    from . import sidebyside as sbs

    def vtoken_points(config):
        return [r for r in results if r["clip"] == clip and r["codec"] == "vtoken" and r["config"] == config]

    def shown(record):
        return record is not None and (record["config"], record["quality"]) in vtoken_frames

    mine, auto = vtoken_points("default"), vtoken_points(AUTO)
    x265 = [r for r in results if r["clip"] == clip and r["codec"] == "hevc" and r["config"] == s.configs[0]]
    vt = sbs.pick_vtoken_point(mine) if mine else sbs.pick_vtoken_point(auto) if auto else None
    hv = sbs.nearest_rate(x265, vt["bpp"]) if vt is not None else None
    if hv is None or not shown(vt):  # no x265 point, or a logged point lost its frame
        return None
    au = sbs.nearest_rate(auto, vt["bpp"]) if mine else None
    au = au if shown(au) else None  # (a log from before the auto panel kept no auto frames)
    spec = bl.make_spec("hevc", s.configs[0], s.threads)
    out = bl.run_baseline(exe, spec, hv["quality"], ref_path, s.width, s.height, tmp, nice=s.nice)
    mid = ref_rgb.shape[0] // 2
    panels = [(sbs.label(vt, "vtoken" if vt["config"] == "default" else "vtoken-auto"),
               vtoken_frames[(vt["config"], vt["quality"])])]
    if au is not None:
        panels.append((sbs.label(au, "vtoken-auto"), vtoken_frames[(AUTO, au["quality"])]))
    panels.append((sbs.label(hv), yuv420_to_rgb(out.planes)[mid]))
    return sbs.write_side_by_side(Path(s.pictures_dir) / f"{clip}.png", mid, ref_rgb[mid], panels)


def _searched_in(results: list[dict], key: str = "refine_precision") -> str | list[str] | None:
    """What vtoken's streams' headers say of their search under `key`: the arithmetic it ran in
    (precision.py: bf16 where the hardware has it) or its method (refine.search_method): one
    name, or each one seen."""
    return _one_or_each(((r["settings"].get("stream") or {}).get("extra") or {}).get(key)
                        for r in results if r["codec"] == "vtoken")


def _one_or_each(values) -> str | list[str] | None:
    """The one value given (Nones left out), or each one, sorted; None for none."""
    seen = sorted({str(v) for v in values if v is not None})
    return seen[0] if len(seen) == 1 else (seen or None)
