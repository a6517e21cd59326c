#!/usr/bin/env bash
# convert_to_nchw on the Keras 3 CNNs bench/compare_tf.py generates: for each, `@deploy
# convert_to_nchw @deploy`, the Transposes left (`graphopt summarize`) and `graphopt verify`
# of the NCHW graph against the original on seeded inputs.
# Usage: bench/convert_to_nchw.sh [GRAPHOPT] (default target/release/graphopt; run
# bench/compare_tf.py first so target/tmp/compare_tf holds the models).
# Exits non-zero, measuring nothing, when the binary or any of the models is missing, and
# when no model was measured.
set -euo pipefail
cd "$(dirname "$0")/.."
graphopt="${1:-target/release/graphopt}"
models=(resnet50 inception_v3 mobilenet_v2 efficientnet_b0 densenet121)
if [ ! -x "$graphopt" ]; then
    echo "convert_to_nchw.sh: $graphopt is not an executable graphopt binary" \
        "(build it with: cargo build --release -p graphopt-cli)" >&2
    exit 1
fi
missing=()
for model in "${models[@]}"; do
    in="target/tmp/compare_tf/$model.pb"
    if [ ! -f "$in" ]; then
        missing+=("$model")
        echo "convert_to_nchw.sh: $in is missing" >&2
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    list="$(IFS=,; echo "${missing[*]}")"
    echo "convert_to_nchw.sh: generate the missing models (Keras 3 exports, random weights," \
        "frozen by graphopt) with TensorFlow's Python, then run this again:" >&2
    echo "    /tmp/tfvenv/bin/python bench/compare_tf.py --graphopt $graphopt --models $list" \
        "--eval-only --no-eval" >&2
    exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
measured=0
for model in "${models[@]}"; do
    in="target/tmp/compare_tf/$model.pb"
    if ! "$graphopt" transform --in_graph="$in" --out_graph="$work/$model.pb" --inputs=keras_tensor \
        --outputs=output_0 --transforms='@deploy convert_to_nchw @deploy' 2>"$work/stderr"; then
        echo "convert_to_nchw.sh: $model: graphopt transform failed: $(cat "$work/stderr")" >&2
        exit 1
    fi
    transposes="$("$graphopt" summarize "$work/$model.pb" | grep -o '[0-9]* Transpose' || echo '0 Transpose')"
    worst="$("$graphopt" verify "$in" "$work/$model.pb" | grep -o 'worst relative error [^ ]*')"
    echo "$model: $transposes; $worst"
    measured=$((measured + 1))
done
if [ "$measured" -eq 0 ]; then
    echo "convert_to_nchw.sh: no model was measured" >&2
    exit 1
fi
