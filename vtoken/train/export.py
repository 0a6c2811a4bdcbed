"""Export a training run as a shipped model: the EMA weights of the latest checkpoint plus
an entropy prior fitted on the frozen tokenizer's bits (the "second stage").

The prior is fitted on training clips (never the evaluation set) and judged on a disjoint
set of training clips drawn with another seed: the report gives the ideal code length in
bits per coded bit with no prior (adaptive counts from scratch) and with the fitted prior.

A run that kept its source's encoder exactly (`freeze: ["encoder"]` on init_from) codes the
source's bits, so it ships the source's prior and cross-plane predictor as they are: a refit
on other crops would move the bytes at equal planes (by up to 1.7 % on the eval clips, lever
50 of the model card) and blur what the run changed, the decoder alone."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vtoken.errors import UsageError

from . import checkpoint as ckpt
from .data import DataConfig, make_sampler
from .loop import TrainConfig


def ema_model_from_run(run_dir: str | os.PathLike, device: str = "cpu"):
    """(Tokenizer with the EMA weights, TrainConfig, step) of the run's latest checkpoint."""
    from vtoken.models import Tokenizer, TokenizerConfig

    step, state, extra = ckpt.load_checkpoint(run_dir)
    if "model_config" not in extra or "config" not in extra:
        raise UsageError(f"{run_dir}: checkpoint lacks its config; it was not written by vtoken train")
    model = Tokenizer(TokenizerConfig.from_dict(extra["model_config"]))
    model.load_state_dict(state["ema"])
    return model.to(device).eval(), TrainConfig.from_dict(extra["config"]), step


@torch.no_grad()
def collect_bits(model, data_cfg: DataConfig, clips: int, seed: int, device: str = "cpu", batch: int = 4) -> list[np.ndarray]:
    """uint8 bit chunks [K, T', H', W'] of `clips` random training clips."""
    cfg = copy.deepcopy(data_cfg)
    cfg.seed = seed
    cfg.device = "cpu"
    sampler = make_sampler(cfg)
    out: list[np.ndarray] = []
    while len(out) < clips:
        video = sampler.batch(min(batch, clips - len(out))).to(device)
        bits = model.encode_bits(video).cpu().numpy()
        out.extend(b for b in bits)
    return out


def compact_prior(prior: np.ndarray) -> np.ndarray:
    """int16 counts with every context's total scaled down to at most 2**15 - 1: a quarter of
    the file of int64 counts, and the coder scales a prior to 256 counts per context anyway."""
    prior = np.asarray(prior, dtype=np.int64)
    total = prior.sum(axis=-1, keepdims=True)
    return (prior * 32767 // np.maximum(total, 32767)).astype(np.int16)


def fit_and_report_prior(model, data_cfg: DataConfig, clips: int, device: str = "cpu", crossplane: bool = True):
    """(prior, cross-plane predictor or None, report): the model's entropy side, fitted on
    `clips` training clips and judged on half as many others."""
    from vtoken.entropy import estimate_bits, fit_crossplane, fit_prior

    k = model.bits
    fit_chunks = collect_bits(model, data_cfg, clips, seed=data_cfg.seed + 101, device=device)
    held_out = collect_bits(model, data_cfg, max(4, clips // 2), seed=data_cfg.seed + 202, device=device)
    predictor = fit_crossplane(fit_chunks, k) if crossplane else None
    prior = compact_prior(fit_prior(fit_chunks, k, predictor))
    n_bits = sum(c.size for c in held_out)
    # key_every=1: the clips are unrelated, so every chunk starts from the prior alone.
    before = estimate_bits(held_out, k, None, key_every=1)
    after = estimate_bits(held_out, k, prior, key_every=1, predictor=predictor)
    report = {
        "fit_clips": len(fit_chunks),
        "held_out_clips": len(held_out),
        "clip_shape": list(held_out[0].shape),
        "crossplane": predictor is not None,
        "bits_per_bit_no_prior": round(float(before.sum()) / n_bits, 4),
        "bits_per_bit_prior": round(float(after.sum()) / n_bits, 4),
        "bits_per_bit_per_plane_prior": [round(float(v) / (n_bits / k), 4) for v in after],
    }
    if predictor is not None:
        alone = estimate_bits(held_out, k, compact_prior(fit_prior(fit_chunks, k)), key_every=1)
        report["bits_per_bit_prior_without_crossplane"] = round(float(alone.sum()) / n_bits, 4)
    return prior, predictor, report


def source_entropy(model, cfg: TrainConfig):
    """The run's init_from model when its encoder is bit-for-bit the export's and it ships a
    prior (so the bits, and their statistics, are the source's); None otherwise."""
    from vtoken.models import load_model

    if "encoder" not in cfg.freeze or not cfg.init_from:
        return None
    src = load_model(cfg.init_from, cache=False)
    mine, theirs = model.encoder.state_dict(), src.encoder.state_dict()
    same = mine.keys() == theirs.keys() and all(torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine)
    return src if same and src.entropy_prior is not None else None


def export_run(run_dir: str | os.PathLike, name: str, zoo_dir: str | os.PathLike | None = None, *,
               prior_clips: int = 64, make_default: bool = False, device: str = "cpu",
               prior_data: dict[str, Any] | None = None, fp16: bool = False, crossplane: bool = True) -> dict[str, Any]:
    """Write `<name>-<sha8>.{safetensors,json}` into `zoo_dir` (default: the package zoo);
    return a JSON-ready report (paths, sha256, step, prior statistics). With `crossplane` the
    model also gets a cross-plane predictor (entropy format 2, vtoken/entropy/crossplane.py)."""
    from vtoken.models import ZOO_DIR, save_model

    zoo = Path(zoo_dir) if zoo_dir is not None else Path(ZOO_DIR)
    if not zoo.is_dir():
        raise UsageError(f"--zoo {zoo} is not a folder; create it first")
    model, cfg, step = ema_model_from_run(run_dir, device)
    prior, predictor, prior_report = None, None, None
    src = source_entropy(model, cfg) if prior_clips > 0 else None
    if src is not None:
        prior, predictor = src.entropy_prior, src.entropy_predictor
        prior_report = {"kept_from": src.identity.short if src.identity else str(cfg.init_from),
                        "crossplane": predictor is not None}
    elif prior_clips > 0:
        # Whole-ish frames at the model's native multiple: 17 frames, 128 px, like the codec's chunks.
        dcfg = copy.deepcopy(cfg.data)
        dcfg.frames, dcfg.size = 17, 128
        dcfg.scale_min, dcfg.scale_max = 1.0, 2.0
        for key, value in (prior_data or {}).items():
            setattr(dcfg, key, value)
        prior, predictor, prior_report = fit_and_report_prior(model, dcfg, prior_clips, device, crossplane)
    # fp16 halves the file (the 40 MB budget of the package); the store casts back on load.
    json_path = save_model(model.cpu(), zoo, name, entropy_prior=prior, entropy_predictor=predictor,
                           dtype=torch.float16 if fp16 else None)
    if make_default:
        (zoo / "DEFAULT").write_text(json_path.stem + "\n")
    weights = json_path.with_suffix(".safetensors")
    return {
        "model": json_path.stem,
        "json": str(json_path),
        "weights": str(weights),
        "bytes": weights.stat().st_size,
        "step": step,
        "params": sum(p.numel() for p in model.parameters()),
        "prior": prior_report,
        "default": make_default,
    }


def slim_checkpoint(run_dir: str | os.PathLike, out_dir: str | os.PathLike, max_shard_mib: float = 15.0) -> dict[str, Any]:
    """Write only the EMA weights (and configs) of the run's latest checkpoint as a
    checkpoint in `out_dir`: what comes back from the GPU machine (files < 16 MB, 8 at
    most), and what `export_run` needs. Not resumable: optimizer state is left out."""
    step, state, extra = ckpt.load_checkpoint(run_dir)
    path = ckpt.save_checkpoint(out_dir, step, {"ema": state["ema"]}, max_shard_bytes=int(max_shard_mib * 2**20),
                                keep_last=1, extra=extra)
    files = sorted(path.iterdir())
    return {"checkpoint": str(path), "step": step, "files": len(files), "bytes": sum(f.stat().st_size for f in files)}
