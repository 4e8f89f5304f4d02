#!/usr/bin/env bash
# The device check for a machine with a GPU: prints `facegpu info`, runs the kernel tests (every WGSL
# kernel against its CPU twin in both kernel shapes, the backward ops against finite differences, MTCNN
# against facenet's detections, the network against TensorFlow's embeddings in f32 and f16) on the
# adapter wgpu picks, runs the benches on it (embedding in the GPU shape, the CPU-driver shape and f16),
# and writes one JSON summary.
#
#   bash benches/gpu_check.sh                 # summary in gpu_check.json (OUT=... to move it)
#   FACEGPU_ADAPTER=<name part> bash benches/gpu_check.sh     # another adapter
#
# It fails when the adapter is a CPU driver (lavapipe/llvmpipe, SwiftShader, WARP) unless ALLOW_CPU=1:
# on a GPU machine that means the GPU is not reachable through Vulkan/Metal/DX12, and `facegpu info`
# says why. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check.json}"
REPS="${REPS:-5}"
FIX="${FIXTURES:-../shared/fixtures}"
MODEL="${MODEL:-$FIX/facenet-20170512-110547}"
LOG="${TMPDIR:-/tmp}/facegpu-gpu-check.log"
FEATURES=""
command -v nasm >/dev/null 2>&1 && FEATURES="--features jpeg-simd"
cargo build --release -q $FEATURES
B=./target/release/facegpu

$B info >&2
INFO=$($B info --json)
case "$INFO" in
    *'"device_type":"Cpu"'*)
        [ "${ALLOW_CPU:-0}" = 1 ] || { echo "gpu_check: the adapter is a CPU driver (see above); ALLOW_CPU=1 runs anyway" >&2; exit 1; } ;;
esac

# The kernel tests on this adapter; each file's counts go into the summary.
: > "$LOG"
for t in platform kernels backward mtcnn simd inception_resnet_v1; do
    echo "== tests/$t.rs" >&2
    if FACEGPU_REQUIRE_GPU=1 cargo test --release -q $FEATURES --test "$t" >> "$LOG" 2>&1; then :; else echo "tests/$t.rs failed (see $LOG)" >&2; fi
    grep "^test result" "$LOG" | tail -1 | sed "s/^/$t: /" >&2
    echo "== end $t" >> "$LOG"
done

bench() { "$B" "$@" --json 2>/dev/null || echo null; }
echo "== benches" >&2
KERNELS=$(bench bench kernels --batch-size 32 --reps "$REPS")
EMBED1=$(bench bench embed --model "$MODEL" --device gpu --batch-size 1 --reps "$REPS")
EMBED32=$(bench bench embed --model "$MODEL" --device gpu --batch-size 32 --reps "$REPS")
EMBED32_CPU_SHAPE=$(FACEGPU_KERNELS=cpu-driver bench bench embed --model "$MODEL" --device gpu --batch-size 32 --reps "$REPS")
EMBED32_F16=$(FACEGPU_F16=1 bench bench embed --model "$MODEL" --device gpu --batch-size 32 --reps "$REPS")
TRAIN=$(bench bench train --batch-size 32 --reps 3)
mapfile -t PHOTOS < <(find "$FIX/faces/deepface" -name '*.jpg' 2>/dev/null | sort)
DETECT=null
[ ${#PHOTOS[@]} -gt 0 ] && DETECT=$(bench bench detect --detect-device gpu --reps "$REPS" "${PHOTOS[@]}")

python3 - "$OUT" "$LOG" "$INFO" "$KERNELS" "$EMBED1" "$EMBED32" "$EMBED32_CPU_SHAPE" "$EMBED32_F16" "$TRAIN" "$DETECT" <<'PY'
import json, platform, re, subprocess, sys, time
out, log, info, kernels, embed1, embed32, embed32_cpu_shape, embed32_f16, train, detect = sys.argv[1:]
# Each file's results end at its "== end" marker, in the order they ran.
order = ["platform", "kernels", "backward", "mtcnn", "simd", "inception_resnet_v1"]
blocks = open(log).read().split("== end ")
per_file = {}
for name, block in zip(order, blocks):
    results = re.findall(r"test result: (\w+)\. (\d+) passed; (\d+) failed", block)
    per_file[name] = {"passed": sum(int(p) for _, p, _ in results), "failed": sum(int(f) for _, _, f in results),
                      "ok": bool(results) and all(r == "ok" for r, _, _ in results)}
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    gpu = None
summary = {
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "host": {"machine": platform.machine(), "system": platform.platform(), "nvidia_smi": gpu},
    "info": json.loads(info),
    "tests": per_file,
    "benches": {k: json.loads(v) for k, v in
                [("kernels", kernels), ("embed_batch1", embed1), ("embed_batch32", embed32),
                 ("embed_batch32_cpu_driver_shape", embed32_cpu_shape), ("embed_batch32_f16", embed32_f16),
                 ("train_batch32", train), ("detect_deepface", detect)]},
}
json.dump(summary, open(out, "w"), indent=1)
ips = lambda k: (summary["benches"][k] or {}).get("images_per_s")
print(json.dumps({"tests": per_file, "embed_batch32_images_per_s": ips("embed_batch32"),
                  "cpu_driver_shape": ips("embed_batch32_cpu_driver_shape"), "f16": ips("embed_batch32_f16"),
                  "train_images_per_s": (summary["benches"]["train_batch32"] or {}).get("train_images_per_s")}))
print(f"summary: {out}", file=sys.stderr)
PY
