//! The `graphopt` command. Exit codes: 0 success, 1 error (one line on stderr naming the file,
//! transform and node), 2 usage error.
//!
//! Output goes through [`output`]: a reader that stops early (`| head -1`) ends it quietly, and
//! names from the model are escaped in human-readable output as in error lines ([`one_line`]).
//!
//! Every command runs under one memory and work budget (`--memory_budget`, `--work_budget`, or
//! `GRAPHOPT_MEMORY_BUDGET` / `GRAPHOPT_WORK_BUDGET`; by default scaled to the input's size), so
//! a hostile model ends in an error line, not in an exhausted machine.

mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use graphopt_core::budget::{self, Settings};
use graphopt_core::error::one_line;
use graphopt_core::io::{self, GraphFormat};
use graphopt_core::late_weights::Deferred;
use graphopt_core::transforms::{self, Registry};
use graphopt_core::verify::VerifyError;
use graphopt_core::{freeze, graph, summary, targets};
use output::{errln, outln};

/// What a command can fail with: graphopt-core's errors, and the CLI's own.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Core(#[from] graphopt_core::Error),
    #[error("verify: {0}")]
    Verify(#[from] VerifyError),
    /// A transform failed on the graph of this file.
    #[error("{}: {source}", path.display())]
    TransformIn {
        path: PathBuf,
        source: graphopt_core::Error,
    },
    /// One of the two graphs (or its inputs) failed: named by its file.
    #[error("verify: {}: {message}", path.display())]
    VerifyIn { path: PathBuf, message: String },
    #[error("{}: is a SavedModel directory, not a graph file; freeze it first (graphopt freeze --saved_model_dir={} --out_graph=frozen.pb) or list its signatures (graphopt inspect {})", path.display(), path.display(), path.display())]
    SavedModelDir { path: PathBuf },
    #[error("{}: is a directory, not a graph file", path.display())]
    Directory { path: PathBuf },
    /// `--out_graph` cannot be written: said before any work is done.
    #[error("{}: cannot write the output graph there: {why}", path.display())]
    Unwritable { path: PathBuf, why: &'static str },
    #[error("{}: is a SavedModel's graph, not a frozen GraphDef; freeze its directory first (graphopt freeze --saved_model_dir={} --out_graph=frozen.pb)", path.display(), dir.display())]
    SavedModelFile { path: PathBuf, dir: PathBuf },
    #[error("{}: is the saved_model.pb file of a SavedModel, not its directory; give the directory: {usage}", path.display())]
    SavedModelFileNotDir { path: PathBuf, usage: String },
    #[error("{}: is a GraphDef file, not a SavedModel directory; {hint}", path.display())]
    GraphDefNotSavedModel { path: PathBuf, hint: String },
    #[error("{}: is a file, not a SavedModel directory", path.display())]
    FileNotSavedModel { path: PathBuf },
    #[error("{}: {flag} names '{name}', which is not a node of the graph; {likely}", path.display())]
    UnknownName {
        path: PathBuf,
        flag: String,
        name: String,
        likely: String,
    },
    #[error("{optimized} differs from {original}: output '{output}' has relative error {error:.3e} (absolute {absolute:.3e}), over the tolerance {tolerance:e}")]
    OverTolerance {
        original: String,
        optimized: String,
        output: String,
        error: f64,
        absolute: f64,
        tolerance: f64,
    },
    #[error(transparent)]
    Target(#[from] targets::TargetError),
    #[error("{path}: {count} node(s) that {target} cannot load")]
    NotLoadable {
        path: String,
        target: String,
        count: usize,
    },
    /// Writing to standard output failed (a broken pipe is not an error: see `output`).
    #[error("writing to standard output: {0}")]
    Stdout(#[from] std::io::Error),
}

impl From<graphopt_core::transforms::SpecError> for Error {
    fn from(error: graphopt_core::transforms::SpecError) -> Self {
        Error::Core(error.into())
    }
}

impl From<graphopt_core::graph::GraphError> for Error {
    fn from(error: graphopt_core::graph::GraphError) -> Self {
        Error::Core(error.into())
    }
}

/// The one-line error for a JSON encoding failure.
fn json_error(what: &str, error: serde_json::Error) -> Error {
    Error::Core(graphopt_core::Error::Encode {
        what: what.into(),
        message: error.to_string(),
    })
}

#[derive(Parser)]
#[command(
    name = "graphopt",
    version,
    about = "Optimize TensorFlow GraphDefs for deployment, without Python or libtensorflow."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Memory the command may hold at once: bytes, with an optional K/M/G/T suffix, or
    /// 'unlimited' [default: $GRAPHOPT_MEMORY_BUDGET, else max(256M, 8 x the input's size)].
    #[arg(long = "memory_budget", global = true, value_name = "SIZE", value_parser = size_arg)]
    memory_budget: Option<u64>,
    /// Element operations the command may do (evaluation, folding): a count with an optional
    /// K/M/G/T suffix, or 'unlimited' [default: $GRAPHOPT_WORK_BUDGET, else max(128M, 256 x the
    /// input's size)].
    #[arg(long = "work_budget", global = true, value_name = "COUNT", value_parser = size_arg)]
    work_budget: Option<u64>,
}

/// `--memory_budget` and `--work_budget` values.
fn size_arg(text: &str) -> Result<u64, String> {
    budget::parse_size(text)
        .ok_or_else(|| format!("'{text}' is not a size (e.g. 512M, 2G, unlimited)"))
}

impl Command {
    /// The files and directories the command reads, whose size scales its default budget.
    fn inputs(&self) -> Vec<&Path> {
        match self {
            Command::Transform(a) => vec![&a.in_graph],
            Command::Summarize(a) => a
                .graph
                .iter()
                .chain(&a.in_graph)
                .map(|p| p.as_path())
                .collect(),
            Command::Verify(a) => vec![&a.original, &a.optimized],
            Command::Freeze(a) => {
                let mut paths: Vec<&Path> = a
                    .saved_model_dir
                    .iter()
                    .chain(&a.in_graph)
                    .map(|p| p.as_path())
                    .collect();
                // A checkpoint prefix names files beside it: count the directory.
                if let Some(dir) = a.checkpoint.as_deref().and_then(Path::parent) {
                    paths.push(if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    });
                }
                paths
            }
            Command::Inspect(a) => vec![&a.dir],
            Command::Check(a) => vec![&a.graph],
            Command::Transforms | Command::Targets => Vec::new(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Apply a transform list to a graph, with transform_graph's flags and grammar.
    Transform(TransformArgs),
    /// Report likely inputs and outputs, parameter counts, op types and sizes of a graph.
    Summarize(SummarizeArgs),
    /// List the available transforms and their parameters.
    Transforms,
    /// Run two graphs on the same seeded inputs and report how far their outputs differ.
    Verify(VerifyArgs),
    /// Freeze a TF2 SavedModel signature, or a TF1 graph plus checkpoint, into a GraphDef.
    Freeze(FreezeArgs),
    /// Show a SavedModel's tag sets and signatures with their inputs' and outputs' dtypes and shapes.
    Inspect(InspectArgs),
    /// List every node a deployment target cannot load (node, op, why); exit 1 if there is one.
    Check(CheckArgs),
    /// List the deployment targets `check` knows, with their versions and sources.
    Targets,
}

#[derive(Args)]
struct CheckArgs {
    /// Deployment target (see `graphopt targets`).
    #[arg(long, value_name = "NAME", value_parser = target_name)]
    target: String,
    /// Graph to check, binary (.pb) or text (.pbtxt).
    #[arg(value_name = "GRAPH")]
    graph: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `--target`: a known target's name, else a usage error listing them.
fn target_name(name: &str) -> Result<String, String> {
    targets::Target::by_name(name)
        .map(|t| t.name.clone())
        .map_err(|e| e.to_string())
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["saved_model_dir", "in_graph"])))]
struct FreezeArgs {
    /// SavedModel directory (holding saved_model.pb and variables/).
    #[arg(long = "saved_model_dir", value_name = "DIR")]
    saved_model_dir: Option<PathBuf>,
    /// Comma-separated tags of the MetaGraph to freeze.
    #[arg(
        long = "tag_set",
        default_value = "serve",
        value_name = "TAGS",
        requires = "saved_model_dir"
    )]
    tag_set: String,
    /// Key of the signature to freeze.
    #[arg(
        long = "signature_def",
        default_value = "serving_default",
        value_name = "KEY",
        requires = "saved_model_dir"
    )]
    signature_def: String,
    /// TF1 graph: binary or text GraphDef, or a .meta MetaGraphDef.
    #[arg(long = "in_graph", value_name = "FILE", requires_all = ["checkpoint", "outputs"])]
    in_graph: Option<PathBuf>,
    /// TF1 checkpoint prefix (the path before .index).
    #[arg(long, value_name = "PREFIX", requires = "in_graph")]
    checkpoint: Option<PathBuf>,
    /// Comma-separated output node names of the TF1 graph.
    #[arg(long, value_name = "NAMES", requires = "in_graph")]
    outputs: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

/// Where and how a command writes its graph.
#[derive(Args)]
struct OutputArgs {
    /// Where to write the graph; text format for .pbtxt or with --output_as_text.
    #[arg(long = "out_graph", value_name = "FILE")]
    out_graph: PathBuf,
    /// Write text format whatever the output extension.
    #[arg(
        long = "output_as_text",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    output_as_text: bool,
}

impl OutputArgs {
    /// Refuses an output path that cannot be written before the command reads or computes
    /// anything (a transform or freeze of a large model takes minutes to fail at the end
    /// otherwise). The write itself still reports what this cannot foresee.
    fn check_writable(&self) -> Result<(), Error> {
        let path = &self.out_graph;
        let unwritable = |why| Error::Unwritable {
            path: path.clone(),
            why,
        };
        if path.is_dir() {
            return Err(unwritable("it is a directory"));
        }
        match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) if !dir.exists() => Err(unwritable("its directory does not exist")),
            Some(dir) if !dir.is_dir() => Err(unwritable("its parent is not a directory")),
            _ => Ok(()),
        }
    }

    fn write(&self, graph: &graphopt_core::proto::GraphDef) -> Result<(), Error> {
        let functions = graph.library.as_ref().map_or(0, |l| l.function.len());
        self.write_with(graph.node.len(), functions, |path, format| {
            io::write_graph(path, graph, format)
        })
    }

    /// [`OutputArgs::write`] of a graph whose late weights are computed as they are written.
    fn write_deferred(&self, deferred: &Deferred) -> Result<(), Error> {
        self.write_with(
            deferred.node_count(),
            deferred.function_count(),
            |path, format| io::write_deferred(path, deferred, format),
        )
    }

    fn write_with(
        &self,
        nodes: usize,
        functions: usize,
        write: impl FnOnce(&Path, GraphFormat) -> graphopt_core::Result<()>,
    ) -> Result<(), Error> {
        let format = GraphFormat::for_output(&self.out_graph, self.output_as_text);
        write(&self.out_graph, format)?;
        // The file a link led to is the one written (`/dev/stdout` redirected to a file); a
        // device or pipe has no size to tell.
        let written = std::fs::canonicalize(&self.out_graph)
            .and_then(std::fs::metadata)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map_or_else(String::new, |m| format!(", {} bytes", m.len()));
        errln!(
            "graphopt: wrote {} ({}{written}): {nodes} nodes, {functions} functions",
            self.out_graph.display(),
            if format == GraphFormat::Text {
                "text"
            } else {
                "binary"
            },
        );
        Ok(())
    }
}

#[derive(Args)]
struct InspectArgs {
    /// SavedModel directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args)]
struct VerifyArgs {
    /// The reference graph.
    #[arg(value_name = "ORIGINAL")]
    original: PathBuf,
    /// The graph to check against it.
    #[arg(value_name = "OPTIMIZED")]
    optimized: PathBuf,
    /// Seed of the input generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Comma-separated inputs to feed [default: the original's Placeholders].
    #[arg(long, value_name = "NAMES")]
    inputs: Option<String>,
    /// Comma-separated outputs to compare [default: the original's likely outputs].
    #[arg(long, value_name = "NAMES")]
    outputs: Option<String>,
    /// Largest acceptable error relative to the output's magnitude.
    #[arg(long, default_value_t = 1e-5, value_parser = parse_tolerance)]
    tolerance: f64,
    /// Size used for dimensions the inputs leave unknown.
    #[arg(long = "unknown_dim", default_value_t = 1)]
    unknown_dim: usize,
    /// Print the report as JSON. Floating-point outputs are compared by their errors and
    /// have "exact_match": null; other outputs (integers, bools, strings) are compared exactly,
    /// "exact_match" true or false.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TransformArgs {
    /// Graph to read, binary (.pb) or text (.pbtxt).
    #[arg(long = "in_graph", value_name = "FILE")]
    in_graph: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    /// Comma-separated input node names.
    #[arg(long, value_name = "NAMES")]
    inputs: Option<String>,
    /// Comma-separated output node names.
    #[arg(long, value_name = "NAMES")]
    outputs: Option<String>,
    /// Transform list, e.g. 'remove_device sort_by_execution_order'.
    #[arg(long, value_name = "TRANSFORMS")]
    transforms: String,
}

#[derive(Args)]
struct SummarizeArgs {
    /// Graph to read, binary (.pb) or text (.pbtxt).
    #[arg(value_name = "GRAPH", required_unless_present = "in_graph")]
    graph: Option<PathBuf>,
    /// The same, as summarize_graph spells it.
    #[arg(long = "in_graph", value_name = "FILE", conflicts_with = "graph")]
    in_graph: Option<PathBuf>,
    /// Also list every node with its op and inputs, in execution order.
    #[arg(long = "print_structure")]
    print_structure: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let flags = Settings {
        memory: cli.memory_budget,
        work: cli.work_budget,
    };
    let settings = match Settings::from_env() {
        Ok(settings) => settings.overridden_by(flags),
        Err(error) => {
            errln!("graphopt: error: {}", one_line(&error.to_string()));
            return ExitCode::FAILURE;
        }
    };
    let input_size = cli
        .command
        .inputs()
        .iter()
        .map(|p| io::input_size(p))
        .fold(0u64, u64::saturating_add);
    let budget = settings.budget_for(input_size);
    let result = budget.enter(|| run(cli.command));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            errln!("graphopt: error: {}", one_line(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Transform(args) => transform(&args),
        Command::Summarize(args) => summarize(&args),
        Command::Transforms => list_transforms(),
        Command::Verify(args) => verify(&args),
        Command::Freeze(args) => freeze(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Check(args) => check(&args),
        Command::Targets => list_targets(),
    }
}

/// `--inputs`/`--outputs`: comma-separated, blanks trimmed, empty pieces dropped; none if absent.
fn split_names(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A path a graph can be read from: not a (SavedModel) directory, not a SavedModel's own
/// `saved_model.pb`; those get an error pointing to `freeze` and `inspect`.
fn graph_file(path: &Path) -> Result<(), Error> {
    let path_buf = path.to_path_buf();
    if path.is_dir() {
        return Err(if path.join("saved_model.pb").is_file() {
            Error::SavedModelDir { path: path_buf }
        } else {
            Error::Directory { path: path_buf }
        });
    }
    if path.file_name().is_some_and(|n| n == "saved_model.pb") {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return Err(Error::SavedModelFile {
            path: path_buf,
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Each of `names`, given with `flag` (`--inputs` or `--outputs`), is a node of the graph read
/// from `path`; else an error listing the graph's likely inputs or outputs, as `summarize`
/// finds them.
fn check_names(
    path: &Path,
    graph: &graphopt_core::proto::GraphDef,
    flag: &str,
    names: &[String],
) -> Result<(), Error> {
    let index = graph::GraphIndex::new(graph);
    let Some(missing) = names
        .iter()
        .find(|n| index.node(graph::node_name(n)).is_none())
    else {
        return Ok(());
    };
    let summary = summary::summarize(graph, None);
    let likely: Vec<String> = if flag == "--inputs" {
        summary.inputs.into_iter().map(|t| t.name).collect()
    } else {
        summary.outputs.into_iter().map(|t| t.name).collect()
    };
    let what = flag.trim_start_matches('-');
    Err(Error::UnknownName {
        path: path.to_path_buf(),
        flag: flag.to_string(),
        name: missing.clone(),
        likely: if likely.is_empty() {
            format!("the graph has no likely {what}")
        } else {
            format!("likely {what}: {}", likely.join(", "))
        },
    })
}

/// The command a SavedModel directory was given to, for the way out of a wrong path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SavedModelCommand {
    Freeze,
    Inspect,
}

/// A path a SavedModel can be read from, as far as a file can tell: a SavedModel's own
/// `saved_model.pb` gets an error giving its directory, a GraphDef file one pointing to the
/// command that reads it. Directories are left to the SavedModel reader.
fn saved_model_dir(path: &Path, command: SavedModelCommand) -> Result<(), Error> {
    if !path.is_file() {
        return Ok(());
    }
    let path_buf = path.to_path_buf();
    if path.file_name().is_some_and(|n| n == "saved_model.pb") {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .display();
        return Err(Error::SavedModelFileNotDir {
            path: path_buf,
            usage: match command {
                SavedModelCommand::Freeze => format!("--saved_model_dir={dir}"),
                SavedModelCommand::Inspect => format!("graphopt inspect {dir}"),
            },
        });
    }
    let Ok(loaded) = io::read_graph(path) else {
        return Err(Error::FileNotSavedModel { path: path_buf });
    };
    let p = path.display();
    let has_variables = loaded
        .graph
        .node
        .iter()
        .any(|n| matches!(n.op.as_str(), "VariableV2" | "Variable" | "VarHandleOp"));
    let hint = match command {
        SavedModelCommand::Inspect => format!("summarize it instead (graphopt summarize {p})"),
        SavedModelCommand::Freeze if has_variables => format!(
            "freeze it with its checkpoint (graphopt freeze --in_graph={p} --checkpoint=PREFIX --outputs=NAMES --out_graph=frozen.pb)"
        ),
        SavedModelCommand::Freeze => {
            format!("it has no variables to freeze (graphopt summarize {p})")
        }
    };
    Err(Error::GraphDefNotSavedModel {
        path: path_buf,
        hint,
    })
}

fn load_valid(path: &Path) -> Result<io::LoadedGraph, Error> {
    graph_file(path)?;
    let loaded = io::read_graph(path)?;
    print_warnings(&loaded.warnings);
    graph::validate(&loaded.graph)
        .map_err(|source| graphopt_core::Error::invalid_graph(path.to_path_buf(), source))?;
    Ok(loaded)
}

fn transform(args: &TransformArgs) -> Result<(), Error> {
    let specs = transforms::parse(&args.transforms)?;
    let registry = Registry::with_builtins();
    registry.check(&specs)?;
    args.output.check_writable()?;
    let inputs = split_names(args.inputs.as_deref());
    let outputs = split_names(args.outputs.as_deref());
    let loaded = load_valid(&args.in_graph)?;
    check_names(&args.in_graph, &loaded.graph, "--inputs", &inputs)?;
    check_names(&args.in_graph, &loaded.graph, "--outputs", &outputs)?;
    let (optimized, outcomes) =
        transforms::run_deferred(&registry, loaded.graph, &specs, &inputs, &outputs).map_err(
            |source| Error::TransformIn {
                path: args.in_graph.clone(),
                source,
            },
        )?;
    for outcome in &outcomes {
        for warning in &outcome.warnings {
            errln!(
                "graphopt: warning: {}: {}",
                outcome.transform,
                one_line(warning)
            );
        }
        match &outcome.ignored_error {
            Some(error) => errln!(
                "graphopt: warning: {} failed and was skipped (ignore_errors=true): {}",
                outcome.transform,
                one_line(error)
            ),
            None => errln!(
                "graphopt: {}: {} -> {} nodes",
                outcome.transform,
                outcome.nodes_before,
                outcome.nodes_after
            ),
        }
    }
    args.output.write_deferred(&optimized)
}

fn summarize(args: &SummarizeArgs) -> Result<(), Error> {
    // clap requires one of the two.
    let Some(path) = args.graph.as_ref().or(args.in_graph.as_ref()) else {
        return Ok(());
    };
    graph_file(path)?;
    let loaded = io::read_graph(path)?;
    print_warnings(&loaded.warnings);
    let memory = summary::report_memory(&loaded.graph, args.print_structure);
    budget::alloc(memory).map_err(|e| graphopt_core::Error::TooLarge {
        path: path.clone(),
        detail: format!("its summary would take about {}: {e}", budget::size(memory)),
    })?;
    let report = summary::summarize(&loaded.graph, Some(loaded.file_size));
    if args.json {
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| json_error("summary as JSON", e))?;
        outln!("{json}")?;
    } else {
        output::stdout(&report.to_text(&path.display().to_string()))?;
    }
    if args.print_structure {
        output::stdout(&summary::structure(&loaded.graph))?;
    }
    // Report problems after the summary, as summarize_graph does, and fail.
    graph::validate(&loaded.graph)
        .map_err(|source| graphopt_core::Error::invalid_graph(path.clone(), source).into())
}

/// `--tolerance`: a number, zero or more (infinity accepts any finite difference). NaN would
/// be exceeded by no error and a negative tolerance by every one, so both are usage errors.
fn parse_tolerance(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value >= 0.0 => Ok(value),
        Ok(value) => Err(format!("must be zero or more, not {value}")),
        Err(e) => Err(e.to_string()),
    }
}

fn verify(args: &VerifyArgs) -> Result<(), Error> {
    let original = load_valid(&args.original)?;
    let optimized = load_valid(&args.optimized)?;
    let options = graphopt_core::verify::VerifyOptions {
        inputs: split_names(args.inputs.as_deref()),
        outputs: split_names(args.outputs.as_deref()),
        seed: args.seed,
        unknown_dim: args.unknown_dim,
    };
    check_names(&args.original, &original.graph, "--inputs", &options.inputs)?;
    check_names(
        &args.original,
        &original.graph,
        "--outputs",
        &options.outputs,
    )?;
    let report = graphopt_core::verify::compare(&original.graph, &optimized.graph, &options)
        .map_err(|e| {
            let path = match &e {
                VerifyError::Original(_)
                | VerifyError::Input { .. }
                | VerifyError::Unseedable { .. }
                | VerifyError::BadInput(_) => &args.original,
                VerifyError::Optimized(_)
                | VerifyError::ShapeMismatch { .. }
                | VerifyError::DtypeMismatch { .. } => &args.optimized,
                _ => return Error::Verify(e),
            };
            let message = match e {
                VerifyError::Original(inner) | VerifyError::Optimized(inner) => inner.to_string(),
                other => other.to_string(),
            };
            Error::VerifyIn {
                path: path.clone(),
                message,
            }
        })?;
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| json_error("verify report as JSON", e))?;
        outln!("{json}")?;
    } else {
        outln!(
            "seed {}, inputs: {}",
            report.seed,
            one_line(&report.inputs.join(", "))
        )?;
        outln!(
            "{:<40} {:<16} {:>14} {:>14}",
            "output",
            "shape",
            "max abs error",
            "max rel error"
        )?;
        for o in &report.outputs {
            let shape = format!("{:?}", o.shape);
            let name = one_line(&o.name);
            match o.exact_match {
                Some(same) => outln!(
                    "{:<40} {:<16} {:>29}",
                    name,
                    shape,
                    if same { "equal" } else { "DIFFERENT" }
                )?,
                None => outln!(
                    "{:<40} {:<16} {:>14.3e} {:>14.3e}",
                    name,
                    shape,
                    o.max_abs_error,
                    o.max_rel_error
                )?,
            }
        }
    }
    let worst = report.outputs.iter().find(|o| {
        o.exact_match == Some(false) || o.max_rel_error > args.tolerance || o.max_rel_error.is_nan()
    });
    match worst {
        Some(o) => Err(Error::OverTolerance {
            original: args.original.display().to_string(),
            optimized: args.optimized.display().to_string(),
            output: o.name.clone(),
            error: if o.exact_match == Some(false) {
                f64::INFINITY
            } else {
                o.max_rel_error
            },
            absolute: o.max_abs_error,
            tolerance: args.tolerance,
        }),
        None => {
            if !args.json {
                outln!(
                    "worst relative error {:.3e} is within the tolerance {:e}",
                    report.worst(),
                    args.tolerance
                )?;
            }
            Ok(())
        }
    }
}

fn freeze(args: &FreezeArgs) -> Result<(), Error> {
    args.output.check_writable()?;
    let (graph, inputs, outputs) = match (&args.saved_model_dir, &args.in_graph) {
        (Some(dir), _) => {
            saved_model_dir(dir, SavedModelCommand::Freeze)?;
            let options = freeze::SavedModelOptions {
                tag_set: args.tag_set.clone(),
                signature: args.signature_def.clone(),
            };
            let frozen = freeze::freeze_saved_model(dir, &options)
                .map_err(|e| graphopt_core::Error::Freeze(format!("{}: {e}", dir.display())))?;
            (frozen.graph, frozen.inputs, frozen.outputs)
        }
        (None, Some(path)) => {
            let graph = if path.extension().is_some_and(|e| e == "meta") {
                let graph = freeze::read_meta_graph(path).map_err(|e| {
                    graphopt_core::Error::Freeze(format!("{}: {e}", path.display()))
                })?;
                graph::validate(&graph)
                    .map_err(|source| graphopt_core::Error::invalid_graph(path.clone(), source))?;
                graph
            } else {
                load_valid(path)?.graph
            };
            let outputs = split_names(args.outputs.as_deref());
            check_names(path, &graph, "--outputs", &outputs)?;
            let prefix = args.checkpoint.clone().unwrap_or_default();
            let checkpoint = freeze::checkpoint::Checkpoint::open(&prefix)
                .map_err(|e| graphopt_core::Error::Freeze(e.to_string()))?;
            let frozen = freeze::freeze_graph(&graph, &checkpoint, &outputs)
                .map_err(|e| graphopt_core::Error::Freeze(format!("{}: {e}", path.display())))?;
            let inputs = frozen
                .node
                .iter()
                .filter(|n| n.op == "Placeholder")
                .map(|n| n.name.clone())
                .collect();
            (frozen, inputs, outputs)
        }
        // clap requires one of the two.
        (None, None) => return Ok(()),
    };
    graph::validate(&graph).map_err(|source| {
        graphopt_core::Error::invalid_graph(args.output.out_graph.clone(), source)
    })?;
    let constants = graph.node.iter().filter(|n| n.op == "Const").count();
    errln!(
        "graphopt: frozen: {} nodes ({constants} constants); inputs: {}; outputs: {}",
        graph.node.len(),
        inputs.join(", "),
        outputs.join(", ")
    );
    args.output.write(&graph)
}

fn inspect(args: &InspectArgs) -> Result<(), Error> {
    saved_model_dir(&args.dir, SavedModelCommand::Inspect)?;
    let model = freeze::saved_model::read_saved_model(&args.dir)
        .map_err(|e| graphopt_core::Error::Freeze(e.to_string()))?;
    output::stdout(&freeze::saved_model::describe(&model))?;
    Ok(())
}

fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        errln!("graphopt: warning: {}", one_line(warning));
    }
}

fn list_transforms() -> Result<(), Error> {
    let registry = Registry::with_builtins();
    for t in registry.iter() {
        let defaults = t.param_defaults();
        let shown = |param: &&str| match defaults.iter().find(|(name, _)| name == param) {
            Some((_, "")) => format!("{param}=\"\""),
            Some((_, value)) => format!("{param}={value}"),
            None => param.to_string(),
        };
        let params = match t.params() {
            Some([]) => String::new(),
            Some(params) => format!(
                "({})",
                params.iter().map(shown).collect::<Vec<_>>().join(", ")
            ),
            None => "(any parameters)".into(),
        };
        outln!("{}{params}\n    {}", t.name(), t.summary())?;
    }
    Ok(())
}

fn check(args: &CheckArgs) -> Result<(), Error> {
    let target = targets::Target::by_name(&args.target)?;
    let loaded = load_valid(&args.graph)?;
    let problems = targets::check(&loaded.graph, target);
    let blocking = targets::blocking_nodes(&problems).len();
    let path = args.graph.display().to_string();
    if args.json {
        let report = serde_json::json!({
            "graph": path,
            "target": target.name,
            "version": target.version,
            "nodes": loaded.graph.node.len(),
            "loadable": blocking == 0,
            "problems": problems,
        });
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| json_error("check report as JSON", e))?;
        outln!("{json}")?;
    } else {
        // One line per problem: node names (and the names in `why`) come from the model.
        for p in &problems {
            let label = match (p.blocking, p.kind) {
                (true, _) => "",
                (false, targets::ProblemKind::UnverifiedOp) => "unverified: ",
                (false, _) => "advice: ",
            };
            outln!("{label}{}", one_line(&p.to_string()))?;
        }
        if blocking == 0 {
            outln!(
                "{}: {} {} loads all {} nodes",
                one_line(&path),
                target.name,
                target.version,
                loaded.graph.node.len()
            )?;
        }
    }
    if blocking > 0 {
        return Err(Error::NotLoadable {
            path,
            target: format!("{} {}", target.name, target.version),
            count: blocking,
        });
    }
    Ok(())
}

fn list_targets() -> Result<(), Error> {
    for t in targets::all()? {
        let lists: Vec<String> = t
            .op_lists
            .iter()
            .map(|l| format!("{} {}", l.name, l.count))
            .collect();
        outln!("{} {}: {}", t.name, t.version, t.title)?;
        outln!(
            "    ops: {}{}; {}",
            lists.join(", "),
            if t.ops_complete {
                ""
            } else {
                " (partial list)"
            },
            if t.installs_here {
                "installs here"
            } else {
                "profile only (does not install here)"
            }
        )?;
        for s in &t.sources {
            outln!("    source: {} @ {}: {}", s.repository, s.revision, s.path)?;
        }
    }
    Ok(())
}
