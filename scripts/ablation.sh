#!/usr/bin/env bash
# The paper's ablation (Table 3) from configs to one table: train each variant, evaluate each
# epoch-last.pth, and write a table with one row per variant (-c, -u, -e, -d).
#
#   bash scripts/ablation.sh                                   # the paper's: DIV2K, 1000 epochs each
#   bash scripts/ablation.sh configs/train-sample/ablation/train_tiny-liif-{c,u,e,d}.yaml   # seconds
#   bash scripts/ablation.sh --set epoch_max=100 CONFIG...     # --set goes to every training
#
# Each config trains into $SAVE_ROOT/_<config stem> (train_liif.py's default name); a run already
# there is resumed (or left as it is when it has reached epoch_max), so rerunning the script
# continues where it stopped. Rows are named by what tells the configs apart (their stems after
# the common prefix: -c, -u, ...). The evaluation is scripts/test-$EVAL.sh (default div2k: the
# paper's table) over all the variants: its table goes to $RESULTS_ROOT/compare/... or TABLE_DIR.
#
# Environment: SAVE_ROOT (default save), TRAIN_DATA_ROOT (train_liif.py --data-root), EVAL
# (div2k | benchmark), GPU (e.g. 0, or cpu), and those of scripts/eval_common.sh (DATA_ROOT,
# RESULTS_ROOT, TABLE_DIR, PRECISION, PYTHON).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/eval_common.sh
pick_python

SETS=()
CONFIGS=()
while [ $# -gt 0 ]; do
    case $1 in
        --set) [ $# -ge 2 ] || { echo "error: --set needs KEY=VALUE" >&2; exit 2; }; SETS+=("--set=$2"); shift 2 ;;
        --) shift; CONFIGS+=("$@"); break ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) CONFIGS+=("$1"); shift ;;
    esac
done
if [ ${#CONFIGS[@]} -eq 0 ]; then
    for v in c u e d; do CONFIGS+=("configs/train-div2k/ablation/train_edsr-baseline-liif-$v.yaml"); done
fi
SAVE_ROOT=${SAVE_ROOT:-save}
EVAL=${EVAL:-div2k}
if [ "$EVAL" != div2k ] && [ "$EVAL" != benchmark ]; then
    echo "error: EVAL must be div2k or benchmark, got '$EVAL'" >&2
    exit 2
fi
train_args=("--save-root=$SAVE_ROOT")
[ -n "${TRAIN_DATA_ROOT:-}" ] && train_args+=("--data-root=$TRAIN_DATA_ROOT")
[ -n "${GPU:-}" ] && train_args+=(--gpu "$GPU")

# Row names: the stems without their longest common prefix (train_edsr-baseline-liif-c -> -c).
stems=()
for c in "${CONFIGS[@]}"; do
    [ -f "$c" ] || { echo "error: config not found: $c" >&2; exit 2; }
    s=$(basename "$c"); stems+=("${s%.yaml}")
done
prefix=${stems[0]}
for s in "${stems[@]}"; do
    while [ "${s#"$prefix"}" = "$s" ]; do prefix=${prefix%?}; done
done
prefix=${prefix%-*}

MODELS=()
for i in "${!CONFIGS[@]}"; do
    config=${CONFIGS[$i]}
    run=$SAVE_ROOT/_${stems[$i]}
    label=${stems[$i]#"$prefix"}
    [ ${#CONFIGS[@]} -eq 1 ] || [ -z "$label" ] && label=${stems[$i]}
    log=$(mktemp)
    if [ -f "$run/epoch-last.pth" ]; then
        echo "== $label: resuming $run"
        "$PY" train_liif.py --config="$config" --resume="$run/epoch-last.pth" "${train_args[@]}" "${SETS[@]}" 2>"$log"
    else
        echo "== $label: training $config into $run"
        "$PY" train_liif.py --config="$config" "${train_args[@]}" "${SETS[@]}" 2>"$log"
    fi
    status=$?
    if [ $status -ne 0 ] && ! grep -q '^error: nothing to train' "$log"; then
        cat "$log" >&2
        rm -f "$log"
        exit $status
    fi
    rm -f "$log"
    MODELS+=("$label=$run/epoch-last.pth")
done
echo
gpu_args=()
[ -n "${GPU:-}" ] && gpu_args=(--gpu "$GPU")
exec bash "scripts/test-$EVAL.sh" "${gpu_args[@]}" -- "${MODELS[@]}"
