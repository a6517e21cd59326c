//! The hostile corpus (`tests/hostile/`, written by `hostile/cases.rs`): crafted models that
//! once made graphopt panic, abort, overflow its stack, hang or exhaust memory. Every case runs
//! through the library (an `Err`, or `Ok` where the right answer is cheap — never a panic) and
//! through the `graphopt` binary (exit 1 and exactly one line on stderr, or exit 0), each in a
//! child process under `ulimit -v 4000000`, killed after 20 s. No command on these (sub-MB)
//! inputs may peak over 256 MiB resident. A library run reports its own high-water mark from
//! `/proc` (exact, no tool needed); a binary run's peak comes from `/usr/bin/time`, or where
//! that is missing from sampling `/proc` while it runs.
//!
//! Run in both profiles (build scripts run the dev profile):
//!
//! ```sh
//! cargo test -p graphopt-cli --test hostile
//! cargo test -p graphopt-cli --test hostile --release
//! ```
//!
//! `GRAPHOPT_BLESS=1 cargo test -p graphopt-cli --test hostile corpus_is_current` rewrites
//! the committed corpus from the generator; `GRAPHOPT_BLESS=1 ... cli_on_every_case` rewrites
//! `graphopt-cli/tests/hostile/errors.txt`, the one line each error case prints.

#[path = "hostile/cases.rs"]
mod cases;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cases::{Case, Expect, Special};

/// No case may run longer than this.
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Address space of every child, in KiB (`ulimit -v`).
const ADDRESS_SPACE_KIB: u64 = 4_000_000;
/// Peak resident memory allowed for a command on an input under 1 MB.
const PEAK_RSS_KIB: u64 = 256 * 1024;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("graphopt-cli sits in the workspace")
        .join("tests/hostile")
}

fn readme(cases: &[Case]) -> String {
    let mut text = String::from(
        "# Hostile corpus\n\n\
         Crafted models, one per way a model file from the internet has broken graphopt (the\n\
         classes of issue 11). Written by `graphopt-cli/tests/hostile/cases.rs`; run by\n\
         `graphopt-cli/tests/hostile.rs` through the library and the CLI, under\n\
         `ulimit -v 4000000`, in both profiles:\n\n\
         ```sh\n\
         cargo test -p graphopt-cli --test hostile\n\
         cargo test -p graphopt-cli --test hostile --release\n\
         GRAPHOPT_BLESS=1 cargo test -p graphopt-cli --test hostile corpus_is_current   # regenerate\n\
         ```\n\n\
         FIFOs, symlinks to devices, sparse files and stale temporaries cannot be committed: the\n\
         test makes them. `graphopt-cli/tests/hostile/errors.txt` holds the one line each error case\n\
         prints (its temporary
         directories written `{dir}` and `{out}`): the file, transform and node it names.\n\n\
         | case | class | expected | what it does |\n| --- | --- | --- | --- |\n",
    );
    for case in cases {
        let expect = match case.expect {
            Expect::Error => "exit 1, one line",
            Expect::Success => "exit 0",
        };
        text.push_str(&format!(
            "| `{}` | {} | {expect} | {} (`graphopt {}`) |\n",
            case.name,
            case.class,
            case.about,
            case.args.join(" ")
        ));
    }
    text
}

#[test]
fn corpus_is_current() {
    let cases = cases::all();
    let dir = corpus_dir();
    let bless = std::env::var("GRAPHOPT_BLESS").is_ok_and(|v| !v.is_empty() && v != "0");
    if bless {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut stale = Vec::new();
    for case in &cases {
        for (path, bytes) in &case.files {
            let file = dir.join(case.name).join(path);
            if bless {
                std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
                std::fs::write(&file, bytes).expect("write case file");
            } else if std::fs::read(&file).ok().as_deref() != Some(bytes.as_slice()) {
                stale.push(file.display().to_string());
            }
        }
        if case.files.is_empty() && bless {
            std::fs::create_dir_all(dir.join(case.name)).expect("mkdir");
            std::fs::write(dir.join(case.name).join(".keep"), b"").expect("write");
        }
    }
    let text = readme(&cases);
    if bless {
        std::fs::write(dir.join("README.md"), &text).expect("write README");
    } else if std::fs::read_to_string(dir.join("README.md"))
        .ok()
        .as_deref()
        != Some(&text)
    {
        stale.push("README.md".into());
    }
    assert!(
        stale.is_empty(),
        "the committed hostile corpus differs from the generator ({}); regenerate with \
         GRAPHOPT_BLESS=1 cargo test -p graphopt-cli --test hostile corpus_is_current",
        stale.join(", ")
    );
    // Every class of the issue has a case.
    for class in 1..=14 {
        assert!(
            cases.iter().any(|c| c.class == class),
            "no case for class {class}"
        );
    }
}

/// A case's files, copied from the committed corpus into a fresh directory, with the files
/// that cannot be committed made; and an empty output directory.
struct Prepared {
    _root: tempfile::TempDir,
    dir: PathBuf,
    out: PathBuf,
}

fn prepare(case: &Case) -> Prepared {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("case");
    let out = root.path().join("out");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::create_dir_all(&out).expect("mkdir");
    for (path, _) in &case.files {
        let from = corpus_dir().join(case.name).join(path);
        let to = dir.join(path);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(&from, &to).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate the corpus with GRAPHOPT_BLESS=1",
                from.display()
            )
        });
    }
    for special in &case.special {
        match special {
            Special::Fifo(path) => {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
                let status = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
                assert!(status.success(), "mkfifo {}", path.display());
            }
            Special::Symlink(path, target) => {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
                std::os::unix::fs::symlink(target, &path).expect("symlink");
            }
            Special::Sparse(path, len) => {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
                std::fs::File::create(&path)
                    .and_then(|f| f.set_len(*len))
                    .expect("sparse file");
            }
            Special::DeadTemporary(name) => {
                let path = out.join(name);
                std::fs::write(&path, b"partial").expect("temporary");
                // Last written three minutes ago: a writer long gone, not one in another PID
                // namespace still writing.
                let then = std::time::SystemTime::now() - std::time::Duration::from_secs(180);
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(then))
                    .expect("backdate the temporary");
            }
        }
    }
    Prepared {
        _root: root,
        dir,
        out,
    }
}

fn arguments(case: &Case, prepared: &Prepared) -> Vec<String> {
    case.args
        .iter()
        .map(|a| {
            a.replace("{dir}", &prepared.dir.display().to_string())
                .replace("{out}", &prepared.out.display().to_string())
        })
        .collect()
}

/// What a child process did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    /// `None` only where `/usr/bin/time` is missing and the process ended before the first
    /// sample of `/proc` (a few milliseconds).
    peak_rss_kib: Option<u64>,
}

/// The high-water mark of a running process's own resident memory (Linux
/// `/proc/PID/status`, `VmHWM`): unlike `getrusage`'s figure for children, it leaves out the
/// memory of this test process that a spawned child shares until it executes the program.
fn resident_high_water_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `program args` under the address-space cap, killed after [`TIME_LIMIT`]. Its peak
/// resident memory comes from `/usr/bin/time` where that exists (exact), else from the
/// process's own high-water mark sampled every 20 ms while it runs.
fn run_capped(program: &Path, args: &[String], envs: &[(&str, String)]) -> Run {
    let rss_file = tempfile::NamedTempFile::new().expect("temp file");
    let time = Path::new("/usr/bin/time");
    let timed = time.exists();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$@\""))
        .arg("sh");
    if timed {
        command
            .arg(time)
            .args(["-f", "%M", "-o"])
            .arg(rss_file.path());
    }
    command
        .arg(program)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().expect("spawn");
    let mut polled_peak = None;
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (out_reader, err_reader) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let status = loop {
        if !timed {
            if let Some(kib) = resident_high_water_kib(child.id()) {
                polled_peak = Some(polled_peak.unwrap_or(0).max(kib));
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > TIME_LIMIT {
            // Our own child, by its id.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let timed_peak = std::fs::read_to_string(rss_file.path())
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()));
    Run {
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
        elapsed,
        peak_rss_kib: if timed { timed_peak } else { polled_peak },
    }
}

fn check_peak(peak_rss_kib: Option<u64>, problems: &mut Vec<String>) {
    if let Some(kib) = peak_rss_kib.filter(|&kib| kib > PEAK_RSS_KIB) {
        problems.push(format!("peak RSS {} MiB over 256 MiB", kib / 1024));
    }
}

fn post_checks(case: &Case, prepared: &Prepared) -> Result<(), String> {
    match case.name {
        "c12_constant_sink_without_outputs" => {
            let written = prepared.out.join("out.pb");
            let loaded = graphopt_core::io::read_graph(&written).map_err(|e| e.to_string())?;
            graphopt_core::graph::validate(&loaded.graph).map_err(|e| e.to_string())
        }
        "c13_stale_temporary" => {
            for special in &case.special {
                if let Special::DeadTemporary(name) = special {
                    if prepared.out.join(name).exists() {
                        return Err(format!("the stale temporary {name} is still there"));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[test]
fn cli_on_every_case() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_graphopt"));
    let mut failures = Vec::new();
    // Each error case's line, its temporary directories written `{dir}` and `{out}`.
    let mut error_lines = Vec::new();
    for case in cases::all() {
        let prepared = prepare(&case);
        let args = arguments(&case, &prepared);
        let run = run_capped(&binary, &args, &[]);
        let lines: Vec<&str> = run.stderr.lines().collect();
        let mut problems = Vec::new();
        match (case.expect, run.code) {
            (_, None) => problems.push(format!("killed after {:?}", run.elapsed)),
            (Expect::Error, Some(1)) => {
                if lines.len() != 1 || !lines[0].starts_with("graphopt: error: ") {
                    problems.push(format!("stderr is not one error line: {:?}", run.stderr));
                }
                let line = lines.first().copied().unwrap_or_default();
                let line = line
                    .replace(&prepared.dir.display().to_string(), "{dir}")
                    .replace(&prepared.out.display().to_string(), "{out}");
                error_lines.push(format!("{}\t{line}", case.name));
            }
            (Expect::Success, Some(0)) => {
                if let Err(e) = post_checks(&case, &prepared) {
                    problems.push(e);
                }
            }
            (_, Some(code)) => problems.push(format!(
                "exit {code}, expected {:?}; stderr: {}",
                case.expect,
                run.stderr.trim()
            )),
        }
        if run.stderr.contains("panicked") || run.stderr.contains("stack overflow") {
            problems.push(format!("panicked: {}", run.stderr.trim()));
        }
        check_peak(run.peak_rss_kib, &mut problems);
        eprintln!(
            "{:<45} exit {:?} {:>6.2} s {:>6} KiB  {}",
            case.name,
            run.code,
            run.elapsed.as_secs_f64(),
            run.peak_rss_kib.unwrap_or(0),
            lines.last().copied().unwrap_or("")
        );
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // What each error says (the file, transform and node it names) is the committed line.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/errors.txt");
    let text = error_lines.join("\n") + "\n";
    if std::env::var("GRAPHOPT_BLESS").is_ok_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &text).expect("write errors.txt");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let changed: Vec<String> = error_lines
        .iter()
        .filter(|line| !committed.lines().any(|c| c == line.as_str()))
        .cloned()
        .collect();
    assert!(
        changed.is_empty() && committed.lines().count() == error_lines.len(),
        "error lines differ from graphopt-cli/tests/hostile/errors.txt (GRAPHOPT_BLESS=1 rewrites it):\n{}",
        changed.join("\n")
    );
}

#[test]
fn library_on_every_case() {
    let exe = std::env::current_exe().expect("own path");
    let mut failures = Vec::new();
    for case in cases::all() {
        let prepared = prepare(&case);
        let run = run_capped(
            &exe,
            &[
                "library_one_case".into(),
                "--exact".into(),
                "--include-ignored".into(),
                "--nocapture".into(),
                "--test-threads=1".into(),
            ],
            &[("HOSTILE_ARGS", arguments(&case, &prepared).join("\u{1f}"))],
        );
        let result = run
            .stdout
            .lines()
            .find_map(|l| l.split_once("HOSTILE-RESULT: ").map(|(_, r)| r.to_string()));
        let mut problems = Vec::new();
        match (&result, case.expect) {
            (None, _) => problems.push(format!(
                "no result (exit {:?} after {:?}): {}",
                run.code,
                run.elapsed,
                run.stderr.trim().lines().last().unwrap_or("")
            )),
            (Some(r), Expect::Error) if r.starts_with("err: ") => {}
            (Some(r), Expect::Success) if r == "ok" => {
                if let Err(e) = post_checks(&case, &prepared) {
                    problems.push(e);
                }
            }
            (Some(r), _) => problems.push(format!("expected {:?}, got {r}", case.expect)),
        }
        // The child reports its own peak: exact whatever tools the machine has.
        let own_peak = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("HOSTILE-PEAK-KIB: "))
            .and_then(|kib| kib.trim().parse::<u64>().ok());
        if own_peak.is_none() {
            problems.push("the child reported no peak memory".into());
        }
        let peak = own_peak.max(run.peak_rss_kib);
        check_peak(peak, &mut problems);
        eprintln!(
            "{:<45} {:>6.2} s {:>6} KiB  {}",
            case.name,
            run.elapsed.as_secs_f64(),
            peak.unwrap_or(0),
            result.as_deref().unwrap_or("-")
        );
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The library side of one case, in the child process `library_on_every_case` starts with the
/// case in `HOSTILE_ARGS`: runs what the CLI command would, on a thread with the main thread's
/// stack size, under the default budget for its input, and prints the outcome. Ignored in a
/// normal run (it has nothing to do without a case).
#[test]
#[ignore = "run by library_on_every_case in a child process, with HOSTILE_ARGS"]
fn library_one_case() {
    let args = std::env::var("HOSTILE_ARGS").expect("HOSTILE_ARGS: the case to run");
    let args: Vec<String> = args.split('\u{1f}').map(str::to_string).collect();
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || library::run(&args))
        .expect("spawn");
    match worker.join() {
        Ok(Ok(())) => println!("HOSTILE-RESULT: ok"),
        Ok(Err(message)) => println!("HOSTILE-RESULT: err: {}", message.replace('\n', "\\n")),
        Err(_) => println!("HOSTILE-RESULT: panicked"),
    }
    let peak = resident_high_water_kib(std::process::id()).expect("/proc/self/status VmHWM");
    println!("HOSTILE-PEAK-KIB: {peak}");
}

/// What the CLI's commands do, through the library.
mod library {
    use std::path::{Path, PathBuf};

    use graphopt_core::budget::Settings;
    use graphopt_core::{freeze, graph, io, transforms, verify};

    fn flag(args: &[String], name: &str) -> Option<String> {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
    }

    fn positional(args: &[String]) -> Vec<PathBuf> {
        args.iter()
            .skip(1)
            .filter(|a| !a.starts_with("--"))
            .map(PathBuf::from)
            .collect()
    }

    fn names(list: Option<String>) -> Vec<String> {
        list.unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn load(path: &Path) -> Result<graphopt_core::proto::GraphDef, String> {
        let loaded = io::read_graph(path).map_err(|e| e.to_string())?;
        graph::validate(&loaded.graph).map_err(|e| e.to_string())?;
        Ok(loaded.graph)
    }

    pub fn run(args: &[String]) -> Result<(), String> {
        let inputs: Vec<PathBuf> = positional(args)
            .into_iter()
            .chain(flag(args, "in_graph").map(PathBuf::from))
            .chain(flag(args, "saved_model_dir").map(PathBuf::from))
            .collect();
        let size = inputs.iter().map(|p| io::input_size(p)).sum();
        let budget = Settings::default().budget_for(size);
        budget.enter(|| command(args))
    }

    fn command(args: &[String]) -> Result<(), String> {
        match args.first().map(String::as_str) {
            Some("transform") => {
                let specs = transforms::parse(&flag(args, "transforms").unwrap_or_default())
                    .map_err(|e| e.to_string())?;
                let path = PathBuf::from(flag(args, "in_graph").unwrap_or_default());
                let mut graph = load(&path)?;
                let registry = transforms::Registry::with_builtins();
                transforms::run(
                    &registry,
                    &mut graph,
                    &specs,
                    &names(flag(args, "inputs")),
                    &names(flag(args, "outputs")),
                )
                .map_err(|e| e.to_string())?;
                let out = PathBuf::from(flag(args, "out_graph").unwrap_or_default());
                let as_text = args.iter().any(|a| a == "--output_as_text");
                io::write_graph(&out, &graph, io::GraphFormat::for_output(&out, as_text))
                    .map_err(|e| e.to_string())
            }
            Some("summarize") => {
                let path = positional(args).into_iter().next().unwrap_or_default();
                let loaded = io::read_graph(&path).map_err(|e| e.to_string())?;
                let _ = graphopt_core::summary::summarize(&loaded.graph, Some(loaded.file_size));
                graph::validate(&loaded.graph).map_err(|e| e.to_string())
            }
            Some("verify") => {
                let paths = positional(args);
                let (original, optimized) = (load(&paths[0])?, load(&paths[1])?);
                let options = verify::VerifyOptions {
                    outputs: names(flag(args, "outputs")),
                    unknown_dim: 1,
                    ..Default::default()
                };
                let report =
                    verify::compare(&original, &optimized, &options).map_err(|e| e.to_string())?;
                if report.worst() > 1e-5 {
                    return Err(format!("over the tolerance: {}", report.worst()));
                }
                Ok(())
            }
            Some("freeze") => {
                let graph = if let Some(dir) = flag(args, "saved_model_dir") {
                    freeze::freeze_saved_model(Path::new(&dir), &Default::default())
                        .map_err(|e| e.to_string())?
                        .graph
                } else {
                    let path = PathBuf::from(flag(args, "in_graph").unwrap_or_default());
                    let graph = load(&path)?;
                    let checkpoint = freeze::checkpoint::Checkpoint::open(
                        flag(args, "checkpoint").unwrap_or_default(),
                    )
                    .map_err(|e| e.to_string())?;
                    freeze::freeze_graph(&graph, &checkpoint, &names(flag(args, "outputs")))
                        .map_err(|e| e.to_string())?
                };
                graph::validate(&graph).map_err(|e| e.to_string())
            }
            Some("inspect") => {
                let dir = positional(args).into_iter().next().unwrap_or_default();
                freeze::saved_model::read_saved_model(&dir)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Some("check") => {
                let path = positional(args).into_iter().next().unwrap_or_default();
                let target = flag(args, "target").unwrap_or_default();
                let problems = graphopt_core::targets::check_target(&load(&path)?, &target)
                    .map_err(|e| e.to_string())?;
                match problems.len() {
                    0 => Ok(()),
                    n => Err(format!("{n} node(s) that {target} cannot load")),
                }
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }
}
