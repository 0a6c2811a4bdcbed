"""Defaults shared by the CLI, the library API and the benchmark: one definition each.

No imports here (the container library and `vtoken --help` read these without torch)."""

# Codec: a key chunk (a seek point, where the causal stream and the entropy context restart)
# every KEY_INTERVAL chunks; key chunks hold CHUNK_FRAMES = 1 + 4n frames, the chunks after
# them CHUNK_FRAMES - 1. A key chunk every 4 chunks of 33 frames (129 frames, about 5 s at 25
# fps) keeps seeking cheap while a still scene pays its first frame only once in a while.
# 33 rather than 17 frames (the same key spacing with 8 chunks): fewer chunk segments to code
# (LPIPS BD-rate -1.4 to -2.2 % on the model's grid, -3.4 to -4.2 % at factor 16, on 97-frame
# cuts of the eval clips) and room for factor 32 (every 8th frame coded); since the model
# takes a chunk a latent frame at a time (codec/slices.py) a 33-frame chunk needs less memory
# than a 17-frame one did before (1080p: benchmarks/README.md).
CHUNK_FRAMES = 33
KEY_INTERVAL = 4

# The encoder's hysteresis (vtoken/codec/hold.py): a predicted latent frame's bit is held, keeps
# the previous latent frame's value where the coder predicts it from, when abs(z) +
# HOLD_PREV_WEIGHT * abs(that previous value) is below HOLD; the threshold applies in full up to
# HOLD_FULL_PLANES kept planes, HOLD_FULL_PLANES / planes of it above. Measured (LPIPS BD-rate,
# benchmarks/README.md, levers 49 and 51): on the eval bench 0.3 gave -1.9 / -4.3 / -8.7 %
# against no hold (cockatoo / cityCC0 / VID_20191220_170832) and 0.5 a further +1.5 / -1.5 /
# -3.8 %; benchmarks/hold_rules.py at the bench's plane counts has 0.5 ahead of 0.3 on 6 of 7
# clips, all but cockatoo (-1.3 against -2.0 %). Weighing the previous value in (0.5, with a
# threshold of 1.0) lost to 0.5 on every eval clip.
HOLD = 0.5
HOLD_PREV_WEIGHT = 0.0
HOLD_FULL_PLANES = 8

# The encoder's search (vtoken/codec/refine.py, `vtoken encode --refine N`): N steps on each
# latent frame's bits against the loss the model was trained with (REFINE_L1 x L1 + REFINE_LPIPS
# x LPIPS of the decoded frames). Off by default on a fixed grid: a step is a decode with its
# backward pass, and LPIPS; 33 frames at 640x360 on 2 CPU cores took 7-10 s with 1 step and 10-13 s
# with 2 (bf16, codec/precision.py) where the unsearched encode takes 2-3 s. The gain grows with
# each doubling of the steps (benchmarks/results/refine_steps_cpu.md, refine_flip_cpu.md).
REFINE = 0
# With `--temporal-factor auto` an encode searches REFINE_AUTO steps unless told otherwise
# (validate.refine_default). Auto's trials code the first chunk on several grids, most of its
# time, and a searched auto skips the grids finer than the model's, so the search costs little
# there: cockatoo at 0.016 / 0.1 bpp took 21.9 / 35.7 s unsearched, 22.9 / 27.9 s with 2 steps
# (33 frames at 640x360, the 2-core CPU, wall clock with the model's load). On the eval bench
# the bits auto needs beyond x265's for the same LPIPS fell from +171.8 % to +111.8 % with 1
# step (BD-metric +0.134 -> +0.099) and +105.7 % with 2 (+0.092; 23 % more encode time than 1
# step over its 21 points; benchmarks/results/eval-cpu-auto-refine{1,2}-flip/).
REFINE_AUTO = 2
REFINE_MAX = 1000
# How the steps choose (refine.search_split). "flip": the first REFINE_FLIP_STEPS steps flip the
# bits whose flip lowers the loss most to first order, weighed by the encoder's doubt
# (REFINE_FLIP_FRACTION of the kept bits a step, REFINE_FLIP_TOTAL in all, each bit once), and
# the steps after them are Adam's; "adam": every step moves the values by Adam at REFINE_LR. On
# the eval clips (model grid, 2-64 planes, against the unsearched stream) 1 flip step found
# -26.1 / -27.8 / -14.5 % bits at equal LPIPS (bf16), where 1 Adam step found -13.5 / -15.0 /
# -0.7 % (fp32) and 4 found -29.9 / -29.9 / -13.3 % (bf16; benchmarks/results/refine_flip_cpu.md).
REFINE_METHODS = ("flip", "adam")
REFINE_METHOD = "flip"
REFINE_FLIP_FRACTION = 0.03
REFINE_FLIP_TOTAL = 0.04
REFINE_FLIP_STEPS = 2
REFINE_LR = 0.08
REFINE_L1 = 5.0
REFINE_LPIPS = 8.0
# What the search minimises (`vtoken encode --refine-loss`; refine.loss_weights). "lpips" is
# the training loss (REFINE_L1 x L1 + REFINE_LPIPS x LPIPS); "l1" leaves LPIPS out and buys
# pixel fidelity instead, in about three quarters of the time per step (the eval clips, 8
# steps, against the unsearched stream: "lpips" -35 / -37 / -17 % bits at equal LPIPS and -2 /
# -2 / +8 % at equal MS-SSIM; "l1" -6 / -2 / -12 % and -33 / -40 / -27 %;
# benchmarks/results/refine_loss_cpu.md).
REFINE_LOSSES = ("lpips", "l1")
REFINE_LOSS = "lpips"
# The search's rate term: the loss one doubling of a latent frame's code length is worth. 0.5 moved
# along the curve (5-11 % fewer bytes, 0.004-0.007 worse LPIPS), 1.5 overpaid
# (benchmarks/results/refine_rate_probe_cpu.md), so it is off (refine.py; 0: the search ignores
# what its flips cost).
REFINE_RATE = 0.0
# The search's LPIPS on every REFINE_LPIPS_STRIDE-th frame of a slice per step, the offset
# moving on each step (refine.sign_search; L1 stays on every frame; 1: every frame at every
# step). At 2 the eval clips lose under a point of the search's gain (4 steps: -29.8 / -29.8 /
# -13.4 % bits at equal LPIPS against the unsearched stream, -30.6 / -30.2 / -13.8 % at 1) and
# save about a quarter of a step's time (benchmarks/results/refine_steps_cpu.md).
REFINE_LPIPS_STRIDE = 2

# Latent frames the model takes per call, by device (vtoken/codec/slices.py); a device not
# named takes a whole chunk per call. On the CPU one latent frame (4 frames) per call gave the
# lowest memory of 1, 2 and the whole chunk, at the same speed within the noise (2 threads,
# 640x360 and 1080p, benchmarks/results/slices-cpu/); a GPU is not measured sliced.
MODEL_LATENTS_PER_CALL = {"cpu": 1}

DEVICES = ("auto", "cpu", "cuda")
DEVICE = "auto"
PRECISIONS = ("auto", "fp32", "bf16")
PRECISION = "auto"

# Media files vtoken reads as videos, and as still images (lower-case suffixes).
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".m4v", ".y4m",
                              ".ogv"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

# Benchmark: frames per clip, size, vtoken plane counts, threads per baseline process. The
# plane counts are cut at the model's K (and K itself is always a point): bench_planes().
BENCH_FRAMES = 33
BENCH_SIZE = (640, 360)
BENCH_PLANES = (1, 2, 4, 8, 12, 18, 24, 32, 48, 64)
BENCH_THREADS = 2


def bench_planes(bits: int) -> tuple[int, ...]:
    """The default vtoken sweep for a model with `bits` planes: BENCH_PLANES below K, then K."""
    return tuple(p for p in BENCH_PLANES if p < bits) + (bits,)
