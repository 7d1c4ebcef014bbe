#!/usr/bin/env bash
# OpenMMLab's LIIF table in one command: Set5, Set14 (GTmod12) and DIV2K valid at x2 x3 x4 x6 x18
# x30 under MMEditing's protocol (LR made on the fly by PIL bicubic, RGB, border = scale,
# prediction rounded to 8 bits; configs/test-mmagic, docs/openmmlab.md); ends with a markdown table.
# MODEL may be an OpenMMLab checkpoint as downloaded (e.g.
# liif_edsr_norm_c64b16_g1_1000k_div2k_20210715-ab7ce3fc.pth), a converted one, or any other.
#
#   bash scripts/test-mmagic.sh MODEL|bicubic [GPU]
#
# DATA_ROOT replaces ./load in the configs (default load): benchmark/Set5/HR, benchmark/Set14/HR,
# div2k/DIV2K_valid_HR (scripts/download_data.sh). A dataset that is not there is reported and
# skipped. Results: save/test/<run>/<checkpoint stem>/mmagic-<data root name>/ (scripts/eval_common.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh
eval_setup mmagic "$@"

SCALES=(2 3 4 6 18 30)
for set in Set5 Set14; do
    eval_set_missing "$set" "$DATA_ROOT/benchmark/$set" && continue
    lower=$(echo "$set" | tr '[:upper:]' '[:lower:]')
    for s in "${SCALES[@]}"; do eval_one "$set" "$s" "configs/test-mmagic/test-$lower-$s.yaml"; done
done
if ! eval_set_missing DIV2K "$DATA_ROOT/div2k/DIV2K_valid_HR"; then
    for s in "${SCALES[@]}"; do eval_one DIV2K "$s" "configs/test-mmagic/test-div2k-$s.yaml"; done
fi
eval_table "$MODEL: PSNR (dB) / SSIM, RGB, border scale, 8-bit prediction (MMEditing's protocol)"
