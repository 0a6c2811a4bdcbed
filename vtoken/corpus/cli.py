"""`vtoken tokenize` (a corpus into token shards) and `vtoken detokenize` (a record back to
frames), registered by vtoken/cli.py. Summaries go to stdout, progress and errors to stderr."""

from __future__ import annotations

import json
import logging
import sys
from fractions import Fraction

import click

from ..errors import UsageError
from ..textsafe import escape
from .run import DEFAULT_CLIP_FRAMES, DEFAULT_MAX_SIDE, DEFAULT_SHARD_MB, DEFAULT_SOURCES_PER_SHARD


def ray_option(f):
    return click.option("--ray", "ray_address", metavar="auto|ADDRESS",
                        help="Run on Ray: auto starts a local Ray (or joins RAY_ADDRESS); else a cluster address. "
                             "Needs pip install 'vtoken[ray]'.")(f)


def workers_option(f):
    return click.option("--workers", type=int, default=1, show_default=True,
                        help="Model workers: local processes, or Ray actors (one GPU each on CUDA).")(f)


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Folder for the shards and manifest.")
@click.option("--clip-frames", type=int, default=DEFAULT_CLIP_FRAMES, show_default=True,
              help="Frames per clip (1 + 4n); each clip is tokenized as its own causal stream.")
@click.option("--planes", type=int, help="Bit-planes kept per token (default: the model's token planes, 18 for the shipped model).")
@click.option("--max-side", type=int, default=DEFAULT_MAX_SIDE, show_default=True,
              help="Downsize so that the longer side is at most this (0: keep the size).")
@workers_option
@click.option("--threads", type=int, help="Torch threads per worker (default: cores / workers).")
@ray_option
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--model", "model", help="Model name or path to its .json (default: the shipped model).")
@click.option("--resume", is_flag=True, help="Continue a run in --out: complete shards are not redone.")
@click.option("-y", "--overwrite", is_flag=True, help="Start over, replacing a previous run in --out.")
@click.option("--sources-per-shard", type=int, default=DEFAULT_SOURCES_PER_SHARD, show_default=True)
@click.option("--shard-mb", type=float, default=DEFAULT_SHARD_MB, show_default=True,
              help="Largest shard part (tokens at 4 bytes each, before compression).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--progress/--no-progress", default=None, help="One line per source on stderr (default: on a terminal).")
def tokenize(sources, out, clip_frames, planes, max_side, workers, threads, ray_address, device, model, resume,
             overwrite, sources_per_shard, shard_mb, as_json, progress):
    """Tokenize videos and images (files or folders) into Parquet token shards.

    \b
      vtoken tokenize videos/ images/ --out tokens/ --workers 2
      vtoken tokenize videos/ --out tokens/ --ray auto
      vtoken tokenize videos/ --out tokens/ --resume     # after a crash
    Exit code 1 when a source failed (the manifest names it and its error)."""
    from .run import tokenize_corpus

    show = sys.stderr.isatty() if progress is None else progress

    def report(event: dict) -> None:
        if event["error"]:
            where = "" if event["error"].startswith(event["path"]) else f"{escape(event['path'])}: "
            click.echo(f"vtoken: error: {where}{escape(event['error'])}", err=True)
        elif show:
            click.echo(f"vtoken: {escape(event['path'])}: {event['clips']} clips", err=True)

    if ray_address and logging.getLogger().getEffectiveLevel() > logging.INFO:
        from .engine import import_ray

        import_ray()  # Ray Data sets up its loggers when imported: quiet them after that
        # Ray Data logs every dataset's plan, and that its progress bars are off; keep stderr
        # to our lines unless -v.
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    if max_side is not None and max_side < 0:
        raise UsageError(f"max side must be >= 0, got {max_side}")
    res = tokenize_corpus(list(sources), out, clip_frames=clip_frames, planes=planes, max_side=max_side or None,
                          model=model, device=device, workers=workers, threads=threads, ray=ray_address,
                          resume=resume, overwrite=overwrite, sources_per_shard=sources_per_shard,
                          shard_mb=shard_mb, on_source=report)
    t = res.totals
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
    else:
        click.echo(f"{out}: {t['done']} done, {t['failed']} failed, {t['skipped']} skipped; {t['records']} clips, "
                   f"{t['frames']} frames, {t['tokens']} tokens in {t['shards']} shards; {res.seconds:.1f} s on "
                   f"{res.engine} ({res.workers} workers)" + (f", {res.resumed_groups} groups resumed" if resume else ""))
    if not res.ok:
        click.echo(f"vtoken: {len(res.failed)} sources failed (see {out}/manifest.json)", err=True)
        sys.exit(1)


@click.command()
@click.argument("src", type=click.Path())
@click.option("-o", "--output", "dst", required=True, type=click.Path(),
              help="out.mp4 / out.mkv / out.y4m, or a folder (ending in /) for PNG frames.")
@click.option("--row", type=int, help="The record's row number (0-based, across the shards in order).")
@click.option("--source", help="The record's source path (or its ending, e.g. a.mp4) ...")
@click.option("--clip", type=int, default=0, show_default=True, help="... and its clip index.")
@click.option("--model", "model", help="Model name or path (default: the one the record names).")
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("-y", "--overwrite", is_flag=True, help="Replace an existing output.")
def detokenize(src, dst, row, source, clip, model, device, overwrite):
    """Turn one record of a token shard (or corpus folder) back into frames.

    \b
      vtoken detokenize tokens/ --source a.mp4 --clip 2 -o clip.mp4
      vtoken detokenize tokens/shard-000000-000.parquet --row 0 -o frames/"""
    from ..data import detokenize_record, find_record
    from ..fsutil import check_output_path
    from ..media import VideoWriter, output_kind

    # The output is checked (as decode's: no folder, input or device destroyed) before the model loads.
    check_output_path(dst, overwrite, inputs=[src], directory=output_kind(dst) == "png")
    record = find_record(src, row=row, source=source, clip=clip)
    frames = detokenize_record(record, model=model, device=device)
    fps = Fraction(record["fps_num"], record["fps_den"])
    with VideoWriter(dst, record["width"], record["height"], fps, overwrite=overwrite, inputs=[src]) as out:
        out.write(frames)
    click.echo(f"{escape(record['source'])} clip {record['clip_index']} (frames {record['first_frame']}-"
               f"{record['first_frame'] + record['frame_count'] - 1}) -> {dst}: {len(frames)} frames "
               f"{record['width']}x{record['height']}")
