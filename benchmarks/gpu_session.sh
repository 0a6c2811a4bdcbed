#!/usr/bin/env bash
# The GPU machine's steps: the checks, speed and training of a GPU session, each one device call (10 minutes at most).
# See DEVELOPERS.md "A GPU session". Runs in the repository root on the GPU machine:
#
#   setup        carry ["wheels", "data/eval"] (made here by `make gpu-wheels eval-data EVAL_VIDEOS=DIR`): install
#   checks       GPU test + each eval clip encoded and decoded on CUDA; the .mvt files, a log and
#                their bit hashes to $OUT (compare: python benchmarks/stream_hashes.py here)
#   speed [ARGS] benchmarks/speed.py on CUDA, one configuration per run (ARGS: its switches)
#   train [ARGS] after setup on the same warm machine; carry ["data/gpu-train", "vtoken/metrics/weights"]
#                (made here by `vtoken train pack-data`; ARGS: `--data data/gpu-train` and any other
#                switch of the train command): CONFIG (patch-h100.json) from the default's weights
#                for MINUTES (6), resuming runs/gpu where the machine kept it; its EMA weights
#                (`vtoken train slim`), log and train.jsonl to $OUT, for `vtoken train export` here
#
# Installed packages stay while the machine is warm, so setup runs once per warm machine.
set -euo pipefail
OUT=${OUT:-out/gpu}
DEVICE=${DEVICE:-cuda}        # cpu to rehearse a step here
CLIPS=${CLIPS:-data/eval/video}
mkdir -p "$OUT"
step=${1:?usage: gpu_session.sh setup|checks|speed [speed.py switches]|train [train switches]}
shift

case "$step" in
setup)
    # setuptools for the editable install: it maps vtoken.bitstream to the top-level bitstream/.
    # (An image whose Python is "externally managed" would refuse a plain pip install.)
    export PIP_BREAK_SYSTEM_PACKAGES=1
    pip install -q --no-deps wheels/*.whl
    pip install -q --no-deps --no-build-isolation -e .
    python -c "import torch, av, vtoken; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'av', av.__version__)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    ;;
checks)
    # At most 8 files come back from the machine: the .mvt files, one log and the hashes.
    log="$OUT/checks.txt"
    python -m pytest -q -p no:cacheprovider -m gpu tests/test_codec.py 2>&1 | tail -3 | tee "$log"
    tmp=$(mktemp -d)
    for clip in "$CLIPS"/*; do
        name=$(basename "${clip%.*}")
        vtoken encode "$clip" "$OUT/$name.mvt" --device "$DEVICE" --json -y > "$tmp/encode.json"
        vtoken info "$OUT/$name.mvt" --json > "$tmp/info.json"
        vtoken decode "$OUT/$name.mvt" -o "$tmp/$name.mp4" --device "$DEVICE" --json -y > "$tmp/decode.json"
        python -c '
import json, sys
tmp, name = sys.argv[1:3]
e, d, i = (json.load(open(f"{tmp}/{k}.json")) for k in ("encode", "decode", "info"))
print("{0}: {1[width]}x{1[height]} {2[frames]} frames -> {3[frames]} decoded, {2[bpp]:.4f} bpp, "
      "encode {2[fps]:.1f} fps ({2[precision]}), decode {3[fps]:.1f} fps ({3[precision]}) on {3[device]}; "
      "stage seconds: encode {2[timings]}, decode {3[timings]}".format(name, i, e, d))
' "$tmp" "$name" | tee -a "$log"
    done
    python benchmarks/stream_hashes.py "$OUT"/*.mvt | tee "$OUT/hashes-gpu-machine.jsonl"
    ;;
speed)
    python benchmarks/speed.py --device "$DEVICE" "$@"
    ;;
train)
    # vtoken.train imports the codec, so av and constriction must be installed (setup, on this
    # warm machine); fail at once rather than minutes into the call.
    python -c "import av, constriction, safetensors" 2>/dev/null \
        || { echo "train: run setup on this machine first (vtoken.train needs av, constriction, safetensors)" >&2; exit 2; }
    run=runs/gpu
    resume=()
    [ -d "$run/checkpoints" ] && resume=(--resume)
    status=0
    python -m vtoken.train.cli --config "${CONFIG:-vtoken/train/configs/patch-h100.json}" --out "$run" \
        --device "$DEVICE" --max-minutes "${MINUTES:-6}" ${resume[@]+"${resume[@]}"} "$@" > "$OUT/train.log" 2>&1 \
        || status=$?
    tail -3 "$OUT/train.log"
    # The EMA weights are what survives a machine that goes cold: write them every call, also
    # after a failed run that left a checkpoint.
    if [ -d "$run/checkpoints" ]; then
        python -m vtoken.train.cli slim "$run" "$OUT/ema"
        cp "$run/train.jsonl" "$OUT/"
    fi
    exit "$status"
    ;;
*)
    echo "unknown step $step" >&2
    exit 2
    ;;
esac
