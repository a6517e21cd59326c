//! The commands of the README's first screen, run as the README spells them: the `graphopt
//! transform` and `graphopt verify` lines are read from its code block (so a changed command is
//! what runs here), `cargo run -p graphopt-cli --` becomes the binary under test, paths under
//! `target/` a temporary directory, and they run from the workspace root. They must succeed
//! and print what the README says they print: `transform` ends with a line saying what it
//! wrote (path, format, bytes, nodes, functions), and `verify` checks the optimized graph
//! against the original on seeded inputs, every output within the default tolerance.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn readme() -> String {
    let path = workspace_root().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The code blocks of a Markdown text, as their lines.
fn code_blocks(markdown: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some(Vec::new()),
            }
        } else if let Some(block) = current.as_mut() {
            block.push(line);
        }
    }
    blocks
}

/// A shell command line split into words as sh does it: white space separates, single quotes
/// keep everything, double quotes keep all but `\"`, `\\`, `\$` and `` \` ``, a backslash
/// outside quotes escapes the next character. No expansion (the README's commands use none).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => panic!("unclosed ' in {line}"),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => panic!("unclosed \" in {line}"),
                        },
                        Some(c) => w.push(c),
                        None => panic!("unclosed \" in {line}"),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The graphopt commands of the README's first code block that runs `graphopt transform`, each
/// as graphopt's arguments: comments dropped, continuation lines joined, and the way the README
/// starts graphopt (`cargo run -p graphopt-cli --` or an installed `graphopt`) taken off.
fn readme_commands() -> Vec<Vec<String>> {
    let text = readme();
    let block = code_blocks(&text)
        .into_iter()
        .find(|block| {
            block
                .iter()
                .any(|line| line.contains("graphopt-cli -- transform"))
        })
        .expect("README.md has no code block with `cargo run -p graphopt-cli -- transform`");
    let joined = block.join("\n").replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let words = shell_words(line);
            let args = match words.first().map(String::as_str) {
                Some("cargo") => {
                    let dash = words
                        .iter()
                        .position(|w| w == "--")
                        .unwrap_or_else(|| panic!("README command without `--`: {line}"));
                    let cargo = &words[1..dash];
                    assert!(
                        cargo.first().is_some_and(|w| w == "run")
                            && cargo.windows(2).any(|w| {
                                (w[0] == "-p" || w[0] == "--package") && w[1] == "graphopt-cli"
                            }),
                        "README command that does not run graphopt-cli: {line}"
                    );
                    &words[dash + 1..]
                }
                Some("graphopt") => &words[1..],
                _ => panic!("README command that does not run graphopt: {line}"),
            };
            args.to_vec()
        })
        .collect()
}

/// The README's command with every path under `target/` moved into `dir`: the value of a
/// `--flag=target/...` or a `target/...` word.
fn relocate(args: &[String], dir: &Path) -> Vec<String> {
    let moved = |path: &str| -> Option<String> {
        path.strip_prefix("target/")
            .map(|rest| dir.join(rest).display().to_string())
    };
    args.iter()
        .map(|arg| {
            if let Some((flag, value)) = arg.split_once('=') {
                if let Some(path) = moved(value) {
                    return format!("{flag}={path}");
                }
            }
            moved(arg).unwrap_or_else(|| arg.clone())
        })
        .collect()
}

/// The value of `--name=value` or `--name value` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    args.iter().enumerate().find_map(|(k, arg)| {
        if let Some(value) = arg.strip_prefix(&format!("{long}=")) {
            Some(value)
        } else if *arg == long {
            args.get(k + 1).map(String::as_str)
        } else {
            None
        }
    })
}

fn run(args: &[String]) -> Output {
    println!("graphopt {}", args.join(" "));
    Command::new(env!("CARGO_BIN_EXE_graphopt"))
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("run graphopt")
}

fn node_count(path: &Path) -> usize {
    graphopt_core::io::read_graph(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .graph
        .node
        .len()
}

/// verify's default tolerance, as the README's verify section states it.
fn readme_default_tolerance() -> f64 {
    let text = readme().split_whitespace().collect::<Vec<_>>().join(" ");
    let marker = "Exit 1 if any output is over `--tolerance` (default ";
    assert_eq!(
        text.matches(marker).count(),
        1,
        "README.md must say \"{marker}...)\" once"
    );
    let start = text.find(marker).unwrap() + marker.len();
    let figure = &text[start..start + text[start..].find(')').unwrap()];
    figure
        .parse()
        .unwrap_or_else(|_| panic!("README.md: verify's default tolerance '{figure}'"))
}

#[test]
fn readme_first_screen_commands_run_as_written() {
    let commands = readme_commands();
    let verbs: Vec<&str> = commands
        .iter()
        .map(|c| c.first().map_or("", String::as_str))
        .collect();
    assert_eq!(
        verbs,
        ["transform", "verify"],
        "the README's first-screen commands"
    );
    let (transform, verify) = (&commands[0], &commands[1]);

    let dir = tempfile::tempdir().unwrap();
    let root = workspace_root();

    // transform: reads a committed fixture, writes under target/ (here: the temporary
    // directory), and says what it wrote.
    let in_graph = flag(transform, "in_graph").expect("README transform without --in_graph");
    assert!(
        root.join(in_graph).is_file(),
        "README transform reads {in_graph}, which is not in the repository"
    );
    let out_graph = flag(transform, "out_graph").expect("README transform without --out_graph");
    assert!(
        out_graph.starts_with("target/"),
        "README transform writes {out_graph}, outside target/"
    );
    let args = relocate(transform, dir.path());
    let written = PathBuf::from(flag(&args, "out_graph").unwrap());
    let output = run(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "README command `graphopt {}` failed: {stderr}",
        transform.join(" ")
    );
    let bytes = std::fs::metadata(&written)
        .unwrap_or_else(|e| panic!("{}: {e}", written.display()))
        .len();
    let format = if args.iter().any(|a| a == "--output_as_text")
        || written
            .extension()
            .is_some_and(|e| e == "pbtxt" || e == "txt")
    {
        "text"
    } else {
        "binary"
    };
    let nodes = node_count(&written);
    let last = stderr.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!(
            "graphopt: wrote {} ({format}, {bytes} bytes): {nodes} nodes, 0 functions",
            written.display()
        ),
        "transform's last line: {stderr}"
    );
    assert!(
        nodes < node_count(&root.join(in_graph)),
        "the README's optimization removed no node"
    );
    // "the standard pipeline": the one the node-count table defines, and the count its row
    // for this fixture gives under "graphopt, standard".
    let text = readme().split_whitespace().collect::<Vec<_>>().join(" ");
    let marker = "The standard deployment pipeline `";
    let at = text
        .find(marker)
        .expect("README.md: \"The standard deployment pipeline `\"")
        + marker.len();
    let standard = &text[at..at + text[at..].find('`').unwrap()];
    assert_eq!(
        flag(transform, "transforms"),
        Some(standard),
        "the first screen's pipeline vs the README's standard pipeline"
    );
    let fixture = Path::new(in_graph)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap();
    let row = readme()
        .lines()
        .find(|l| l.starts_with(&format!("| {fixture} ")))
        .unwrap_or_else(|| panic!("README.md: no node-count row for {fixture}"))
        .to_string();
    let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    assert_eq!(
        cells.get(3).and_then(|c| c.parse::<usize>().ok()),
        Some(nodes),
        "the first screen's transform vs the table's \"graphopt, standard\" for {fixture}: {row}"
    );

    // verify: the original against what transform wrote, on seeded inputs; every output within
    // the default tolerance.
    assert_eq!(
        verify[1..],
        [in_graph.to_string(), out_graph.to_string()],
        "README verify must compare transform's input with its output"
    );
    let args = relocate(verify, dir.path());
    let output = run(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "README command `graphopt {}` failed: {stdout}{}",
        verify.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    let tolerance = readme_default_tolerance();
    assert!(stdout.starts_with("seed "), "{stdout}");
    assert!(
        stdout.contains(&format!("is within the tolerance {tolerance:e}")),
        "{stdout}"
    );
    let outputs: Vec<&str> = flag(transform, "outputs")
        .expect("README transform without --outputs")
        .split(',')
        .collect();
    for name in &outputs {
        assert!(
            stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "verify prints no row for {name}: {stdout}"
        );
    }
    // The same comparison as JSON: each output's error, within the tolerance.
    let mut json_args = args.clone();
    json_args.push("--json".into());
    let output = run(&json_args);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let inputs = flag(transform, "inputs").expect("README transform without --inputs");
    assert_eq!(
        report["inputs"],
        serde_json::json!(inputs.split(',').collect::<Vec<_>>()),
        "verify seeds the inputs transform was given"
    );
    let checked: Vec<&str> = report["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let name = o["name"].as_str().unwrap();
            let error = o["max_rel_error"].as_f64().unwrap();
            assert!(error <= tolerance, "{name}: relative error {error:e}");
            name
        })
        .collect();
    assert_eq!(
        checked, outputs,
        "verify checks the outputs transform kept, and only those"
    );
}

#[test]
fn shell_words_split_as_sh_does() {
    assert_eq!(
        shell_words(r#"a --t='x y(op=I)' "b \"c\"" d\ e"#),
        ["a", "--t=x y(op=I)", "b \"c\"", "d e"]
    );
}

/// The README's "Command line" block: every command it lists exists, every flag it shows is
/// one that command takes (`COMMAND --help` lists it), and every default it shows in brackets
/// (`[--tag_set=serve]`, `[--tolerance 1e-5]`) is the one `--help` gives.
#[test]
fn the_command_line_block_matches_each_commands_help() {
    let readme = readme();
    let section = &readme[readme.find("## Command line").expect("the section")..];
    let block = code_blocks(section)
        .into_iter()
        .next()
        .expect("the usage block");
    let mut flags_checked = 0;
    let mut defaults_checked = 0;
    for line in block {
        let Some(rest) = line.strip_prefix("graphopt ") else {
            panic!("not a command: {line}");
        };
        let command = rest.split_whitespace().next().unwrap();
        let help = run(&[command.to_string(), "--help".to_string()]);
        assert!(help.status.success(), "{command} --help");
        let help = String::from_utf8(help.stdout).unwrap();
        // Each `--flag` of the line (up to the description after a wide gap).
        let usage = rest.split("   ").next().unwrap();
        for word in usage.split(['[', ']', ' ', '\'']) {
            let Some(flag) = word.strip_prefix("--") else {
                continue;
            };
            let name = flag.split('=').next().unwrap();
            assert!(
                help.contains(&format!("--{name} ")) || help.contains(&format!("--{name}\n")),
                "{command}: --{name} is not in its --help:\n{help}"
            );
            flags_checked += 1;
        }
        // Bracketed defaults: `[--name=value]` or `[--name value]` with a literal value.
        for bracket in usage.split('[').skip(1) {
            let inside = bracket.split(']').next().unwrap();
            let Some(flag) = inside.strip_prefix("--") else {
                continue;
            };
            let Some((name, value)) = flag.split_once(['=', ' ']) else {
                continue;
            };
            // Placeholders (`a`, `N`, `a,b`) are not defaults.
            if value.chars().all(|c| c.is_ascii_uppercase())
                || (value.len() == 1 && value.chars().all(|c| c.is_ascii_alphabetic()))
                || value.contains(',')
            {
                continue;
            }
            let help_line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("--{name} ")))
                .unwrap_or_else(|| panic!("{command}: no --{name} line"));
            let default = help_line
                .split("[default: ")
                .nth(1)
                .and_then(|d| d.split(']').next())
                .unwrap_or_else(|| panic!("{command}: --{name} shows no default"));
            let same = default == value
                || matches!(
                    (default.parse::<f64>(), value.parse::<f64>()),
                    (Ok(a), Ok(b)) if a == b
                );
            assert!(
                same,
                "{command}: --{name}: README {value}, --help {default}"
            );
            defaults_checked += 1;
        }
    }
    assert!(flags_checked >= 20, "{flags_checked} flags");
    assert_eq!(
        defaults_checked, 4,
        "--tag_set, --signature_def, --tolerance, --unknown_dim"
    );
}

/// The help line of `--name` in `help`.
fn help_line<'a>(help: &'a str, name: &str) -> Option<&'a str> {
    help.lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(&format!("--{name} ")))
}

/// The README's "Every command also takes `--memory_budget` and `--work_budget` ... (defaults
/// in `graphopt COMMAND --help`)": each command of the usage block lists both with a default,
/// and that default is the one the README's build-integration guard states, "max(256 MiB, 8x
/// the model's size) and max(2^27, 256x its size)".
#[test]
fn every_command_takes_the_budgets_with_the_readme_defaults() {
    let readme = readme();
    let text = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains(
            "Every command also takes `--memory_budget` and `--work_budget`: the memory it may \
             hold and the element operations it may do on a model (defaults in `graphopt COMMAND --help`)."
        ),
        "README.md no longer says every command takes the budgets"
    );
    // "max(256 MiB, 8x the model's size) and max(2^27, 256x its size)"
    let marker = "else max(";
    let at = text.find(marker).expect("README.md: the budgets' defaults") + marker.len();
    let stated = &text[at..at + text[at..].find(" element operations").unwrap()];
    let numbers: Vec<u64> = stated
        .split(|c: char| !c.is_ascii_digit() && c != '^')
        .filter(|w| !w.is_empty())
        .map(|w| match w.split_once('^') {
            Some((base, exp)) => base.parse::<u64>().unwrap().pow(exp.parse().unwrap()),
            None => w.parse().unwrap(),
        })
        .collect();
    assert!(
        stated.starts_with("256 MiB, 8x") && stated.contains("max(2^27, 256x"),
        "the README's budget defaults: {stated}"
    );
    let [memory_mib, memory_factor, work_min, work_factor] = numbers[..] else {
        panic!("the README's budget defaults: {stated}");
    };
    let section = &readme[readme.find("## Command line").expect("the section")..];
    let block = code_blocks(section)
        .into_iter()
        .next()
        .expect("the usage block");
    let mut commands: Vec<&str> = block
        .iter()
        .filter_map(|l| l.strip_prefix("graphopt ")?.split_whitespace().next())
        .collect();
    commands.dedup();
    assert!(commands.len() >= 8, "{commands:?}");
    for command in commands {
        let help = run(&[command.to_string(), "--help".to_string()]);
        assert!(help.status.success(), "{command} --help");
        let help = String::from_utf8(help.stdout).unwrap();
        let memory = help_line(&help, "memory_budget")
            .unwrap_or_else(|| panic!("{command} --help has no --memory_budget:\n{help}"));
        assert!(
            memory.contains(&format!(
                "[default: $GRAPHOPT_MEMORY_BUDGET, else max({memory_mib}M, {memory_factor} x the input's size)]"
            )),
            "{command}: {memory}"
        );
        let work = help_line(&help, "work_budget")
            .unwrap_or_else(|| panic!("{command} --help has no --work_budget:\n{help}"));
        assert!(
            work.contains(&format!(
                "[default: $GRAPHOPT_WORK_BUDGET, else max({}M, {work_factor} x the input's size)]",
                work_min >> 20
            )),
            "{command}: {work}"
        );
    }
}

/// The README's "An op's name is not checked against TensorFlow's op list: `rename_op` may name
/// a custom op the consumer has registered (and will equally accept a typo); `graphopt check
/// --target=...` reports every op the target does not load": renaming Relu to an op no one
/// knows passes validation, and `check` names each renamed node with its op and exits 1.
#[test]
fn rename_op_accepts_a_custom_op_and_check_reports_it() {
    let text = readme().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains(
            "An op's name is not checked against TensorFlow's op list: `rename_op` may name a \
             custom op the consumer has registered (and will equally accept a typo); `graphopt \
             check --target=...` reports every op the target does not load."
        ),
        "README.md no longer says rename_op may name a custom op"
    );
    let dir = tempfile::tempdir().unwrap();
    let input = "tests/fixtures/models/keras_cnn.pb";
    let out = dir.path().join("custom.pb");
    let output = run(&[
        "transform".into(),
        format!("--in_graph={input}"),
        format!("--out_graph={}", out.display()),
        "--inputs=input".into(),
        "--outputs=Identity".into(),
        "--transforms=rename_op(old_op_name=Relu, new_op_name=MyCustomRelu)".into(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let original = graphopt_core::io::read_graph(workspace_root().join(input))
        .unwrap()
        .graph;
    let relus: Vec<&str> = original
        .node
        .iter()
        .filter(|n| n.op == "Relu")
        .map(|n| n.name.as_str())
        .collect();
    assert!(!relus.is_empty(), "the fixture has no Relu to rename");
    let renamed = graphopt_core::io::read_graph(&out).unwrap().graph;
    for name in &relus {
        let node = renamed.node.iter().find(|n| n.name == *name).unwrap();
        assert_eq!(node.op, "MyCustomRelu", "{name}");
    }
    for target in ["opencv", "tract"] {
        let output = run(&[
            "check".into(),
            format!("--target={target}"),
            "--json".into(),
            out.display().to_string(),
        ]);
        assert_eq!(output.status.code(), Some(1), "{target}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut reported: Vec<&str> = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["op"] == "MyCustomRelu")
            .map(|p| p["node"].as_str().unwrap())
            .collect();
        reported.sort_unstable();
        let mut expected = relus.clone();
        expected.sort_unstable();
        assert_eq!(
            reported, expected,
            "{target}: the renamed nodes check reports"
        );
    }
}

/// The README's "Output is text format for a `.pbtxt`/`.txt` path or with `--output_as_text`":
/// `transform`'s last line says which format it wrote, and the file reads back as that format.
#[test]
fn output_is_text_for_pbtxt_and_txt_paths_or_with_output_as_text() {
    let text = readme().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains(
            "Output is text format for a `.pbtxt`/`.txt` path or with `--output_as_text`"
        ),
        "README.md no longer says when output is text"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, as_text, format) in [
        ("g.pb", false, "binary"),
        ("g.pbtxt", false, "text"),
        ("g.txt", false, "text"),
        ("h.pb", true, "text"),
    ] {
        let out = dir.path().join(name);
        let mut args = vec![
            "transform".to_string(),
            "--in_graph=tests/fixtures/models/keras_cnn.pb".into(),
            format!("--out_graph={}", out.display()),
            "--outputs=Identity".into(),
            "--transforms=sort_by_execution_order".into(),
        ];
        if as_text {
            args.push("--output_as_text".into());
        }
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with(&format!("graphopt: wrote {} ({format}, ", out.display())),
            "{name}: {last}"
        );
        // A text GraphDef starts with a field name; a binary one with a field tag byte.
        let first = std::fs::read(&out).unwrap()[0];
        assert_eq!(first.is_ascii_alphabetic(), format == "text", "{name}");
    }
}

/// The README's "the writer ... starts the disk on every 8 MB as it goes" is the writer's step
/// (`pages::WriteBehind::CHUNK`; its unit test checks that writing past one starts the disk).
#[test]
fn the_writers_writeback_step_is_the_readmes() {
    let text = readme().split_whitespace().collect::<Vec<_>>().join(" ");
    let marker = "starts the disk on every ";
    assert_eq!(
        text.matches(marker).count(),
        1,
        "README.md must say \"{marker}N MB\" once"
    );
    let at = text.find(marker).unwrap() + marker.len();
    let figure: u64 = text[at..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .expect("a figure after \"starts the disk on every\"");
    assert_eq!(
        text[at..].split_whitespace().nth(1),
        Some("MB"),
        "the README's writeback step is in MB"
    );
    assert_eq!(
        figure << 20,
        graphopt_core::pages::WriteBehind::CHUNK,
        "the README's writeback step vs the writer's"
    );
}

/// The targets `graphopt targets` lists: (name, whether its profile says it installs here).
fn listed_targets() -> Vec<(String, bool)> {
    let output = run(&["targets".to_string()]);
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut targets: Vec<(String, bool)> = Vec::new();
    for line in stdout.lines() {
        if !line.starts_with(' ') {
            let name = line.split_whitespace().next().unwrap_or("").to_string();
            targets.push((name, false));
        } else if line.trim_start().starts_with("ops:")
            && line.trim_end().ends_with("; installs here")
        {
            targets.last_mut().expect("an ops line under a target").1 = true;
        }
    }
    targets
}

/// The README's `.target("opencv")` (or `tract`, `tvm`, `tensorrt`, `ascend`, `graphopt`) names
/// every target `graphopt targets` lists, and "OpenCV and tract install here; TVM, TensorRT and
/// Ascend do not" is what their profiles say.
#[test]
fn the_readmes_targets_are_the_ones_graphopt_lists() {
    let text = readme().split_whitespace().collect::<Vec<_>>().join(" ");
    let marker = "- `.target(\"";
    assert_eq!(text.matches(marker).count(), 1, "README.md: {marker}");
    let at = text.find(marker).unwrap() + marker.len();
    let end = at
        + text[at..]
            .find(") appends")
            .expect("README.md: `) appends`");
    let mut named: Vec<String> = text[at..end]
        .split(['"', '`'])
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| !w.is_empty() && *w != "or")
        .map(str::to_string)
        .collect();
    named.sort();
    let targets = listed_targets();
    let mut listed: Vec<String> = targets.iter().map(|(n, _)| n.clone()).collect();
    listed.sort();
    assert_eq!(
        named, listed,
        "the README's .target(...) list vs `graphopt targets`"
    );

    let sentence = "OpenCV and tract install here; TVM, TensorRT and Ascend do not, so their \
                    profiles are read from their sources only.";
    assert!(
        text.contains(sentence),
        "README.md no longer says \"{sentence}\""
    );
    let installs = |name: &str| {
        targets
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no target {name}"))
            .1
    };
    for name in ["opencv", "tract"] {
        assert!(installs(name), "{name}: the README says it installs here");
    }
    for name in ["tvm", "tensorrt", "ascend"] {
        assert!(
            !installs(name),
            "{name}: the README says it does not install here"
        );
    }
}
