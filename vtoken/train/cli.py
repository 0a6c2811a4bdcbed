"""`vtoken train`: a click group registered by vtoken/cli.py.

    vtoken train --config FILE --out RUN_DIR [--resume] [--max-minutes M] [--device auto|cpu|cuda]
    vtoken train export RUN_DIR --name NAME [--zoo DIR] [--prior-clips N] [--no-crossplane] [--default] [--fp16]
    vtoken train slim RUN_DIR OUT_DIR          (EMA-only copy, files < 16 MB, for the GPU trip back)
    vtoken train pack-data SRC DST             (training folder small enough to carry to the GPU)
    vtoken train evaluate [--model SPEC] --videos DIR [--planes 1,2,4,...] [--json]

Logs are JSON lines on stderr (and RUN_DIR/train.jsonl); results of export/evaluate go to
stdout as JSON. Also runnable as `python -m vtoken.train.cli` (e.g. under torchrun)."""

from __future__ import annotations

import json
import sys

import click

from vtoken.errors import UsageError, VtokenError


def _stderr_json(record: dict) -> None:
    sys.stderr.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stderr.flush()


def _run_guarded(fn):
    """Standalone use (python -m): VtokenError -> one line + exit code, as the main CLI does."""
    try:
        return fn()
    except VtokenError as exc:
        click.echo(f"vtoken train: error: {exc}", err=True)
        sys.exit(exc.exit_code)


@click.group(invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="training config JSON (see vtoken/train/configs)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="run folder: logs and checkpoints")
@click.option("--resume", is_flag=True, help="continue from the latest checkpoint in --out")
@click.option("--max-minutes", type=float, default=None, help="stop cleanly (with a checkpoint) before this many minutes")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--steps", type=int, default=None, help="override the config's total steps")
@click.option("--data", "data_roots", multiple=True, type=click.Path(exists=True),
              help="training data folder (repeatable); overrides the config's data.roots (default data/train)")
@click.pass_context
def train(ctx, config_path, out_dir, resume, max_minutes, device, steps, data_roots):
    """Train a tokenizer (without a subcommand), or export/evaluate one."""
    if ctx.invoked_subcommand is not None:
        return
    if not config_path or not out_dir:
        raise click.UsageError("give --config FILE and --out RUN_DIR (or a subcommand: export, evaluate)")
    from .loop import TrainConfig, train as run

    cfg = TrainConfig.load(config_path)
    if resume and steps is None:
        # A resumed run keeps its own schedule unless told otherwise.
        import pathlib

        saved = pathlib.Path(out_dir) / "config.json"
        if saved.is_file():
            cfg = TrainConfig.from_dict(json.loads(saved.read_text()))
    if steps is not None:
        cfg.steps = steps
    if data_roots:
        cfg.data.roots = list(data_roots)
    summary = _run_guarded(lambda: run(cfg, out_dir, resume=resume, max_minutes=max_minutes, device=device,
                                       log_fn=_stderr_json))
    click.echo(json.dumps(summary))


@train.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--name", required=True, help="model name, e.g. vtoken-tiny-cpu")
@click.option("--zoo", "zoo_dir", default=None, help="output folder (default: the package zoo)")
@click.option("--prior-clips", type=int, default=64, show_default=True,
              help="training clips used to fit the entropy prior (0: no prior; a run that froze its source's "
              "encoder keeps that model's prior and predictor)")
@click.option("--crossplane/--no-crossplane", default=True, show_default=True,
              help="fit a cross-plane predictor with the prior (entropy format 2; needs --prior-clips > 0)")
@click.option("--default", "make_default", is_flag=True, help="write DEFAULT in the zoo naming this model")
@click.option("--fp16", is_flag=True, help="store weights as float16 (half the size; cast back on load)")
@click.option("--device", default="cpu", show_default=True)
def export_cmd(run_dir, name, zoo_dir, prior_clips, crossplane, make_default, fp16, device):
    """Export the EMA weights of RUN_DIR's latest checkpoint (+ fitted entropy prior)."""
    from .export import export_run

    result = _run_guarded(lambda: export_run(run_dir, name, zoo_dir, prior_clips=prior_clips,
                                             make_default=make_default, device=device, fp16=fp16,
                                             crossplane=crossplane))
    click.echo(json.dumps(result, indent=1))


@train.command("slim")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--max-shard-mib", type=float, default=15.0, show_default=True)
def slim_cmd(run_dir, out_dir, max_shard_mib):
    """Copy only the EMA weights of RUN_DIR's latest checkpoint to OUT_DIR (for the trip
    back from the GPU machine; `export` reads it like a run folder)."""
    from .export import slim_checkpoint

    click.echo(json.dumps(_run_guarded(lambda: slim_checkpoint(run_dir, out_dir, max_shard_mib))))


@train.command("pack-data")
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.argument("dst", type=click.Path(file_okay=False))
@click.option("--max-side", type=int, default=1024, show_default=True, help="photos are downscaled to this longest side")
@click.option("--quality", type=int, default=90, show_default=True, help="JPEG quality of re-saved photos")
def pack_cmd(src, dst, max_side, quality):
    """Pack a training folder small enough to carry to the GPU machine."""
    from .pack import pack_training_data

    click.echo(json.dumps(_run_guarded(lambda: pack_training_data(src, dst, max_side=max_side, quality=quality))))


@train.command("evaluate")
@click.option("--model", "model_spec", default=None, help="model name or path (default: the default model)")
@click.option("--videos", required=True, type=click.Path(exists=True), help="folder of clips (or one clip)")
@click.option("--planes", default=None, help="comma-separated plane counts (default: the bench sweep up to the model's K)")
@click.option("--frames", type=int, default=17, show_default=True)
@click.option("--size", default="640x360", show_default=True, help="WxH the clips are scaled to")
@click.option("--device", default="cpu", show_default=True)
def evaluate_cmd(model_spec, videos, planes, frames, size, device):
    """PSNR (RGB) and LPIPS of reconstructions per plane count, with raw bits per pixel."""
    from .evaluate import evaluate_model

    try:
        w, h = (int(v) for v in size.lower().split("x"))
        plane_list = [int(p) for p in planes.split(",") if p.strip()] if planes else None
    except ValueError as exc:
        raise UsageError(f"--size WxH and --planes a,b,c: {exc}") from exc
    if plane_list is None:
        from vtoken.defaults import bench_planes
        from vtoken.models import load_model

        plane_list = list(bench_planes(_run_guarded(lambda: load_model(model_spec).bits)))
    result = _run_guarded(lambda: evaluate_model(model_spec, videos, plane_list, frames=frames, size=(w, h),
                                                 device=device))
    click.echo(json.dumps(result, indent=1))


if __name__ == "__main__":
    # torchrun and the GPU session run this module: through the top-level group, so that a bad
    # config is the same one-line error and exit code as with `vtoken train`.
    from vtoken.cli import main

    main(["train", *sys.argv[1:]], prog_name="vtoken")
