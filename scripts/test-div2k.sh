#!/usr/bin/env bash
# DIV2K validation at every scale of the paper (x2 x3 x4 from the shipped LR, x6 .. x30 from HR),
# RGB PSNR with a border of scale + 6; ends with a table (PSNR / SSIM): one row per model.
#
#   bash scripts/test-div2k.sh MODEL|bicubic [GPU]
#   bash scripts/test-div2k.sh [--gpu G] [--cell-scale-max S] [--set K=V] bicubic LIIF=a.pth LTE=b.pth
#   DATA_ROOT=load/sample bash scripts/test-div2k.sh bicubic    # the sample photos instead
#
# DATA_ROOT replaces ./load in the configs (default load). A dataset that is not there is
# reported and skipped; when none is there the script says where it looked, exit 2. When
# DATA_ROOT holds valid_HR/ (the sample layout), it is evaluated the same way
# (configs/test/sample). --cell-scale-max and --set go to every test.py run. The first failing
# evaluation stops the script (exit 1). Results: save/test/<run>/<checkpoint stem>/div2k-<data
# root>/, and with several models one comparison table (scripts/eval_common.sh says where).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh

run_sets() {
    local s
    if ! eval_set_missing DIV2K "$DATA_ROOT/div2k/DIV2K_valid_HR"; then
        for s in 2 3 4 6 12 18 24 30; do eval_one DIV2K "$s" "configs/test/test-div2k-$s.yaml"; done
    fi
    [ "$FIRST_MODEL" = 1 ] && LOOKED+=("$DATA_ROOT/valid_HR")
    if [ -d "$DATA_ROOT/valid_HR" ]; then
        for s in 2 3 4 6 12 18 24 30; do eval_one sample-valid "$s" "configs/test/sample/test-sample-valid-$s.yaml"; done
    fi
}

eval_main div2k "PSNR (dB) / SSIM, RGB, border scale+6" "$@"
