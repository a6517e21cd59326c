//! End to end: a fresh app crate in a temp dir, built with cargo against the path
//! dependencies, the way a user's project uses graphopt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The test apps' builds keep no debug info and no incremental state: a dozen apps with their
/// dependencies otherwise fill gigabytes of disk, and nothing here reads either.
const LEAN_BUILD: [(&str, &str); 2] =
    [("CARGO_PROFILE_DEV_DEBUG", "0"), ("CARGO_INCREMENTAL", "0")];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const MAIN: &str = r#"
graphopt::include_model!(tiny);

fn main() {
    println!("sha256 {}", tiny::SHA256);
    println!("bytes {}", tiny::GRAPH_DEF.len());
    println!("aligned {}", tiny::GRAPH_DEF.as_ptr() as usize % 16 == 0);
    println!("input {} {:?} {}", tiny::inputs::INPUT.tensor, tiny::inputs::INPUT.dtype, tiny::inputs::INPUT.shape);
    println!("output {} {:?} {}", tiny::outputs::PROBS.tensor, tiny::outputs::PROBS.dtype, tiny::outputs::PROBS.shape);
    println!("counts {} {}", tiny::INPUTS.len(), tiny::OUTPUTS.len());
    println!("transforms {}", tiny::TRANSFORMS);
}
"#;

struct App {
    dir: tempfile::TempDir,
    /// Cargo package name, unique within the test process.
    package: String,
    target: PathBuf,
    cache: PathBuf,
}

impl App {
    fn new() -> App {
        App::named("tiny-app")
    }

    /// An app whose package is `PREFIX-N`. Cargo reuses a package's OUT_DIR across test runs,
    /// so apps that build different models need different prefixes, or one would see the
    /// other's artifacts from an earlier run.
    fn named(prefix: &str) -> App {
        let dir = tempfile::tempdir().unwrap();
        let root = workspace();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::fs::copy(
            root.join("tests/fixtures/models/tf1_conv_bn.pb"),
            dir.path().join("models/tiny.pb"),
        )
        .unwrap();
        // Cargo derives OUT_DIR from the package name relative to its workspace, so every app
        // in the shared target directory needs a name of its own.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let toml = format!(
            "[package]\nname = \"{prefix}-{id}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n\
             [dependencies]\ngraphopt = {{ path = {:?} }}\n\n[build-dependencies]\ngraphopt-build = {{ path = {:?} }}\n",
            root.display().to_string(),
            root.join("graphopt-build").display().to_string(),
        );
        std::fs::write(dir.path().join("Cargo.toml"), toml).unwrap();
        // Dependencies as the workspace locked them, not the newest on crates.io today.
        std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), MAIN).unwrap();
        // Shared across runs so the dependencies compile once.
        let target = root.join("target/graphopt-app-test");
        let cache = dir.path().join("cache");
        let app = App {
            dir,
            package: format!("{prefix}-{id}"),
            target,
            cache,
        };
        app.set_transforms("remove_device sort_by_execution_order", None);
        app
    }

    fn set_transforms(&self, transforms: &str, lock: Option<&str>) {
        let lock = lock
            .map(|l| format!(".lock_file({l:?})"))
            .unwrap_or_default();
        // The build script also leaves its OUT_DIR behind, so the test finds its artifacts.
        let build = format!(
            "fn main() -> Result<(), graphopt_build::Error> {{\n    \
             std::fs::write(\"out_dir.txt\", std::env::var(\"OUT_DIR\").unwrap_or_default()).ok();\n    \
             graphopt_build::Model::new(\"tiny\", \"models/tiny.pb\")\n        \
             .inputs([\"input\"]).outputs([\"probs\"]).transforms({transforms:?}){lock}.build()?;\n    Ok(())\n}}\n"
        );
        self.write("build.rs", build);
    }

    fn cargo(&self, args: &[&str], cache: &Path) -> Output {
        self.cargo_with(args, cache, &[])
    }

    /// Cargo with extra environment variables.
    fn cargo_with(&self, args: &[&str], cache: &Path, vars: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("CARGO_TARGET_DIR", &self.target)
            .envs(LEAN_BUILD)
            .env("GRAPHOPT_CACHE_DIR", cache)
            .env_remove("GRAPHOPT_UPDATE_LOCK")
            .env_remove("GRAPHOPT_BUILD_TEST_FINGERPRINT");
        for (name, value) in vars {
            command.env(name, value);
        }
        command.output().unwrap()
    }

    fn build(&self) -> Output {
        self.cargo(&["build", "--quiet"], &self.cache)
    }

    /// Builds, failing the test with cargo's stderr if the build fails.
    fn build_ok(&self) {
        let out = self.build();
        assert!(out.status.success(), "{}", stderr(&out));
    }

    /// Builds expecting failure; cargo's stderr.
    fn build_error(&self) -> String {
        let out = self.build();
        assert!(!out.status.success(), "the build succeeded");
        stderr(&out)
    }

    /// Builds expecting failure with `message` in cargo's stderr.
    fn build_fails_saying(&self, message: &str) {
        let err = self.build_error();
        assert!(err.contains(message), "{err}");
    }

    /// A path in the app's directory.
    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    fn write(&self, relative: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(relative), contents).unwrap();
    }

    /// Appends `toml` to the app's Cargo.toml.
    fn add_to_manifest(&self, toml: &str) {
        self.write("Cargo.toml", self.read("Cargo.toml") + toml);
    }

    /// The OUT_DIR of the last build, which the build script leaves in out_dir.txt.
    fn out_dir(&self) -> PathBuf {
        PathBuf::from(self.read("out_dir.txt"))
    }

    fn run(&self) -> String {
        let out = self.cargo(&["run", "--quiet"], &self.cache);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The manifest and artifact of the last build.
    fn artifacts(&self) -> (serde_json::Value, Vec<u8>) {
        self.artifacts_of("tiny")
    }

    fn artifacts_of(&self, model: &str) -> (serde_json::Value, Vec<u8>) {
        let manifest = self.out_dir().join(format!("graphopt/{model}.json"));
        let manifest_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        let bytes = std::fs::read(manifest.with_extension("pb")).unwrap();
        (manifest_json, bytes)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_fresh_app_builds_embeds_and_caches_its_model() {
    let app = App::new();
    app.build_ok();
    let (manifest, bytes) = app.artifacts();
    assert_eq!(manifest["cache"], "miss");
    assert_eq!(manifest["sha256"], sha256(&bytes));

    let stdout = app.run();
    assert!(
        stdout.contains(&format!("sha256 {}", sha256(&bytes))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("bytes {}", bytes.len())),
        "{stdout}"
    );
    assert!(stdout.contains("aligned true"), "{stdout}");
    assert!(
        stdout.contains("input input:0 Float [1, 16, 16, 3]"),
        "{stdout}"
    );
    assert!(stdout.contains("output probs:0 Float [1, 5]"), "{stdout}");
    assert!(stdout.contains("counts 1 1"), "{stdout}");
    assert!(
        stdout.contains("transforms remove_device sort_by_execution_order"),
        "{stdout}"
    );

    // Touching build.rs re-runs it: a cache hit, no transform runs, same bytes.
    app.set_transforms("remove_device sort_by_execution_order", None);
    app.build_ok();
    let (manifest, again) = app.artifacts();
    assert_eq!(manifest["cache"], "hit");
    assert!(again == bytes);

    // Another cached run: the artifact is the cache entry's file (a hard link), left untouched
    // (same modification time), and the unchanged source is hashed from the fingerprint memo.
    let out_dir = app.out_dir();
    let artifact = out_dir.join("graphopt/tiny.pb");
    let modified = std::fs::metadata(&artifact).unwrap().modified().unwrap();
    app.set_transforms("remove_device sort_by_execution_order", None);
    app.build_ok();
    assert_eq!(app.artifacts().0["cache"], "hit");
    assert_eq!(
        std::fs::metadata(&artifact).unwrap().modified().unwrap(),
        modified,
        "an unchanged artifact is not rewritten"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let entry = std::fs::read_dir(&app.cache)
            .unwrap()
            .map(|e| e.unwrap().path().join("model.pb"))
            .find(|p| p.exists())
            .unwrap();
        assert_eq!(
            std::fs::metadata(&artifact).unwrap().ino(),
            std::fs::metadata(&entry).unwrap().ino(),
            "the artifact is a hard link to the cache entry"
        );
    }
    let memo = std::fs::read_to_string(out_dir.join("graphopt-fingerprints.json")).unwrap();
    assert!(
        memo.contains("tiny.pb")
            && memo.contains(&manifest["source_sha256"].as_str().unwrap()[..16]),
        "{memo}"
    );

    // A corrupted cache entry is noticed, reported and rebuilt.
    let entry = std::fs::read_dir(&app.cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(entry.join("model.pb"), b"garbage").unwrap();
    app.set_transforms("remove_device sort_by_execution_order", None);
    // Without --quiet, so cargo shows the build script's warning.
    let out = app.cargo(&["build"], &app.cache);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not match its recorded hash"),
        "{}",
        stderr(&out)
    );
    let (manifest, repaired) = app.artifacts();
    assert_eq!(manifest["cache"], "miss");
    assert!(repaired == bytes);

    // Clearing the cache rebuilds byte-identical output.
    std::fs::remove_dir_all(&app.cache).unwrap();
    app.set_transforms("remove_device sort_by_execution_order", None);
    app.build_ok();
    let (manifest, rebuilt) = app.artifacts();
    assert_eq!(manifest["cache"], "miss");
    assert!(
        rebuilt == bytes,
        "a rebuild from an empty cache must give the same bytes"
    );

    // A different transform list gives a different artifact.
    app.set_transforms(
        "strip_unused_nodes fold_constants fold_old_batch_norms sort_by_execution_order",
        None,
    );
    app.build_ok();
    let (manifest, folded) = app.artifacts();
    assert_ne!(manifest["sha256"], sha256(&bytes));
    assert_eq!(manifest["sha256"], sha256(&folded));
    assert!(folded.len() < bytes.len());

    // The lock file records the artifact, then refuses a build whose artifact would differ.
    app.set_transforms(
        "remove_device sort_by_execution_order",
        Some("graphopt.lock"),
    );
    app.build_ok();
    let lock = app.read("graphopt.lock");
    assert!(lock.contains(&sha256(&bytes)), "{lock}");
    app.write(
        "graphopt.lock",
        lock.replace(&sha256(&bytes), &"0".repeat(64)),
    );
    app.set_transforms(
        "remove_device sort_by_execution_order",
        Some("graphopt.lock"),
    );
    let err = app.build_error();
    assert!(
        err.contains("graphopt: model 'tiny': the artifact's sha256")
            && err.contains("not reproducible"),
        "{err}"
    );
    // GRAPHOPT_UPDATE_LOCK=1, the way out the error names, records the real hash.
    let out = app.cargo_with(
        &["build", "--quiet"],
        &app.cache,
        &[("GRAPHOPT_UPDATE_LOCK", "1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let updated = app.read("graphopt.lock");
    assert!(
        updated.contains(&sha256(&bytes)) && !updated.contains(&"0".repeat(64)),
        "{updated}"
    );
    app.build_ok();
    // A lock file that cannot be read is an error, never a check switched off.
    app.write("graphopt.lock", [0xff, 0xfe, b'{']);
    app.set_transforms(
        "remove_device sort_by_execution_order",
        Some("graphopt.lock"),
    );
    let err = app.build_error();
    assert!(
        err.contains("graphopt.lock") && err.contains("valid UTF-8"),
        "{err}"
    );
    app.write("graphopt.lock", &updated);

    // A bad transform string fails with one readable line and no backtrace.
    app.set_transforms("remove_device frobnicate", None);
    let err = app.build_error();
    assert!(
        err.contains("graphopt: model 'tiny': transform 'frobnicate': not a known transform"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{err}"
    );

    // An undeclared model is a compile error listing the declared ones.
    app.set_transforms("remove_device", None);
    app.write(
        "src/main.rs",
        "graphopt::include_model!(nope);\nfn main() {}\n",
    );
    app.build_fails_saying(
        "no model 'nope' was built by this package's build.rs; declared models: tiny",
    );
}

#[test]
fn concurrent_builds_sharing_a_cache_agree() {
    // Two processes run the same build at once against one cache directory.
    let first = App::new();
    let second = App::new();
    let shared = first.dir.path().join("shared-cache");
    // Separate target dirs so cargo's lock does not serialize the two builds.
    let spawn = |app: &App, target: &Path| {
        Command::new(env!("CARGO"))
            .args(["build", "--quiet"])
            .current_dir(app.dir.path())
            .env("CARGO_TARGET_DIR", target)
            .envs(LEAN_BUILD)
            .env("GRAPHOPT_CACHE_DIR", &shared)
            .spawn()
            .unwrap()
    };
    let targets = [
        workspace().join("target/graphopt-app-test"),
        workspace().join("target/graphopt-app-test-2"),
    ];
    let mut a = spawn(&first, &targets[0]);
    let mut b = spawn(&second, &targets[1]);
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    // Other tests build apps in the same target directory: look only at this app's build dirs.
    let read = |app: &App, target: &Path| -> Vec<u8> {
        let dir = target.join("debug/build");
        let prefix = format!("{}-", app.package);
        let path = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path().join("out/graphopt/tiny.pb"))
            .filter(|p| p.exists())
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).unwrap())
            .unwrap();
        std::fs::read(path).unwrap()
    };
    assert!(read(&first, &targets[0]) == read(&second, &targets[1]));
}

#[test]
fn models_declared_in_cargo_toml_metadata_build() {
    let app = App::new();
    app.add_to_manifest(
        "\n[package.metadata.graphopt.models.tiny]\npath = \"models/tiny.pb\"\ninputs = [\"input\"]\noutputs = [\"probs\"]\n\
         transforms = \"strip_unused_nodes fold_constants fold_old_batch_norms sort_by_execution_order\"\n\
         lock_file = \"graphopt.lock\"\n",
    );
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    graphopt_build::build_from_manifest()?;\n    Ok(())\n}\n",
    );
    let stdout = app.run();
    assert!(stdout.contains("transforms strip_unused_nodes fold_constants fold_old_batch_norms sort_by_execution_order"), "{stdout}");
    assert!(stdout.contains("output probs:0 Float [1, 5]"), "{stdout}");
    let lock = app.read("graphopt.lock");
    assert!(lock.contains("\"tiny\""), "{lock}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixture_tensor(path: &Path) -> graphopt_core::tensor::Tensor {
    use prost::Message;
    let bytes = std::fs::read(path).unwrap();
    graphopt_core::tensor::Tensor::from_proto(
        &graphopt_core::proto::TensorProto::decode(bytes.as_slice()).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_savedmodel_directory_is_frozen_optimized_and_named_after_its_signature() {
    let app = App::named("cnn-app");
    let saved = workspace().join("tests/fixtures/saved");
    copy_tree(&saved.join("keras_cnn"), &app.path("models/cnn"));
    // No inputs or outputs declared: the signature's keys become the interface.
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    \
         std::fs::write(\"out_dir.txt\", std::env::var(\"OUT_DIR\").unwrap_or_default()).ok();\n    \
         graphopt_build::Model::new(\"cnn\", \"models/cnn\").signature(\"serving_default\")\n        \
         .transforms(\"strip_unused_nodes fold_constants fold_batch_norms remove_nodes(op=Identity) sort_by_execution_order\")\n        \
         .build()?;\n    Ok(())\n}\n",
    );
    app.write(
        "src/main.rs",
        "graphopt::include_model!(cnn);\nfn main() {\n    \
         println!(\"input {} {:?}\", cnn::inputs::IMAGE.tensor, cnn::inputs::IMAGE.dtype);\n    \
         println!(\"output {} {:?} {:?}\", cnn::outputs::OUTPUT_0.tensor, cnn::outputs::OUTPUT_0.dtype, cnn::outputs::OUTPUT_0.shape);\n}\n",
    );
    let stdout = app.run();
    assert!(stdout.contains("input image:0 Float"), "{stdout}");
    // The signature's shape, though shape inference cannot see through the frozen graph's
    // batch dimension.
    assert!(
        stdout.contains("output output_0:0 Float Known([-1, 4])"),
        "{stdout}"
    );

    // The embedded graph computes what TensorFlow computed for the SavedModel.
    let (manifest, bytes) = app.artifacts_of("cnn");
    // Every call was inlined: no function is shipped.
    assert_eq!(manifest["functions"], serde_json::json!([]));
    let (graph, _) = graphopt_core::io::decode_graph(bytes.into(), Path::new("cnn.pb")).unwrap();
    assert!(!graph.node.iter().any(|n| n.op.contains("Variable")));
    let feeds = [(
        "image".to_string(),
        fixture_tensor(&saved.join("keras_cnn.io/input_0.pb")),
    )]
    .into_iter()
    .collect();
    let out =
        graphopt_core::eval::evaluate(&graph, &feeds, &["output_0".into()], Default::default())
            .unwrap();
    let expected = fixture_tensor(&saved.join("keras_cnn.io/output_0.pb"));
    let (graphopt_core::tensor::Data::F32(got), graphopt_core::tensor::Data::F32(want)) =
        (out[0].data(), expected.data())
    else {
        panic!("float outputs expected");
    };
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst / scale < 1e-5, "relative error {}", worst / scale);

    // Any file of the directory is part of the key: a changed asset means a new artifact.
    // (git keeps no empty directories, so assets/ may be missing from a checkout.)
    std::fs::create_dir_all(app.path("models/cnn/assets")).unwrap();
    app.write("models/cnn/assets/vocab.txt", "a\n");
    app.build_ok();
    let (changed, _) = app.artifacts_of("cnn");
    assert_ne!(manifest["source_sha256"], changed["source_sha256"]);
    assert_ne!(manifest["key"], changed["key"]);

    // A wrong signature is one clear line naming the model and the directory.
    let build = app.read("build.rs").replace("serving_default", "predict");
    app.write("build.rs", build);
    let message = app.build_error();
    assert!(
        message.contains("model 'cnn': freezing SavedModel models/cnn")
            && message.contains("predict"),
        "{message}"
    );
}

#[test]
fn a_renamed_or_removed_model_is_no_longer_embeddable() {
    let app = App::named("rename-app");
    app.build_ok();
    let out_dir = app.out_dir();
    assert!(out_dir.join("graphopt/tiny.pb").exists());

    // Renamed in build.rs: the old name is a compile error listing the current models, and
    // the old artifacts are gone.
    let renamed = app
        .read("build.rs")
        .replace("Model::new(\"tiny\"", "Model::new(\"small\"");
    app.write("build.rs", renamed);
    app.build_fails_saying(
        "no model 'tiny' was built by this package's build.rs; declared models: small",
    );
    assert!(!out_dir.join("graphopt/tiny.pb").exists());
    assert!(!out_dir.join("graphopt/tiny.json").exists());
    // Moved out of the macro's reach, until the next run.
    assert!(out_dir.join("graphopt/.previous/tiny.pb").exists());
    assert!(out_dir.join("graphopt/small.pb").exists());
    let index = std::fs::read_to_string(out_dir.join("graphopt/models-index.json")).unwrap();
    assert!(
        index.contains("\"small\"") && !index.contains("tiny"),
        "{index}"
    );

    // Removed: a build script that builds no model leaves nothing embeddable.
    app.write("build.rs", "fn main() {}\n");
    app.write(
        "src/main.rs",
        "graphopt::include_model!(small);\nfn main() {}\n",
    );
    app.build_fails_saying(
        "no model 'small' was built by this package's build.rs; declared models: none",
    );

    // The same name twice in one run is an error.
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    \
         for _ in 0..2 {\n        \
         graphopt_build::Model::new(\"tiny\", \"models/tiny.pb\").outputs([\"probs\"]).build()?;\n    }\n    Ok(())\n}\n",
    );
    app.build_fails_saying(
        "graphopt: model 'tiny' is built twice by this build script; give each Model::new a name of its own",
    );
    // That run emptied what the rename had set aside.
    assert!(!out_dir.join("graphopt/.previous/tiny.pb").exists());
}

/// A build script with an application transform `mark` that tags the output node with MARK.
const CUSTOM_BUILD: &str = r#"
use graphopt_build::transform::proto::{attr_value, AttrValue, GraphDef};
use graphopt_build::transform::{Transform, TransformContext};

const MARK: &str = "one";
const VERSION: Option<&str> = Some("1");

struct Mark;

impl Transform for Mark {
    fn name(&self) -> &str { "mark" }
    fn summary(&self) -> &str { "tags the output node" }
    fn version(&self) -> Option<&str> { VERSION }
    fn apply(&self, graph: &mut GraphDef, _: &TransformContext<'_>) -> graphopt_build::transform::Result<()> {
        for node in graph.node.iter_mut().filter(|n| n.name == "probs") {
            let value = attr_value::Value::S(MARK.as_bytes().to_vec().into());
            node.attr.insert("_mark".into(), AttrValue { value: Some(value) });
        }
        Ok(())
    }
}

fn main() -> Result<(), graphopt_build::Error> {
    std::fs::write("out_dir.txt", std::env::var("OUT_DIR").unwrap_or_default()).ok();
    graphopt_build::Model::new("tiny", "models/tiny.pb")
        .inputs(["input"])
        .outputs(["probs"])
        .transforms("remove_device mark")
        .transform(Mark)
        .build()?;
    Ok(())
}
"#;

#[test]
fn changed_application_transforms_and_changed_code_miss_the_cache() {
    // graphopt-build's `transform` module is all an application transform needs: the app
    // has no graphopt-core dependency of its own.
    let app = App::named("custom-app");
    assert!(!app.read("Cargo.toml").contains("graphopt-core"));
    let build = |mark: &str, version: &str, vars: &[(&str, &str)]| {
        let script = CUSTOM_BUILD
            .replace("\"one\"", &format!("{mark:?}"))
            .replace("Some(\"1\")", version);
        app.write("build.rs", script);
        let out = app.cargo_with(&["build", "--quiet"], &app.cache, vars);
        assert!(out.status.success(), "{}", stderr(&out));
        let (manifest, bytes) = app.artifacts();
        assert_eq!(manifest["sha256"], sha256(&bytes));
        (
            manifest["cache"].as_str().unwrap().to_string(),
            manifest["key"].clone(),
            bytes,
        )
    };
    let entries = || std::fs::read_dir(&app.cache).map_or(0, |d| d.count());

    let (cache, key, first) = build("one", "Some(\"1\")", &[]);
    assert_eq!(cache, "miss");
    let (cache, _, again) = build("one", "Some(\"1\")", &[]);
    assert_eq!(cache, "hit");
    assert!(again == first);

    // A new version of the transform: a miss, and the new output.
    let (cache, key2, second) = build("two", "Some(\"2\")", &[]);
    assert_eq!(cache, "miss");
    assert_ne!(key2, key);
    assert!(second != first);
    // The version is the transform's identity: changed output under an old version is a hit.
    let (cache, _, stale) = build("three", "Some(\"2\")", &[]);
    assert_eq!(cache, "hit");
    assert!(stale == second);

    // Without a version the model is not cached at all.
    let stored = entries();
    let (cache, _, unversioned) = build("three", "None", &[]);
    assert_eq!(cache, "off (transform 'mark' has no version)");
    assert!(unversioned != second);
    assert_eq!(entries(), stored);

    // Changed graphopt code at the same version (simulated): a miss with the same bytes, then
    // a hit.
    let changed = [("GRAPHOPT_BUILD_TEST_FINGERPRINT", "changed")];
    let (cache, key3, rebuilt) = build("two", "Some(\"2\")", &changed);
    assert_eq!(cache, "miss");
    assert_ne!(key3, key2);
    assert!(rebuilt == second);
    let (cache, _, again) = build("two", "Some(\"2\")", &changed);
    assert_eq!(cache, "hit");
    assert!(again == second);

    // An explicit budget is part of the key: what a starved build made (a step skipped by
    // `ignore_errors=true`) is never handed to a build with another budget.
    let budget = [("GRAPHOPT_MEMORY_BUDGET", "64MiB")];
    let (cache, key4, _) = build("two", "Some(\"2\")", &budget);
    assert_eq!(cache, "miss");
    assert_ne!(key4, key2);
    let (cache, key5, _) = build("two", "Some(\"2\")", &[]);
    assert_eq!(cache, "hit");
    assert_eq!(key5, key2);
    // The key holds the limits in force, however they were set: the default (this small
    // model's, the minimum) spelled out is the same key. (The default follows the blocks the
    // source occupies, which identical bytes in a sparse copy need not share.)
    let minimum = graphopt_core::budget::MIN_MEMORY.to_string();
    let spelled_out = [("GRAPHOPT_MEMORY_BUDGET", minimum.as_str())];
    let (cache, key6, _) = build("two", "Some(\"2\")", &spelled_out);
    assert_eq!(cache, "hit");
    assert_eq!(key6, key2);
}

/// The source directory of a package the workspace's Cargo.lock resolved.
fn locked_package_dir(name: &str) -> PathBuf {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(workspace().join("Cargo.toml"))
        .exec()
        .unwrap();
    let package = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} is not a dependency of the workspace"));
    package
        .manifest_path
        .parent()
        .unwrap()
        .as_std_path()
        .to_path_buf()
}

#[test]
fn a_changed_dependency_of_graphopt_misses_the_cache_and_an_unrelated_one_does_not() {
    let app = App::named("deps-app");
    app.build_ok();
    let (manifest, first) = app.artifacts();
    assert_eq!(manifest["cache"], "miss");
    let dependencies = manifest["dependencies_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(dependencies.len(), 64, "{manifest}");
    let key = manifest["key"].clone();

    // A new dependency of the app alone changes Cargo.lock but not what graphopt is built
    // from: still a hit (build.rs rewritten so the build script runs again).
    app.write(
        "Cargo.toml",
        app.read("Cargo.toml")
            .replace("[dependencies]\n", "[dependencies]\nserde_json = \"1\"\n"),
    );
    app.set_transforms("remove_device sort_by_execution_order", None);
    app.build_ok();
    let (manifest, bytes) = app.artifacts();
    assert!(app.read("Cargo.lock").contains("\"serde_json\""));
    assert_eq!(manifest["cache"], "hit");
    assert_eq!(manifest["key"], key);
    assert!(bytes == first);

    // One of graphopt-build's own dependencies replaced (here toml, by a patched copy, which
    // only graphopt-build uses, so little recompiles): a miss under a new key.
    let patched = app.path("patched-toml");
    copy_tree(&locked_package_dir("toml"), &patched);
    app.add_to_manifest(&format!(
        "\n[patch.crates-io]\ntoml = {{ path = {:?} }}\n",
        patched.display().to_string()
    ));
    app.build_ok();
    let (manifest, rebuilt) = app.artifacts();
    assert_eq!(manifest["cache"], "miss");
    assert_ne!(manifest["key"], key);
    assert_ne!(
        manifest["dependencies_sha256"].as_str().unwrap(),
        dependencies
    );
    assert!(rebuilt == first);

    // Cargo reruns the build script when the model changes, by modification time: the script
    // asks it to watch the model file.
    let outputs: Vec<String> = walk_files(&app.target)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "output"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|text| text.contains("graphopt"))
        .collect();
    assert!(
        outputs
            .iter()
            .any(|text| text.contains("cargo::rerun-if-changed=") && text.contains("tiny.pb")),
        "{outputs:?}"
    );

    // A package cargo fetched (its `.cargo-ok` marker) has no lock file of the app's to key:
    // built, not cached.
    app.write(".cargo-ok", "");
    app.set_transforms("remove_device", None);
    app.build_ok();
    let (manifest, _) = app.artifacts();
    let cache = manifest["cache"].as_str().unwrap();
    assert!(
        cache.starts_with("off (dependency versions unknown:") && cache.contains("cargo fetched"),
        "{cache}"
    );
}

/// Every file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// A graph with an input of unknown rank and a scalar input, each passed through a Relu.
const SHAPES_PBTXT: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "shape" value { shape { unknown_rank: true } } } }
node { name: "s" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "shape" value { shape { } } } }
node { name: "y" op: "Relu" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "t" op: "Relu" input: "s" attr { key: "T" value { type: DT_FLOAT } } }
"#;

#[test]
fn outputs_of_unknown_shape_are_not_scalars() {
    let app = App::named("shapes-app");
    app.write("models/shapes.pbtxt", SHAPES_PBTXT);
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    \
         graphopt_build::Model::new(\"shapes\", \"models/shapes.pbtxt\")\n        \
         .inputs([\"x\", \"s\"]).outputs([\"y\", \"t\"]).build()?;\n    Ok(())\n}\n",
    );
    app.write(
        "src/main.rs",
        "graphopt::include_model!(shapes);\nfn main() {\n    \
         for spec in shapes::INPUTS.iter().chain(shapes::OUTPUTS) {\n        \
         println!(\"{} {:?} rank {:?} elements {:?}\", spec.name, spec.shape, spec.shape.rank(), spec.element_count());\n    }\n}\n",
    );
    let stdout = app.run();
    assert_eq!(
        stdout,
        "x Unknown rank None elements None\n\
         s Known([]) rank Some(0) elements Some(1)\n\
         y Unknown rank None elements None\n\
         t Known([]) rank Some(0) elements Some(1)\n"
    );
}

#[test]
fn a_savedmodel_artifact_ships_only_the_functions_its_graph_calls() {
    let app = App::named("rnn-app");
    let saved = workspace().join("tests/fixtures/saved");
    copy_tree(&saved.join("while_embedding"), &app.path("models/rnn"));
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    \
         std::fs::write(\"out_dir.txt\", std::env::var(\"OUT_DIR\").unwrap_or_default()).ok();\n    \
         graphopt_build::Model::new(\"rnn\", \"models/rnn\").transforms(\"sort_by_execution_order\").build()?;\n    Ok(())\n}\n",
    );
    app.write(
        "src/main.rs",
        "graphopt::include_model!(rnn);\nfn main() {\n    \
         println!(\"{} {:?} {}\", rnn::inputs::TOKENS.tensor, rnn::inputs::TOKENS.dtype, rnn::inputs::TOKENS.shape);\n    \
         println!(\"{} {:?} {}\", rnn::outputs::LOGITS.tensor, rnn::outputs::LOGITS.dtype, rnn::outputs::LOGITS.shape);\n}\n",
    );
    let stdout = app.run();
    assert_eq!(
        stdout, "tokens:0 Int32 [-1, 5]\nlogits:0 Float [-1, 3]\n",
        "{stdout}"
    );

    let (manifest, bytes) = app.artifacts_of("rnn");
    let (graph, _) = graphopt_core::io::decode_graph(bytes.into(), Path::new("rnn.pb")).unwrap();
    let library = graph.library.unwrap_or_default();
    let mut shipped: Vec<String> = library
        .function
        .iter()
        .map(|f| f.signature.as_ref().unwrap().name.clone())
        .collect();
    shipped.sort();
    // The While loop's body and condition, not the SavedModel's save and restore functions
    // nor the inlined signature function.
    assert_eq!(shipped, ["while_body_946", "while_cond_945"]);
    assert_eq!(manifest["functions"], serde_json::json!(shipped));

    // Op counts: the main graph's and the shipped functions', apart.
    let count = |ops: &serde_json::Value| -> u64 {
        ops.as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(count(&manifest["ops"]), graph.node.len() as u64);
    assert_eq!(manifest["node_count"], graph.node.len());
    let function_nodes: usize = library.function.iter().map(|f| f.node_def.len()).sum();
    assert_eq!(count(&manifest["function_ops"]), function_nodes as u64);
    assert_eq!(manifest["function_node_count"], function_nodes);
    let ops = manifest["ops"].as_object().unwrap();
    let function_ops = manifest["function_ops"].as_object().unwrap();
    assert!(ops.keys().any(|op| op.ends_with("While")), "{ops:?}");
    assert!(!function_ops.keys().any(|op| op.ends_with("While")));
    for op in [
        "SaveV2",
        "RestoreV2",
        "AssignVariableOp",
        "MergeV2Checkpoints",
    ] {
        assert!(
            !ops.contains_key(op) && !function_ops.contains_key(op),
            "{op}"
        );
    }
}

/// A build script that tries each mistake in turn and writes the error lines to errors.txt.
const MISTAKES_BUILD: &str = r#"
use graphopt_build::Model;

fn main() {
    let tiny = || Model::new("tiny", "models/tiny.pb").inputs(["input"]).outputs(["probs"]);
    let cases = [
        ("savedmodel file", Model::new("cnn", "models/cnn/saved_model.pb").build().map(|_| ())),
        ("bare savedmodel file", Model::new("cnn", "saved_model.pb").build().map(|_| ())),
        ("output", tiny().outputs(["prob"]).build().map(|_| ())),
        ("input", tiny().inputs(["image"]).build().map(|_| ())),
        ("no outputs", Model::new("tiny", "models/tiny.pb").build().map(|_| ())),
        ("transforms", tiny().transforms("fold_constants(").build().map(|_| ())),
        ("name", Model::new("my-model", "models/tiny.pb").build().map(|_| ())),
        ("missing", Model::new("gone", "models/gone.pb").outputs(["x"]).build().map(|_| ())),
        ("metadata", graphopt_build::build_from_manifest().map(|_| ())),
    ];
    let mut lines: Vec<String> = cases
        .into_iter()
        .map(|(case, result)| format!("{case}: {:?}", result.err()))
        .collect();
    std::env::set_var("GRAPHOPT_CACHE_MAX_SIZE", "lots");
    lines.push(format!("limits: {:?}", tiny().build().err()));
    std::fs::write("errors.txt", lines.join("\n")).unwrap();
}
"#;

#[test]
fn build_errors_say_what_to_do() {
    let app = App::named("mistakes-app");
    copy_tree(
        &workspace().join("tests/fixtures/saved/keras_cnn"),
        &app.path("models/cnn"),
    );
    // `transform` for `transforms`: refused, not silently shipped unoptimized.
    app.add_to_manifest(
        "\n[package.metadata.graphopt.models.tiny]\npath = \"models/tiny.pb\"\noutputs = [\"probs\"]\ntransform = \"fold_constants\"\n",
    );
    // A SavedModel's graph beside Cargo.toml, named bare.
    std::fs::copy(
        app.path("models/cnn/saved_model.pb"),
        app.path("saved_model.pb"),
    )
    .unwrap();
    app.write("build.rs", MISTAKES_BUILD);
    app.write("src/main.rs", "fn main() {}\n");
    app.build_ok();
    let errors = app.read("errors.txt");
    let toml = app.path("Cargo.toml").display().to_string();
    let expected = [
        "savedmodel file: Some(graphopt: model 'cnn': models/cnn/saved_model.pb is the graph of a SavedModel; give its directory instead: Model::new(\"cnn\", \"models/cnn\"))".to_string(),
        "bare savedmodel file: Some(graphopt: model 'cnn': saved_model.pb is the graph of a SavedModel; give its directory instead: Model::new(\"cnn\", \".\"))".into(),
        "output: Some(graphopt: model 'tiny': .outputs([...]) names 'prob', which is not a node of models/tiny.pb; likely outputs: probs)".into(),
        "input: Some(graphopt: model 'tiny': .inputs([...]) names 'image', which is not a node of models/tiny.pb; likely inputs: input)".into(),
        "no outputs: Some(graphopt: model 'tiny': no outputs declared; name them with .outputs([...]) (likely outputs: probs))".into(),
        "transforms: Some(graphopt: model 'tiny': .transforms(\"fold_constants(\") does not parse: column 16: the parameter list of 'fold_constants' is not closed with ')' (at `end of string`))".into(),
        "name: Some(graphopt: model 'my-model': 'my-model' is not a valid Rust identifier for a model module; use letters, digits and '_', and not a Rust keyword)".into(),
        format!("missing: Some(graphopt: model 'gone': models/gone.pb does not exist (looked for {}: a relative path is taken from the package's directory); give Model::new the path of a GraphDef file or a SavedModel directory)", app.path("models/gone.pb").display()),
        format!("metadata: Some(graphopt: [package.metadata.graphopt] in {toml}: models.tiny has an unknown key 'transform'; known keys: path, inputs, outputs, transforms, signature, tag_set, lock_file, verify, target, memory_budget, work_budget)"),
        "limits: Some(graphopt: GRAPHOPT_CACHE_MAX_SIZE=lots is not a size like 500M, 2G or 1048576)".into(),
    ];
    for (line, want) in errors.lines().zip(&expected) {
        assert_eq!(line, want);
    }
    assert_eq!(errors.lines().count(), expected.len(), "{errors}");

    // As cargo shows it: the one line, no backtrace.
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    \
         graphopt_build::Model::new(\"tiny\", \"models/tiny.pb\").outputs([\"prob\"]).build()?;\n    Ok(())\n}\n",
    );
    let err = app.build_error();
    assert!(
        err.contains("Error: graphopt: model 'tiny': .outputs([...]) names 'prob', which is not a node of models/tiny.pb; likely outputs: probs\n"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{err}"
    );
}

#[test]
fn each_model_reports_one_line_and_the_built_model_says_what_happened() {
    let app = App::named("report-app");
    app.write(
        "build.rs",
        r#"fn main() -> Result<(), graphopt_build::Error> {
    let built = graphopt_build::Model::new("tiny", "models/tiny.pb")
        .inputs(["input"])
        .outputs(["probs"])
        .transforms("strip_unused_nodes fold_constants fold_old_batch_norms sort_by_execution_order")
        .build()?;
    let report = format!(
        "{} {:?} {} {} {} {} {} {} {}",
        built.name(), built.cache(), built.source_node_count(), built.source_size_bytes(),
        built.node_count(), built.size_bytes(), built.sha256(),
        built.graph_path().display(), built.manifest_path().display()
    );
    std::fs::write("built.txt", report).ok();
    Ok(())
}
"#,
    );
    let out = app.cargo(&["build", "-vv"], &app.cache);
    assert!(out.status.success(), "{}", stderr(&out));
    let built = app.read("built.txt");
    let fields: Vec<&str> = built.split(' ').collect();
    let [name, cache, source_nodes, source_size, nodes, size, sha, graph_path, manifest_path] =
        fields[..]
    else {
        panic!("{built}");
    };
    assert_eq!((name, cache), ("tiny", "Miss"));
    assert_eq!(source_nodes, "26");
    assert_eq!(
        source_size.parse::<u64>().unwrap(),
        std::fs::metadata(app.path("models/tiny.pb")).unwrap().len()
    );
    let bytes = std::fs::read(graph_path).unwrap();
    assert_eq!(size.parse::<usize>().unwrap(), bytes.len());
    assert_eq!(sha, sha256(&bytes));
    assert!(manifest_path.ends_with("graphopt/tiny.json"));
    let (graph, _) =
        graphopt_core::io::decode_graph(bytes.clone().into(), Path::new("tiny.pb")).unwrap();
    assert_eq!(nodes.parse::<usize>().unwrap(), graph.node.len());

    // -vv shows the build script's one line about the model.
    let human = graphopt_core::budget::size;
    let report_line = |out: &Output| -> (String, String) {
        let all = format!("{}{}", stderr(out), String::from_utf8_lossy(&out.stdout));
        let line = all
            .lines()
            .find_map(|l| {
                l.split_once("] graphopt: model 'tiny': ")
                    .map(|(_, rest)| rest)
            })
            .unwrap_or_else(|| panic!("{all}"));
        let (head, tail) = line.split_once(" s: ").unwrap();
        (head.to_string(), tail.to_string())
    };
    let (head, tail) = report_line(&out);
    assert!(head.starts_with("optimized (cache miss) in "), "{head}");
    let counts = format!(
        "26 nodes, {} -> {nodes} nodes, {}; {graph_path}",
        human(source_size.parse().unwrap()),
        human(bytes.len() as u64)
    );
    assert_eq!(tail, counts);
    // A plain build prints nothing: warnings are for problems only.
    app.write("build.rs", app.read("build.rs"));
    let out = app.cargo(&["build"], &app.cache);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let built = app.read("built.txt");
    assert!(built.starts_with("tiny Hit 26 "), "{built}");
    // And a cache hit says so, with the same counts.
    app.write("build.rs", app.read("build.rs"));
    let out = app.cargo(&["build", "-vv"], &app.cache);
    assert!(out.status.success(), "{}", stderr(&out));
    let (head, tail) = report_line(&out);
    assert!(head.starts_with("taken from the cache in "), "{head}");
    assert_eq!(tail, counts);
}

/// A fake cache entry of `size` bytes last used `age` ago.
fn fake_entry(cache: &Path, name: &str, size: usize, age: std::time::Duration) {
    let entry = cache.join(name);
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("model.pb"), vec![0u8; size]).unwrap();
    std::fs::write(entry.join("used"), b"").unwrap();
    let then = std::time::SystemTime::now() - age;
    for path in [entry.join("used"), entry.clone()] {
        std::fs::File::open(&path)
            .unwrap()
            .set_modified(then)
            .unwrap();
    }
}

#[test]
fn the_cache_is_pruned_by_age_and_size_but_never_of_entries_in_use() {
    let app = App::named("prune-app");
    let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
    let key = |c: char| c.to_string().repeat(64);
    app.build_ok();
    let own: Vec<_> = std::fs::read_dir(&app.cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(own.len(), 1);
    fake_entry(&app.cache, &key('a'), 10, minutes(40 * 24 * 60)); // older than 30 days
    fake_entry(&app.cache, &key('b'), 3 << 20, minutes(2 * 24 * 60));
    fake_entry(&app.cache, &key('c'), 3 << 20, minutes(20));
    fake_entry(&app.cache, &key('e'), 3 << 20, minutes(1)); // in use
    let present = |c: char| app.cache.join(key(c)).exists();

    // Over 7 MiB: the 40-day-old entry goes for its age, then the least recently used until
    // the rest fit.
    app.set_transforms("remove_device sort_by_execution_order", None);
    let out = app.cargo_with(
        &["build", "--quiet"],
        &app.cache,
        &[("GRAPHOPT_CACHE_MAX_SIZE", "7M")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!present('a') && !present('b'));
    assert!(present('c') && present('e'));
    assert!(app.cache.join(&own[0]).exists());

    // GRAPHOPT_CACHE_MAX_AGE_DAYS=1: an entry unused for two days goes though the cache is far
    // under its size; one used 20 minutes ago stays. A value that is not a number of days is
    // an error naming the variable.
    fake_entry(&app.cache, &key('d'), 10, minutes(2 * 24 * 60));
    app.set_transforms("remove_device sort_by_execution_order", None);
    let age = |days: &str| {
        app.cargo_with(
            &["build", "--quiet"],
            &app.cache,
            &[("GRAPHOPT_CACHE_MAX_AGE_DAYS", days)],
        )
    };
    let out = age("1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!present('d'));
    assert!(present('c') && present('e'));
    let out = age("a week");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("GRAPHOPT_CACHE_MAX_AGE_DAYS=a week is not a number of days"),
        "{}",
        stderr(&out)
    );

    // A size of 0 empties the cache of everything not in use: the entry used a minute ago
    // stays, though the cache is over the limit.
    app.set_transforms("remove_device sort_by_execution_order", None);
    let out = app.cargo_with(
        &["build", "--quiet"],
        &app.cache,
        &[("GRAPHOPT_CACHE_MAX_SIZE", "0")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!present('c'));
    assert!(present('e'));
    assert!(app.cache.join(&own[0]).exists());
    let (manifest, _) = app.artifacts();
    assert_eq!(manifest["cache"], "hit");
}

/// Two outputs whose names make one constant.
const COLLIDING_PBTXT: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "shape" value { shape { dim { size: 2 } } } } }
node { name: "a/b" op: "Relu" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "a_b" op: "Relu" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
"#;

#[test]
fn colliding_constants_are_an_error_and_typos_get_suggestions() {
    let app = App::named("names-app");
    app.write("models/pair.pbtxt", COLLIDING_PBTXT);
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    \
         graphopt_build::Model::new(\"pair\", \"models/pair.pbtxt\").inputs([\"x\"]).outputs([\"a/b\", \"a_b\"]).build()?;\n    \
         graphopt_build::Model::new(\"tiny\", \"models/tiny.pb\").inputs([\"input\"]).outputs([\"probs\"]).build()?;\n    Ok(())\n}\n",
    );
    app.write(
        "src/main.rs",
        "graphopt::include_model!(pair);\nfn main() {}\n",
    );
    app.build_fails_saying(
        "include_model!(pair): outputs 'a/b:0' and 'a_b:0' both become the constant pair::outputs::A_B; \
         rename one of the nodes with the rename_node transform in build.rs (keep declaring it by its old name; its constant follows the new one)",
    );
    // The advice works: the renamed output follows its node, and each gets a constant.
    app.write(
        "build.rs",
        "fn main() -> Result<(), graphopt_build::Error> {\n    \
         graphopt_build::Model::new(\"pair\", \"models/pair.pbtxt\").inputs([\"x\"]).outputs([\"a/b\", \"a_b\"])\n        \
         .transforms(\"rename_node(old_node_name=a_b, new_node_name=a_b_2) strip_unused_nodes\").verify(1e-6).build()?;\n    \
         graphopt_build::Model::new(\"tiny\", \"models/tiny.pb\").inputs([\"input\"]).outputs([\"probs\"]).build()?;\n    Ok(())\n}\n",
    );
    app.write(
        "src/main.rs",
        "graphopt::include_model!(pair);\nfn main() {\n    \
         println!(\"{} {}\", pair::outputs::A_B.tensor, pair::outputs::A_B_2.tensor);\n}\n",
    );
    assert_eq!(app.run(), "a/b:0 a_b_2:0\n");

    app.write(
        "src/main.rs",
        "graphopt::include_model!(tiny);\nfn main() {\n    let _ = tiny::inputs::INPT;\n}\n",
    );
    let err = app.build_error();
    assert!(
        err.contains("cannot find value `INPT` in module `tiny::inputs`")
            && err.contains("a constant with a similar name exists"),
        "{err}"
    );
}

/// A graph with an op graphopt's evaluator has no kernel for.
const SVD_PBTXT: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "shape" value { shape { dim { size: 2 } dim { size: 2 } } } } }
node { name: "svd" op: "Svd" input: "x" attr { key: "T" value { type: DT_FLOAT } } attr { key: "compute_uv" value { b: false } } attr { key: "full_matrices" value { b: false } } }
node { name: "out" op: "Relu" input: "svd" attr { key: "T" value { type: DT_FLOAT } } }
"#;

/// A build script that builds the guarded models in turn and writes each outcome to
/// guards.txt.
const GUARDS_BUILD: &str = r#"
use graphopt_build::Model;

fn main() {
    let tiny = || Model::new("tiny", "models/tiny.pb").inputs(["input"]).outputs(["probs"]);
    let cases = [
        ("verified", tiny().transforms("@deploy").verify(1e-5).build().map(|_| ())),
        ("rounded", Model::new("rounded", "models/tiny.pb").inputs(["input"]).outputs(["probs"])
            .transforms("round_weights(num_steps=2)").verify(1e-5).build().map(|_| ())),
        ("bad tolerance", tiny().verify(f64::NAN).build().map(|_| ())),
        ("opencv", Model::new("for_opencv", "models/tiny.pb").inputs(["input"]).outputs(["probs"])
            .transforms("@deploy").target("opencv").build().map(|_| ())),
        ("loop", Model::new("rnn", "models/rnn.pb").outputs(["Identity"]).target("opencv").build().map(|_| ())),
        ("unknown target", tiny().target("onnx").build().map(|_| ())),
        ("evaluator", Model::new("for_eval", "models/tiny.pb").inputs(["input"]).outputs(["probs"])
            .transforms("@deploy").target("graphopt").build().map(|_| ())),
        ("no kernel", Model::new("svd", "models/svd.pbtxt").inputs(["x"]).outputs(["out"])
            .target("graphopt").build().map(|_| ())),
        ("budget", Model::new("starved", "models/tiny.pb").inputs(["input"]).outputs(["probs"])
            .transforms("fold_constants").memory_budget(4096).build().map(|_| ())),
        ("metadata", graphopt_build::build_from_manifest().map(|_| ())),
    ];
    let lines: Vec<String> = cases
        .into_iter()
        .map(|(case, result)| format!("{case}: {:?}", result.err()))
        .collect();
    std::fs::write("guards.txt", lines.join("\n")).unwrap();
}
"#;

#[test]
fn verify_target_and_budget_guard_the_build() {
    let app = App::named("guards-app");
    std::fs::copy(
        workspace().join("tests/fixtures/models/while_rnn.pb"),
        app.path("models/rnn.pb"),
    )
    .unwrap();
    app.add_to_manifest(
        "\n[package.metadata.graphopt.models.listed]\npath = \"models/tiny.pb\"\ninputs = [\"input\"]\noutputs = [\"probs\"]\n\
         transforms = \"round_weights(num_steps=2)\"\nverify = 1e-5\ntarget = \"opencv\"\nmemory_budget = \"1G\"\n",
    );
    app.write("models/svd.pbtxt", SVD_PBTXT);
    app.write("build.rs", GUARDS_BUILD);
    app.write("src/main.rs", "fn main() {}\n");
    app.build_ok();
    let text = app.read("guards.txt");
    eprintln!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    let expect = |case: &str, parts: &[&str]| {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{case}: ")))
            .unwrap_or_else(|| panic!("no line for {case}: {text}"));
        for part in parts {
            assert!(line.contains(part), "{case}: {part:?} not in {line}");
        }
    };
    let expect_ok = |case: &str| {
        let line = format!("{case}: None");
        assert!(
            lines.contains(&line.as_str()),
            "{case} did not build: {text}"
        );
    };
    // @deploy computes what the original does, and the result loads in OpenCV.
    expect_ok("verified");
    expect_ok("opencv");
    // Two-level weights do not: the output that moved is named, with the tolerance.
    expect(
        "rounded",
        &[
            "graphopt: model 'rounded': output 'probs' of the optimized graph differs from the original's by ",
            "over .verify(1e-5)",
            "graphopt verify ORIGINAL OPTIMIZED",
        ],
    );
    expect(
        "bad tolerance",
        &[".verify(NaN): the tolerance is a finite relative error"],
    );
    // A while loop stays one after legalize: the nodes OpenCV cannot load are listed.
    expect(
        "loop",
        &[
            "graphopt: model 'rnn': target 'opencv' cannot load ",
            "node(s) after legalize(target=opencv): ",
            "(Enter): a TF1 while loop",
            "(LoopCond), ",
            "(Exit); `graphopt check --target=opencv` says why for each",
        ],
    );
    expect(
        "unknown target",
        &[
            ".target(\"onnx\"): unknown target 'onnx'; the targets are: ",
            "opencv",
            "tract",
        ],
    );
    // The `eval` feature's own evaluator as the target: @deploy's output runs in it, an op
    // without a kernel fails the build instead of the app at run time.
    expect_ok("evaluator");
    expect(
        "no kernel",
        &[
            "graphopt: model 'svd': target 'graphopt' cannot load 1 node(s) after legalize(target=graphopt): ",
            "svd (Svd): graphopt's evaluator has no kernel for this op",
        ],
    );
    expect("budget", &["graphopt: model 'starved': ", "budget"]);
    // The metadata keys reach the same guards.
    expect(
        "metadata",
        &[
            "graphopt: model 'listed': output 'probs' of the optimized graph differs",
            "over .verify(1e-5)",
        ],
    );
    assert_eq!(lines.len(), 10, "{text}");

    // The metadata key `target` too: the while loop, declared in Cargo.toml for OpenCV.
    let manifest = app.read("Cargo.toml");
    let table = &manifest[manifest
        .find("[package.metadata.graphopt.models.listed]")
        .unwrap()..];
    app.write(
        "Cargo.toml",
        manifest.replace(
            table,
            "[package.metadata.graphopt.models.listed]\npath = \"models/rnn.pb\"\noutputs = [\"Identity\"]\ntarget = \"opencv\"\n",
        ),
    );
    app.build_ok();
    let text = app.read("guards.txt");
    let metadata = text.lines().find(|l| l.starts_with("metadata: ")).unwrap();
    for part in [
        "graphopt: model 'listed': target 'opencv' cannot load ",
        "node(s) after legalize(target=opencv): ",
        "(Enter): a TF1 while loop",
    ] {
        assert!(metadata.contains(part), "{part:?} not in {metadata}");
    }
}

/// An app that runs its models with the `eval` feature cannot embed one the evaluator cannot
/// run: the build fails at include_model!, naming the nodes, not the app at run time.
#[test]
fn an_eval_app_cannot_embed_a_model_the_evaluator_cannot_run() {
    let app = App::named("eval-guard-app");
    app.write(
        "Cargo.toml",
        app.read("Cargo.toml")
            .replacen("graphopt = {", "graphopt = { features = [\"eval\"],", 1),
    );
    app.write("models/svd.pbtxt", SVD_PBTXT);
    app.write(
        "models/hostile.pbtxt",
        SVD_PBTXT.replace("\"Svd\"", "\"Svd\\ncargo::rustc-env=GRAPHOPT_INJECTED=1\""),
    );
    app.write(
        "build.rs",
        r#"
fn main() {
    graphopt_build::Model::new("svd", "models/svd.pbtxt").inputs(["x"]).outputs(["out"]).build().unwrap();
    graphopt_build::Model::new("tiny", "models/tiny.pb").inputs(["input"]).outputs(["probs"]).build().unwrap();
    // Its warnings quote an op name made to look like a cargo directive (node names cannot
    // hold a line break: the graph would be refused).
    graphopt_build::Model::new("hostile", "models/hostile.pbtxt").inputs(["x"]).outputs(["out"])
        .transforms("legalize(target=opencv)").build().unwrap();
}
"#,
    );
    app.write(
        "src/main.rs",
        "graphopt::include_model!(svd);\nfn main() {}\n",
    );
    let err = app.build_error();
    for part in [
        "include_model!(svd): graphopt's evaluator, which the `eval` feature runs models with, cannot run 1 node(s) of this model: \
         svd (Svd): graphopt's evaluator has no kernel for this op",
        "; change the model or its transforms, or, if graphopt::eval does not run this model, declare the consumer it is for \
         with .target(\"NAME\") in build.rs",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    // A model it runs is embedded and runs.
    app.write(
        "src/main.rs",
        r#"
graphopt::include_model!(tiny);
fn main() {
    let graphopt::Shape::Known(dims) = tiny::inputs::INPUT.shape else { panic!("rank") };
    let dims: Vec<usize> = dims.iter().map(|&d| d.max(1) as usize).collect();
    let pixels = vec![0.5f32; dims.iter().product()];
    let model = graphopt::eval::Model::from_bytes(tiny::GRAPH_DEF).unwrap();
    let outputs = model.run_f32(&[(tiny::inputs::INPUT, &pixels, &dims)], &[tiny::outputs::PROBS]).unwrap();
    println!("ran {}", outputs[0].0.len());
    println!("injected {:?}", option_env!("GRAPHOPT_INJECTED"));
}
"#,
    );
    let ran = app.run();
    assert!(
        ran.starts_with("ran ") && !ran.starts_with("ran 0"),
        "{ran}"
    );
    assert!(ran.contains("injected None"), "{ran}");
}

#[test]
fn relative_cache_and_target_dirs_are_the_workspaces_not_the_packages() {
    // A workspace whose member builds a model: cargo runs the member's build script in the
    // member's directory, while relative paths in the environment are the workspace's.
    let app = App::named("member-app");
    let root = app.dir.path();
    let member = root.join("member");
    std::fs::create_dir(&member).unwrap();
    for moved in ["build.rs", "src", "models"] {
        std::fs::rename(root.join(moved), member.join(moved)).unwrap();
    }
    let manifest = app.read("Cargo.toml").replace("[workspace]\n", "");
    std::fs::write(member.join("Cargo.toml"), manifest).unwrap();
    app.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"member\"]\nresolver = \"2\"\n",
    );
    // The shared target directory, spelled relative to the workspace root where cargo runs.
    let up = "../".repeat(root.components().count() - 1);
    let target = format!(
        "{up}{}",
        app.target.display().to_string().trim_start_matches('/')
    );
    let build = |cache: Option<&str>| {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "--quiet", "-p", &app.package])
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &target)
            .envs(LEAN_BUILD)
            .env_remove("GRAPHOPT_CACHE_DIR")
            .env_remove("GRAPHOPT_UPDATE_LOCK")
            .env_remove("GRAPHOPT_BUILD_TEST_FINGERPRINT");
        if let Some(cache) = cache {
            command.env("GRAPHOPT_CACHE_DIR", cache);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    build(Some("shared-cache"));
    let entries = |dir: &Path| std::fs::read_dir(dir).map_or(0, |d| d.count());
    assert_eq!(
        entries(&root.join("shared-cache")),
        1,
        "one entry at the root"
    );
    assert!(!member.join("shared-cache").exists());
    // Without GRAPHOPT_CACHE_DIR the cache is in the target directory cargo used, not in a
    // directory of that relative name under the member.
    build(None);
    assert!(app.target.join("graphopt-cache").is_dir());
    assert!(!member.join(&target).exists());
    assert!(!member.join("graphopt-cache").exists());
}

#[test]
fn an_app_that_renames_the_graphopt_dependency_embeds_its_model() {
    // The generated code named `::graphopt`: with `go = { package = "graphopt" }` the app
    // failed to compile ("cannot find `graphopt` in the crate root").
    let app = App::named("renamed-dep-app");
    let toml = app
        .read("Cargo.toml")
        .replace("\ngraphopt = {", "\ngo = { package = \"graphopt\",");
    assert!(toml.contains("go = { package"), "{toml}");
    app.write("Cargo.toml", toml);
    app.write(
        "src/main.rs",
        MAIN.replace("graphopt::include_model!", "go::include_model!"),
    );
    let stdout = app.run();
    assert!(
        stdout.contains("input input:0 Float [1, 16, 16, 3]"),
        "{stdout}"
    );
}
