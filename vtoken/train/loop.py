"""The training loop: config-driven, resumable bit-exactly, time-boxed, DDP under torchrun.

`train(config, run_dir, ...)` runs until `config.steps` or `max_minutes`, writes JSON-lines
logs to RUN/train.jsonl (and to `log_fn`, e.g. the CLI's stderr writer) and sharded
checkpoints to RUN/checkpoints/. Calling it again with `resume=True` continues from the
latest checkpoint and draws exactly the batches, plane counts and updates an uninterrupted
run would have (on the same device and thread count)."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from vtoken.codec.precision import native_bf16
from vtoken.defaults import HOLD_PREV_WEIGHT, REFINE_LR
from vtoken.device import cuda_available
from vtoken.device import resolve_device as base_resolve_device
from vtoken.errors import InputError, UsageError

from . import checkpoint as ckpt
from .data import ClipSampler, DataConfig, describe, make_sampler
from .fields import known_fields
from .held import HeldSigns
from .losses import LossConfig, TokenizerLoss, bit_stats, nats_to_bits, sample_planes
from .searched import search_loss, search_signs

LogFn = Callable[[dict[str, Any]], None]
RATE_LR = 1e-2  # learning rate of the rate model's logits (rate.py)


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.99)  # the paper's beta1 = 0
    weight_decay: float = 0.0
    warmup_steps: int = 500
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at `steps`
    grad_clip: float = 1.0  # max global grad norm (0 = off)

    def lr_at(self, step: int, total: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, total - self.warmup_steps)
        a = min(1.0, (step - self.warmup_steps) / span)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * a)))


FREEZABLE = ("encoder", "decoder")


@dataclass
class TrainConfig:
    model: str | dict[str, Any] = "vtoken-tiny"  # preset name, or {"preset": name, **overrides}, or a full config dict
    data: DataConfig = field(default_factory=DataConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 8
    steps: int = 10000
    ema_decay: float = 0.999
    # "bf16": autocast where the device computes bf16 itself (CUDA; a CPU with AVX-512 BF16 or AMX,
    # vtoken.codec.precision.native_bf16), fp32 elsewhere; or "fp32". Before 2026-12-07 a CPU ran
    # fp32 whatever this said (every CPU config here says "fp32").
    precision: str = "bf16"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    keep_last: int = 3
    max_shard_mib: float = 15.0
    threads: int = 0  # torch CPU threads (0 = leave torch's default)
    init_from: str | None = None  # a shipped model (path or name) to start from
    # Warm start across an architecture change (graft.py): {"renames": [[new prefix, source
    # prefix], ...], "freeze_steps": N, "silent_new_blocks": true, "widen": true}: the grafted
    # weights stay fixed for N steps while the new layers learn to fit around them; new
    # residual blocks may start as identities; a wider decoder may start as the source's;
    # "new_lr_scale": what has no source counterpart (fresh tensors, and the new elements of
    # extended ones: a grown time kernel's older taps) learns at that multiple of the
    # learning rate: a block grafted as an identity moves little in a short run at the lr
    # that suits the trained weights around it.
    graft: dict[str, Any] | None = None
    # Halves of the tokenizer that stay fixed for the whole run (["encoder"]: train the decoder
    # alone). A frozen encoder keeps every bit, so the shipped entropy prior and predictor still
    # fit them and the run is a pure decoder upgrade; steps are cheaper (no encoder backward).
    freeze: list[str] = field(default_factory=list)
    # Only the parameters whose names start with one of these prefixes train (empty: all but
    # a frozen half). ["encoder.plane_heads"]: new plane heads learn on a fixed model.
    train_only: list[str] = field(default_factory=list)
    # One half taken from another model after init_from ({"encoder": "<model>"}): joins an
    # encoder trained for rate with a decoder trained longer elsewhere. The half's
    # architecture must match the model being trained.
    init_halves: dict[str, str] = field(default_factory=dict)
    # The decoder trains on the bits the encoder's hysteresis sends (`vtoken encode --hold`,
    # codec/hold.py) instead of the raw signs: each step draws a threshold uniform in
    # [0, hold_max] and holds the clip's predicted latent frames as a stream keeping the
    # step's plane count would (0 = raw signs). A decoder that has seen held bits may lose
    # less quality to a higher threshold. hold_prev_weight: the rule's weight of the previous
    # latent frame's value (BitHold's prev_weight; 0 holds by abs(z) alone, lever 49's rule).
    hold_max: float = 0.0
    hold_prev_weight: float = HOLD_PREV_WEIGHT
    # The encoder learns the encoder's search (searched.py): each step searches the clip's bits
    # for search_steps Adam steps of lr search_lr against the decoder (the loss's l1 and
    # perceptual weights), and losses.search weighs the pull of z toward the signs found.
    search_steps: int = 0
    search_lr: float = REFINE_LR

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = known_fields(cls, data, "training", ignore=frozenset({"comment"}))
        data["data"] = DataConfig.from_dict(data.get("data", {}))
        data["losses"] = LossConfig.from_dict(data.get("losses", {}))
        optim = dict(data.get("optim", {}))
        if "betas" in optim:
            optim["betas"] = tuple(float(b) for b in optim["betas"])
        try:
            data["optim"] = OptimConfig(**optim)
        except TypeError as exc:
            raise UsageError(f"bad optim config: {exc}") from exc
        cfg = cls(**data)
        if cfg.graft is not None:
            if not cfg.init_from:
                raise UsageError("graft needs init_from: the shipped model (name or path) to graft from")
            allowed = ["freeze_steps", "new_lr_scale", "renames", "silent_new_blocks", "widen"]
            unknown = sorted(set(cfg.graft) - set(allowed))
            if unknown:
                raise UsageError(f"unknown graft fields {unknown}; allowed: {allowed}")
            scale = cfg.graft.get("new_lr_scale", 1.0)
            if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= 1000:
                raise UsageError(f"graft new_lr_scale={scale!r}; allowed: a number in (0, 1000]")
        _check_one_half(cfg, "freeze", list(cfg.freeze), "a frozen half must come from a trained model")
        if not isinstance(cfg.train_only, list) or not all(isinstance(p, str) and p for p in cfg.train_only):
            raise UsageError(f"train_only={cfg.train_only!r}; allowed: a list of parameter-name prefixes, "
                             'e.g. ["encoder.plane_heads"]')
        _check_one_half(cfg, "init_halves", sorted(cfg.init_halves), "the other half comes from that model")
        for name in ("hold_max", "hold_prev_weight"):
            if not 0 <= getattr(cfg, name) < float("inf"):
                raise UsageError(f"{name}={getattr(cfg, name)!r}; allowed: a finite number >= 0")
        if isinstance(cfg.search_steps, bool) or not isinstance(cfg.search_steps, int) or cfg.search_steps < 0:
            raise UsageError(f"search_steps={cfg.search_steps!r}; allowed: an integer >= 0")
        if not 0 < cfg.search_lr < float("inf"):
            raise UsageError(f"search_lr={cfg.search_lr!r}; allowed: a finite number > 0")
        if (cfg.search_steps > 0) != (cfg.losses.search > 0):
            raise UsageError(f"search_steps ({cfg.search_steps}) and losses.search ({cfg.losses.search}) "
                             "go together: the search finds the signs, losses.search pulls the encoder to them")
        if cfg.precision not in ("bf16", "fp32"):
            raise UsageError(f"precision={cfg.precision!r}; allowed: 'bf16', 'fp32'")
        return cfg

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text()))
        except FileNotFoundError as exc:
            raise InputError(f"training config {path} does not exist") from exc
        except json.JSONDecodeError as exc:
            raise InputError(f"training config {path} is not valid JSON: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["optim"]["betas"] = list(self.optim.betas)
        return out


def _check_one_half(cfg: TrainConfig, key: str, halves: list[str], why: str) -> None:
    """`freeze` and `init_halves` name at most one half, and only on top of init_from."""
    if set(halves) - set(FREEZABLE) or len(set(halves)) == len(FREEZABLE):
        raise UsageError(f"{key}={halves}: name at most one of {list(FREEZABLE)}")
    if halves and not cfg.init_from:
        raise UsageError(f"{key} needs init_from: {why}")


def build_model_config(spec: str | dict[str, Any]):
    from vtoken.models import TokenizerConfig

    try:
        if isinstance(spec, str):
            return TokenizerConfig.preset(spec)
        spec = dict(spec)
        if "preset" in spec:
            name = spec.pop("preset")
            return TokenizerConfig.preset(name, **spec)
        return TokenizerConfig.from_dict(spec)
    except (TypeError, ValueError) as exc:  # a config mistake, not a bug: one line, exit 2
        raise UsageError(f"bad model config: {exc}") from exc


# -- distributed -----------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; one process per GPU (nccl) or gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    return Dist(rank, world, local)


def resolve_device(device: str, d: Dist) -> torch.device:
    """vtoken.device.resolve_device, and one GPU per process under torchrun."""
    dev = base_resolve_device(device)
    if dev.type == "cuda" and dev.index is None and d.world > 1:
        dev = torch.device(f"cuda:{d.local_rank}")
    return dev


# -- warm starts ----------------------------------------------------------------------------------
def _load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict, with a mismatch reported as the config's mistake in one line."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        last = [ln.strip() for ln in str(exc).splitlines() if ln.strip()][-1]
        raise UsageError(f"{what} does not fit the configured model ({last[:200]})") from exc


def _load_half(model: nn.Module, half: str, spec: str) -> None:
    """Replace `half` of `model` with the same half of the shipped model `spec`."""
    from vtoken.models import load_model

    source = load_model(spec, cache=False)
    _load_into(getattr(model, half), getattr(source, half).state_dict(), f"init_halves: the {half} of {spec}")


# -- EMA -----------------------------------------------------------------------------------------
@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    # Warm-up of the decay: a short run's EMA would otherwise still be mostly the init.
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """Holds every piece of state a checkpoint must capture."""

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike, device: str = "auto",
                 log_fn: LogFn | None = None, data_arrays=None):
        from vtoken.models import Tokenizer

        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = setup_distributed(str(base_resolve_device(device).type))
        self.device = resolve_device(device, self.dist)
        self.log_fn = log_fn
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed + self.dist.rank)
        self.model_config = build_model_config(cfg.model)
        model = Tokenizer(self.model_config)
        self.graft_report: dict[str, list[str]] = {"copied": [], "extended": [], "fresh": []}
        new_elements: dict[str, torch.Tensor] = {}
        if cfg.init_from:
            from vtoken.models import load_model

            src = load_model(cfg.init_from, cache=False)
            if cfg.graft is not None:
                from .graft import graft

                renames = [tuple(pair) for pair in cfg.graft.get("renames", [])]
                self.graft_report = graft(model, src.state_dict(), renames, src.bits, model.bits,
                                          silent_new_blocks=bool(cfg.graft.get("silent_new_blocks", False)),
                                          widen_from=src.config if cfg.graft.get("widen") else None,
                                          new_elements=new_elements, source_config=src.config)
            else:
                _load_into(model, src.state_dict(), f"init_from {cfg.init_from}")
        for half, spec in cfg.init_halves.items():
            _load_half(model, half, spec)
        for half in cfg.freeze:
            getattr(model, half).requires_grad_(False)
        if cfg.train_only:
            names = [name for name, _ in model.named_parameters()]
            unmatched = [p for p in cfg.train_only if not any(n.startswith(p) for n in names)]
            if unmatched:
                raise UsageError(f"train_only {unmatched} names no parameter of this model")
            for name, param in model.named_parameters():
                param.requires_grad_(param.requires_grad and any(name.startswith(p) for p in cfg.train_only))
            if not any(param.requires_grad for param in model.parameters()):
                raise UsageError(f"train_only {cfg.train_only} leaves nothing to train (the rest is frozen)")
        self.model = model.to(self.device)
        # Grafted parameters stay fixed for the first freeze_steps updates (graft.py).
        kept = {name for key in ("copied", "extended", "widened", "regridded")
                for name in self.graft_report.get(key, [])}
        self.grafted = [p for name, p in self.model.named_parameters() if name in kept]
        self.freeze_steps = int(cfg.graft.get("freeze_steps", 0)) if cfg.graft else 0
        self.mem_format = torch.channels_last_3d if cfg.channels_last and self.device.type == "cuda" else None
        if self.mem_format is not None:
            self.model = self.model.to(memory_format=self.mem_format)
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.loss = TokenizerLoss(cfg.losses, self.device, bits=self.model_config.bits)
        fused = self.device.type == "cuda"
        self.trained = [p for p in self.model.parameters() if p.requires_grad]
        # graft new_lr_scale: what has no source counterpart (whole fresh tensors, mask None,
        # and the new elements of extended ones) takes that multiple of Adam's step, applied
        # after it (train_step); Adam's step is elementwise and proportional to the lr.
        scale = float(cfg.graft.get("new_lr_scale", 1.0)) if cfg.graft else 1.0
        fresh = set(self.graft_report["fresh"])
        self.new_lr_scale = scale
        self.new_elements = [] if scale == 1.0 else [
            (p, None if name in fresh else new_elements[name].to(self.device))
            for name, p in self.model.named_parameters()
            if p.requires_grad and (name in fresh or name in new_elements)]
        self.opt = torch.optim.Adam(self.trained, lr=cfg.optim.lr, betas=cfg.optim.betas,
                                    weight_decay=cfg.optim.weight_decay, **({"fused": True} if fused else {}))
        # The rate model's probabilities are bit statistics of the current encoder: their own
        # optimiser, fast enough to track the encoder (and optional when a run is resumed).
        self.rate_opt = None
        if self.loss.rate is not None:
            self.rate_opt = torch.optim.Adam(self.loss.rate.parameters(), lr=RATE_LR)
        self.disc_opt = None
        if self.loss.disc is not None:
            self.disc_opt = torch.optim.Adam(self.loss.disc.parameters(), lr=cfg.losses.disc_lr, betas=cfg.optim.betas)
        # Data: cache + per-rank sampler; a separate generator for plane counts and LPIPS frames.
        dcfg = copy.deepcopy(cfg.data)
        if dcfg.device == "cuda":
            dcfg.device = str(self.device)
        self.sampler: ClipSampler = make_sampler(dcfg, self.dist.rank, data_arrays)
        self.gen = torch.Generator().manual_seed(cfg.seed * 7 + 13 + self.dist.rank)
        # Its own stream, so that a run with hold_max draws the same planes and LPIPS frames
        # as the same run without it (a paired control).
        self.hold_gen = torch.Generator().manual_seed(cfg.seed * 11 + 5 + self.dist.rank)
        self.step = 0
        self.net: nn.Module = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.bf16 = cfg.precision == "bf16" and native_bf16(self.device)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    # -- logging ----------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True)
        with open(self.run_dir / "train.jsonl", "a") as f:
            f.write(line + "\n")
        if self.log_fn is not None:
            self.log_fn(record)

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "data_rng": json.dumps(self.sampler.rng_state()),  # big ints: keep them as text
            "gen": self.gen.get_state(),
            "hold_gen": self.hold_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if cuda_available():
            st["cuda_rng"] = torch.cuda.get_rng_state_all()
        if self.loss.rate is not None:
            st["rate"] = self.loss.rate.state_dict()
            st["rate_opt"] = self.rate_opt.state_dict()
        if self.loss.disc is not None:
            st["disc"] = self.loss.disc.state_dict()
            st["lecam"] = self.loss.lecam.state_dict()
            st["disc_opt"] = self.disc_opt.state_dict()
        return st

    def load_state(self, st: dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"])
        self.ema.load_state_dict(st["ema"])
        if self.loss.rate is not None and "rate" in st:
            self.loss.rate.load_state_dict(st["rate"])
            self.rate_opt.load_state_dict(st["rate_opt"])
        opt = st["opt"]
        for g in opt["param_groups"]:
            if isinstance(g.get("betas"), list):
                g["betas"] = tuple(g["betas"])
        self.opt.load_state_dict(opt)
        self.sampler.set_rng_state(json.loads(st["data_rng"]))
        self.gen.set_state(st["gen"])
        if "hold_gen" in st:  # checkpoints from before hold_max lack it
            self.hold_gen.set_state(st["hold_gen"])
        if self.dist.world > 1:
            # Rank 0 wrote the checkpoint, so its streams were saved; every other rank derives
            # fresh, distinct, reproducible streams from (seed, rank, step) instead.
            import numpy as np

            key = [self.cfg.seed, self.dist.rank, int(st.get("step", 0))]
            self.sampler.rng = np.random.Generator(np.random.PCG64(key))
            self.gen.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
            self.hold_gen.manual_seed(int(np.random.SeedSequence(key + [1]).generate_state(1)[0]))
        torch.set_rng_state(st["torch_rng"])
        if "cuda_rng" in st and cuda_available():
            states = st["cuda_rng"]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
        if self.loss.disc is not None and "disc" in st:
            self.loss.disc.load_state_dict(st["disc"])
            self.loss.lecam.load_state_dict(st["lecam"])
            self.disc_opt.load_state_dict(st["disc_opt"])

    def save(self) -> Path | None:
        if not self.dist.main:
            return None
        return ckpt.save_checkpoint(
            self.run_dir, self.step, self.state(),
            max_shard_bytes=int(self.cfg.max_shard_mib * 2**20), keep_last=self.cfg.keep_last,
            extra={"config": self.cfg.to_dict(), "model_config": self.model_config.to_dict()},
        )

    def resume(self) -> bool:
        latest = ckpt.latest_checkpoint(self.run_dir)
        if latest is None:
            return False
        step, st, _ = ckpt.load_checkpoint(latest)
        st["step"] = step
        self.load_state(st)
        self.step = step
        return True

    # -- one update ---------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr = cfg.optim.lr_at(self.step, cfg.steps)
        for g in self.opt.param_groups:
            g["lr"] = lr
        video = self.sampler.batch(cfg.batch_size, self.device)
        if self.mem_format is not None:
            video = video.contiguous(memory_format=self.mem_format)
        planes = sample_planes(video.shape[0], self.model_config.bits, cfg.losses, self.gen, self.device)
        self.model.train()
        held = None
        if cfg.hold_max > 0:
            threshold = cfg.hold_max * float(torch.rand((), generator=self.hold_gen))
            held = HeldSigns(threshold, planes, cfg.hold_prev_weight)
        with self.autocast:
            out = self.net(video, planes=planes, **({"signs": held} if held is not None else {}))
        total, terms = self.loss(video, out, self.step, self.gen)
        if cfg.search_steps:
            with self.autocast:
                target = search_signs(self.model.decoder, video, out.z, planes, cfg.search_steps, cfg.search_lr,
                                      cfg.losses.l1, cfg.losses.perceptual, self.loss.lpips)
            terms["search"], terms["search_flips"] = search_loss(out.z, target, planes, cfg.losses.search_margin)
            total = total + cfg.losses.search * terms["search"]
            terms["total"] = total
        self.opt.zero_grad(set_to_none=True)
        if self.rate_opt is not None:
            self.rate_opt.zero_grad(set_to_none=True)
        total.backward()
        if self.step < self.freeze_steps:
            for p in self.grafted:
                p.grad = None  # Adam skips a parameter without a gradient
        gnorm = torch.nn.utils.clip_grad_norm_(self.trained, cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
        before = [p.detach().clone() for p, _ in self.new_elements]
        self.opt.step()
        with torch.no_grad():
            for (p, mask), p0 in zip(self.new_elements, before):
                step = p - p0
                p.add_(step if mask is None else step * mask, alpha=self.new_lr_scale - 1.0)
        if self.rate_opt is not None:
            self.rate_opt.step()
        ema_update(self.ema, self.model, cfg.ema_decay, self.step)
        # Log values stay on the device until a log line is written: a float() per term per
        # step would synchronise the GPU a dozen times per step.
        rec: dict[str, Any] = {k: v.detach() for k, v in terms.items()}
        if self.loss.disc_active(self.step):
            d_loss, d_terms = self.loss.discriminator_loss(video, out.reconstruction, self.gen)
            self.disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_opt.step()
            rec.update(d_terms)
        rec["grad_norm"] = gnorm.detach()
        rec["lr"] = lr
        rec["entropy_weight"] = cfg.losses.entropy_weight(self.step)
        rec["psnr"] = 10 * torch.log10(4.0 / rec["mse"].clamp_min(1e-12))  # signal range 2
        rec["bits_per_token_codebook"] = nats_to_bits(rec["codebook_entropy"])
        rec.update(bit_stats(out.z))
        if planes is not None:
            rec["planes_mean"] = planes.float().mean()
        if held is not None:
            rec["hold_threshold"], rec["held"] = held.threshold, held.fraction
        self.step += 1
        return rec


def train(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False, max_minutes: float | None = None,
          device: str = "auto", log_fn: LogFn | None = None, data_arrays=None) -> dict[str, Any]:
    """Run (or continue) training. Returns a summary dict. Stops at cfg.steps, or early
    enough before `max_minutes` to write a final checkpoint."""
    start = time.monotonic()
    run_dir = Path(run_dir)
    if not resume and ckpt.latest_checkpoint(run_dir) is not None:
        raise UsageError(f"{run_dir} already holds checkpoints; pass --resume to continue or choose a new --out")
    tr = Trainer(cfg, run_dir, device, log_fn, data_arrays)
    resumed = tr.resume() if resume else False
    if tr.dist.main:
        # Made only once the model and data are set up, so a bad config leaves no folder behind.
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    tr.log({"event": "start", "step": tr.step, "resumed": resumed, "device": str(tr.device),
            "world": tr.dist.world, "autocast": "bf16" if tr.bf16 else "fp32", "data": describe(tr.sampler.cache),
            "params": sum(p.numel() for p in tr.model.parameters()), "time": time.time(),
            **({"grafted": {k: len(v) for k, v in tr.graft_report.items()}} if tr.cfg.graft else {})})
    deadline = start + max_minutes * 60 if max_minutes else None
    step_times: list[float] = []
    save_seconds = 5.0
    stop_reason = "steps"
    acc: dict[str, float] = {}
    n_acc = 0
    while tr.step < cfg.steps:
        if deadline is not None:
            typical = sorted(step_times[-20:])[len(step_times[-20:]) // 2] if step_times else 0.0
            # Leave room for one more step, the checkpoint, and a margin for slow steps.
            stop = time.monotonic() + 2 * typical + save_seconds + 10 > deadline
            if tr.dist.world > 1:
                # Ranks must stop on the same step or the next all-reduce hangs: rank 0 decides.
                import torch.distributed as dist

                flag = torch.tensor([float(stop)], device=tr.device)
                dist.broadcast(flag, 0)
                stop = bool(flag.item())
            if stop:
                stop_reason = "time"
                break
        t0 = time.monotonic()
        rec = tr.train_step()
        step_times.append(time.monotonic() - t0)
        for k, v in rec.items():
            acc[k] = acc.get(k, 0.0) + v
        n_acc += 1
        if tr.step % cfg.log_every == 0 or tr.step == cfg.steps:
            avg = {k: round(float(v) / n_acc, 6) for k, v in acc.items()}
            avg.update({"step": tr.step, "sec_per_step": round(sum(step_times[-n_acc:]) / n_acc, 4),
                        "elapsed_s": round(time.monotonic() - start, 1)})
            tr.log(avg)
            acc, n_acc = {}, 0
        if cfg.checkpoint_every and tr.step % cfg.checkpoint_every == 0 and tr.step < cfg.steps:
            t1 = time.monotonic()
            tr.save()
            save_seconds = max(save_seconds, time.monotonic() - t1)
    path = tr.save()
    summary = {"event": "stop", "reason": stop_reason, "step": tr.step, "checkpoint": str(path) if path else None,
               "elapsed_s": round(time.monotonic() - start, 1)}
    tr.log(summary)
    if tr.dist.world > 1:
        import torch.distributed as dist

        dist.barrier()
    return summary
