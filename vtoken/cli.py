"""Command line: a thin click layer over vtoken.api.

Data goes to stdout (`--json`, or the stream itself with `-o -`), logs and progress bars to
stderr. Exit codes: 0 ok, 1 failure, 2 usage, 3 malformed stream, 4 corrupt chunk, 5 model
missing or mismatched, 128 + N on signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP). Errors are
one line; text that comes from a file is escaped (vtoken.textsafe); `--debug` shows the
traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from . import __version__, defaults
from .errors import UsageError, VtokenError
from .textsafe import escape

log = logging.getLogger("vtoken")


def _versions() -> dict:
    import importlib.metadata as md

    out = {"vtoken": __version__, "python": sys.version.split()[0]}
    for dist in ("torch", "av", "constriction", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import av

        out["ffmpeg (PyAV)"] = "libavcodec " + ".".join(map(str, av.library_versions["libavcodec"]))
    except Exception:  # noqa: BLE001 - version reporting must never fail
        pass
    return out


def _print_version(ctx, _param, value):
    if not value or ctx.resilient_parsing:
        return
    for name, version in _versions().items():
        click.echo(f"{name} {version}")
    ctx.exit(0)


class VtokenGroup(click.Group):
    """Turns library errors into one-line messages and exit codes."""

    def invoke(self, ctx):
        debug = ctx.params.get("debug", False) or "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except VtokenError as exc:
            if debug:
                raise
            click.echo(f"vtoken: error: {escape(exc)}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # SIGINT, SIGTERM, SIGHUP (vtoken.signals)
            from .signals import Interrupted, exit_code, leave

            click.echo("vtoken: interrupted", err=True)
            if isinstance(exc, Interrupted):
                leave(exit_code(exc))  # outputs are cleaned up by now; stage threads may not be done
            ctx.exit(exit_code(exc))
        except BrokenPipeError:
            # stdout was closed early (e.g. `vtoken info x.mvt | head`): not an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if debug:
                raise
            click.echo(f"vtoken: internal error: {type(exc).__name__}: {escape(exc)} (rerun with --debug for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=VtokenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show vtoken, torch, PyAV/ffmpeg and constriction versions.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-v", "--verbose", is_flag=True, help="Log details to stderr.")
def main(debug: bool, verbose: bool):
    """vtoken: neural video codec and visual tokenizer (MAGVIT-v2, LFQ bit-planes)."""
    from .signals import install

    install()  # SIGTERM / SIGHUP clean up like Ctrl-C: no output, visible or hidden, is left
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="vtoken: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_escape_record)


def _escape_record(record: logging.LogRecord) -> bool:
    """Log lines may quote a file's text: escape it like every other line."""
    record.msg, record.args = escape(record.getMessage()), None
    return True


def _say(text: str, to_stderr: bool = False) -> None:
    """A human-readable line (escaped); on stderr when stdout carries the output itself."""
    click.echo(escape(text), err=to_stderr)


def _stdout_output(dst) -> bool:
    from .fsutil import is_stream, same_file

    return str(dst) == "-" or (is_stream(dst) and same_file(dst, "/dev/stdout"))


def _emit(data: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))  # json escapes control characters itself
    else:
        for line in lines:
            _say(line)


def _int_or_word(value: str | None):
    """An option that takes a number or a word ("auto"): validate.py judges which are allowed."""
    try:
        return None if value is None else int(value)
    except ValueError:
        return value


def _show_progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _planes_said(planes: list[int], plane_map: bool) -> str:
    """The planes an encode kept, as its summary line says them: with plane maps a chunk's
    count is the most any of its blocks keeps."""
    if plane_map:
        return f"up to {max(planes)} planes per block (plane maps)"
    return f"planes {min(planes)}-{max(planes)}"


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-d", "--out-dir", type=click.Path(file_okay=False), help="Encode every input into this folder as NAME.mvt.")
@click.option("-q", "--quality", type=int, help="Quality level 1..8 (8 keeps every bit-plane).")
@click.option("-b", "--bits", "--planes", "planes", type=int, help="Number of bit-planes to keep (1..K).")
@click.option("--bpp", type=float, help="Target bits per pixel, counting the whole file (headers and carried audio "
              "included); warns with the reachable rate when it cannot be met within 10 %.")
@click.option("--bitrate", type=float, help="Target bit rate in kbit/s of the whole file, audio included (converted to "
              "bpp from the input's size and rate).")
@click.option("--model", "model", help="Model name or path to its .json (default: the shipped model).")
@click.option("--device", type=click.Choice(defaults.DEVICES), default=defaults.DEVICE, show_default=True)
@click.option("--chunk-frames", type=int, default=defaults.CHUNK_FRAMES, show_default=True,
              help="Frames per chunk (1 + Tn, T the temporal factor; --temporal-factor auto may shorten the key "
              "chunks where the grid's every plane is under the target).")
@click.option("--temporal-factor", callback=lambda ctx, param, v: _int_or_word(v), metavar="N|auto",
              help="Frames per latent frame: the model's (4) by default; 2 or 1 code every frame 2 or 4 times, for "
              "about that many times the bits and time and higher quality; 8, 12, 16 ... 32 code every 2nd, 3rd, "
              "4th ... 8th frame and blend the others (chunks of 1 + a multiple of the factor: 8, 16 and 32 with the "
              "default 33), for fewer bits (at low rates on slow motion, better quality per bit); "
              "auto (with --bpp or --bitrate) codes the first chunk on each and keeps the best LPIPS within the target "
              "(where that grid keeps every plane under the target, also on shorter key chunks: every chunk a key chunk).")
@click.option("--precision", type=click.Choice(defaults.PRECISIONS), default=defaults.PRECISION, show_default=True,
              help="Model arithmetic; auto = fp32, and bf16 for the --refine search where the CPU or GPU has bf16 "
                   "instructions (bf16 codes slightly different bits, still decodable anywhere).")
@click.option("--key-interval", type=int, default=defaults.KEY_INTERVAL, show_default=True,
              help="A key chunk every N chunks (seek points; --temporal-factor auto may make every chunk a key chunk, "
              "see --chunk-frames).")
@click.option("--hold", type=float, default=defaults.HOLD, show_default=True,
              help="Encoder hysteresis: a bit of a predicted latent frame whose pre-quantization value is within "
              "this of zero keeps the previous frame's bit (fewer bytes on still scenes); in full up to "
              f"{defaults.HOLD_FULL_PLANES} kept planes, {defaults.HOLD_FULL_PLANES}/planes of it above; 0 codes the "
              "model's signs.")
@click.option("--refine", type=int, default=None, metavar="STEPS",
              show_default=f"{defaults.REFINE_AUTO} with --temporal-factor auto, else {defaults.REFINE}",
              help="Encoder search: refine each latent frame's bits against the decoder for STEPS steps, the first "
              "two flipping the bits whose flips gain most (see --refine-loss; better quality per byte, about "
              "0.1-0.2 s per 640x360 frame and step on 2 CPU cores); with "
              "--temporal-factor auto the grid is chosen without it, among the model's grid and coarser ones; 0: off.")
@click.option("--refine-loss", type=click.Choice(list(defaults.REFINE_LOSSES)), default=defaults.REFINE_LOSS,
              show_default=True, help="What the search minimises: lpips (L1 + LPIPS, the training loss: the "
              "perceptual metric gains most) or l1 (L1 alone: pixel fidelity, MS-SSIM and PSNR gain most, in about "
              "three quarters of the time).")
@click.option("--plane-map", is_flag=True,
              help="Spend each chunk's bytes where they buy the most: every 40x40-pixel block keeps its own number "
              "of bit-planes, chosen by decoding the chunk 12-15 times (better quality per byte; 0.3-3 fps at "
              "640x360 on 2 CPU cores with --temporal-factor auto --refine 0; a .mvt of format 1.1 / entropy "
              "version 3; with --refine, the search then works on the bits each block sends).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option("--workers", type=int, help="With -d: encode on N local worker processes (or N Ray actors with --ray).")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS", help="With -d: encode on Ray (pip install 'vtoken[ray]').")
def encode(paths, out_dir, quality, planes, bpp, bitrate, model, device, chunk_frames, temporal_factor, precision,
           key_interval, hold, refine, refine_loss, plane_map, overwrite, as_json, progress, workers, ray_address):
    """Encode a video or image into a .mvt file (OUTPUT `-` writes it to stdout).

    \b
      vtoken encode in.mp4 out.mvt --quality 4
      vtoken encode a.mp4 b.mp4 -d outdir/
    """
    from . import api
    from .fsutil import check_distinct_outputs

    if out_dir is None:
        if len(paths) != 2:
            raise UsageError("give INPUT OUTPUT, or several inputs with -d OUTDIR")
        jobs = [(paths[0], paths[1])]
    else:
        out = _out_dir(out_dir)
        # Output names come from the input's base name only, so nothing escapes OUTDIR.
        jobs = [(p, str(out / (Path(p).stem + ".mvt"))) for p in paths]
        check_distinct_outputs(dst for _, dst in jobs)  # before anything is written
    if as_json and any(_stdout_output(dst) for _, dst in jobs):
        raise UsageError("--json and an output on stdout cannot share it: drop --json or name an output file")
    if bitrate is not None:
        if bpp is not None:
            raise UsageError("give --bpp or --bitrate, not both")
        if not bitrate > 0:
            raise UsageError(f"bitrate must be positive, got {bitrate}")
    from .validate import hold_threshold, refine_loss_name, refine_steps

    hold_threshold(hold, "--hold")  # once, before any worker starts
    refine_loss_name(refine_loss, "--refine-loss", refine=refine_steps(refine, "--refine", temporal_factor))
    results, failures = [], []
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if (workers or ray_address) and out_dir is None:
        raise UsageError("--workers and --ray need several inputs with -d OUTDIR")
    if workers or ray_address:
        if bitrate is not None:
            raise UsageError("--bitrate is not supported with --workers/--ray; give --bpp")
        from .corpus import encode_corpus

        # The corpus engine: the same vtoken.encode per file, on worker processes or Ray actors.
        results, failures = encode_corpus(paths, out_dir, model=model, device=device, workers=workers or 1,
                                          ray=ray_address, overwrite=overwrite, planes=planes, quality=quality,
                                          bpp=bpp, chunk_frames=chunk_frames, key_interval=key_interval,
                                          precision=precision, temporal_factor=temporal_factor, hold=hold,
                                          refine=refine, refine_loss=refine_loss, plane_map=plane_map)
        for res in results:
            if not as_json:
                _say(f"{res['path']}: {res['frames']} frames {res['width']}x{res['height']}, {res['bytes']} bytes, "
                     f"{res['bpp']:.4f} bpp, {res['fps']:.1f} fps on {res['device']}")
            for warning in res.get("warnings", []):
                _say(f"vtoken: warning: {res['path']}: {warning}", to_stderr=True)
        for f in failures:
            _say(f"vtoken: error: {f['input']}: {f['error']}", to_stderr=True)
        jobs = []
    for src, dst in jobs:
        try:
            target = bpp
            if bitrate is not None:
                from .fsutil import check_input_path
                from .media import probe

                check_input_path(src, "video file or folder of images", folder_ok=True)  # a FIFO would block probe
                meta = probe(src)
                target = bitrate * 1000 / (float(meta.fps) * meta.width * meta.height)
            res = api.encode(src, dst, model=model, planes=planes, quality=quality, bpp=target, device=device,
                             chunk_frames=chunk_frames, key_interval=key_interval, precision=precision,
                             overwrite=overwrite, progress=_show_progress(progress), temporal_factor=temporal_factor,
                             hold=hold, refine=refine, refine_loss=refine_loss, plane_map=plane_map)
            results.append(res.to_dict())
            for warning in res.warnings:
                _say(f"vtoken: warning: {src}: {warning}", to_stderr=True)
            if not as_json:
                _say(f"{src} -> {dst}: {res.frames} frames {res.width}x{res.height}, {res.bytes} bytes, "
                     f"{res.bpp:.4f} bpp, {_planes_said(res.planes, plane_map)}, {res.fps:.1f} fps on {res.device}",
                     to_stderr=_stdout_output(dst))
                if res.factor_trials:
                    tried = "; ".join(f"{t['factor']}" + (f" in {t['chunk_frames']}-frame key chunks"
                                                          if t["chunk_frames"] else "")
                                      + f": {t['bpp']:.4f} bpp, LPIPS {t['lpips']:.3f}"
                                      + (f" ({t['at_target']:.3f} at the target)" if t["at_target"] is not None else "")
                                      for t in res.factor_trials)
                    keys = (f" in {res.chunk_frames}-frame key chunks"
                            if any(t["chunk_frames"] == res.chunk_frames for t in res.factor_trials) else "")
                    _say(f"{src}: temporal factor {res.temporal_factor}{keys} (first chunk tried at {tried})",
                         to_stderr=_stdout_output(dst))
        except VtokenError as exc:
            if len(jobs) == 1:
                raise
            failures.append({"input": src, "error": str(exc)})
            _say(f"vtoken: error: {src}: {exc}", to_stderr=True)
    if as_json:
        click.echo(json.dumps(results[0] if len(jobs) == 1 else {"results": results, "failures": failures}, indent=2))
    if failures:
        _say(f"vtoken: {len(failures)} of {len(paths)} inputs failed: " + ", ".join(f["input"] for f in failures), True)
        sys.exit(1)


def _out_dir(out_dir: str) -> Path:
    """The -d folder, made when missing; a file or the like there is refused."""
    from .errors import OutputError

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"-d {out_dir}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"-d {out_dir}: cannot make the folder: {exc.strerror or exc}") from None
    return out


@main.command()
@click.argument("src", type=click.Path())
@click.option("-o", "--output", "dst", required=True, type=click.Path(),
              help="out.mp4 / out.mkv / out.y4m, a folder (ending in /) for PNG frames, or - for y4m on stdout "
                   "(a pipe or device is written through; -y replaces a regular file, nothing else).")
@click.option("--start", type=int, default=0, show_default=True, help="First frame to decode.")
@click.option("--frames", type=int, help="Number of frames to decode (default: to the end).")
@click.option("--planes", type=int, help="Decode with only the first N bit-planes (lower quality).")
@click.option("--tolerant", is_flag=True, help="Conceal damaged chunks instead of failing.")
@click.option("--model", "model", help="Model name or path (default: the one the file names).")
@click.option("--device", type=click.Choice(defaults.DEVICES), default=defaults.DEVICE, show_default=True)
@click.option("--precision", type=click.Choice(defaults.PRECISIONS), default=defaults.PRECISION, show_default=True,
              help="Model arithmetic; auto = bf16 on CUDA and on a CPU with bf16 instructions (AVX-512 BF16, AMX), "
                   "fp32 elsewhere.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--progress/--no-progress", default=None)
def decode(src, dst, start, frames, planes, tolerant, model, device, precision, overwrite, as_json, progress):
    """Decode a .mvt file to a video, a .y4m file or PNG frames."""
    from . import api

    piped = _stdout_output(dst)
    if as_json and piped:
        raise UsageError("--json and -o - cannot share stdout: drop --json or name an output file")
    res = api.decode(src, dst, model=model, device=device, start=start, frames=frames, planes=planes,
                     tolerant=tolerant, precision=precision, overwrite=overwrite, progress=_show_progress(progress))
    for warning in res.warnings:
        _say(f"vtoken: warning: {warning}", to_stderr=True)
    if res.concealed_frames:
        _say(f"vtoken: warning: {len(res.concealed_frames)} frames concealed: {_ranges(res.concealed_frames)}", True)
    line = f"{src} -> {dst}: {res.frames} frames {res.width}x{res.height}, {res.fps:.1f} fps on {res.device}"
    if piped:
        _say(line, to_stderr=True)
    else:
        _emit(res.to_dict(), as_json, [line])


def _ranges(values: list[int]) -> str:
    out, begin = [], None
    for i, v in enumerate(values):
        if begin is None:
            begin = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(f"{begin}" if begin == v else f"{begin}-{v}")
            begin = None
    return ", ".join(out)


@main.command()
@click.argument("src", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def info(src, as_json):
    """Describe a .mvt file: size, frames, rate, bpp, planes, model."""
    from . import api

    data = api.info(src)
    lines = [f"{k}: {v}" for k, v in data.items() if k != "chunks_detail"]
    _emit(data, as_json, lines)


@main.command()
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@click.option("--planes", type=int, required=True, help="Keep the first N bit-planes of every chunk.")
@click.option("-y", "--overwrite", is_flag=True)
def trim(src, dst, planes, overwrite):
    """Cut a .mvt file down to fewer bit-planes (a smaller, lower-quality file; no re-encode).
    DST `-` writes it to stdout."""
    from .bitstream import open_mvt, truncate_planes
    from .fsutil import atomic_path, check_input_path, check_output_path
    from .validate import plane_count

    plane_count("planes", planes)
    check_input_path(src, ".mvt file")
    check_output_path(dst, overwrite, inputs=[src])
    with open_mvt(src) as reader:
        if planes > reader.header.bits:
            raise UsageError(f"planes must be from 1 to {reader.header.bits} for this file, got {planes}")
    with open(src, "rb") as fin, atomic_path(dst, overwrite=overwrite, inputs=[src]) as tmp, open(tmp, "wb") as fout:
        stats = truncate_planes(fin, fout, planes)
    _say(f"{src} -> {dst}: {stats['bytes_out']} bytes", to_stderr=_stdout_output(dst))


def _register_optional_commands() -> None:
    """bench and train live in their own packages; a broken optional extra must not take
    encode/decode down with it."""
    import importlib

    for module, name in (("vtoken.bench.cli", "bench"), ("vtoken.train.cli", "train"),
                         ("vtoken.corpus.cli", "tokenize"), ("vtoken.corpus.cli", "detokenize")):
        try:
            main.add_command(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError) as exc:
            log.debug("command %s unavailable: %s", name, exc)


_register_optional_commands()

if __name__ == "__main__":
    main()
