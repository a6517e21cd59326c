#!/usr/bin/env bash
# Time of graphopt-build's build script under the default dev profile (opt-level 0), as
# cargo's --timings reports the run-custom-build unit: a cold run (empty cache and OUT_DIR),
# then cached runs after touching build.rs (the build script recompiles and re-runs, the model
# is unchanged).
#
# Usage: bench/build_script_time.sh MODEL.pb INPUT OUTPUT [TRANSFORMS]
#   e.g. bench/build_script_time.sh target/tmp/compare_tf/inception_v3.pb keras_tensor output_0
# With BUILD_OVERRIDE=1 the app's Cargo.toml has the README's recommended
# [profile.dev.build-override] opt-level = 3 (build scripts and their dependencies optimized).
# (bench/compare_tf.py writes that Keras Inception-v3 frozen graph, 92 MiB.)
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bench/build_script_time.sh MODEL.pb INPUT OUTPUT [TRANSFORMS]" >&2
  echo "  (bench/compare_tf.py writes Keras ResNet-50 and Inception-v3 frozen graphs under target/tmp/compare_tf)" >&2
  exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
model="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
input="$2"
output="$3"
transforms="${4:-strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms sort_by_execution_order}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/app/src" "$work/app/models"
# -p keeps the model's modification time: graphopt-build does not memoize the hash of a file
# modified within 2 s of hashing it (a write in the same clock tick would go unseen), so a
# fresh copy would be hashed again by the first cached run, which a real model is not. (Its
# change time, which counts too, is new; the cold run starts after graphopt-build compiles,
# long past 2 s.)
cp -p "$model" "$work/app/models/model.pb"
cat > "$work/app/Cargo.toml" <<TOML
[package]
name = "build-script-time"
version = "0.1.0"
edition = "2021"

[dependencies]
graphopt = { path = "$repo" }

[build-dependencies]
graphopt-build = { path = "$repo/graphopt-build" }

[workspace]
TOML
suffix=""
if [ "${BUILD_OVERRIDE:-0}" = 1 ]; then
    suffix="-override"
    printf '\n[profile.dev.build-override]\nopt-level = 3\n' >> "$work/app/Cargo.toml"
fi
cat > "$work/app/build.rs" <<RS
fn main() -> Result<(), graphopt_build::Error> {
    graphopt_build::Model::new("model", "models/model.pb")
        .inputs(["$input"])
        .outputs(["$output"])
        .transforms("$transforms")
        .build()?;
    Ok(())
}
RS
cat > "$work/app/src/main.rs" <<'RS'
graphopt::include_model!(model);
fn main() {
    println!("{} bytes", model::GRAPH_DEF.len());
}
RS
cp "$repo/Cargo.lock" "$work/app/Cargo.lock"
cd "$work/app"
# Dependencies compile once, outside the timed runs.
export CARGO_TARGET_DIR="$repo/target/build-script-time$suffix" GRAPHOPT_CACHE_DIR="$work/cache"
rm -rf "$CARGO_TARGET_DIR/debug/build/build-script-time-"* "$CARGO_TARGET_DIR/cargo-timings"
run() {
    rm -rf "$CARGO_TARGET_DIR/cargo-timings"
    cargo build --offline --quiet --timings 2>/dev/null
    python3 - "$CARGO_TARGET_DIR/cargo-timings/cargo-timing.html" "$1" <<'PY'
import json, re, sys
html = open(sys.argv[1]).read()
units = json.loads(re.search(r"const UNIT_DATA = (\[.*?\]);", html, re.S).group(1))
run = [u for u in units if u["name"] == "build-script-time" and "run-custom-build" in u.get("mode", u.get("target", ""))]
if not run:
    run = [u for u in units if u["name"] == "build-script-time" and "build script" in u.get("target", "") and "run" in u.get("target", "")]
print(f"{sys.argv[2]}: build script run {run[0]['duration']:.2f} s" if run else f"{sys.argv[2]}: no build-script run in {[(u['name'], u.get('mode'), u.get('target')) for u in units]}")
PY
}
run "cold (cache and OUT_DIR empty)"
for i in 1 2 3; do
    touch build.rs
    run "cached run $i (build.rs touched)"
done
echo "model $(basename "$model") $(stat -c %s models/model.pb) bytes, graphopt $(cd "$repo" && git rev-parse --short HEAD), $(nproc) cores, build-override opt-level 3: ${BUILD_OVERRIDE:-0}"
