#!/usr/bin/env bash
# The GPU checks of issues 10, 14 and 15 as ONE prepared script, for a session that is lent a GPU machine
# (device tool: about 15 minutes in all, one command <= 10 minutes). It runs on whatever `python3` holds torch.
#
# Here (no GPU), once, from the repository root:
#     bash benchmarks/gpu_checks.sh prepare        # .gpu/: half of the getchu tar (the tree may carry <= 64 MiB)
#     SMOKE=1 OUT=/tmp/gpu-smoke bash benchmarks/gpu_checks.sh run   # the same steps on the CPU, tiny sizes
# On the device machine (device tool `run`, carry [".gpu"], timeout_s 580):
#     PYTHONUNBUFFERED=1 bash benchmarks/gpu_checks.sh run
# What comes back in $OUT: gpu.jsonl (one JSON line per measurement), run64.log, grids of the 64 px run.
#   (a) the 64 px getchu run for ~5 minutes (faces64 preset, bf16 autocast: the bf16 path end to end), img/s
#       from its tick lines and its grids;                                            (issue 10)
#   (b) train_speed: stylegan2-256 at 256 px, bf16 and fp32 (goal <= 6 s/kimg);      (issues 10, 15)
#   (c) train_speed: biggan-128 at the seed's batch (32 x 8 accumulations);          (issue 14)
#   (d) loader_throughput at 256 px with the batches moved to the GPU.                (issue 15)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
export PYTHONPATH=$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}
GPU_DIR=.gpu
TAR_SRC=${TAR_SRC:-../shared/data/getchu_faces_64.tar}

prepare() {
    # every other face of the real tar: ~43 MB, inside the 64 MiB the device tool carries
    mkdir -p "$GPU_DIR"
    grep -qx "/$GPU_DIR/" .git/info/exclude 2>/dev/null || echo "/$GPU_DIR/" >>.git/info/exclude
    "$PY" - "$TAR_SRC" "$GPU_DIR/getchu_half.tar" <<'EOF'
import sys, tarfile
src, dst = sys.argv[1:]
with tarfile.open(src) as a, tarfile.open(dst, "w") as b:
    faces = sorted((m for m in a.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")), key=lambda m: m.name)
    for m in faces[::2]:
        b.addfile(m, a.extractfile(m))
print(f"{dst}: {len(faces[::2])} faces")
EOF
}

run() {
    OUT=${OUT:?set OUT (the device tool sets it)}
    mkdir -p "$OUT"
    local jsonl=$OUT/gpu.jsonl device=cuda run_s=300 steps=30 s256=stylegan2-256 b128=biggan-128 extra=()
    if [[ "${SMOKE:-0}" == 1 ]]; then  # the same commands on the CPU at toy sizes: checks the script, not speed
        device=cpu run_s=150 steps=2 s256=tiny b128=biggan-tiny extra=(--resolution 32)
    fi
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name() if torch.cuda.is_available() else '')" | tee "$OUT/env.txt"

    # (a) 64 px on the real faces, time-boxed; the trainer writes grids every tick and snapshots as it goes
    local preset64=faces64 res64=64
    [[ "${SMOKE:-0}" == 1 ]] && preset64=tiny res64=32
    "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; \
from learning_evidence import build_packs; build_packs(Path('$GPU_DIR/getchu_half.tar'), Path('$OUT/packs'))"
    timeout --signal=INT "$run_s" "$PY" benchmarks/learning_evidence.py train --preset "$preset64" \
        --resolution "$res64" --kimg 10000 --tar "$GPU_DIR/getchu_half.tar" --packs "$OUT/packs" \
        --out "$OUT/run64" --set "device=\"$device\"" --set "gpus=$([[ $device == cuda ]] && echo 1 || echo 0)" \
        --threads 0 >"$OUT/run64.log" 2>&1 || true
    "$PY" - "$OUT/run64" >>"$jsonl" <<'EOF'
import json, statistics, sys
from pathlib import Path
m = Path(sys.argv[1]) / "metrics.jsonl"
rows = [json.loads(l) for l in m.read_text().splitlines() if l.strip()] if m.exists() else []
print(json.dumps({"benchmark": "getchu64_run", "ticks": len(rows), "kimg": rows[-1]["kimg"] if rows else 0,
                  "median_img_per_s": statistics.median(r["img_per_s"] for r in rows[1:] or rows) if rows else None}))
EOF
    for g in "$OUT"/run64/grids/*.png; do :; done
    [[ -e "${g:-}" ]] && cp "$g" "$OUT/run64-last-grid.png"
    rm -rf "$OUT/run64" "$OUT/packs"  # only 8 files come back: keep the log, the JSON lines and one grid

    # (b) StyleGAN2 at 256 px: bf16 (the default on CUDA) and fp32 side by side
    for prec in bf16 fp32; do
        [[ "$device" == cpu && "$prec" == bf16 ]] && continue
        "$PY" benchmarks/train_speed.py --preset "$s256" "${extra[@]}" --device "$device" --precision "$prec" \
            --steps "$steps" --warmup 3 >>"$jsonl"
    done
    # (c) BigGAN-128 at the seed's batch settings (the preset holds them)
    "$PY" benchmarks/train_speed.py --model biggan --preset "$b128" "${extra[@]}" --device "$device" \
        --steps "$((steps / 5 + 1))" --warmup 1 >>"$jsonl"
    # (d) the training data path at 256 px
    "$PY" benchmarks/loader_throughput.py --size "$([[ $device == cuda ]] && echo 256 || echo 64)" \
        --n 256 --rounds 2 --tar "$GPU_DIR/getchu_half.tar" >"$OUT/loader.md" 2>&1 || true
    cat "$jsonl"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
