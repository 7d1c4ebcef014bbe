#!/usr/bin/env bash
# The real-world table: Set5, Set14, B100, Urban100, DIV2K valid (and the sample sets) at x2 x3 x4
# x2.5 on LR images degraded by Real-ESRNet's high-order model (fixed seeds), made beforehand by
#   python scripts/make_degraded_testset.py load/benchmark/Set5/HR      (each set's HR folder)
# Benchmark sets: luminance PSNR, border ceil(scale); DIV2K: RGB, border ceil(scale) + 6. Ends
# with a markdown table (PSNR / SSIM); with several models, one table comparing them.
#
#   bash scripts/test-real.sh [--gpu G] [--set KEY=VALUE]... MODEL|bicubic|NAME=CKPT...
#   DATA_ROOT=load/sample bash scripts/test-real.sh pretrained/edsr-baseline-liif-real.pth   # the sample sets
#
# A set without its LR_degraded folder is reported and skipped (the line says which command makes
# it); when none is there the script says where it looked, exit 2. Results:
# save/test/<run>/<checkpoint stem>/real-<data root name>/ (scripts/eval_common.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh

run_sets() {
    local set lower hr lr s
    for set in Set5 Set14 B100 Urban100 DIV2K Sample5 Sample3; do
        lower=$(echo "$set" | tr '[:upper:]' '[:lower:]')
        if [ "$set" = DIV2K ]; then hr=$DATA_ROOT/div2k/DIV2K_valid_HR; lr=$DATA_ROOT/div2k/DIV2K_valid_LR_degraded
        else hr=$DATA_ROOT/benchmark/$set/HR; lr=$DATA_ROOT/benchmark/$set/LR_degraded
        fi
        [ "$FIRST_MODEL" = 1 ] && LOOKED+=("$lr")
        if [ ! -d "$lr" ]; then
            [ "$FIRST_MODEL" = 1 ] && [ -d "$hr" ] &&
                printf '%-12s skipped: no %s (python scripts/make_degraded_testset.py %s)\n' "$set" "$lr" "$hr"
            continue
        fi
        for s in 2 3 4 2.5; do eval_one "$set" "$s" "configs/test/real/test-$lower-real-$s.yaml"; done
    done
}

MISSING_HINT="make them with \`python scripts/make_degraded_testset.py HR_FOLDER\` (e.g. load/benchmark/Set5/HR), or set DATA_ROOT, e.g. DATA_ROOT=load/sample"
eval_main real "real-world degradations (Real-ESRNet, seed 0), PSNR (dB) / SSIM" "$@"
