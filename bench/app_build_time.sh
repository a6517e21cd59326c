#!/usr/bin/env bash
# Clean build time of a minimal app that embeds a model with graphopt-build: a fresh crate and
# a fresh target directory, so every dependency compiles. The app depends on `graphopt` with
# default features; FEATURES=eval gives it the evaluator (and runs the model).
# Usage: [FEATURES=eval] bench/app_build_time.sh [GRAPHOPT_CHECKOUT] (default: this checkout).
# Prints the wall time of `cargo build` (dev profile), the number of crates compiled, and the
# app's own dependency count and syn majors (`cargo tree -e normal`).
set -euo pipefail
repo="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/app/src" "$work/app/models"
cp "$repo/examples/digits/models/digits.pb" "$work/app/models/"
features=""
if [ -n "${FEATURES:-}" ]; then features="\"$FEATURES\""; fi
cat > "$work/app/Cargo.toml" <<TOML
[package]
name = "minimal-app"
version = "0.1.0"
edition = "2021"

[dependencies]
graphopt = { path = "$repo", features = [$features] }

[build-dependencies]
graphopt-build = { path = "$repo/graphopt-build" }

[workspace]
TOML
cat > "$work/app/build.rs" <<'RS'
fn main() -> Result<(), Box<dyn std::error::Error>> {
    graphopt_build::Model::new("digits", "models/digits.pb")
        .inputs(["image"])
        .outputs(["probs"])
        .transforms("strip_unused_nodes fold_constants fold_batch_norms")
        .build()?;
    Ok(())
}
RS
cat > "$work/app/src/main.rs" <<'RS'
graphopt::include_model!(digits);
fn main() {
    println!("{} bytes", digits::GRAPH_DEF.len());
}
RS
cp "$repo/Cargo.lock" "$work/app/Cargo.lock" 2>/dev/null || true
cd "$work/app"
start=$(date +%s.%N)
CARGO_TARGET_DIR="$work/target" cargo build --offline --quiet 2>&1 | tail -3
end=$(date +%s.%N)
crates=$(ls "$work/target/debug/deps"/*.rlib "$work/target/debug/deps"/*.so 2>/dev/null | sed 's#.*/lib##; s#-[0-9a-f]*\..*##' | sort -u | wc -l)
echo "clean build: $(echo "$end - $start" | bc) s, $crates crates ($(cd "$repo" && git rev-parse --short HEAD))"
# The app's own (normal) dependencies, without the build script's.
normal=$(cargo tree --offline -e normal --prefix none | sed 's/ (.*//' | sort -u | grep -vc '^minimal-app ')
echo "normal dependencies: $normal crates; syn majors among them: $(cargo tree --offline -e normal --prefix none | grep -o '^syn v[0-9]*' | sort -u | tr '\n' ' ')"
