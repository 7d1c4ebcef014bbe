#!/usr/bin/env bash
# Set5, Set14, B100, Urban100 at x2 x3 x4 (the pack's LR_bicubic) and x6 x8 (downsampled from
# HR), luminance PSNR with a border of scale; ends with a table (PSNR / SSIM): one row per model.
#
#   bash scripts/test-benchmark.sh MODEL|bicubic [GPU]
#   bash scripts/test-benchmark.sh [--gpu G] [--cell-scale-max S] [--set K=V] bicubic LIIF=a.pth LTE=b.pth
#   DATA_ROOT=load/sample bash scripts/test-benchmark.sh bicubic   # the sample sets instead
#
# DATA_ROOT replaces ./load in the configs (default load). A dataset that is not there is
# reported and skipped; when none is there the script says where it looked, exit 2. The sample
# sets (Sample5, Sample3; configs/test/sample) are evaluated when DATA_ROOT/benchmark holds them.
# --cell-scale-max and --set go to every test.py run. The first failing evaluation stops the
# script (exit 1). Results: save/test/<run>/<checkpoint stem>/benchmark-<data root>/, and with
# several models one comparison table (scripts/eval_common.sh says where).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh

run_sets() {
    local set lower s
    for set in Set5 Set14 B100 Urban100; do
        eval_set_missing "$set" "$DATA_ROOT/benchmark/$set" && continue
        lower=$(echo "$set" | tr '[:upper:]' '[:lower:]')
        for s in 2 3 4 6 8; do eval_one "$set" "$s" "configs/test/test-$lower-$s.yaml"; done
    done
    for set in Sample5 Sample3; do
        [ "$FIRST_MODEL" = 1 ] && LOOKED+=("$DATA_ROOT/benchmark/$set")
        [ -d "$DATA_ROOT/benchmark/$set" ] || continue
        lower=$(echo "$set" | tr '[:upper:]' '[:lower:]')
        for s in 2 3 4 6 8; do eval_one "$set" "$s" "configs/test/sample/test-$lower-$s.yaml"; done
    done
}

eval_main benchmark "PSNR (dB) / SSIM, luminance (Y), border scale" "$@"
