//! Freeze benchmark: a SavedModel directory to a frozen GraphDef, as `graphopt freeze` does it.
//!
//! `cargo bench -p graphopt-core --bench freeze -- DIR` (make a ResNet-50 SavedModel with
//! `tests/fixtures/make_resnet50_savedmodel.py`). Prints wall times per step and the process's
//! peak resident memory next to the size of the model's files. Without DIR it says how to
//! make one and exits with status 2: a benchmark that measured nothing does not pass.

use std::path::Path;
use std::time::Instant;

mod common;

use graphopt_core::freeze::{freeze_saved_model, SavedModelOptions};
use graphopt_core::{graph, io};

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn directory_mb(dir: &Path) -> f64 {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total as f64 / (1024.0 * 1024.0)
}

fn main() {
    // cargo bench passes `--bench`; the directory is the first other argument.
    let Some(dir) = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(|arg| common::argument_path(&arg))
    else {
        eprintln!(
            "freeze bench: give a SavedModel directory, e.g. run \
             tests/fixtures/make_resnet50_savedmodel.py and then \
             cargo bench -p graphopt-core --bench freeze -- target/tmp/resnet50_savedmodel"
        );
        std::process::exit(2);
    };
    let start = Instant::now();
    let frozen = match freeze_saved_model(&dir, &SavedModelOptions::default()) {
        Ok(frozen) => frozen,
        Err(e) => {
            eprintln!("freeze bench: {}: {e}", dir.display());
            std::process::exit(1);
        }
    };
    let freeze_time = start.elapsed();
    let peak_after_freeze = peak_rss_mb();
    let start = Instant::now();
    let valid = graph::validate(&frozen.graph).is_ok();
    let validate_time = start.elapsed();
    let out = std::env::temp_dir().join("graphopt-freeze-bench.pb");
    let start = Instant::now();
    let written = io::write_graph(&out, &frozen.graph, io::GraphFormat::Binary);
    let write_time = start.elapsed();
    let frozen_mb = std::fs::metadata(&out).map_or(0.0, |m| m.len() as f64 / 1048576.0);
    let _ = std::fs::remove_file(&out);
    println!(
        "SavedModel {} ({:.1} MiB)",
        dir.display(),
        directory_mb(&dir)
    );
    println!(
        "freeze {:.3} s -> {} nodes, valid {valid}; write {:.3} s ({frozen_mb:.1} MiB{})",
        freeze_time.as_secs_f64(),
        frozen.graph.node.len(),
        write_time.as_secs_f64(),
        if written.is_ok() {
            ""
        } else {
            ", write FAILED"
        }
    );
    println!("validate {:.1} ms", validate_time.as_secs_f64() * 1e3);
    match (peak_after_freeze, peak_rss_mb()) {
        (Some(frozen), Some(written)) => println!(
            "peak resident memory {frozen:.0} MiB after freezing, {written:.0} MiB after writing"
        ),
        _ => println!("peak resident memory unavailable (no /proc/self/status)"),
    }
}
