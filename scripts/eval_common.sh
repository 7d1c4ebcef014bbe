# Shared by scripts/test-div2k.sh and scripts/test-benchmark.sh (sourced, not run).
#
# eval_setup MODEL [GPU]     checks the model, picks python, sets OUT_DIR
# eval_one ROW SCALE CONFIG  runs test.py on one config; a missing dataset is reported, skipped
# eval_table TITLE           prints (and writes to $OUT_DIR/table.md) the markdown table
#
# Environment: DATA_ROOT (folder replacing ./load in the configs, default load), OUT_DIR
# (default save/test/<model name>), PRECISION (fp32 | bf16 | fp16, default fp32).

eval_setup() {
    MODEL=${1:-}
    GPU=${2:-}
    if [ -z "$MODEL" ]; then
        echo "usage: bash $0 MODEL|bicubic [GPU]   (env: DATA_ROOT=load/sample, OUT_DIR, PRECISION)" >&2
        exit 2
    fi
    if [ "$MODEL" != bicubic ] && [ ! -f "$MODEL" ]; then
        echo "error: checkpoint not found: $MODEL (or use 'bicubic')" >&2
        exit 2
    fi
    PY=python3
    [ -x .venv/bin/python ] && PY=.venv/bin/python
    DATA_ROOT=${DATA_ROOT:-load}
    PRECISION=${PRECISION:-fp32}
    local name
    name=$(basename "$MODEL")
    OUT_DIR=${OUT_DIR:-save/test/${name%.*}}
    mkdir -p "$OUT_DIR"
    ENTRIES=()
    SKIPPED=()
    FAILED=()
    echo "model $MODEL, data root $DATA_ROOT, results in $OUT_DIR"
}

# eval_one ROW SCALE CONFIG: result in $OUT_DIR/<config name>.json, one line of progress.
eval_one() {
    local row=$1 scale=$2 config=$3
    local out="$OUT_DIR/$(basename "${config%.yaml}").json"
    local log="$OUT_DIR/$(basename "${config%.yaml}").log"
    ENTRIES+=("$row:$scale=$out")
    rm -f "$out"
    local gpu_args=()
    [ -n "$GPU" ] && gpu_args=(--gpu "$GPU")
    if "$PY" test.py --config "$config" --model "$MODEL" --data-root "$DATA_ROOT" --out "$out" \
            --precision "$PRECISION" --quiet "${gpu_args[@]}" >"$log" 2>&1; then
        local psnr ssim
        psnr=$(grep '^result: ' "$log" | tail -n 1 | cut -d' ' -f2)
        ssim=$(grep '^ssim: ' "$log" | tail -n 1 | cut -d' ' -f2)
        printf '%-12s x%-3s PSNR %s  SSIM %s\n' "$row" "$scale" "$psnr" "$ssim"
    else
        local err
        err=$(grep '^error: ' "$log" | tail -n 1)
        [ -z "$err" ] && err="$(tail -n 1 "$log") (full log: $log)"
        if [[ $err == *"dataset folder not found"* || $err == *"image folder not found"* ]]; then
            printf '%-12s x%-3s skipped: %s\n' "$row" "$scale" "${err#error: }"
            SKIPPED+=("$row x$scale")
        else
            printf '%-12s x%-3s FAILED: %s\n' "$row" "$scale" "${err#error: }"
            FAILED+=("$row x$scale")
        fi
    fi
}

# eval_set_missing ROW DIR: true (and reported) when a whole dataset folder is absent.
eval_set_missing() {
    if [ ! -d "$2" ]; then
        printf '%-12s skipped: no folder %s\n' "$1" "$2"
        SKIPPED+=("$1")
        return 0
    fi
    return 1
}

eval_table() {
    echo
    "$PY" scripts/results_table.py --title "$1" "${ENTRIES[@]}" | tee "$OUT_DIR/table.md"
    echo
    [ ${#SKIPPED[@]} -gt 0 ] && echo "skipped (no data): ${SKIPPED[*]}"
    [ ${#FAILED[@]} -gt 0 ] && echo "failed: ${FAILED[*]} (logs in $OUT_DIR)"
    echo "table: $OUT_DIR/table.md"
    [ ${#FAILED[@]} -eq 0 ]
}
