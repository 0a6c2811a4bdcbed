"""The encoder's search (vtoken.codec.refine): what it optimises, what it leaves alone, its
rate term, and how the encoder (with auto too) and the CLI take it."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import vtoken
from vtoken import defaults
from vtoken.cli import main
from vtoken.codec.frames import pad_frames, to_tensor
from vtoken.codec.hold import BitHold
from vtoken.codec.precision import resolve_precision
from vtoken.codec.refine import BitRefiner, flip_share
from vtoken.errors import UsageError
from vtoken.models import load_model

from clips import make_clip, moving_pattern


def _objective(model, refiner, frames, bits, planes, limit=None):
    """The search's loss (5 L1 + 8 LPIPS) of a key chunk decoded from `bits` at `planes`
    (and the plane map `limit` [T', H', W'], where given)."""
    import torch

    cfg = model.config
    n, h, w, _ = frames.shape
    x = to_tensor(pad_frames(frames, cfg.temporal_factor, cfg.spatial_factor), "cpu")[:, :, :n, :h, :w]
    lim = None if limit is None else torch.from_numpy(limit[None].astype(np.int64))
    with torch.inference_mode():
        y = model.decode_bits(torch.from_numpy(bits[None]), planes=planes, limit=lim)[:, :, :n, :h, :w]
        lp = refiner.lpips(y[0].transpose(0, 1), x[0].transpose(0, 1)).mean()
    return float(defaults.REFINE_L1 * (y - x).abs().mean() + defaults.REFINE_LPIPS * lp)


def _key_chunk(model, seed):
    """(frames, z, the model's bits) of a 9-frame key chunk of a moving pattern."""
    import torch

    frames = moving_pattern(9, 48, 64, seed=seed)
    with torch.inference_mode():
        z = model.encode(to_tensor(pad_frames(frames, 4, model.config.spatial_factor), "cpu"))[0].numpy()
    return frames, z, (z >= 0).astype(np.uint8)


@pytest.mark.parametrize("method", defaults.REFINE_METHODS)
def test_the_search_lowers_its_loss_and_leaves_the_models_weights_alone(tiny_model_json, method, monkeypatch):
    monkeypatch.setattr(defaults, "REFINE_METHOD", method)
    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 3)
    planes = model.bits
    before = _objective(model, BitRefiner(model, 0, "cpu"), frames, bits, planes)
    unchanged = BitRefiner(model, 0, "cpu").refine(frames, z, bits, key=True, planes=planes)
    assert np.array_equal(unchanged, bits)  # no steps: the bits as given
    refiner = BitRefiner(model, 6, "cpu")
    refined = refiner.refine(frames, z, bits, key=True, planes=planes)
    assert refined.dtype == np.uint8 and refined.shape == bits.shape
    assert (refined != bits).any()
    after = _objective(model, refiner, frames, refined, planes)
    assert after < before - 0.01, (before, after)
    assert all(p.grad is None for p in model.parameters())  # the shared model collects no gradient


def test_with_a_plane_map_the_search_moves_only_the_bits_the_map_sends(tiny_model_json):
    import torch

    from vtoken.models.stream import StreamState

    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 4)
    k, t, h, w = bits.shape
    limit = np.ones((t, h, w), np.uint8)
    limit[:, :, w // 2:] = k  # the left half keeps one plane, the right half every plane
    before = _objective(model, BitRefiner(model, 0, "cpu"), frames, bits, k, limit)
    refiner = BitRefiner(model, 6, "cpu")
    refined = refiner.refine(frames, z, bits, key=True, planes=k, limit=limit)
    withheld = np.arange(k)[:, None, None, None] >= limit[None]
    assert np.array_equal(refined[withheld], bits[withheld])  # not sent: left as they were
    assert (refined[~withheld] != bits[~withheld]).any()
    assert _objective(model, refiner, frames, refined, k, limit) < before - 0.01
    # the search's causal state moved on with the map: the decoder's, with the planes withheld
    state = StreamState()
    with torch.inference_mode():
        model.decode_bits(torch.from_numpy(refined[None]), state=state,
                          limit=torch.from_numpy(limit[None].astype(np.int64)))
    ours = {n: v for n, v in refiner.state._slots.items() if torch.is_tensor(v)}
    theirs = {n: v for n, v in state._slots.items() if torch.is_tensor(v)}
    assert ours.keys() == theirs.keys() and ours
    assert all(torch.allclose(ours[n], theirs[n], atol=1e-5) for n in ours)


def test_a_bf16_search_lowers_its_loss_too(tiny_model_json):
    import torch

    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 3)
    before = _objective(model, BitRefiner(model, 0, "cpu"), frames, bits, model.bits)
    refiner = BitRefiner(model, 6, "cpu", precision="bf16")
    dtypes = []
    decode = model.decode
    model.decode = lambda *a, **k: (lambda y: dtypes.append(y.dtype) or y)(decode(*a, **k))
    try:
        refined = refiner.refine(frames, z, bits, key=True, planes=model.bits)
    finally:
        del model.decode
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the search's decodes ran in bf16
    carried = [t for t in refiner.state._slots.values() if torch.is_tensor(t)]  # the decoder's causal state
    assert carried and all(t.dtype == torch.float32 for t in carried)  # moved on in fp32, as a decoder has it
    assert (refined != bits).any()
    assert _objective(model, refiner, frames, refined, model.bits) < before - 0.01


def test_the_search_scores_against_the_sources_features_computed_once(tiny_model_json):
    """sign_search computes the source's LPIPS features once per call; the values it reaches are
    those of a search that runs LPIPS on both the decode and the source at every step."""
    import torch

    from vtoken.codec.refine import sign_search
    from vtoken.metrics.lpips import fold_frames, get_lpips

    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 5)
    n, h, w, _ = frames.shape
    x = to_tensor(pad_frames(frames, 4, model.config.spatial_factor), "cpu")[:, :, :n, :h, :w]
    u0 = torch.tensor(z[None])
    mask = torch.ones(1, z.shape[0], 1, 1, 1)
    lpips = get_lpips("cpu")

    def decode(q):
        return model.decode(q)[:, :, :n, :h, :w]

    def reference(steps):  # the loop as written before the features were kept
        u = u0.clone().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=defaults.REFINE_LR)
        for _ in range(steps):
            q = (u + (torch.where(u >= 0, 1.0, -1.0) - u).detach()) * mask
            y = decode(q).float()
            loss = defaults.REFINE_L1 * (y - x).abs().mean()
            loss = loss + defaults.REFINE_LPIPS * lpips(fold_frames(y), fold_frames(x)).mean()
            (u.grad,) = torch.autograd.grad(loss, [u])
            opt.step()
        return u.detach()

    ours = sign_search(u0, decode, x, mask, 4, defaults.REFINE_LR, defaults.REFINE_L1, defaults.REFINE_LPIPS, lpips)
    theirs = reference(4)
    assert not torch.equal(theirs, u0)  # the search moved
    assert torch.allclose(ours, theirs, atol=1e-4)  # float sums in another order
    assert torch.equal(ours >= 0, theirs >= 0)  # the same bits sent


def test_a_strided_search_scores_every_other_frame_in_turn():
    """With lpips_stride 2, step i compares frames t = i mod 2 of each clip with the same frames
    of the source (the rows of the cached features picked for them), and a one-frame slice is
    scored at every step."""
    import torch

    from vtoken.codec.refine import sign_search

    class Recorder:  # features: the images themselves; distance: the mean squared difference per image
        def __init__(self):
            self.calls = []

        def features(self, images):
            return [images]

        def distance(self, ours, theirs):
            d = ((ours[0] - theirs[0]) ** 2).mean(dim=(1, 2, 3))
            self.calls.append(d.detach())
            return d

    b, t = 2, 4
    # every source frame differs (10 x its row), so a source row paired with the wrong decoded
    # frame changes the distance; decoded frame i of clip j is off its source by (j + 1) x (i + 1)
    row = (torch.arange(b)[:, None] * t + torch.arange(t)[None, :]).float().view(b, 1, t, 1, 1)
    x = (10 * row).expand(b, 3, t, 4, 4).contiguous()
    offset = ((torch.arange(b)[:, None] + 1) * (torch.arange(t)[None, :] + 1)).float().view(b, 1, t, 1, 1)
    u = torch.randn(b, 2, 1, 1, 1)
    mask = torch.ones(1, 2, 1, 1, 1)
    rec = Recorder()
    sign_search(u, lambda q: x + offset + 0 * q.sum(), x, mask, 3, 0.1, 1.0, 1.0, rec, lpips_stride=2)
    expected = [[(j + 1) * (i + 1) for j in range(b) for i in range(t) if i % 2 == step % 2] for step in range(3)]
    assert [c.tolist() for c in rec.calls] == [[float(v * v) for v in e] for e in expected]

    rec = Recorder()  # a one-frame slice
    sign_search(u, lambda q: x[:, :, :1] + offset[:, :, :1] + 0 * q.sum(), x[:, :, :1], mask, 2, 0.1, 1.0, 1.0, rec,
                lpips_stride=2)
    assert [c.tolist() for c in rec.calls] == [[1.0, 4.0]] * 2

    rec = Recorder()  # one step: the stride is cut to it, so every frame is scored
    sign_search(u, lambda q: x + offset + 0 * q.sum(), x, mask, 1, 0.1, 1.0, 1.0, rec, lpips_stride=2)
    assert [c.tolist() for c in rec.calls] == [[float(((j + 1) * (i + 1)) ** 2) for j in range(b) for i in range(t)]]


def test_the_refiner_reads_the_lpips_stride_when_made(tiny_model_json, monkeypatch):
    """BitRefiner takes defaults.REFINE_LPIPS_STRIDE when made, and a strided search sends other
    bits than the full one."""
    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 9)
    monkeypatch.setattr(defaults, "REFINE_LPIPS_STRIDE", 1)
    full = BitRefiner(model, 3, "cpu").refine(frames, z, bits, key=True, planes=4)
    monkeypatch.setattr(defaults, "REFINE_LPIPS_STRIDE", 2)
    refiner = BitRefiner(model, 3, "cpu")
    assert refiner.lpips_stride == 2
    strided = refiner.refine(frames, z, bits, key=True, planes=4)
    assert (strided != bits).any() and (strided != full).any()


def test_planes_the_stream_does_not_keep_are_left_as_they_were(tiny_model_json):
    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 4)
    refined = BitRefiner(model, 6, "cpu").refine(frames, z, bits, key=True, planes=2)
    assert np.array_equal(refined[2:], bits[2:])
    assert (refined[:2] != bits[:2]).any()
    with pytest.raises(ValueError, match="steps"):
        BitRefiner(model, -1, "cpu")


def test_the_refiner_takes_the_learning_rate_defaults_hold_when_it_is_made(tiny_model_json, monkeypatch):

    model = load_model(tiny_model_json)
    monkeypatch.setattr(defaults, "REFINE_LR", 0.3)
    assert BitRefiner(model, 1, "cpu").lr == 0.3
    assert BitRefiner(model, 1, "cpu", lr=0.05).lr == 0.05


def test_the_l1_search_lowers_l1_without_lpips(tiny_model_json):
    """--refine-loss l1: the search minimises L1 alone (no LPIPS loaded or run), lowers the
    decode's L1 and chooses other bits than the L1 + LPIPS search."""
    import torch

    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 6)
    planes = model.bits
    refiner = BitRefiner(model, 6, "cpu", loss="l1")
    assert refiner.lpips is None and refiner.perceptual == 0

    def l1(b):
        n, h, w, _ = frames.shape
        x = to_tensor(pad_frames(frames, 4, model.config.spatial_factor), "cpu")[:, :, :n, :h, :w]
        with torch.inference_mode():
            y = model.decode_bits(torch.from_numpy(b[None]), planes=planes)[:, :, :n, :h, :w]
        return float((y - x).abs().mean())

    by_l1 = refiner.refine(frames, z, bits, key=True, planes=planes)
    by_lpips = BitRefiner(model, 6, "cpu").refine(frames, z, bits, key=True, planes=planes)
    assert l1(by_l1) < l1(bits) - 1e-3, (l1(bits), l1(by_l1))
    assert not np.array_equal(by_l1, by_lpips)
    with pytest.raises(ValueError, match="loss"):
        BitRefiner(model, 1, "cpu", loss="mse")


@pytest.mark.parametrize("method", defaults.REFINE_METHODS)
def test_the_rate_term_keeps_the_bits_the_coder_finds_cheap(tiny_model_json, method, monkeypatch):
    from vtoken.entropy import coder_for

    monkeypatch.setattr(defaults, "REFINE_METHOD", method)
    model = load_model(tiny_model_json)
    frames, z, bits = _key_chunk(model, 5)
    planes = model.bits
    p1 = coder_for(model).probabilities(bits)

    def cost(b):  # code length in bits under the coder as it would code them
        return float(coder_for(model).estimate(b).sum())

    free = BitRefiner(model, 6, "cpu").refine(frames, z, bits, key=True, planes=planes, p1=p1)
    charged = BitRefiner(model, 6, "cpu", rate_weight=20.0).refine(frames, z, bits, key=True, planes=planes, p1=p1)
    if method == "adam":  # the flips flip a set share of the bits wherever they gain at all
        assert (free != bits).sum() > (charged != bits).sum(), ((free != bits).sum(), (charged != bits).sum())
    assert cost(charged) < cost(free), (cost(bits), cost(charged), cost(free))
    with pytest.raises(ValueError, match="rate weight"):
        BitRefiner(model, 1, "cpu", rate_weight=-1.0)


def test_the_flip_search_flips_the_surest_gains_once_each():
    """Each step flips the set share of the kept bits where the gradient says a flip gains, the
    bits the encoder was least sure of first when the gains are equal; a bit flipped once stays
    flipped, though the next step's gradient would flip it back; bits outside the mask stay."""
    import torch

    from vtoken.codec.refine import flip_search

    u = torch.linspace(0.01, 1.0, 200).view(1, 2, 2, 5, 10)  # every bit 1, each unsure by its size
    mask = torch.ones(1, 2, 1, 1, 1)
    mask[:, 1] = 0  # the second plane is not kept
    count = round(0.1 * 100)  # fraction 0.1 of the 100 kept bits
    # A loss whose optimum lies halfway through the first step's flips: after it, the gradient
    # points back across every flipped bit.
    target = 100.0 - count

    def loss(q):
        return (q[:, 0].sum() - target) ** 2

    x = torch.zeros(1, 3, 1, 1, 1)
    found = flip_search(u, lambda q: torch.zeros_like(x), x, mask, 2, 0.1, 0.0, 0.0, extra=loss)
    flipped = (found < 0).flatten()
    assert int(flipped.sum()) == count
    assert torch.equal(torch.nonzero(flipped).flatten(), torch.arange(count))  # the least sure
    assert not flipped[100:].any()  # the masked plane


def test_more_flip_steps_share_the_same_flips(monkeypatch):
    """The flips a search makes in all are capped: more steps choose them in smaller batches."""
    monkeypatch.setattr(defaults, "REFINE_FLIP_FRACTION", 0.03)
    monkeypatch.setattr(defaults, "REFINE_FLIP_TOTAL", 0.04)
    assert flip_share(1) == 0.03 and flip_share(2) == 0.02 and flip_share(8) == 0.005
    assert flip_share(0) == 0.03  # no steps flip nothing; the share is still defined


def test_the_flips_come_first_then_adams_steps(monkeypatch):
    from vtoken.codec.refine import search_split

    monkeypatch.setattr(defaults, "REFINE_FLIP_STEPS", 2)
    assert [search_split(n) for n in (0, 1, 2, 8)] == [(0, 0), (1, 0), (2, 0), (2, 6)]
    monkeypatch.setattr(defaults, "REFINE_METHOD", "adam")
    assert search_split(8) == (0, 8)


def test_an_unknown_search_method_is_refused(tiny_model_json, monkeypatch):
    monkeypatch.setattr(defaults, "REFINE_METHOD", "newton")
    with pytest.raises(ValueError, match="search method"):
        BitRefiner(load_model(tiny_model_json), 1, "cpu")


def test_the_next_chunk_holds_toward_the_refined_bits():
    """Firm values in the planes the motion search reads (so it finds no motion), values near
    zero in the others: the next chunk's first latent frame holds those toward the bits the
    refinement sent, not toward the model's signs."""
    from vtoken.entropy import motion as mo

    rng = np.random.default_rng(5)
    z = rng.normal(0, 0.1, (mo.MOTION_PLANES + 3, 2, 8, 8)).astype(np.float32)
    z[: mo.MOTION_PLANES] = np.where(z[: mo.MOTION_PLANES] >= 0, 2.0, -2.0)
    z[:, 1] = z[:, 0]  # a still scene
    held = BitHold(0.5)
    bits = held.bits(z, key=True)
    sent = bits.copy()
    sent[mo.MOTION_PLANES:] ^= 1  # a later stage flipped every unsure bit
    held.replace(sent, z)
    nxt = held.bits(z[:, 1:], key=False)
    assert np.array_equal(nxt[:, 0], sent[:, -1])
    held.replace(bits, z)  # and toward the model's own signs when those were sent
    assert np.array_equal(held.bits(z[:, 1:], key=False)[:, 0], bits[:, -1])


def test_a_refined_stream_decodes_and_says_how_it_was_made(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "a.mp4", frames=20, size=(64, 48), seed=6)
    kw = dict(model=tiny_model_json, chunk_frames=9, key_interval=2, device="cpu", planes=4)
    plain = vtoken.encode(src, tmp_path / "p.mvt", **kw)
    refined = vtoken.encode(src, tmp_path / "r.mvt", refine=3, **kw)
    assert refined.frames == plain.frames == 20 and refined.planes == plain.planes
    assert vtoken.info(tmp_path / "r.mvt")["extra"]["refine"] == 3
    assert vtoken.info(tmp_path / "r.mvt")["extra"]["refine_loss"] == "lpips"
    assert vtoken.info(tmp_path / "r.mvt")["extra"]["refine_lpips_stride"] == min(defaults.REFINE_LPIPS_STRIDE, 3)
    assert vtoken.info(tmp_path / "r.mvt")["extra"]["refine_precision"] == resolve_precision("auto", "cpu", "search")
    extra = vtoken.info(tmp_path / "r.mvt")["extra"]  # 3 steps: the flips' steps, then Adam's
    assert extra["refine_method"] == defaults.REFINE_METHOD == "flip"
    assert extra["refine_flip_steps"] == defaults.REFINE_FLIP_STEPS == 2
    assert extra["refine_flip_fraction"] == flip_share(2) and extra["refine_lr"] == defaults.REFINE_LR
    assert not {"refine", "refine_loss", "refine_lpips_stride", "refine_precision"} & set(
        vtoken.info(tmp_path / "p.mvt")["extra"])
    exact = vtoken.encode(src, tmp_path / "f.mvt", refine=3, precision="fp32", **kw)
    assert exact.frames == 20 and vtoken.info(tmp_path / "f.mvt")["extra"]["refine_precision"] == "fp32"
    by_l1 = vtoken.encode(src, tmp_path / "l.mvt", refine=3, refine_loss="l1", **kw)
    assert by_l1.frames == 20 and vtoken.info(tmp_path / "l.mvt")["extra"]["refine_loss"] == "l1"
    assert "refine_lpips_stride" not in vtoken.info(tmp_path / "l.mvt")["extra"]  # l1 runs no LPIPS
    # The loss reached the search: other bits, so other frames (the headers differ anyway).
    by_lpips = np.concatenate(list(vtoken.decode_frames(tmp_path / "r.mvt", model=tiny_model_json, device="cpu")))
    by_l1 = np.concatenate(list(vtoken.decode_frames(tmp_path / "l.mvt", model=tiny_model_json, device="cpu")))
    assert not np.array_equal(by_l1, by_lpips)
    frames = np.concatenate(list(vtoken.decode_frames(tmp_path / "r.mvt", model=tiny_model_json, device="cpu")))
    assert frames.shape == (20, 48, 64, 3)
    assert (tmp_path / "r.mvt").read_bytes() != (tmp_path / "p.mvt").read_bytes()


@pytest.mark.parametrize("factor", [2, 8])
def test_the_search_runs_on_finer_and_coarser_grids(tmp_path, tiny_model_json, factor):
    src = make_clip(tmp_path / "a.mp4", frames=17, size=(64, 48), seed=7)
    kw = dict(model=tiny_model_json, chunk_frames=17, device="cpu", planes=4, temporal_factor=factor)
    vtoken.encode(src, tmp_path / "p.mvt", **kw)
    res = vtoken.encode(src, tmp_path / "r.mvt", refine=3, **kw)
    assert res.frames == 17 and res.temporal_factor == factor
    frames = np.concatenate(list(vtoken.decode_frames(tmp_path / "r.mvt", model=tiny_model_json, device="cpu")))
    assert frames.shape == (17, 48, 64, 3)
    assert (tmp_path / "r.mvt").read_bytes() != (tmp_path / "p.mvt").read_bytes()


def test_bad_search_options_are_refused_before_anything_is_written(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "a.mp4", frames=9, size=(64, 48))
    for bad in (dict(refine=-1), dict(refine=1.5), dict(refine=10_000), dict(refine=2, refine_loss="mse"),
                dict(refine=2, refine_loss=None)):
        with pytest.raises(UsageError, match="refine"):
            vtoken.encode(src, tmp_path / "x.mvt", model=tiny_model_json, device="cpu", **bad)
        assert not (tmp_path / "x.mvt").exists()
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "y.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--refine", "-2"])
    assert run.exit_code == 2 and "refine" in run.output and not (tmp_path / "y.mvt").exists()
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "y.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--refine", "2", "--refine-loss", "ssim"])
    assert run.exit_code == 2 and "--refine-loss" in run.output and not (tmp_path / "y.mvt").exists()
    # A loss other than the default without the search would be ignored: refused instead.
    with pytest.raises(UsageError, match="refine_loss l1 needs the search"):
        vtoken.encode(src, tmp_path / "x.mvt", model=tiny_model_json, device="cpu", refine_loss="l1")
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "y.mvt"), "--model", str(tiny_model_json),
                                    "--device", "cpu", "--refine-loss", "l1"])
    assert run.exit_code == 2 and "--refine-loss l1 needs the search" in run.output
    assert not (tmp_path / "x.mvt").exists() and not (tmp_path / "y.mvt").exists()


def test_auto_chooses_the_grid_unsearched_on_the_models_grid_or_coarser_then_searches_the_stream(
        tmp_path, tiny_model_json, monkeypatch):
    from vtoken.codec import factor_choice
    from vtoken.codec.factor_choice import FactorTrial, choose
    from vtoken.models import load_model

    monkeypatch.setattr(factor_choice, "past_best", lambda trials, target: False)  # every grid is tried
    src = make_clip(tmp_path / "a.mp4", frames=17, size=(64, 48), seed=3)
    kw = dict(model=tiny_model_json, chunk_frames=17, device="cpu", bpp=0.3, temporal_factor="auto")
    plain = vtoken.encode(src, tmp_path / "p.mvt", refine=0, **kw)
    searched = vtoken.encode(src, tmp_path / "r.mvt", refine=3, **kw)
    # The same unsearched trials, less the grids finer than the model's (the search gains less
    # there, factor_choice.searched_finest), and the grid they choose; the bits sent are searched.
    own = load_model(tiny_model_json).config.temporal_factor
    assert any(t["factor"] < own for t in plain.factor_trials)   # the plain encode tried finer grids
    assert searched.factor_trials == [t for t in plain.factor_trials if t["factor"] >= own]
    assert searched.temporal_factor == choose([FactorTrial(**t) for t in searched.factor_trials], 0.3) >= own
    assert vtoken.info(tmp_path / "r.mvt")["extra"]["refine"] == 3
    assert (tmp_path / "r.mvt").read_bytes() != (tmp_path / "p.mvt").read_bytes()
    frames = np.concatenate(list(vtoken.decode_frames(tmp_path / "r.mvt", model=tiny_model_json, device="cpu")))
    assert frames.shape == (17, 48, 64, 3)


def test_auto_searches_by_default_and_a_fixed_grid_does_not(tmp_path, tiny_model_json):
    src = make_clip(tmp_path / "a.mp4", frames=17, size=(64, 48), seed=8)
    kw = dict(model=tiny_model_json, chunk_frames=17, device="cpu", bpp=0.3)

    def extra(name):
        return vtoken.info(tmp_path / name)["extra"]

    vtoken.encode(src, tmp_path / "a.mvt", temporal_factor="auto", **kw)
    assert extra("a.mvt")["refine"] == defaults.REFINE_AUTO == 2 and extra("a.mvt")["refine_method"] == "flip"
    vtoken.encode(src, tmp_path / "o.mvt", temporal_factor="auto", refine=0, **kw)  # told: off
    vtoken.encode(src, tmp_path / "f.mvt", **kw)  # the model's grid
    assert "refine" not in extra("o.mvt") and "refine" not in extra("f.mvt") and defaults.REFINE == 0
    cli = ["--model", str(tiny_model_json), "--device", "cpu", "--bpp", "0.3", "--chunk-frames", "17"]
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "c.mvt"), "--temporal-factor", "auto", *cli])
    assert run.exit_code == 0, run.output
    assert extra("c.mvt")["refine"] == 2
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "d.mvt"), "--temporal-factor", "auto",
                                    "--refine", "0", *cli])
    assert run.exit_code == 0, run.output
    assert "refine" not in extra("d.mvt")
    # The default search takes a loss; without auto there is none to take it.
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "l.mvt"), "--temporal-factor", "auto",
                                    "--refine-loss", "l1", *cli])
    assert run.exit_code == 0, run.output
    assert extra("l.mvt")["refine_loss"] == "l1"
    run = CliRunner().invoke(main, ["encode", str(src), str(tmp_path / "m.mvt"), "--refine-loss", "l1", *cli])
    assert run.exit_code == 2 and "--refine-loss l1 needs the search" in run.output
    assert not (tmp_path / "m.mvt").exists()
