#!/usr/bin/env bash
# convert_to_nchw on the Keras 3 CNNs bench/compare_tf.py generates: for each, `@deploy
# convert_to_nchw @deploy`, the Transposes left (`graphopt summarize`) and `graphopt verify`
# of the NCHW graph against the original on seeded inputs.
# Usage: bench/convert_to_nchw.sh [GRAPHOPT] (default target/release/graphopt; run
# bench/compare_tf.py first so target/tmp/compare_tf holds the models).
set -euo pipefail
cd "$(dirname "$0")/.."
graphopt="${1:-target/release/graphopt}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for model in resnet50 inception_v3 mobilenet_v2 efficientnet_b0 densenet121; do
    in="target/tmp/compare_tf/$model.pb"
    if [ ! -f "$in" ]; then
        echo "$model: $in missing (run bench/compare_tf.py --models $model first)" >&2
        continue
    fi
    "$graphopt" transform --in_graph="$in" --out_graph="$work/$model.pb" --inputs=keras_tensor \
        --outputs=output_0 --transforms='@deploy convert_to_nchw @deploy' 2>/dev/null
    transposes="$("$graphopt" summarize "$work/$model.pb" | grep -o '[0-9]* Transpose' || echo '0 Transpose')"
    worst="$("$graphopt" verify "$in" "$work/$model.pb" | grep -o 'worst relative error [^ ]*')"
    echo "$model: $transposes; $worst"
done
