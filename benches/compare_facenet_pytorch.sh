#!/usr/bin/env bash
# facegpu against facenet-pytorch in one run on this machine: embed at batch 1 and 32, a training step at
# batch 32 (Adam), and MTCNN on the deepface photos. facenet-pytorch runs on the CPU with random weights
# in a throwaway venv (VENV, created on first use); facegpu runs on the adapter wgpu picks. Not part of CI.
#
#   bash benches/compare_facenet_pytorch.sh            # REPS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-${TMPDIR:-/tmp}/facegpu-compare-venv}"
REPS="${REPS:-3}"
FIX="${FIXTURES:-../shared/fixtures}"
MODEL="${MODEL:-$FIX/facenet-20170512-110547}"
mapfile -t PHOTOS < <(find "$FIX/faces/deepface" -name '*.jpg' | sort)
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/facegpu-xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import facenet_pytorch' 2>/dev/null; then
    echo "installing torch and facenet-pytorch into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch facenet-pytorch
fi
cargo build --release -q
B=./target/release/facegpu

echo "facegpu (${#PHOTOS[@]} photos for detect, REPS=$REPS) ..." >&2
E1=$($B bench embed --model "$MODEL" --batch-size 1 --reps "$REPS" --json)
E32=$($B bench embed --model "$MODEL" --batch-size 32 --reps "$REPS" --json)
T32=$($B bench train --batch-size 32 --reps 2 --json)
D=$($B bench detect --reps "$REPS" --json "${PHOTOS[@]}")
echo "facenet-pytorch ..." >&2
P=$(REPS="$REPS" "$VENV/bin/python" benches/facenet_pytorch_bench.py "${PHOTOS[@]}")

python3 - "$E1" "$E32" "$T32" "$D" "$P" <<'PY'
import json, sys
e1, e32, t32, d, p = (json.loads(a) for a in sys.argv[1:])
rows = [
    ("embed, batch 1 (images/s)", e1["images_per_s"], p["embed_images_per_s_batch1"], True),
    ("embed, batch 32 (images/s)", e32["images_per_s"], p["embed_images_per_s_batch32"], True),
    ("training step, batch 32 (images/s)", t32["train_images_per_s"], p["train_images_per_s"], True),
    ("MTCNN detect (ms per photo)", d["ms_per_image"], p["detect_ms_per_image"], False),
]
print(f"facegpu adapter: {e32['adapter']};  facenet-pytorch: torch {p['torch']} on {p['threads']} CPU threads")
print(f"{'':38} {'facegpu':>10} {'facenet-pytorch':>16} {'ratio':>8}")
for name, ours, theirs, higher_better in rows:
    ratio = ours / theirs if higher_better else theirs / ours
    print(f"{name:38} {ours:10.2f} {theirs:16.2f} {ratio:8.3f}")
print("ratio: facegpu's speed as a fraction of facenet-pytorch's (above 1: facegpu is faster)")
print(f"detect: facegpu found {d['faces']} faces in {d['photos']} photos, facenet-pytorch {p['detect_faces']} in {p['detect_photos']}")
PY
