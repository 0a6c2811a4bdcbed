"""Command line: a thin click layer over vtoken.api.

Data goes to stdout (`--json`), logs and progress bars to stderr. Exit codes: 0 ok,
1 failure, 2 usage, 3 malformed stream, 4 corrupt chunk, 5 model missing or mismatched,
130 interrupted. Errors are one line; `--debug` shows the traceback.
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
            click.echo(f"vtoken: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("vtoken: interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # stdout was closed early (e.g. `vtoken info x.mvt | head`): not an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if debug:
                raise
            click.echo(f"vtoken: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=VtokenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show vtoken, torch, PyAV/ffmpeg and constriction versions.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("-v", "--verbose", is_flag=True, help="Log details to stderr.")
def main(debug: bool, verbose: bool):
    """vtoken: neural video codec and visual tokenizer (MAGVIT-v2, LFQ bit-planes)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="vtoken: %(message)s")


def _emit(data: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        for line in lines:
            click.echo(line)


def _show_progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-d", "--out-dir", type=click.Path(file_okay=False), help="Encode every input into this folder as NAME.mvt.")
@click.option("-q", "--quality", type=int, help="Quality level 1..8 (8 keeps every bit-plane).")
@click.option("-b", "--bits", "--planes", "planes", type=int, help="Number of bit-planes to keep (1..K).")
@click.option("--bpp", type=float, help="Target bits per pixel for the whole file.")
@click.option("--bitrate", type=float, help="Target bit rate in kbit/s (converted to bpp from the input's size and rate).")
@click.option("--model", "model", help="Model name or path to its .json (default: the shipped model).")
@click.option("--device", type=click.Choice(defaults.DEVICES), default=defaults.DEVICE, show_default=True)
@click.option("--chunk-frames", type=int, default=defaults.CHUNK_FRAMES, show_default=True, help="Frames per chunk (1 + 4n).")
@click.option("--precision", type=click.Choice(defaults.PRECISIONS), default=defaults.PRECISION, show_default=True,
              help="Model arithmetic; auto = fp32 (bf16 codes slightly different bits, still decodable anywhere).")
@click.option("--key-interval", type=int, default=defaults.KEY_INTERVAL, show_default=True,
              help="A key chunk every N chunks (seek points).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option("--workers", type=int, help="With -d: encode on N local worker processes (or N Ray actors with --ray).")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS", help="With -d: encode on Ray (pip install 'vtoken[ray]').")
def encode(paths, out_dir, quality, planes, bpp, bitrate, model, device, chunk_frames, precision, key_interval, overwrite,
           as_json, progress, workers, ray_address):
    """Encode a video or image into a .mvt file.

    \b
      vtoken encode in.mp4 out.mvt --quality 4
      vtoken encode a.mp4 b.mp4 -d outdir/
    """
    from . import api

    if out_dir is None:
        if len(paths) != 2:
            raise UsageError("give INPUT OUTPUT, or several inputs with -d OUTDIR")
        jobs = [(paths[0], paths[1])]
    else:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # Output names come from the input's base name only, so nothing escapes OUTDIR.
        jobs = [(p, str(out / (Path(p).stem + ".mvt"))) for p in paths]
    if bitrate is not None:
        if bpp is not None:
            raise UsageError("give --bpp or --bitrate, not both")
        if not bitrate > 0:
            raise UsageError(f"bitrate must be positive, got {bitrate}")
    results, failures = [], []
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
                                          precision=precision)
        for res in results:
            if not as_json:
                click.echo(f"{res['path']}: {res['frames']} frames {res['width']}x{res['height']}, {res['bytes']} bytes, "
                           f"{res['bpp']:.4f} bpp, {res['fps']:.1f} fps on {res['device']}")
        for f in failures:
            click.echo(f"vtoken: error: {f['input']}: {f['error']}", err=True)
        jobs = []
    for src, dst in jobs:
        try:
            target = bpp
            if bitrate is not None:
                from .media import probe

                meta = probe(src)
                target = bitrate * 1000 / (float(meta.fps) * meta.width * meta.height)
            res = api.encode(src, dst, model=model, planes=planes, quality=quality, bpp=target, device=device,
                             chunk_frames=chunk_frames, key_interval=key_interval, precision=precision,
                             overwrite=overwrite, progress=_show_progress(progress))
            results.append(res.to_dict())
            for warning in res.warnings:
                click.echo(f"vtoken: warning: {src}: {warning}", err=True)
            if not as_json:
                click.echo(f"{src} -> {dst}: {res.frames} frames {res.width}x{res.height}, {res.bytes} bytes, "
                           f"{res.bpp:.4f} bpp, planes {min(res.planes)}-{max(res.planes)}, {res.fps:.1f} fps on {res.device}")
        except VtokenError as exc:
            if len(jobs) == 1:
                raise
            failures.append({"input": src, "error": str(exc)})
            click.echo(f"vtoken: error: {src}: {exc}", err=True)
    if as_json:
        click.echo(json.dumps(results[0] if len(jobs) == 1 else {"results": results, "failures": failures}, indent=2))
    if failures:
        click.echo(f"vtoken: {len(failures)} of {len(paths)} inputs failed: " + ", ".join(f["input"] for f in failures), err=True)
        sys.exit(1)


@main.command()
@click.argument("src", type=click.Path())
@click.option("-o", "--output", "dst", required=True, type=click.Path(),
              help="out.mp4 / out.mkv / out.y4m, or a folder (ending in /) for PNG frames.")
@click.option("--start", type=int, default=0, show_default=True, help="First frame to decode.")
@click.option("--frames", type=int, help="Number of frames to decode (default: to the end).")
@click.option("--planes", type=int, help="Decode with only the first N bit-planes (lower quality).")
@click.option("--tolerant", is_flag=True, help="Conceal damaged chunks instead of failing.")
@click.option("--model", "model", help="Model name or path (default: the one the file names).")
@click.option("--device", type=click.Choice(defaults.DEVICES), default=defaults.DEVICE, show_default=True)
@click.option("--precision", type=click.Choice(defaults.PRECISIONS), default=defaults.PRECISION, show_default=True,
              help="Model arithmetic; auto = bf16 on CUDA, fp32 on the CPU.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--progress/--no-progress", default=None)
def decode(src, dst, start, frames, planes, tolerant, model, device, precision, overwrite, as_json, progress):
    """Decode a .mvt file to a video, a .y4m file or PNG frames."""
    from . import api

    res = api.decode(src, dst, model=model, device=device, start=start, frames=frames, planes=planes,
                     tolerant=tolerant, precision=precision, overwrite=overwrite, progress=_show_progress(progress))
    for warning in res.warnings:
        click.echo(f"vtoken: warning: {warning}", err=True)
    if res.concealed_frames:
        click.echo(f"vtoken: warning: {len(res.concealed_frames)} frames concealed: "
                   f"{_ranges(res.concealed_frames)}", err=True)
    _emit(res.to_dict(), as_json, [f"{src} -> {dst}: {res.frames} frames {res.width}x{res.height}, "
                                   f"{res.fps:.1f} fps on {res.device}"])


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
    """Cut a .mvt file down to fewer bit-planes (a smaller, lower-quality file; no re-encode)."""
    from .bitstream import truncate_planes
    from .fsutil import atomic_path

    if planes < 1:
        raise UsageError(f"planes must be >= 1, got {planes}")
    with open(src, "rb") as fin, atomic_path(dst, overwrite=overwrite) as tmp, open(tmp, "wb") as fout:
        truncate_planes(fin, fout, planes)
    click.echo(f"{src} -> {dst}: {Path(dst).stat().st_size} bytes")


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
