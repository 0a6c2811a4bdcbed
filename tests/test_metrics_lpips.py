"""LPIPS: pinned values on synthetic images, metric properties, use as a loss, weight handling.

The pinned values were computed by vtoken's implementation, which benchmarks/
lpips_reference_check.py showed identical (max |diff| 0) to lpips.LPIPS(net='alex') given the
same backbone; a change in the weights or the computation makes them fail."""

import json
import pickle
import shutil

import numpy as np
import pytest

from vtoken.errors import ModelError
from vtoken.metrics import build_lpips_weights as blw

torch = pytest.importorskip("torch")
HAVE_WEIGHTS = blw.existing_weights() is not None
needs_weights = pytest.mark.skipif(
    not HAVE_WEIGHTS, reason="LPIPS weights not built: run `make install` "
    "(python -m vtoken.metrics.build_lpips_weights)")


def synth(h=64, w=96):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 255 * x / (w - 1)
    b = 255 * ((x // 8 + y // 8) % 2)
    return np.clip(np.stack([r, g, b], -1) + 0.5, 0, 255).astype(np.uint8)[None]


def pattern_noise(shape):
    idx = np.arange(np.prod(shape)).reshape(shape)
    return (idx * 7919 % 25) - 12.0


def pairs():
    a = synth()
    noise = np.clip(a + pattern_noise(a.shape), 0, 255).astype(np.uint8)
    dist = np.concatenate([noise, np.roll(a, 2, axis=2), 255 - a])
    return np.concatenate([a, a, a]), dist


PINNED = [0.0006834339583292603, 0.07727211713790894, 0.21069613099098206]


@needs_weights
def test_pinned_values():
    from vtoken.metrics import lpips_frames

    ref, dist = pairs()
    got = lpips_frames(ref, dist, batch=2)
    assert got.dtype == np.float64 and got.shape == (3,)
    assert got == pytest.approx(PINNED, rel=1e-5, abs=1e-7)


@needs_weights
def test_a_reference_scored_many_times_keeps_its_features_and_the_same_values(monkeypatch):
    from vtoken.metrics import lpips
    from vtoken.metrics.lpips import ReferenceLPIPS

    ref, dist = pairs()
    reference = ReferenceLPIPS(ref, batch=2)
    assert reference._feats is not None
    # The reference is never recomputed: only the frames scored go through the network.
    seen = []
    features = reference.model.features
    monkeypatch.setattr(reference.model, "features", lambda x: seen.append(len(x)) or features(x))
    got = reference(dist)
    assert seen == [2, 1]  # the 3 frames scored, in batches of 2, and no reference frame
    monkeypatch.undo()
    assert got == pytest.approx(PINNED, rel=1e-5, abs=1e-7)
    for other in (dist, dist[::-1].copy()):
        assert reference(other) == pytest.approx(lpips.lpips_frames(ref, other, batch=2), rel=1e-6, abs=1e-9)
    # Too large to keep: every call scores as lpips_frames does.
    small = ReferenceLPIPS(ref, batch=2, max_mib=0.01)
    assert small._feats is None
    assert small(dist) == pytest.approx(PINNED, rel=1e-5, abs=1e-7)
    with pytest.raises(ValueError):
        reference(dist[:2])


@needs_weights
def test_block_lpips_averages_to_the_frames_lpips():
    """ReferenceLPIPS.blocks (the plane maps' measure): one block is the frame's LPIPS; the
    mean of a 2 x 2 grid is too, here where every layer's map divides evenly; more blocks see
    where the damage is."""
    from vtoken.metrics.lpips import ReferenceLPIPS

    ref, dist = pairs()
    for max_mib in (512, 0.01):  # features kept, or recomputed
        reference = ReferenceLPIPS(ref, batch=2, max_mib=max_mib)
        assert reference.blocks(dist, (1, 1))[:, 0, 0] == pytest.approx(PINNED, rel=1e-5, abs=1e-7)
    hurt = ref.copy()
    hurt[:, : ref.shape[1] // 2, : ref.shape[2] // 2] = 0  # the top-left quarter only
    grid = reference.blocks(hurt, (2, 2))
    assert (grid[:, 0, 0] > 3 * grid[:, 1, 1]).all()


@needs_weights
def test_identity_and_symmetry():
    from vtoken.metrics import lpips_frames

    ref, dist = pairs()
    assert np.all(lpips_frames(ref, ref) == 0.0)
    assert np.allclose(lpips_frames(ref, dist), lpips_frames(dist, ref), rtol=1e-6, atol=1e-8)


@needs_weights
def test_loss_use_is_differentiable_and_frozen():
    from vtoken.metrics import LPIPS

    model = LPIPS()
    model.train()
    assert not model.training and not model.net.training
    assert all(not p.requires_grad for p in model.parameters())
    ref, dist = pairs()
    x0 = torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 127.5 - 1
    x1 = (torch.from_numpy(dist).permute(0, 3, 1, 2).float() / 127.5 - 1).requires_grad_(True)
    loss = model(x0, x1)
    assert loss.shape == (3,)
    loss.sum().backward()
    assert x1.grad is not None and float(x1.grad.abs().max()) > 0
    assert all(p.grad is None for p in model.parameters())


@needs_weights
def test_rejects_mismatched_shapes():
    from vtoken.metrics import LPIPS

    with pytest.raises(ValueError, match="one shape"):
        LPIPS()(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 32))


def test_missing_weights_say_make_install(tmp_path, monkeypatch):
    from vtoken.metrics import lpips as lp

    monkeypatch.setattr(lp, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match="make install"):
        lp.weights_path()


@needs_weights
def test_hash_mismatch_is_refused(tmp_path, monkeypatch):
    from vtoken.metrics import lpips as lp

    shutil.copy(blw.existing_weights(), tmp_path / f"{blw.WEIGHTS_STEM}-00000000.safetensors")
    monkeypatch.setattr(lp, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ModelError, match="sha256"):
        lp.weights_path()


def test_flax_kernels_become_torch_oihw():
    rng = np.random.default_rng(0)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    tree = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.normal(size=s).astype(np.float32),
                                        "bias": rng.normal(size=s[-1]).astype(np.float32)}
                          for i, s in enumerate(shapes)}}
    out = blw.convert_backbone(tree)
    k = tree["AlexNet_0"]["Conv_1"]["kernel"]
    w = out["net.conv2.weight"]
    assert w.shape == (192, 64, 5, 5)
    assert w[7, 3, 1, 4] == k[1, 4, 3, 7]  # torch [out, in, y, x] = flax [y, x, in, out]
    assert np.array_equal(out["net.conv5.bias"], tree["AlexNet_0"]["Conv_4"]["bias"])


def test_checkpoint_unpickler_refuses_code():
    import io

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    data = pickle.dumps({"x": Evil()})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        blw._NumpyOnlyUnpickler(io.BytesIO(data)).load()
    arrays = {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}
    back = blw._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arrays))).load()
    assert np.array_equal(back["k"], arrays["k"])


@needs_weights
def test_build_is_idempotent():
    before = blw.existing_weights()
    assert blw.build() == before  # found, nothing rebuilt
    from safetensors import safe_open

    with safe_open(str(before), "np") as f:
        meta = json.loads(f.metadata()["vtoken"])
        assert meta["net"] == "alex" and meta["version"] == "0.1"
        assert f.get_tensor("net.conv1.weight").shape == (64, 3, 11, 11)
        assert f.get_tensor("lin4.weight").shape == (1, 256, 1, 1)
