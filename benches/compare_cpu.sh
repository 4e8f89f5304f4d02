#!/usr/bin/env bash
# facegpu's CPU backend and its wgpu path against onnxruntime and facenet-pytorch, in one run on this
# machine: embed at batch 1 and 32, and MTCNN on the 61 deepface photos (facegpu in process and as a
# whole `facegpu detect` run, decoding and start-up included; facenet-pytorch's MTCNN in process).
# onnxruntime runs the same network built from the facenet model (benches/onnxruntime_bench.py),
# facenet-pytorch its InceptionResnetV1 with random weights; each in a throwaway venv (ORT_VENV,
# TORCH_VENV; created on first use). Not part of CI.
#
#   bash benches/compare_cpu.sh          # REPS=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
FIX="${FIXTURES:-../shared/fixtures}"
MODEL="${MODEL:-$FIX/facenet-20170512-110547}"
REPS="${REPS:-5}"
ORT_VENV="${ORT_VENV:-${TMPDIR:-/tmp}/facegpu-ort-venv}"
TORCH_VENV="${TORCH_VENV:-${TMPDIR:-/tmp}/facegpu-compare-venv}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/facegpu-xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
if [ ! -x "$ORT_VENV/bin/python" ]; then
    python3 -m venv "$ORT_VENV" && "$ORT_VENV/bin/pip" install -q onnx onnxruntime numpy
fi
if [ ! -x "$TORCH_VENV/bin/python" ] || ! "$TORCH_VENV/bin/python" -c 'import facenet_pytorch' 2>/dev/null; then
    python3 -m venv "$TORCH_VENV" && "$TORCH_VENV/bin/pip" install -q torch facenet-pytorch pillow
fi
# As ./run builds it: libjpeg-turbo's SIMD decoder where nasm is installed.
FEATURES=""
command -v nasm >/dev/null 2>&1 && FEATURES="--features jpeg-simd"
cargo build --release -q $FEATURES
B=./target/release/facegpu
ST="${TMPDIR:-/tmp}/facegpu-compare-model.safetensors"
[ -f "$ST" ] || $B convert --model "$MODEL" --out "$ST" >/dev/null

lscpu | grep -E "^Model name|^CPU\(s\)|^Thread" >&2
for dev in cpu gpu; do
    for b in 1 32; do
        echo "facegpu $dev batch $b: $($B bench embed --model "$MODEL" --device $dev --batch-size $b --reps "$REPS" --json 2>/dev/null)"
    done
done
mapfile -t PHOTOS < <(find "$FIX/faces/deepface" -name '*.jpg' | sort)
for dev in cpu gpu; do
    echo "facegpu detect $dev in process: $($B bench detect --detect-device $dev --reps "$REPS" --json "${PHOTOS[@]}" 2>/dev/null)"
    t0=$(date +%s.%N)
    $B detect --detect-device $dev --json "${PHOTOS[@]}" >/dev/null 2>&1
    echo "facegpu detect $dev whole run: $(python3 -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) * 1e3 / int(sys.argv[3]):.1f} ms per photo')" "$t0" "$(date +%s.%N)" "${#PHOTOS[@]}")"
done
echo "onnxruntime: $("$ORT_VENV/bin/python" benches/onnxruntime_bench.py "$ST" --reps "$REPS")"
echo "facenet-pytorch: $("$TORCH_VENV/bin/python" - "$REPS" "${PHOTOS[@]}" <<'PY'
import json, os, sys, time
import torch
from facenet_pytorch import InceptionResnetV1
torch.set_num_threads(os.cpu_count() or 1)
net = InceptionResnetV1().eval()
reps = int(sys.argv[1])
out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
with torch.no_grad():
    for b in (1, 32):
        x = torch.randn(b, 3, 160, 160)
        net(x)
        times = []
        for _ in range(reps):
            t = time.perf_counter(); net(x); times.append(time.perf_counter() - t)
        out[f"embed_images_per_s_batch{b}"] = b / sorted(times)[len(times) // 2]
from facenet_pytorch import MTCNN
from PIL import Image
mtcnn = MTCNN(keep_all=True, device="cpu")
images = [Image.open(p).convert("RGB") for p in sys.argv[2:]]
def detect_all():
    return sum(0 if b is None else len(b) for b in (mtcnn.detect(im)[0] for im in images))
faces = detect_all()
times = []
for _ in range(reps):
    t = time.perf_counter(); detect_all(); times.append(time.perf_counter() - t)
out["detect_ms_per_photo"] = sorted(times)[len(times) // 2] * 1e3 / len(images)
out["detect_faces"] = faces
print(json.dumps(out))
PY
)"
