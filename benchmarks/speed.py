"""Speed benchmark: vtoken encode and decode fps end to end (file in, file out,
entropy coding included), where the time goes, peak memory, entropy coder throughput, and
x265 / vvenc (medium) encode and decode fps on the same clip, machine and run. Without the
ffmpeg program (the GPU machine has none), x265 runs through PyAV's libx265 and vvenc is
left out.

    python benchmarks/speed.py [--sizes 640x360,1920x1080] [--device cpu|cuda|auto] [--frames 34]
        [--chunk-frames 17] [--model NAME_OR_JSON] [--threads N] [--codecs hevc,vvc] [--out FILE.md]
        [--precision auto|fp32|bf16] [--no-overlap] [--channels-last] [--compile] [--temporal-factor N]

--precision, --no-overlap, --channels-last and --compile switch one speed-up at a time, so that
each is measured on its own; --temporal-factor times a stream on another time grid (8 or 16:
the model runs on every 2nd or 4th frame).

Each size gets one generated clip (lavfi testsrc2, made through PyAV: moving pattern, text,
gradients), written once as y4m. vtoken encodes y4m -> .mvt and decodes .mvt -> .mp4 (so decode includes
the video encode of its output). Every vtoken job runs in a fresh Python process so its peak
RSS is its own (a parent's ru_maxrss only ever grows); the model is loaded before the clock
starts (its load time is reported apart). The split comes from the results' `.timings`;
`other` is the wall clock the stages do not cover (setup, probing, audio, closing files).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from vtoken import defaults

# Runs in a fresh interpreter per (size, job): one JSON line on stdout.
CHILD = r"""
import json, resource, sys, time
a = json.loads(sys.argv[1])
import torch
torch.set_num_threads(a["threads"])
import vtoken
from vtoken.device import resolve_device
import numpy as np
from vtoken.bitstream import open_mvt

from vtoken.codec import overlap

dev = resolve_device(a["device"])
cuda = dev.type == "cuda"
if a["latents_per_call"] is not None:
    from vtoken import defaults
    defaults.MODEL_LATENTS_PER_CALL = {dev.type: a["latents_per_call"]}
if not a["overlap"]:
    overlap.DEPTH = 0
t0 = time.perf_counter()
net = vtoken.load_model(a["model"], device=dev)
if a["channels_last"]:
    net = net.to(memory_format=torch.channels_last_3d)
if a["compile"]:
    # Fixed chunk shapes: the warm-up run compiles every shape the timed run meets.
    net.encoder = torch.compile(net.encoder, dynamic=False)
    net.decoder = torch.compile(net.decoder, dynamic=False)
load_s = time.perf_counter() - t0
rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def once():
    if a["job"] == "encode":
        return vtoken.encode(a["src"], a["dst"], model=net, device=str(dev), chunk_frames=a["chunk_frames"],
                             precision=a["precision"], overwrite=True, temporal_factor=a["temporal_factor"])
    return vtoken.decode(a["src"], a["dst"], model=net, device=str(dev), precision=a["precision"], overwrite=True)

for _ in range(a["warmup"]):
    once()
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
res = once()
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
out = {"job": a["job"], "frames": res.frames, "width": res.width, "height": res.height, "bytes": res.bytes,
       "bpp": res.bpp, "seconds": res.seconds, "fps": res.fps, "timings": res.timings, "device": str(dev),
       "model": net.identity.name if net.identity else a["model"], "bits": net.config.bits,
       "model_load_s": load_s, "precision": res.precision, "warmup_runs": a["warmup"], "torch_threads": torch.get_num_threads(),
       "peak_rss_mib": cpu1.ru_maxrss / 1024, "rss_after_load_mib": rss_loaded,
       # CPU time of the timed run: wall clock far above cpu / threads means the cores were shared.
       "cpu_seconds": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime}
# Binary decisions the entropy coder made: every plane of every latent position, chunk by chunk.
mvt = a["dst"] if a["job"] == "encode" else a["src"]
with open_mvt(mvt) as reader:  # the chunks as coded (key and continuing chunks differ in shape)
    symbols = sum(net.config.bits * int(np.prod(reader.read_chunk(e.index).latent_shape)) for e in reader.entries)
out["entropy_symbols"] = symbols
if cuda:
    out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(out))
"""

BASELINE_QUALITY = {"hevc": 30, "vvc": 35}  # mid-range of the eval sweeps; speed varies little with it

# x265 through PyAV's own libx265 when there is no ffmpeg program: one job per process, like
# the ffmpeg runs, so that time and peak RSS are its own.
PYAV_X265 = r"""
import sys, av
job, src, dst, crf = sys.argv[1:5]
with av.open(src) as inp:
    if job == "encode":
        with av.open(dst, "w", format="hevc") as out:
            s = out.add_stream("libx265", rate=inp.streams.video[0].average_rate)
            s.width, s.height, s.pix_fmt = inp.streams.video[0].width, inp.streams.video[0].height, "yuv420p"
            s.options = {"preset": "medium", "crf": crf, "x265-params": "log-level=error"}
            for frame in inp.decode(video=0):
                out.mux(s.encode(frame))
            out.mux(s.encode())
    else:
        with open(dst, "wb") as out:
            for frame in inp.decode(video=0):
                for plane in frame.planes:
                    out.write(bytes(plane))
"""


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size {text!r}: need even WxH, at least 16x16")
    return w, h


def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    """A y4m (8-bit 4:2:0, 30 fps) of lavfi's moving test pattern testsrc2, made with PyAV's
    ffmpeg libraries (so no ffmpeg program is needed)."""
    import av

    with av.open(f"testsrc2=size={width}x{height}:rate=30", format="lavfi") as src, \
            av.open(str(path), "w", format="yuv4mpegpipe") as dst:
        stream = dst.add_stream("wrapped_avframe", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            frame.pts = i
            dst.mux(stream.encode(frame.reformat(format="yuv420p")))
        dst.mux(stream.encode())


def run_vtoken(job: str, src: Path, dst: Path, *, model: str, device: str, chunk_frames: int,
               threads: int, warmup: int, precision: str = "auto", overlap: bool = True,
               channels_last: bool = False, compile: bool = False, temporal_factor: int | None = None,
               latents_per_call: int | None = None) -> dict:
    args = {"job": job, "src": str(src), "dst": str(dst), "model": model, "device": device,
            "chunk_frames": chunk_frames, "threads": threads, "warmup": warmup, "precision": precision,
            "overlap": overlap, "channels_last": channels_last, "compile": compile,
            "temporal_factor": temporal_factor, "latents_per_call": latents_per_call}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, check=False)
    if proc.returncode:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"vtoken {job} failed (exit {proc.returncode}): {tail}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    t = rec["timings"]
    ent = t.get("entropy", 0.0)
    rec["other_s"] = max(0.0, rec["seconds"] - sum(t.values()))
    rec["entropy_coded_bits_per_s"] = rec["bytes"] * 8 / ent if ent > 0 else None
    rec["entropy_symbols_per_s"] = rec["entropy_symbols"] / ent if ent > 0 else None
    return rec


def _run_record(run, frames: int) -> dict:
    """Wall clock, fps, CPU time and peak RSS of one timed baseline process."""
    return {"seconds": run.seconds, "fps": frames / run.seconds, "cpu_seconds": run.cpu_seconds,
            "peak_rss_mib": run.max_rss_kib / 1024}


def run_pyav_x265(y4m: Path, workdir: Path, frames: int) -> dict:
    """x265 medium encode and decode fps through PyAV's libx265 (threads: x265's own pool)."""
    from vtoken.bench.ffmpeg import run_timed

    stream, raw = workdir / "hevc.hevc", workdir / "hevc.yuv"
    q = str(BASELINE_QUALITY["hevc"])
    try:
        enc = run_timed([sys.executable, "-c", PYAV_X265, "encode", str(y4m), str(stream), q], cwd=workdir)
        nbytes = stream.stat().st_size
        dec = run_timed([sys.executable, "-c", PYAV_X265, "decode", str(stream), str(raw), q], cwd=workdir)
    finally:
        stream.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)
    return {"codec": "hevc", "encoder": "libx265 (PyAV)", "preset": "medium", "threads": "x265 default",
            "quality": f"crf {q}", "bytes": nbytes,
            "encode": _run_record(enc, frames), "decode": _run_record(dec, frames),
            "encode_command": ["python", "-c", "PYAV_X265", "encode", "clip.y4m", "hevc.hevc", q],
            "decode_command": ["python", "-c", "PYAV_X265", "decode", "hevc.hevc", "hevc.yuv"]}


def run_ffmpeg_codec(exe: str, codec: str, y4m: Path, workdir: Path, frames: int, threads: int) -> dict:
    from vtoken.bench.baselines import decode_command, encode_command, make_spec
    from vtoken.bench.ffmpeg import run_timed

    spec = make_spec(codec, "default", threads=threads)
    stream, raw = workdir / f"{codec}.{spec.extension}", workdir / f"{codec}.yuv"
    q = BASELINE_QUALITY[codec]
    enc_cmd = encode_command(exe, spec, q, y4m, stream)
    dec_cmd = decode_command(exe, spec, stream, raw)
    try:
        enc = run_timed(enc_cmd, cwd=workdir)
        nbytes = stream.stat().st_size
        dec = run_timed(dec_cmd, cwd=workdir)
    finally:
        stream.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)
    return {"codec": codec, "encoder": spec.encoder, "preset": spec.preset, "threads": threads,
            "quality": f"{spec.quality_param} {q}", "bytes": nbytes,
            "encode": _run_record(enc, frames), "decode": _run_record(dec, frames),
            "encode_command": ["ffmpeg", *[Path(x).name if x in (str(y4m), str(stream)) else x for x in enc_cmd[1:]]],
            "decode_command": ["ffmpeg", *[Path(x).name if x in (str(stream), str(raw)) else x for x in dec_cmd[1:]]]}


def _per_call(value) -> str:
    """The settings line's words for latents_per_call (None in reports made before it)."""
    if value is None:
        return "the whole chunk (before slices.py)"
    if value == 0:
        return "the whole chunk"
    return str(value)


def run_benchmark(sizes, *, frames: int = 34, device: str = "auto", chunk_frames: int = defaults.CHUNK_FRAMES,
                  model: str | None = None, threads: int | None = None, codecs=("hevc", "vvc"), warmup: int | None = None,
                  precision: str = "auto", overlap: bool = True, channels_last: bool = False, compile: bool = False,
                  temporal_factor: int | None = None, latents_per_call: int | None = None, log=None) -> dict:
    """Measure every size; returns the JSON-ready report (see module doc)."""
    import torch

    from vtoken.device import gpu_info, resolve_device
    from vtoken.bench.env import environment
    from vtoken.bench.ffmpeg import ffmpeg_version, find_ffmpeg
    from vtoken.bench.measure import cpu_count
    from vtoken.codec.slices import latents_per_call as latents_per_call_on

    dev = str(resolve_device(device))
    exe = find_ffmpeg()
    if exe is None:
        skipped = [c for c in codecs if c != "hevc"]
        if skipped and log:
            log(f"no ffmpeg program: {', '.join(skipped)} left out, x265 timed through PyAV")
        codecs = [c for c in codecs if c == "hevc"]
    threads = threads or cpu_count()
    if warmup is None:
        warmup = 1 if dev.startswith("cuda") else 0  # first CUDA calls pay for kernel selection
    env = environment(ffmpeg_version(exe) if exe else "none (PyAV's libraries only)")
    env["gpu"] = gpu_info(dev)
    report = {"environment": env, "load_average_start": list(os.getloadavg()),
              "settings": {"frames": frames, "device": dev, "chunk_frames": chunk_frames, "model": model or "(default)",
                           "torch_threads": threads, "ffmpeg_threads": threads, "warmup_runs": warmup,
                           "precision": precision, "overlap": overlap, "channels_last": channels_last,
                           "compile": compile, "temporal_factor": temporal_factor or "the model's",
                           "latents_per_call": latents_per_call if latents_per_call is not None else latents_per_call_on(dev),
                           "clip": "lavfi testsrc2 (PyAV), 30 fps, y4m yuv420p", "decode_output": "mp4",
                           "torch": torch.__version__},
              "results": []}
    with tempfile.TemporaryDirectory(prefix="vtoken-speed-") as tmp:
        for width, height in sizes:
            work = Path(tmp) / f"{width}x{height}"
            work.mkdir()
            y4m, mvt, out = work / "clip.y4m", work / "clip.mvt", work / "decoded.mp4"
            make_clip(y4m, frames, width, height)
            row = {"width": width, "height": height, "frames": frames}
            kw = dict(model=model, device=dev, chunk_frames=chunk_frames, threads=threads, warmup=warmup,
                      precision=precision, overlap=overlap, channels_last=channels_last, compile=compile,
                      temporal_factor=temporal_factor, latents_per_call=latents_per_call)
            if log:
                log(f"{width}x{height}: vtoken encode")
            row["encode"] = run_vtoken("encode", y4m, mvt, **kw)
            if log:
                log(f"{width}x{height}: vtoken decode")
            row["decode"] = run_vtoken("decode", mvt, out, **kw)
            row["baselines"] = []
            for codec in codecs:
                if log:
                    log(f"{width}x{height}: {codec}")
                row["baselines"].append(run_ffmpeg_codec(exe, codec, y4m, work, frames, threads) if exe
                                        else run_pyav_x265(y4m, work, frames))
            report["results"].append(row)
    report["load_average_end"] = list(os.getloadavg())
    return report


def _f(x, nd=2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _model_used(report: dict, settings: dict) -> str:
    return report["results"][0]["encode"]["model"] if report["results"] else settings["model"]


def _job_precision(report: dict, job: str) -> str:
    return ", ".join(sorted({r[job].get("precision", "fp32") for r in report["results"]})) or "-"


def to_markdown(report: dict) -> str:
    env, s = report["environment"], report["settings"]
    m, gpu = env["machine"], env.get("gpu")
    grid = s.get("temporal_factor", "the model's")  # reports from before the option: the model's
    lines = [
        "# vtoken speed",
        "",
        f"- date: {env['date']}; model `{_model_used(report, s)}`; device **{s['device']}**; torch {s['torch']}; "
        f"torch threads {s['torch_threads']}; ffmpeg {env['ffmpeg']} ({s['ffmpeg_threads']} threads)",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB"
        + (f"; GPU {gpu['name']} ({gpu['memory_gib']} GiB), driver {gpu['driver']}, CUDA {gpu['cuda']}" if gpu else "; no GPU"),
        f"- load average (1/5/15 min) at start {' / '.join(f'{x:.2f}' for x in report['load_average_start'])}, "
        f"at end {' / '.join(f'{x:.2f}' for x in report.get('load_average_end', []))}",
        f"- clip: {s['clip']}, {s['frames']} frames; chunk {s['chunk_frames']} frames; stream temporal factor "
        f"{grid}; decode writes {s['decode_output']}; "
        f"warm-up runs {s['warmup_runs']}; model load excluded from fps (column `load`)",
        f"- precision {s.get('precision', 'fp32')} (as run: encode {_job_precision(report, 'encode')}, decode "
        f"{_job_precision(report, 'decode')}); stages overlapped in threads: {'yes' if s.get('overlap', False) else 'no'}; "
        f"channels-last weights: {'yes' if s.get('channels_last') else 'no'}; "
        f"torch.compile: {'yes' if s.get('compile') else 'no'}; latent frames per model call: "
        f"{_per_call(s.get('latents_per_call'))}",
        "",
        "## fps, end to end (file in, file out)",
        "",
        "| " + " | ".join(["size", "vtoken enc", "vtoken dec"] + [
            f"{b['codec']} ({b['encoder']} {b['preset']}) enc | {b['codec']} dec" for b in
            (report["results"][0]["baselines"] if report["results"] else [])]) + " |",
    ]
    nb = len(report["results"][0]["baselines"]) if report["results"] else 0
    lines.append("|---" * (3 + 2 * nb) + "|")
    for r in report["results"]:
        cells = [f"{r['width']}x{r['height']}", _f(r["encode"]["fps"]), _f(r["decode"]["fps"])]
        for b in r["baselines"]:
            cells += [_f(b["encode"]["fps"]), _f(b["decode"]["fps"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## where the time goes (seconds for the whole clip; % of wall clock)",
        "",
        "`video in` = decoding the source video; `container` = .mvt write (on decode the .mvt read is inside "
        "`entropy`); `video out` = converting and encoding the decoded frames to mp4. With overlapped stages "
        "these are busy times of concurrent threads: they may add up to more than the wall clock "
        "(`other` is what they leave uncovered, at least 0).",
        "",
        "| size | job | wall s | CPU s | video in | model | entropy | container | video out | other | load s | peak RSS MiB | peak GPU MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for job in ("encode", "decode"):
            j = r[job]
            t, wall = j["timings"], j["seconds"]

            def cell(key):
                v = t.get(key)
                return "-" if v is None else f"{v:.2f} ({100 * v / wall:.0f}%)"
            video_in, container, video_out = (cell("read"), cell("write"), "-") if job == "encode" else \
                ("-", "-", cell("write"))
            other = f"{j['other_s']:.2f} ({100 * j['other_s'] / wall:.0f}%)"
            lines.append(f"| {r['width']}x{r['height']} | {job} | {wall:.2f} | {j['cpu_seconds']:.2f} | {video_in} | {cell('model')} | "
                         f"{cell('entropy')} | {container} | {video_out} | {other} | {j['model_load_s']:.2f} | "
                         f"{j['peak_rss_mib']:.0f} | {_f(j.get('peak_gpu_mib'), 0)} |")
    lines += [
        "",
        "## entropy coder throughput",
        "",
        "| size | job | coded bits/s | binary symbols/s | bpp |",
        "|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for job in ("encode", "decode"):
            j = r[job]
            bps, sps = j["entropy_coded_bits_per_s"], j["entropy_symbols_per_s"]
            lines.append(f"| {r['width']}x{r['height']} | {job} | {_f(bps and bps / 1e6)} M | "
                         f"{_f(sps and sps / 1e6)} M | {j['bpp']:.4f} |")
    if any(r["baselines"] for r in report["results"]):
        lines += ["", "## baselines", "", "| size | codec | quality | enc s | enc CPU s | enc peak RSS MiB | dec s | dec peak RSS MiB |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in report["results"]:
            for b in r["baselines"]:
                lines.append(f"| {r['width']}x{r['height']} | {b['codec']} | {b['quality']} | {b['encode']['seconds']:.2f} | "
                             f"{b['encode']['cpu_seconds']:.2f} | {b['encode']['peak_rss_mib']:.0f} | "
                             f"{b['decode']['seconds']:.2f} | {b['decode']['peak_rss_mib']:.0f} |")
        first = report["results"][0]["baselines"]
        lines += [""] + [f"- {b['codec']}: `{' '.join(b['encode_command'])}`; decode `{' '.join(b['decode_command'])}`"
                         for b in first]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="640x360,1920x1080", help="comma-separated WxH list")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--frames", type=int, default=34)
    ap.add_argument("--chunk-frames", type=int, default=defaults.CHUNK_FRAMES, help="frames per chunk (1 + 4n)")
    ap.add_argument("--model", default=None, help="model name or .json path (default: the shipped default model)")
    ap.add_argument("--threads", type=int, default=None, help="torch and ffmpeg threads (default: usable cores)")
    ap.add_argument("--codecs", default="hevc,vvc", help="ffmpeg baselines to time (hevc, vvc; empty for none)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs before the timed one (default 1 on CUDA, 0 on CPU)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="model arithmetic (auto: bf16 decoding on CUDA and on CPUs with AVX-512 BF16 or AMX, fp32 otherwise)")
    ap.add_argument("--no-overlap", action="store_true", help="run reading, model and entropy coding one after another")
    ap.add_argument("--temporal-factor", type=int, default=None,
                    help="the stream's time grid (vtoken encode --temporal-factor; default: the model's)")
    ap.add_argument("--channels-last", action="store_true", help="model weights in channels_last_3d memory format")
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoder and decoder (warm-up compiles)")
    ap.add_argument("--latents-per-call", type=int, default=None,
                    help="latent frames the model takes per call (0: a whole chunk; default: the codec's, "
                         "vtoken/codec/slices.py)")
    ap.add_argument("--out", type=Path, help="write the markdown here and the JSON beside it (.json)")
    args = ap.parse_args(argv)
    try:
        sizes = [_size(s) for s in args.sizes.split(",") if s]
    except (ValueError, argparse.ArgumentTypeError) as e:
        ap.error(f"--sizes: {e}")
    codecs = tuple(c for c in args.codecs.split(",") if c)
    for c in codecs:
        if c not in BASELINE_QUALITY:
            ap.error(f"unknown codec {c!r}: use hevc and/or vvc")
    report = run_benchmark(sizes, frames=args.frames, device=args.device, chunk_frames=args.chunk_frames,
                           model=args.model, threads=args.threads, codecs=codecs, warmup=args.warmup,
                           precision=args.precision, overlap=not args.no_overlap, channels_last=args.channels_last,
                           compile=args.compile, temporal_factor=args.temporal_factor,
                           latents_per_call=args.latents_per_call, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    md = to_markdown(report)
    sys.stdout.write(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
