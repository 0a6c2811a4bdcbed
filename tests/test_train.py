"""Training pipeline: data, checkpoints (sharding, exact resume), losses, CLI and export.

Tiny model (a few thousand parameters) on generated clips, so the whole file runs in
seconds on one core."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from vtoken.errors import UsageError
from vtoken.train import checkpoint as ckpt
from vtoken.codec.frames import repeat_frames
from vtoken.train.data import ClipCache, ClipSampler, DataConfig, _frame_indices, refuse_eval_path
from vtoken.train.losses import LossConfig, TokenizerLoss, frame_weights, frame_window, sample_planes
from vtoken.train.loop import OptimConfig, TrainConfig, setup_distributed, train

TINY_MODEL = {"bits": 6, "channels": [8, 8, 16], "res_blocks": [0, 1, 0], "conv3d": [False, True, True],
              "temporal_down": [True, False], "mid_blocks": 0, "norm_groups": 4, "entropy_group_size": 3}


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    # A smooth moving gradient video (7 frames, shorter than the crop) and a noisy photo.
    y, x = np.mgrid[0:40, 0:56]
    video = np.stack([np.stack([(x + 3 * t) * 4 % 256, y * 6 % 256, (x + y) * 2 % 256], -1) for t in range(7)])
    photo = rng.integers(0, 256, (64, 72, 3))
    return [video.astype(np.uint8)], [photo.astype(np.uint8)]


def _config(steps=4, **loss):
    losses = {"perceptual": 0.0, "entropy_anneal_steps": 4, "entropy_final_ratio": 0.5, **loss}
    return TrainConfig.from_dict({
        "model": TINY_MODEL,
        "data": {"roots": [], "package_samples": False, "frames": 5, "size": 16, "max_side": 64},
        "losses": losses,
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "batch_size": 2, "steps": steps, "ema_decay": 0.9, "precision": "fp32",
        "log_every": 1, "checkpoint_every": 0, "keep_last": 2, "threads": 1,
    })


def test_eval_set_refused(tmp_path):
    (tmp_path / "shared" / "data" / "eval" / "video").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "train").mkdir()
    shared = tmp_path / "shared"
    for bad in (shared / "data" / "eval", shared / "data" / "eval" / "video", shared / "data", shared, tmp_path,
                "data/eval/video"):
        with pytest.raises(UsageError, match="evaluation set"):
            refuse_eval_path(bad)
    with pytest.raises(UsageError):
        DataConfig(roots=[str(shared / "data" / "eval" / "video")]).validate()
    refuse_eval_path(shared / "data" / "train")  # allowed


def test_frames_must_be_1_plus_4n():
    with pytest.raises(UsageError, match="1 \\+ 4n"):
        DataConfig(frames=8, roots=[]).validate()


def test_short_clips_ping_pong():
    rng = np.random.default_rng(0)
    idx = _frame_indices(3, 9, 1, rng)
    assert len(idx) == 9 and idx.min() >= 0 and idx.max() <= 2
    assert np.all(np.abs(np.diff(idx)) == 1)  # continuous motion, no jump back to frame 0
    assert np.array_equal(_frame_indices(1, 5, 2, rng), np.zeros(5))


def test_repeated_frames_as_a_finer_grid_feeds_them():
    # codec/frames.py on a grid 4x finer: the first frame once, then every frame 4 times
    assert repeat_frames(np.array([5, 6, 7, 8, 9]), 4, True)[:17].tolist() == [5] + [6] * 4 + [7] * 4 + [8] * 4 + [9] * 4
    assert repeat_frames(np.array([5, 6, 7, 8]), 2, True)[:6].tolist() == [5, 6, 6, 7, 7, 8]
    with pytest.raises(UsageError, match="frame_repeats"):
        DataConfig(roots=[], frame_repeats=[0]).validate()


def test_sampler_repeats_video_frames():
    # Videos only (photo_prob 0): with repeats [2] every clip is f0, f1, f1, f2, f2 exactly.
    cfg = DataConfig(roots=[], package_samples=False, frames=5, size=16, photo_prob=0.0, frame_repeats=[2])
    clip = ClipSampler(ClipCache.build(cfg, _arrays()), cfg).sample()
    assert torch.equal(clip[:, 1], clip[:, 2]) and torch.equal(clip[:, 3], clip[:, 4])
    assert not torch.equal(clip[:, 0], clip[:, 1]) and not torch.equal(clip[:, 2], clip[:, 3])


def test_sampler_shapes_range_and_rng_restore():
    cfg = DataConfig(roots=[], package_samples=False, frames=5, size=16, photo_prob=0.5)
    sampler = ClipSampler(ClipCache.build(cfg, _arrays()), cfg)
    b = sampler.batch(3)
    assert b.shape == (3, 3, 5, 16, 16) and b.dtype == torch.float32
    assert b.min() >= -1 and b.max() <= 1 and b.std() > 0.05
    state = json.loads(json.dumps(sampler.rng_state()))  # must survive JSON
    first = sampler.batch(2)
    sampler.set_rng_state(state)
    assert torch.equal(first, sampler.batch(2))


def test_plane_dropout_sampling():
    cfg = LossConfig(all_planes_prob=0.5, min_planes=2)
    k = sample_planes(2000, 6, cfg, torch.Generator().manual_seed(0), "cpu")
    assert k.min() >= 2 and k.max() == 6
    assert 0.5 < (k == 6).float().mean() < 0.7  # 0.5 + 0.5 / 5
    assert sample_planes(4, 6, LossConfig(plane_dropout=False), torch.Generator(), "cpu") is None


def test_frame_weights_favour_the_worst_frames_and_keep_the_scale():
    err = torch.tensor([[0.1, 0.3, 0.2, 0.2], [0.5, 0.5, 0.5, 0.5]])
    assert frame_weights(err, 0.0) is None
    w = frame_weights(err, 1.0)
    assert torch.allclose(w.mean(dim=1), torch.ones(2))
    assert torch.allclose(w[0], torch.tensor([0.5, 1.5, 1.0, 1.0]))
    assert torch.allclose(w[1], torch.ones(4))          # a clip with even errors is left alone
    assert w[0, 1] < frame_weights(err, 2.0)[0, 1]      # a higher focus pulls harder


def test_frame_focus_moves_gradient_to_the_worst_frame():
    """Frame 1 is reconstructed 3x worse than frame 0: with frame_focus 1 its L1 gradient is 3x
    frame 0's per pixel (1x without), while the logged l1 stays the unweighted mean."""
    from vtoken.models.lfq import LFQLosses
    from vtoken.models.tokenizer import TokenizerOutput

    video = torch.zeros(1, 3, 2, 4, 4)
    zero = torch.zeros(())

    def grads(focus):
        recon = torch.cat([torch.full((1, 3, 1, 4, 4), 0.1), torch.full((1, 3, 1, 4, 4), 0.3)], dim=2)
        recon.requires_grad_(True)
        out = TokenizerOutput(reconstruction=recon, z=zero, quantized=zero, indices=zero,
                              losses=LFQLosses(zero, zero, zero, zero, zero))
        loss = TokenizerLoss(LossConfig(perceptual=0.0, commitment=0.0, entropy=0.0, frame_focus=focus))
        total, terms = loss(video, out, 0, torch.Generator())
        total.backward()
        assert terms["l1"].item() == pytest.approx(0.2)
        return recon.grad[0, 0, 0, 0, 0].item(), recon.grad[0, 0, 1, 0, 0].item()

    g0, g1 = grads(0.0)
    assert g1 == pytest.approx(g0)
    g0, g1 = grads(1.0)
    assert g1 == pytest.approx(3 * g0)


def test_frame_focus_weights_lpips_frame_by_frame_of_each_clip():
    """Two clips of three frames, each with its own worst frame: the LPIPS part of the total is
    the per-frame LPIPS times that clip's frame weights (the frames of clip b are not clip a's)."""
    from vtoken.metrics.lpips import get_lpips
    from vtoken.models.lfq import LFQLosses
    from vtoken.models.tokenizer import TokenizerOutput

    g = torch.Generator().manual_seed(0)
    video = torch.rand(2, 3, 3, 32, 32, generator=g) * 2 - 1
    noise = torch.zeros(2, 1, 3, 1, 1)
    noise[0, 0, 1], noise[1, 0, 2] = 0.5, 0.5       # clip 0: frame 1 worst; clip 1: frame 2
    recon = video + (0.05 + noise) * torch.randn(video.shape, generator=g)
    zero = torch.zeros(())
    out = TokenizerOutput(reconstruction=recon, z=zero, quantized=zero, indices=zero,
                          losses=LFQLosses(zero, zero, zero, zero, zero))
    cfg = LossConfig(l1=0.0, perceptual=1.0, commitment=0.0, entropy=0.0, frame_focus=1.0)
    total, terms = TokenizerLoss(cfg)(video, out, 0, torch.Generator())
    per_frame = get_lpips("cpu")(recon.transpose(1, 2).reshape(6, 3, 32, 32),
                                 video.transpose(1, 2).reshape(6, 3, 32, 32)).reshape(2, 3)
    w = frame_weights((recon - video).abs().mean(dim=(1, 3, 4)), 1.0)
    assert w[0].argmax() == 1 and w[1].argmax() == 2
    assert terms["lpips"].item() == pytest.approx(per_frame.mean().item(), rel=1e-5)
    assert total.item() == pytest.approx((per_frame * w).mean().item(), rel=1e-5)
    assert total.item() > terms["lpips"].item()       # the worst frames are the heavier ones
    # LPIPS on 2 random frames per clip (as training runs it): the drawn frames' own weights
    cfg = LossConfig(l1=0.0, perceptual=1.0, perceptual_frames=2, commitment=0.0, entropy=0.0, frame_focus=1.0)
    total, terms = TokenizerLoss(cfg)(video, out, 0, torch.Generator().manual_seed(3))
    idx = torch.randperm(3, generator=torch.Generator().manual_seed(3))[:2]
    assert terms["lpips"].item() == pytest.approx(per_frame[:, idx].mean().item(), rel=1e-5)
    assert total.item() == pytest.approx((per_frame[:, idx] * w[:, idx]).mean().item(), rel=1e-5)


def test_lr_schedule_warmup_and_cosine():
    o = OptimConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert o.lr_at(0, 100) == pytest.approx(0.1)
    assert o.lr_at(9, 100) == pytest.approx(1.0)
    assert o.lr_at(100, 100) == pytest.approx(0.1)
    assert o.lr_at(55, 100) == pytest.approx(0.55)


def test_shards_below_limit_and_roundtrip(tmp_path):
    limit = 200_000
    state = {"big": torch.arange(120_000, dtype=torch.float32).reshape(300, 400),  # 480 kB: split
             "small": {3: torch.ones(5), "k": (1, 2.5, "x")}, "none": None}
    path = ckpt.save_checkpoint(tmp_path, 7, state, max_shard_bytes=limit, keep_last=1)
    files = list(path.glob("*.safetensors"))
    assert len(files) >= 3 and all(f.stat().st_size < limit for f in files)
    step, back, _ = ckpt.load_checkpoint(tmp_path)
    assert step == 7 and torch.equal(back["big"], state["big"])
    assert torch.equal(back["small"][3], state["small"][3]) and back["small"]["k"] == (1, 2.5, "x")
    ckpt.save_checkpoint(tmp_path, 8, state, max_shard_bytes=limit, keep_last=1)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-00000008"]


def _params(run_dir):
    _, st, _ = ckpt.load_checkpoint(run_dir)
    return st


def test_resume_is_bit_exact(tmp_path):
    arrays = _arrays()
    logs = []
    full = train(_config(4), tmp_path / "full", data_arrays=arrays, log_fn=logs.append)
    assert full["step"] == 4
    assert any("l1" in r and "bits_per_token_marginal" in r for r in logs)
    train(_config(2), tmp_path / "split", data_arrays=arrays)
    with pytest.raises(UsageError, match="--resume"):
        train(_config(4), tmp_path / "split", data_arrays=arrays)
    train(_config(4), tmp_path / "split", resume=True, data_arrays=arrays)
    a, b = _params(tmp_path / "full"), _params(tmp_path / "split")
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert a["data_rng"] == b["data_rng"]


@pytest.mark.parametrize("native", [True, False])
def test_bf16_training_autocasts_where_the_hardware_computes_bf16(tmp_path, monkeypatch, native):
    from vtoken.train import loop

    monkeypatch.setattr(loop, "native_bf16", lambda device: native)
    cfg = _config(2)
    cfg.precision = "bf16"
    logs = []
    seen = []
    real = loop.TokenizerLoss.forward

    def spy(self, video, out, *args, **kw):  # what the model's forward pass gave the loss
        seen.append(out.reconstruction.dtype)
        return real(self, video, out, *args, **kw)

    monkeypatch.setattr(loop.TokenizerLoss, "forward", spy)
    train(cfg, tmp_path, data_arrays=_arrays(), log_fn=logs.append)
    assert logs[0]["autocast"] == ("bf16" if native else "fp32")
    assert set(seen) == {torch.bfloat16 if native else torch.float32}
    assert all(np.isfinite(r["l1"]) for r in logs if "l1" in r)


def test_adversarial_term_runs(tmp_path):
    logs = []
    train(_config(3, adversarial=0.1, gan_start=1, disc_channels=4), tmp_path, data_arrays=_arrays(),
          log_fn=logs.append)
    steps = [r for r in logs if "gan_d" in r]
    assert steps and all(np.isfinite(r["gan_d"]) and np.isfinite(r["lecam"]) for r in steps)
    assert "disc" in _params(tmp_path)


def test_discriminator_frame_window():
    video = torch.arange(2 * 3 * 9 * 2 * 2, dtype=torch.float32).reshape(2, 3, 9, 2, 2)
    rng = torch.Generator().manual_seed(0)
    assert frame_window(video, 0, rng) is video and frame_window(video, 9, rng) is video
    starts = set()
    for _ in range(40):
        w = frame_window(video, 3, rng)
        assert w.shape == (2, 3, 3, 2, 2)
        s = int(torch.nonzero((video[:, :, :, 0, 0] == w[0, 0, 0, 0, 0]).any(1).any(0))[0])
        assert torch.equal(w, video[:, :, s:s + 3])  # consecutive frames, the same for every clip
        starts.add(s)
    assert starts == set(range(7))  # every window start is drawn


def test_discriminator_warms_up_before_the_generator_sees_it(tmp_path):
    """With disc_start < gan_start the discriminator takes updates from disc_start while the
    generator's loss has no adversarial term until gan_start."""
    logs = []
    train(_config(4, adversarial=0.1, disc_start=1, gan_start=3, disc_channels=4, disc_frames=3), tmp_path,
          data_arrays=_arrays(), log_fn=logs.append)
    steps = {r["step"]: r for r in logs if "step" in r and "total" in r}
    assert sorted(steps) == [1, 2, 3, 4]  # the log's step counts updates done
    assert ["gan_d" in steps[s] for s in (1, 2, 3, 4)] == [False, True, True, True]
    assert ["gan_g" in steps[s] for s in (1, 2, 3, 4)] == [False, False, False, True]


def test_rate_term_is_logged_learned_and_resumed(tmp_path):
    """With losses.rate the estimated bits per pixel enter the loss, the rate model's table
    learns (a checkpoint holds it) and a resumed run continues it bit-exactly."""
    arrays = _arrays()
    logs = []
    train(_config(4, rate=1.0), tmp_path / "full", data_arrays=arrays, log_fn=logs.append)
    est = [r["bpp_est"] for r in logs if "bpp_est" in r]
    # The table starts at p = 1/2: the first step charges exactly 1 bit per kept bit, which for
    # 6 planes on a 4x (space) 2x (time) grid is at most 6 / 16 per pixel plus frame 0's extra.
    assert len(est) == 4 and all(np.isfinite(v) and v > 0 for v in est) and est[0] <= 6 / 16 * 2
    full = _params(tmp_path / "full")
    assert full["rate"]["logits"].abs().sum() > 0
    train(_config(2, rate=1.0), tmp_path / "split", data_arrays=arrays)
    train(_config(4, rate=1.0), tmp_path / "split", resume=True, data_arrays=arrays)
    assert torch.equal(full["rate"]["logits"], _params(tmp_path / "split")["rate"]["logits"])


def test_rate_gradient_pushes_bits_toward_their_context_prediction():
    from vtoken.train.rate import BitRateModel

    m = BitRateModel(2)
    with torch.no_grad():
        m.logits.fill_(3.0)   # every context predicts a 1
    q = torch.full((1, 2, 2, 3, 3), -1.0, requires_grad=True)
    bits = m(q)
    bits.backward()
    assert bits.item() > 2 * 2 * 9 * 3   # 36 unlikely zeros cost more than 3 bits each
    assert (q.grad < 0).all()            # raising q (toward +1) lowers the cost
    dropped = torch.zeros(1, 2, 2, 3, 3)
    assert m(dropped).item() == 0        # dropped planes (q = 0) are not coded, not charged


def test_rate_predicted_charges_predicted_latent_frames_only():
    """frame_bits splits the estimate by latent frame; rate_predicted scales what the encoder
    is charged for frames t >= 1 and leaves the key frame's charge and the logged bpp_est."""
    from vtoken.models.lfq import LFQLosses
    from vtoken.models.tokenizer import TokenizerOutput

    g = torch.Generator().manual_seed(0)
    q = (torch.randint(0, 2, (1, 3, 3, 4, 4), generator=g).float() * 2 - 1).requires_grad_(True)
    video = torch.zeros(1, 3, 9, 16, 16)
    zero = torch.zeros(())
    out = TokenizerOutput(reconstruction=video.clone(), z=q.detach(), quantized=q, indices=None,
                          losses=LFQLosses(zero, zero, zero, zero, zero))

    def charged(pred_weight):
        loss = TokenizerLoss(LossConfig(l1=0, perceptual=0, commitment=0, entropy=0, rate=1.0,
                                        rate_predicted=pred_weight), bits=3)
        with torch.no_grad():
            loss.rate.logits.normal_(generator=g)
        frames = loss.rate.frame_bits(q)
        assert frames.shape == (3,) and torch.allclose(frames.sum(), loss.rate(q))
        q.grad = None
        total, terms = loss(video, out, 0, g)
        total.backward()
        npix = 9 * 16 * 16
        assert torch.allclose(terms["bpp_est"], frames.sum() / npix)
        assert torch.allclose(total, (frames[0] + pred_weight * frames[1:].sum()) / npix)
        return q.grad.clone()

    g.manual_seed(1)
    base = charged(1.0)
    g.manual_seed(1)
    key_free = charged(0.0)
    assert torch.equal(key_free[:, :, 1:], torch.zeros_like(key_free[:, :, 1:]))
    assert torch.allclose(key_free[:, :, 0], base[:, :, 0])
    with pytest.raises(UsageError, match="rate_predicted"):
        LossConfig(rate=1.0, rate_predicted=-1.0)


def test_hold_pushes_only_near_boundary_bits_of_predicted_frames():
    """The hold hinge moves a predicted frame's bit with abs(z) < margin toward the previous
    frame's sign, leaves bits beyond the margin and the key frame alone, and is in the total."""
    from vtoken.models.lfq import LFQLosses
    from vtoken.models.tokenizer import TokenizerOutput
    from vtoken.train.losses import hold_loss

    z = torch.tensor([1.0, 0.2, -0.3, 0.1, -2.0, 0.7]).view(1, 1, 6, 1, 1).requires_grad_(True)
    hinge, flips = hold_loss(z, 0.5)
    hinge.backward()
    # frame pairs (prev sign, cur z): (+, 0.2) agree in band, (+, -0.3) flip in band,
    # (-, 0.1) flip in band, (+, -2.0) flip beyond the margin, (-, 0.7) flip beyond it
    assert torch.allclose(hinge, torch.tensor([0.5 - 0.2, 0.5 + 0.3, 0.5 + 0.1, 0, 0]).mean())
    assert flips.item() == pytest.approx(4 / 5)
    expected = torch.tensor([0.0, -1, -1, 1, 0, 0]) / 5  # descent moves z toward the previous sign
    assert torch.allclose(z.grad.view(-1), expected)
    assert hold_loss(z[:, :, :1], 0.5)[0].item() == 0  # one latent frame: nothing to hold

    zero = torch.zeros(())
    video = torch.zeros(1, 3, 9, 16, 16)
    q = torch.where(z.detach() >= 0, 1.0, -1.0)
    out = TokenizerOutput(reconstruction=video.clone(), z=z.detach(), quantized=q, indices=None,
                          losses=LFQLosses(zero, zero, zero, zero, zero))
    loss = TokenizerLoss(LossConfig(l1=0, perceptual=0, commitment=0, entropy=0, hold=2.0), bits=1)
    total, terms = loss(video, out, 0, torch.Generator())
    assert torch.allclose(total, 2.0 * hinge.detach()) and "flips" in terms
    with pytest.raises(UsageError, match="hold_margin"):
        LossConfig(hold=1.0, hold_margin=0.0)


def _fitted(rate_model, q, steps):
    """rate_model with its table fitted to the bits of q (Adam, as the training loop does)."""
    opt = torch.optim.Adam(rate_model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        rate_model(q).backward()
        opt.step()
    return rate_model


def test_rate_motion_follows_the_coders_block_motion():
    """The training rate model's motion-compensated previous frame is the one the entropy
    coder uses for planes >= MOTION_PLANES, and a panned frame becomes cheap under it."""
    from vtoken.entropy import motion as mo
    from vtoken.train.rate import BitRateModel, compensated_previous

    g = torch.Generator().manual_seed(0)
    h, w = 20, 27  # partial edge blocks
    frame0 = torch.randint(0, 2, (5, h + 4, w + 4), generator=g)
    moved = [frame0[:, 2:-2, 2:-2], frame0[:, 1:-3, 3:-1], frame0[:, 3:-1, 2:-2]]  # pans
    moved[2][:, :8, :8] = torch.randint(0, 2, (5, 8, 8), generator=g)  # a block that matches nothing
    b = torch.stack(moved, dim=1).unsqueeze(0)  # [1, K=5, T=3, H, W]
    got = compensated_previous(b)
    for t in range(2):
        prev, cur = b[0, :, t].numpy(), b[0, :, t + 1].numpy()
        cost = sum(mo.block_sums(mo.mismatch(cur[k], prev[k])) for k in range(mo.MOTION_PLANES))
        index = mo.gather_index(mo.best_field(cost), h, w)
        assert np.array_equal(got[0, :, t].numpy(), mo.compensate(prev, index))
    assert (got[0, :, 0] == b[0, :, 1]).float().mean() > 0.95  # the pan is followed

    q = b.float() * 2 - 1

    def trained_cost(motion):
        m = _fitted(BitRateModel(5, motion=motion), q, 100)
        with torch.no_grad():
            return m.frame_bits(q)[1:].sum().item()

    assert trained_cost(True) < 0.6 * trained_cost(False)


def test_crossplane_rate_model_learns_what_earlier_planes_say():
    """Planes 0 and 1 are random and plane 2 copies plane 0. The context table sees plane k-1
    only, so it cannot predict plane 2 (about 1 bit each); the cross-plane term learns to."""
    from vtoken.train.rate import BitRateModel

    g = torch.Generator().manual_seed(0)
    b0, b1 = (torch.randint(0, 2, (2, 1, 3, 8, 8), generator=g).float() for _ in range(2))
    q = torch.cat([b0, b1, b0], dim=1) * 2 - 1
    below_2 = torch.cat([q[:, :2], torch.zeros_like(q[:, 2:])], dim=1)  # plane 2 dropped

    def plane_2_cost(crossplane):
        m = _fitted(BitRateModel(3, crossplane=crossplane), q, 200)
        with torch.no_grad():
            return m(q).item() - m(below_2).item()

    n = b0.numel()
    assert plane_2_cost(False) > 0.8 * n and plane_2_cost(True) < 0.1 * n


def test_graft_needs_init_from_and_known_fields():
    cfg = _config(2).to_dict()
    with pytest.raises(UsageError, match="init_from"):
        TrainConfig.from_dict({**cfg, "graft": {"renames": []}})
    with pytest.raises(UsageError, match="unknown graft fields"):
        TrainConfig.from_dict({**cfg, "init_from": "x", "graft": {"renames": [], "freeze": 3}})


def test_a_bad_model_config_is_a_usage_error():
    """A model override the preset cannot take is the config's mistake: one line, exit 2."""
    from vtoken.train.loop import build_model_config

    assert build_model_config({"preset": "vtoken-patch", "bits": 64}).token_bits == 62
    with pytest.raises(UsageError, match="bad model config: token_bits=20"):
        build_model_config({"preset": "vtoken-patch", "bits": 16, "token_bits": 20})
    with pytest.raises(UsageError, match="bad model config"):
        build_model_config({"preset": "vtoken-patch", "width": 3})


def test_graft_warm_start_freezes_grafted_weights(tmp_path):
    """init_from + graft: a run warm-started across a K change copies what fits and keeps the
    grafted tensors fixed for freeze_steps while the fresh ones learn."""
    from vtoken.models import Tokenizer, TokenizerConfig, save_model

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL))
    (tmp_path / "zoo").mkdir()
    path = save_model(src, tmp_path / "zoo", "src-model")
    cfg = _config(2).to_dict()
    cfg["model"] = {**TINY_MODEL, "bits": 8, "entropy_group_size": 4}
    cfg["init_from"] = str(path)
    cfg["graft"] = {"renames": [], "freeze_steps": 2}
    cfg["checkpoint_every"] = 0
    train(TrainConfig.from_dict(cfg), tmp_path / "run", data_arrays=_arrays())
    after = _params(tmp_path / "run")["model"]
    before = src.state_dict()
    name = "encoder.blocks.1.0.conv1.conv.weight"
    assert torch.equal(after[name], before[name])                                   # frozen
    assert torch.equal(after["decoder.conv_in.conv.weight"][:, :6], before["decoder.conv_in.conv.weight"])
    assert not torch.equal(after["encoder.conv_out.conv.weight"][6:], torch.zeros_like(after["encoder.conv_out.conv.weight"][6:]))


def test_graft_widen_is_opt_in_and_runs_in_training(tmp_path):
    """"widen": true starts a wider decoder from the source's (its tensors count as grafted:
    fixed for freeze_steps); without it a wider decoder's mismatched tensors start fresh."""
    from vtoken.models import Tokenizer, TokenizerConfig, save_model

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL))
    (tmp_path / "zoo").mkdir()
    path = save_model(src, tmp_path / "zoo", "src-model")
    cfg = _config(2).to_dict()
    cfg["model"] = {**TINY_MODEL, "decoder_channels": [16, 8, 16]}
    cfg["init_from"] = str(path)
    cfg["checkpoint_every"] = 0
    name = "decoder.conv_out.conv.weight"
    for widen in (True, False):
        cfg["graft"] = {"renames": [], "freeze_steps": 2, "widen": widen}
        train(TrainConfig.from_dict(cfg), tmp_path / f"run-{widen}", data_arrays=_arrays())
        after = _params(tmp_path / f"run-{widen}")["model"][name]
        # Widened and frozen: the two copies' shares of each old weight add up to it (16
        # channels in 4 groups: group g holds old channels 2g, 2g+1, 2g, 2g+1).
        shares = after.view(after.shape[0], 4, 2, 2, 1, 3, 3).sum(2).reshape(src.state_dict()[name].shape)
        assert torch.allclose(shares, src.state_dict()[name], atol=1e-6) == widen


def _moved_at_scales(tmp_path, model_extra: dict, graft_extra: dict, measure) -> dict:
    """Train 2 steps from a saved TINY_MODEL grafted to TINY_MODEL + `model_extra`, at
    new_lr_scale 1 and 10. Returns ({scale: measure(trained state, source state)}, the
    config, for usage checks)."""
    from vtoken.models import Tokenizer, TokenizerConfig, save_model

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL))
    (tmp_path / "zoo").mkdir()
    path = save_model(src, tmp_path / "zoo", "src-model")
    cfg = _config(2).to_dict()
    cfg.update(model={**TINY_MODEL, **model_extra}, init_from=str(path), checkpoint_every=0)
    cfg["optim"] = {"lr": 1e-4, "warmup_steps": 0}
    moved = {}
    for scale in (1, 10):
        cfg["graft"] = {"renames": [], **graft_extra, "new_lr_scale": scale}
        run = tmp_path / f"run-{scale}"
        train(TrainConfig.from_dict(cfg), run, data_arrays=_arrays())
        moved[scale] = measure(_params(run)["model"], src.state_dict())
    return moved, cfg


def test_graft_new_lr_scale_speeds_up_only_the_fresh_tensors(tmp_path):
    """new_lr_scale: the tensors with no source counterpart (here a mid block grafted as an
    identity) get their own Adam group at that multiple of the learning rate; the grafted ones
    keep the configured rate. Adam's first steps move each weight by about the learning rate,
    so the new block moves about 10x as far with a scale of 10."""
    def measure(after, before):
        new = after["decoder.mid.0.conv2.conv.weight"]  # started at zero
        old = after["decoder.conv_out.conv.weight"] - before["decoder.conv_out.conv.weight"]
        return new.abs().mean().item(), old.abs().mean().item()

    moved, cfg = _moved_at_scales(tmp_path, {"mid_blocks": 1}, {"silent_new_blocks": True}, measure)
    assert 5 < moved[10][0] / moved[1][0] < 15
    assert 0.5 < moved[10][1] / moved[1][1] < 2
    for bad in (0, -1, "x", True):
        with pytest.raises(UsageError, match="new_lr_scale"):
            TrainConfig.from_dict({**cfg, "graft": {"renames": [], "new_lr_scale": bad}})


def test_graft_new_lr_scale_speeds_up_the_new_taps_of_a_grown_kernel(tmp_path):
    """A 3-tap temporal downsampling grafted to 4 taps: the new oldest tap shares its tensor
    with the grafted taps, and new_lr_scale moves it (alone) about 10x as far."""
    name = "encoder.downs.0.conv.conv.weight"

    def measure(after, before):
        new_tap = after[name][:, :, :1]  # started at zero
        old_taps = after[name][:, :, 1:] - before[name]
        return new_tap.abs().mean().item(), old_taps.abs().mean().item()

    moved, _ = _moved_at_scales(tmp_path, {"temporal_down_kernel": 4}, {}, measure)
    assert moved[1][0] > 0
    assert 5 < moved[10][0] / moved[1][0] < 15
    assert 0.5 < moved[10][1] / moved[1][1] < 2


def test_graft_to_a_finer_time_grid_starts_as_the_source_on_a_still_scene(tmp_path):
    """A stage's temporal stride dropped (temporal factor 4 -> 2): the encoder's strided taps
    are summed into one and the decoder's up-conv keeps its later time phase: on a still clip
    the new model's latents at the source's frames are the source's, and the up-conv makes the
    source's aligned frames. A run grafting this way keeps those tensors fixed for
    freeze_steps."""
    from vtoken.models import Tokenizer, TokenizerConfig, save_model
    from vtoken.train.graft import graft

    torch.manual_seed(0)
    coarse = {**TINY_MODEL, "temporal_down": [True, True]}
    src = Tokenizer(TokenizerConfig.from_dict(coarse)).eval()
    new = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL)).eval()
    report = graft(new, src.state_dict(), source_config=src.config)
    assert sorted(report["regridded"]) == sorted(
        f"{half}.conv.conv.{p}" for half in ("encoder.downs.1", "decoder.ups.0") for p in ("weight", "bias"))
    assert report["fresh"] == [] and report["extended"] == []
    still = (torch.rand(1, 3, 1, 32, 32) * 2 - 1).repeat(1, 1, 9, 1, 1)
    with torch.no_grad():
        z_src, z_new = src.encode(still), new.encode(still)
        assert (z_src.shape[2], z_new.shape[2]) == (3, 5)
        torch.testing.assert_close(z_new[:, :, ::2], z_src, atol=1e-5, rtol=1e-4)
        # The decoder's up-conv gives, per input frame, the source's later frame of the two
        # (after the causal layout drops the very first frame: the source's even frames).
        x = torch.randn(1, 16, 3, 4, 4)
        torch.testing.assert_close(new.decoder.ups[0](x), src.decoder.ups[0](x)[:, :, ::2])
    with pytest.raises(ValueError, match="finer, not coarser"):
        graft(Tokenizer(TokenizerConfig.from_dict(coarse)), new.state_dict(), source_config=new.config)

    (tmp_path / "zoo").mkdir()
    cfg = _config(2).to_dict()
    cfg.update(init_from=str(save_model(src, tmp_path / "zoo", "coarse")), checkpoint_every=0,
               graft={"renames": [], "freeze_steps": 2})
    train(TrainConfig.from_dict(cfg), tmp_path / "run", data_arrays=_arrays())
    name = "decoder.ups.0.conv.conv.weight"
    assert torch.equal(_params(tmp_path / "run")["model"][name], new.state_dict()[name])


def test_freeze_encoder_trains_the_decoder_alone(tmp_path):
    """freeze ["encoder"]: the encoder (so every coded bit) stays exactly the source's, the
    decoder learns, and the EMA copy of the encoder is the source too."""
    from vtoken.models import Tokenizer, TokenizerConfig, save_model

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL))
    (tmp_path / "zoo").mkdir()
    path = save_model(src, tmp_path / "zoo", "src-model")
    cfg = {**_config(3).to_dict(), "init_from": str(path), "freeze": ["encoder"]}
    train(TrainConfig.from_dict(cfg), tmp_path / "run", data_arrays=_arrays())
    st = _params(tmp_path / "run")
    before = src.state_dict()
    for name in ("model", "ema"):
        enc = {k: v for k, v in st[name].items() if k.startswith("encoder.")}
        assert enc and all(torch.equal(v, before[k]) for k, v in enc.items())
    dec = [k for k in st["model"] if k.startswith("decoder.") and k.endswith("weight")]
    assert any(not torch.equal(st["model"][k], before[k]) for k in dec)


def test_train_only_teaches_new_plane_heads_on_a_fixed_model(tmp_path):
    """train_only ["encoder.plane_heads"] on a model grafted with plane heads: every tensor of
    the source stays exactly as it was (so the decoder and the trunk), the heads learn."""
    from vtoken.models import Tokenizer, TokenizerConfig, save_model

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL))
    (tmp_path / "zoo").mkdir()
    path = save_model(src, tmp_path / "zoo", "src-model")
    cfg = {**_config(3).to_dict(), "init_from": str(path), "graft": {}, "train_only": ["encoder.plane_heads"],
           "model": {**TINY_MODEL, "plane_heads": 3}}
    cfg["losses"]["plane_sampling"] = "log"
    train(TrainConfig.from_dict(cfg), tmp_path / "run", data_arrays=_arrays())
    st = _params(tmp_path / "run")["model"]
    before = src.state_dict()
    assert all(torch.equal(st[k], v) for k, v in before.items())
    heads = [k for k in st if k.startswith("encoder.plane_heads.") and k.endswith("out.conv.weight")]
    # they start at zero; the steps' plane counts reached more than one head
    assert len(heads) == 3 and sum(bool(st[k].abs().sum() > 0) for k in heads) >= 2
    with pytest.raises(UsageError, match="names no parameter"):
        train(TrainConfig.from_dict({**cfg, "train_only": ["encoder.heads"]}), tmp_path / "bad",
              data_arrays=_arrays())
    for bad in ("encoder.plane_heads", [""], [3]):  # a string would match by its letters
        with pytest.raises(UsageError, match="train_only"):
            TrainConfig.from_dict({**cfg, "train_only": bad})
    with pytest.raises(UsageError, match="leaves nothing to train"):
        train(TrainConfig.from_dict({**cfg, "freeze": ["encoder"]}), tmp_path / "frozen", data_arrays=_arrays())


def test_freeze_names_one_half_of_a_trained_model():
    cfg = _config(2).to_dict()
    with pytest.raises(UsageError, match="freeze needs init_from"):
        TrainConfig.from_dict({**cfg, "freeze": ["encoder"]})
    for bad in (["quantizer"], ["encoder", "decoder"]):
        with pytest.raises(UsageError, match="name at most one of"):
            TrainConfig.from_dict({**cfg, "init_from": "x", "freeze": bad})


def test_graft_silent_new_blocks_start_as_identities():
    """More mid blocks, grafted with silent_new_blocks: the deeper model reconstructs exactly as
    its source before training, and only the entirely new blocks were silenced."""
    from vtoken.models import Tokenizer, TokenizerConfig
    from vtoken.train.graft import graft

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL)).eval()
    deeper = Tokenizer(TokenizerConfig.from_dict({**TINY_MODEL, "mid_blocks": 2})).eval()
    loud = Tokenizer(TokenizerConfig.from_dict({**TINY_MODEL, "mid_blocks": 2})).eval()
    report = graft(deeper, src.state_dict(), silent_new_blocks=True)
    graft(loud, src.state_dict())
    assert report["silenced"] == ["encoder.mid.0", "encoder.mid.1", "decoder.mid.0", "decoder.mid.1"]
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        want = src.decode_bits(src.encode_bits(video))
        assert torch.equal(deeper.encode_bits(video), src.encode_bits(video))
        assert torch.allclose(deeper.decode_bits(deeper.encode_bits(video)), want, atol=1e-6)
        # without the option the new blocks are random and change the reconstruction
        assert not torch.allclose(loud.decode_bits(src.encode_bits(video)), want, atol=1e-3)
    cfg = _config(2).to_dict()
    TrainConfig.from_dict({**cfg, "init_from": "x", "graft": {"renames": [], "silent_new_blocks": True}})


def test_deeper_decoder_grafts_silently_and_keeps_the_encoder():
    """decoder_res_blocks: a decoder deeper than the encoder, grafted with silent_new_blocks,
    decodes exactly as its source before training; the encoder is the source's."""
    from vtoken.models import Tokenizer, TokenizerConfig
    from vtoken.train.graft import graft

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL)).eval()
    cfg = TokenizerConfig.from_dict({**TINY_MODEL, "decoder_res_blocks": [2, 1, 0]})
    assert cfg.decoder_blocks == (2, 1, 0) and TokenizerConfig.from_dict(TINY_MODEL).decoder_blocks == (0, 1, 0)
    deeper = Tokenizer(cfg).eval()
    report = graft(deeper, src.state_dict(), silent_new_blocks=True)
    assert report["silenced"] == ["decoder.blocks.2.0", "decoder.blocks.2.1"]  # level 0 is the decoder's last
    assert not any(name.startswith("encoder.blocks.0.") for name in deeper.state_dict())
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        bits = src.encode_bits(video)
        assert torch.equal(deeper.encode_bits(video), bits)
        assert torch.allclose(deeper.decode_bits(bits), src.decode_bits(bits), atol=1e-6)


def test_widened_decoder_starts_exact_and_its_copies_can_diverge():
    """decoder_channels: a decoder grafted to twice the width at some levels decodes as its
    source before training (GroupNorm statistics and every sum preserved), the encoder is the
    source's, and the copies of a channel get different gradients (else they never separate)."""
    from vtoken.models import Tokenizer, TokenizerConfig
    from vtoken.train.graft import graft
    from vtoken.train.widen import channel_map

    torch.manual_seed(0)
    narrow = {**TINY_MODEL, "res_blocks": [1, 1, 1], "mid_blocks": 1}
    src = Tokenizer(TokenizerConfig.from_dict(narrow)).eval()
    with torch.no_grad():  # a trained-looking decoder: the modulation convs start at zero
        for p in src.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    # Levels 0 and 2 widened (every kind of decoder tensor), level 1 kept.
    wide = Tokenizer(TokenizerConfig.from_dict({**narrow, "decoder_channels": [16, 8, 32]})).eval()
    report = graft(wide, src.state_dict(), widen_from=src.config)
    assert report["fresh"] == []
    assert {"decoder.conv_in.conv.weight", "decoder.mid.0.norm1.to_scale_shift.weight", "decoder.blocks.2.0.conv1.conv.weight",
            "decoder.ups.0.conv.conv.weight", "decoder.conv_out.conv.weight"} <= set(report["widened"])
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        bits = src.encode_bits(video)
        assert torch.equal(wide.encode_bits(video), bits)
        q = (bits.float() * 2 - 1) * (torch.arange(6) < 4).view(1, 6, 1, 1, 1)  # 4 planes kept
        want = src.decoder(q)  # unclamped: a clamp could hide a difference
        assert want.abs().max() > 0.5
        assert torch.allclose(wide.decoder(q), want, atol=1e-5)
    # Channel 0 and its copy at level 0 (16 channels in 4 groups: copy = channel 2).
    assert channel_map(8, 16, 4).tolist() == [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7]
    w = wide.decoder.ups[1].conv.conv.weight  # writes level 0: 8 rows a channel (2x time, 2x2 space)
    assert torch.equal(w[0:8], w[16:24])
    wide.decoder(bits.float() * 2 - 1).square().mean().backward()
    assert not torch.allclose(w.grad[0:8], w.grad[16:24])
    with pytest.raises(ValueError, match="whole multiple of the old"):
        channel_map(8, 12, 4)
    with pytest.raises(ValueError, match="only the widths may change"):
        graft(Tokenizer(TokenizerConfig.from_dict({**narrow, "norm_groups": 8, "decoder_channels": [16, 8, 32]})),
              src.state_dict(), widen_from=src.config)
    with pytest.raises(ValueError, match="grow the planes"):
        graft(Tokenizer(TokenizerConfig.from_dict({**narrow, "bits": 8, "decoder_channels": [16, 8, 32]})),
              src.state_dict(), k_old=6, k_new=8, widen_from=src.config)


def test_distributed_world_size_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    d = setup_distributed("cpu")
    assert (d.rank, d.world, d.main) == (0, 1, True)
    from torch.nn.parallel import DistributedDataParallel  # noqa: F401 - the DDP path imports


def _write_media(folder):
    import av
    from PIL import Image

    folder.mkdir()
    with av.open(str(folder / "clip.mp4"), "w") as box:
        s = box.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        video = _arrays()[0][0]
        for t in range(12):
            frame = np.ascontiguousarray(np.pad(video[t % 7], ((4, 4), (4, 4), (0, 0)), mode="edge")[:48, :64])
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                box.mux(p)
        for p in s.encode():
            box.mux(p)
    Image.fromarray(_arrays()[1][0]).save(folder / "photo.png")


def test_cli_train_resume_export(tmp_path):
    from click.testing import CliRunner

    from vtoken.models import load_model
    from vtoken.train.cli import train as train_cli

    media = tmp_path / "media"
    _write_media(media)
    cfg = _config(2).to_dict()
    cfg["data"]["roots"] = [str(media)]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    run = tmp_path / "run"
    runner = CliRunner()
    r = runner.invoke(train_cli, ["--config", str(tmp_path / "cfg.json"), "--out", str(run), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(train_cli, ["--config", str(tmp_path / "cfg.json"), "--out", str(run), "--resume", "--steps", "3"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == 3
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    r = runner.invoke(train_cli, ["export", str(run), "--name", "t-model", "--zoo", str(zoo), "--prior-clips", "4", "--default"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (zoo / "DEFAULT").read_text().strip() == report["model"]
    assert 0 < report["prior"]["bits_per_bit_prior"] <= 1.5
    model = load_model(report["json"], cache=False)
    ema = _params(run)["ema"]
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    assert model.entropy_prior is not None and model.entropy_prior.shape[0] == TINY_MODEL["bits"]
    # The export fits a cross-plane predictor (entropy format 2) and reports the rate without it.
    assert report["prior"]["crossplane"] and model.entropy_predictor is not None
    assert model.entropy_predictor.planes == TINY_MODEL["bits"]
    assert 0 < report["prior"]["bits_per_bit_prior_without_crossplane"] <= 1.5


def test_eval_root_refused_by_cli(tmp_path):
    from click.testing import CliRunner

    from vtoken.train.cli import train as train_cli

    cfg = _config(1).to_dict()
    cfg["data"]["roots"] = ["data/eval/video"]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    r = CliRunner().invoke(train_cli, ["--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "run")])
    assert r.exit_code == UsageError.exit_code
    assert "evaluation set" in r.output
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_slim_checkpoint_exports_in_fp16(tmp_path):
    from vtoken.models import load_model
    from vtoken.train.export import export_run, slim_checkpoint

    train(_config(2), tmp_path / "run", data_arrays=_arrays())
    info = slim_checkpoint(tmp_path / "run", tmp_path / "slim", max_shard_mib=0.2)
    _, st, _ = ckpt.load_checkpoint(tmp_path / "slim")
    assert set(st) == {"ema"} and info["step"] == 2
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    report = export_run(tmp_path / "slim", "t-half", zoo, prior_clips=0, fp16=True)
    full = _params(tmp_path / "run")["ema"]
    model = load_model(report["json"], cache=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, full[k].half().float()), k
    assert report["prior"] is None


def test_pack_data_refuses_eval_and_copies(tmp_path):
    from vtoken.train.pack import pack_training_data

    with pytest.raises(UsageError):
        pack_training_data(tmp_path / "data" / "eval", tmp_path / "x")
    media = tmp_path / "media"
    _write_media(media)
    out = pack_training_data(media, tmp_path / "packed", max_side=32)
    assert (out["videos"], out["photos"]) == (1, 1)
    from PIL import Image

    with Image.open(tmp_path / "packed" / "photo.jpg") as im:
        assert max(im.size) == 32


@pytest.mark.slow
def test_torchrun_two_processes_train_and_resume(tmp_path):
    """DDP on CPU (gloo): two ranks train, rank 0 checkpoints, both resume and stop together."""
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    media = tmp_path / "media"
    _write_media(media)
    cfg = _config(2).to_dict()
    cfg["data"]["roots"] = [str(media)]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    # --standalone puts the rendezvous on a free port: the fixed default (29500) can be taken or
    # still in TIME_WAIT on a shared CI machine, which failed this test once there.
    base = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "vtoken.train.cli",
            "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "run"), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for args in (base, base + ["--resume", "--steps", "4", "--max-minutes", "5"]):
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"torchrun exited {done.returncode}:\n{done.stderr[-4000:]}"
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["step-00000002", "step-00000004"]


def test_init_halves_joins_one_models_encoder_with_anothers_decoder(tmp_path):
    """init_halves {"encoder": B} after init_from A: the run starts with B's encoder and A's
    decoder; a start model or half that does not fit is a usage error, not a traceback."""
    from vtoken.models import Tokenizer, TokenizerConfig, save_model
    from vtoken.train.loop import Trainer

    (tmp_path / "zoo").mkdir()
    models, paths = {}, {}
    for seed, name in ((0, "a"), (1, "b")):
        torch.manual_seed(seed)
        models[name] = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL))
        paths[name] = str(save_model(models[name], tmp_path / "zoo", name))
    cfg = {**_config(1).to_dict(), "init_from": paths["a"], "init_halves": {"encoder": paths["b"]}}
    state = Trainer(TrainConfig.from_dict(cfg), tmp_path / "run", data_arrays=_arrays()).model.state_dict()
    for key, value in state.items():
        source = models["b" if key.startswith("encoder.") else "a"].state_dict()[key]
        assert torch.equal(value, source), key
    assert any(not torch.equal(models["a"].state_dict()[k], models["b"].state_dict()[k]) for k in state)

    torch.manual_seed(2)
    other = Tokenizer(TokenizerConfig.from_dict({**TINY_MODEL, "bits": 8, "entropy_group_size": 4}))
    cfg["init_halves"] = {"encoder": str(save_model(other, tmp_path / "zoo", "c"))}
    with pytest.raises(UsageError, match="the encoder of .* does not fit"):
        Trainer(TrainConfig.from_dict(cfg), tmp_path / "run2", data_arrays=_arrays())
    with pytest.raises(UsageError, match="init_from .* does not fit the configured model"):
        train(TrainConfig.from_dict({**cfg, "init_from": cfg["init_halves"]["encoder"], "init_halves": {}}),
              tmp_path / "run3", data_arrays=_arrays())
    assert not (tmp_path / "run3").exists()                      # a bad config leaves no run folder
    with pytest.raises(UsageError, match="init_halves needs init_from"):
        TrainConfig.from_dict({**_config(1).to_dict(), "init_halves": {"encoder": "x"}})
    with pytest.raises(UsageError, match="name at most one of"):
        TrainConfig.from_dict({**cfg, "init_halves": {"quantizer": "x"}})


def test_held_signs_are_the_codecs_held_bits_and_pass_the_gradient_straight_through():
    """hold_max's bits: BitHold's for each clip as a key chunk at its own plane count, sent in
    place of sign(z) with the straight-through gradient of LFQ."""
    from vtoken.codec.hold import BitHold
    from vtoken.models.lfq import LFQ
    from vtoken.train.held import HeldSigns

    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 6, 1, 8, 8))
    z = torch.tensor(base + 0.3 * rng.normal(size=(2, 6, 4, 8, 8)), dtype=torch.float32, requires_grad=True)
    planes = torch.tensor([6, 24])  # the second clip's threshold is scaled by 8 / 24
    held = HeldSigns(0.4, planes)
    out = LFQ(bits=6, entropy_group_size=3)(z, signs=held, return_losses=False)
    lat = z.detach().numpy()
    want = np.stack([BitHold(0.4).bits(lat[b], key=True, planes=p) for b, p in enumerate((6, 24))])
    assert torch.equal(out.quantized.detach(), torch.from_numpy(want).float() * 2 - 1)
    changed = want != (lat >= 0)
    assert changed[0].sum() > changed[1].sum() > 0 and not changed[:, :, 0].any()  # key frames untouched
    assert held.fraction == pytest.approx(changed.mean())
    out.quantized.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))


def test_hold_max_trains_on_held_bits_and_leaves_the_other_draws_alone(tmp_path):
    """A run with hold_max logs the step's threshold and the share of bits held, draws the same
    plane counts as the run without it (a paired control), and resumes bit-exactly."""
    arrays = _arrays()
    plain, held = [], []
    train(_config(3), tmp_path / "plain", data_arrays=arrays, log_fn=plain.append)
    train(TrainConfig.from_dict({**_config(3).to_dict(), "hold_max": 0.2}), tmp_path / "held",
          data_arrays=arrays, log_fn=held.append)
    steps = [r for r in held if "hold_threshold" in r]
    assert len(steps) == 3 and all(0 <= r["hold_threshold"] <= 0.2 for r in steps)
    assert any(r["held"] > 0 for r in steps)
    assert [r["planes_mean"] for r in plain if "planes_mean" in r] == [r["planes_mean"] for r in steps]
    assert all("hold_threshold" not in r for r in plain)
    cfg = {**_config(4).to_dict(), "hold_max": 0.2}
    train(TrainConfig.from_dict(cfg), tmp_path / "full", data_arrays=arrays)
    train(TrainConfig.from_dict({**cfg, "steps": 2}), tmp_path / "split", data_arrays=arrays)
    train(TrainConfig.from_dict(cfg), tmp_path / "split", resume=True, data_arrays=arrays)
    a, b = _params(tmp_path / "full"), _params(tmp_path / "split")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name in ("hold_max", "hold_prev_weight"):
        for bad in (-0.1, float("nan"), float("inf")):
            with pytest.raises(UsageError, match=name):
                TrainConfig.from_dict({**_config(2).to_dict(), name: bad})


def test_export_keeps_the_sources_prior_when_the_encoder_was_frozen(tmp_path):
    """freeze ["encoder"]: the bits are the source's, so the export ships the source's prior
    and predictor as they are; a run whose encoder learnt gets a prior fitted to its bits."""
    from vtoken.entropy import fit_crossplane
    from vtoken.entropy.contexts import N_CONTEXTS
    from vtoken.models import Tokenizer, TokenizerConfig, load_model, save_model
    from vtoken.train.export import export_run

    torch.manual_seed(0)
    src = Tokenizer(TokenizerConfig.from_dict(TINY_MODEL))
    rng = np.random.default_rng(0)
    bits = [rng.integers(0, 2, (6, 2, 4, 4), dtype=np.uint8) for _ in range(4)]
    prior = rng.integers(0, 50, (6, N_CONTEXTS, 2)).astype(np.int16)
    (tmp_path / "zoo").mkdir()
    path = save_model(src, tmp_path / "zoo", "src-model", prior, entropy_predictor=fit_crossplane(bits, 6))
    source = load_model(str(path), cache=False)
    media = tmp_path / "media"
    _write_media(media)
    for freeze, kept in ((["encoder"], True), ([], False)):
        cfg = {**_config(2).to_dict(), "init_from": str(path), "freeze": freeze}
        cfg["data"]["roots"] = [str(media)]
        run = tmp_path / f"run{kept}"
        train(TrainConfig.from_dict(cfg), run)
        report = export_run(run, "t-model", tmp_path / "zoo", prior_clips=4)
        model = load_model(report["json"], cache=False)
        same = np.array_equal(model.entropy_prior, source.entropy_prior) and np.array_equal(
            model.entropy_predictor.weight, source.entropy_predictor.weight)
        assert same == kept
        assert report["prior"].get("kept_from") == (source.identity.short if kept else None)


def test_search_signs_move_the_kept_bits_toward_a_better_decode_and_leave_the_rest():
    """The training-time search: with a decoder that shows the latents as they are, L1 against
    a video pulls each kept bit to the video's sign; planes above a sample's count keep z's
    signs; 0 steps is sign(z); the decoder's weights collect no gradient."""
    from vtoken.train.searched import search_loss, search_signs

    torch.manual_seed(0)
    z = torch.randn(2, 4, 2, 3, 3) * 0.1
    video = torch.randn(2, 4, 2, 3, 3).sign()
    layer = torch.nn.Conv3d(4, 4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(4).view(4, 4, 1, 1, 1))
    layer.requires_grad_(False)
    planes = torch.tensor([2, 4])
    found = search_signs(layer, video, z, planes, steps=10, lr=0.1, l1=1.0, perceptual=0.0)
    assert torch.equal(found[0, :2], video[0, :2]) and torch.equal(found[1], video[1])
    assert torch.equal(found[0, 2:], torch.where(z[0, 2:] >= 0, 1.0, -1.0))     # not kept: as z
    assert torch.equal(search_signs(layer, video, z, planes, 0, 0.1, 1.0, 0.0), torch.where(z >= 0, 1.0, -1.0))
    assert layer.weight.grad is None

    # The hinge: a kept bit on the target's side by more than the margin costs nothing.
    zz = torch.tensor([1.0, 0.2, -0.3, 0.4]).view(1, 4, 1, 1, 1).requires_grad_(True)
    target = torch.tensor([1.0, 1.0, 1.0, -1.0]).view(1, 4, 1, 1, 1)
    hinge, flips = search_loss(zz, target, torch.tensor([3]), margin=0.5)
    assert hinge.item() == pytest.approx((0 + 0.3 + 0.8) / 3) and flips.item() == pytest.approx(1 / 3)
    hinge.backward()
    assert zz.grad.flatten().tolist() == pytest.approx([0, -1 / 3, -1 / 3, 0])


def test_search_steps_train_the_encoder_toward_searched_signs(tmp_path):
    """A run with search_steps logs the hinge and the share of kept bits the search flipped,
    draws the same plane counts as the run without it, resumes bit-exactly, and refuses a
    search without its loss weight (or the weight without a search)."""
    arrays = _arrays()
    plain, searched = [], []
    train(_config(3), tmp_path / "plain", data_arrays=arrays, log_fn=plain.append)
    cfg = {**_config(3).to_dict(), "search_steps": 2, "search_lr": 0.2}
    cfg["losses"] = {**cfg["losses"], "search": 1.0}
    train(TrainConfig.from_dict(cfg), tmp_path / "searched", data_arrays=arrays, log_fn=searched.append)
    steps = [r for r in searched if "search_flips" in r]
    assert len(steps) == 3 and any(r["search_flips"] > 0 for r in steps) and all(r["search"] > 0 for r in steps)
    assert [r["planes_mean"] for r in plain if "planes_mean" in r] == [r["planes_mean"] for r in steps]
    full = {**cfg, "steps": 4}
    train(TrainConfig.from_dict(full), tmp_path / "full", data_arrays=arrays)
    train(TrainConfig.from_dict({**full, "steps": 2}), tmp_path / "split", data_arrays=arrays)
    train(TrainConfig.from_dict(full), tmp_path / "split", resume=True, data_arrays=arrays)
    a, b = _params(tmp_path / "full"), _params(tmp_path / "split")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    with pytest.raises(UsageError, match="go together"):
        TrainConfig.from_dict({**cfg, "search_steps": 0})
    with pytest.raises(UsageError, match="go together"):
        TrainConfig.from_dict({**_config(2).to_dict(), "search_steps": 2})
    for bad in (-1, 1.5, True):
        with pytest.raises(UsageError, match="search_steps"):
            TrainConfig.from_dict({**cfg, "search_steps": bad})
    with pytest.raises(UsageError, match="search_lr"):
        TrainConfig.from_dict({**cfg, "search_lr": 0})


def test_rate_plane_ref_scales_each_samples_charge_by_its_plane_count():
    """rate_plane_ref charges a sample keeping k planes min(1, ref / k) of its rate; the logged
    bpp_est stays the unweighted estimate."""
    from vtoken.models.lfq import LFQLosses
    from vtoken.models.tokenizer import TokenizerOutput
    from vtoken.train.losses import rate_scale

    g = torch.Generator().manual_seed(0)
    q = torch.randint(0, 2, (2, 8, 2, 4, 4), generator=g).float() * 2 - 1
    q[0, 2:] = 0   # sample 0 keeps 2 planes, sample 1 all 8
    assert torch.equal(rate_scale(q, 4), torch.tensor([1.0, 0.5]))
    video = torch.zeros(2, 3, 5, 16, 16)
    zero = torch.zeros(())
    out = TokenizerOutput(reconstruction=video.clone(), z=q, quantized=q, indices=None,
                          losses=LFQLosses(zero, zero, zero, zero, zero))

    def run(ref):
        loss = TokenizerLoss(LossConfig(l1=0, perceptual=0, commitment=0, entropy=0, rate=1.0,
                                        rate_plane_ref=ref), bits=8)
        with torch.no_grad():
            loss.rate.logits.normal_(generator=torch.Generator().manual_seed(1))
        per_sample = loss.rate.sample_frame_bits(q).sum(dim=1) / (2 * 5 * 16 * 16)
        total, terms = loss(video, out, 0, g)
        return total, terms["bpp_est"], per_sample

    total0, bpp0, per_sample = run(0)
    total4, bpp4, _ = run(4)
    assert torch.allclose(total0, per_sample.sum()) and torch.allclose(bpp4, bpp0)
    assert torch.allclose(total4, per_sample[0] + 0.5 * per_sample[1])
    with pytest.raises(UsageError, match="rate_plane_ref"):
        LossConfig(rate_plane_ref=-1)


def test_module_entry_point_gives_the_one_line_error(tmp_path):
    """`python -m vtoken.train.cli` (what torchrun and the GPU session run) reports a bad config
    as `vtoken train` does: one line and a non-zero exit, no traceback."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "vtoken.train.cli", "--config", str(tmp_path / "missing.json"),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"vtoken: error: training config {tmp_path / 'missing.json'} does not exist"]
    assert not (tmp_path / "run").exists()
