//! `build_from_manifest`: models declared in Cargo.toml under
//! `[package.metadata.graphopt.models.NAME]`.

use crate::error::Error;
use crate::model::{BuiltModel, Model};

/// The keys a `[package.metadata.graphopt.models.NAME]` table may hold.
const KEYS: &[&str] = &[
    "path",
    "inputs",
    "outputs",
    "transforms",
    "signature",
    "tag_set",
    "lock_file",
    "verify",
    "target",
    "memory_budget",
    "work_budget",
];

/// Builds every model declared under `[package.metadata.graphopt.models.NAME]` in the
/// package's Cargo.toml, in name order, as [`Model::build`] would:
///
/// ```toml
/// [package.metadata.graphopt.models.digits]
/// path = "models/digits.pb"          # required: a GraphDef or a SavedModel directory
/// inputs = ["image"]                 # optional for a SavedModel
/// outputs = ["probs"]                # optional for a SavedModel
/// transforms = "strip_unused_nodes fold_constants fold_batch_norms"
/// # signature = "serving_default"    # SavedModel only
/// # tag_set = "serve"                # SavedModel only
/// # lock_file = "graphopt.lock"
/// # verify = 1e-5                    # Model::verify: fail over this relative error
/// # target = "opencv"                # Model::target: legalize, then fail on what remains
/// # memory_budget = "2G"             # Model::memory_budget: bytes, K/M/G/T suffixes
/// # work_budget = "10G"              # Model::work_budget
/// ```
///
/// A key not in this list is an error naming the known ones, so a misspelled key never
/// ships a model unoptimized.
pub fn build_from_manifest() -> Result<Vec<BuiltModel>, Error> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .ok_or(Error::NotInBuildScript("CARGO_MANIFEST_DIR"))?;
    let toml = manifest_dir.join("Cargo.toml");
    println!("cargo::rerun-if-changed={}", toml.display());
    let metadata_error = |message: String| Error::Metadata {
        path: toml.clone(),
        message,
    };
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(&toml)
        .no_deps()
        .exec()
        .map_err(|e| metadata_error(e.to_string()))?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.manifest_path.as_std_path() == toml)
        .ok_or_else(|| metadata_error("package not found by cargo metadata".into()))?;
    models_from_metadata(&toml, &package.metadata)?
        .into_iter()
        .map(Model::build)
        .collect()
}

/// The models a package's `[package.metadata]` declares (`metadata` as cargo metadata gives
/// it), each set up as its table says, in name order.
fn models_from_metadata(
    toml: &std::path::Path,
    metadata: &serde_json::Value,
) -> Result<Vec<Model>, Error> {
    let metadata_error = |message: String| Error::Metadata {
        path: toml.to_path_buf(),
        message,
    };
    // A key beside `models` (a misspelled `model`, say) would be ignored: refused instead.
    if let Some(graphopt) = metadata.get("graphopt").and_then(|g| g.as_object()) {
        if let Some(unknown) = graphopt.keys().find(|k| *k != "models") {
            return Err(metadata_error(format!(
                "unknown key '{unknown}'; the only key is 'models' ([package.metadata.graphopt.models.NAME] tables)"
            )));
        }
    }
    let models = metadata
        .get("graphopt")
        .and_then(|g| g.get("models"))
        .and_then(|m| m.as_object())
        // An empty table would be a run that declares nothing while an earlier run's
        // artifacts stay in OUT_DIR: refused like a missing one.
        .filter(|m| !m.is_empty());
    let Some(models) = models else {
        return Err(metadata_error(
            "no [package.metadata.graphopt.models.NAME] tables".into(),
        ));
    };
    let strings = |v: &serde_json::Value, key: &str, name: &str| -> Result<Vec<String>, Error> {
        match v.get(key) {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_string).ok_or_else(|| {
                        metadata_error(format!("models.{name}.{key} must be a list of strings"))
                    })
                })
                .collect(),
            Some(_) => Err(metadata_error(format!(
                "models.{name}.{key} must be a list of strings"
            ))),
        }
    };
    let string = |v: &serde_json::Value, key: &str, name: &str| -> Result<Option<String>, Error> {
        match v.get(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(metadata_error(format!(
                "models.{name}.{key} must be a string"
            ))),
        }
    };
    let mut declared = Vec::new();
    for (name, table) in models {
        let Some(entries) = table.as_object() else {
            return Err(metadata_error(format!("models.{name} must be a table")));
        };
        if let Some(unknown) = entries.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(metadata_error(format!(
                "models.{name} has an unknown key '{unknown}'; known keys: {}",
                KEYS.join(", ")
            )));
        }
        let path = string(table, "path", name)?
            .ok_or_else(|| metadata_error(format!("models.{name}.path is required")))?;
        let mut model = Model::new(name.clone(), path)
            .inputs(strings(table, "inputs", name)?)
            .outputs(strings(table, "outputs", name)?)
            .transforms(string(table, "transforms", name)?.unwrap_or_default());
        if let Some(s) = string(table, "signature", name)? {
            model = model.signature(s);
        }
        if let Some(t) = string(table, "tag_set", name)? {
            model = model.tag_set(t);
        }
        if let Some(l) = string(table, "lock_file", name)? {
            model = model.lock_file(l);
        }
        match table.get("verify") {
            None => {}
            Some(value) => match value.as_f64() {
                Some(tolerance) => model = model.verify(tolerance),
                None => {
                    return Err(metadata_error(format!(
                        "models.{name}.verify must be a number, the relative tolerance (e.g. 1e-5)"
                    )))
                }
            },
        }
        if let Some(t) = string(table, "target", name)? {
            model = model.target(t);
        }
        let size = |key: &str| -> Result<Option<u64>, Error> {
            let parsed = match table.get(key) {
                None => return Ok(None),
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => graphopt_core::budget::parse_size(s),
                Some(_) => None,
            };
            parsed.map(Some).ok_or_else(|| {
                metadata_error(format!(
                    "models.{name}.{key} must be a count, or a string with a K/M/G/T suffix or 'unlimited'"
                ))
            })
        };
        if let Some(bytes) = size("memory_budget")? {
            model = model.memory_budget(bytes);
        }
        if let Some(operations) = size("work_budget")? {
            model = model.work_budget(operations);
        }
        declared.push(model);
    }
    Ok(declared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(table: serde_json::Value) -> Result<Vec<Model>, Error> {
        let metadata = serde_json::json!({ "graphopt": { "models": table } });
        models_from_metadata(std::path::Path::new("Cargo.toml"), &metadata)
    }

    #[test]
    fn every_key_reaches_the_model() {
        let models = declared(serde_json::json!({
            "b": { "path": "models/b.pb", "target": "graphopt" },
            "a": {
                "path": "models/a", "inputs": ["x"], "outputs": ["y"], "transforms": "@deploy",
                "signature": "serving_default", "tag_set": "serve", "lock_file": "a.lock",
                "verify": 1e-5, "target": "opencv", "memory_budget": "1K", "work_budget": 10
            }
        }))
        .unwrap();
        let [a, b] = models.as_slice() else {
            panic!("{models:?}")
        };
        assert_eq!((a.name.as_str(), b.name.as_str()), ("a", "b"));
        assert_eq!(a.path, std::path::Path::new("models/a"));
        assert_eq!(
            (a.inputs.as_slice(), a.outputs.as_slice()),
            (&["x".to_string()][..], &["y".to_string()][..])
        );
        assert_eq!(a.transforms, "@deploy");
        assert_eq!(a.signature.as_deref(), Some("serving_default"));
        assert_eq!(a.tag_set.as_deref(), Some("serve"));
        assert_eq!(a.lock_file.as_deref(), Some(std::path::Path::new("a.lock")));
        assert_eq!(a.verify, Some(1e-5));
        assert_eq!(a.target.as_deref(), Some("opencv"));
        assert_eq!(
            format!("{:?}", a.budget),
            format!(
                "{:?}",
                Model::new("a", "a")
                    .memory_budget(1024)
                    .work_budget(10)
                    .budget
            )
        );
        // A target alone: legalize and check, nothing else.
        assert_eq!(b.target.as_deref(), Some("graphopt"));
        assert_eq!((b.verify, b.transforms.as_str()), (None, ""));
    }

    #[test]
    fn the_readme_lists_every_key() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap()
        .replace('\n', " ");
        let start = "under `[package.metadata.graphopt.models.NAME]` with ";
        let at = readme.find(start).expect("the README's list of keys") + start.len();
        let list = &readme[at..];
        let list = &list[..list.find("; a misspelled key").expect("the list's end")];
        let mut listed: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
        listed.sort_unstable();
        let mut known = KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(listed, known);
    }

    #[test]
    fn a_misspelled_key_or_a_wrong_type_is_an_error() {
        let error = declared(serde_json::json!({ "m": { "path": "m.pb", "transform": "x" } }))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown key 'transform'") && error.contains("transforms"),
            "{error}"
        );
        let error = declared(serde_json::json!({ "m": { "path": "m.pb", "target": 3 } }))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("models.m.target must be a string"),
            "{error}"
        );
        let error = declared(serde_json::json!({ "m": { "target": "opencv" } }))
            .unwrap_err()
            .to_string();
        assert!(error.contains("models.m.path is required"), "{error}");
        let metadata = serde_json::json!({ "graphopt": { "model": { "m": { "path": "m.pb" } } } });
        let error = models_from_metadata(std::path::Path::new("Cargo.toml"), &metadata)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "graphopt: [package.metadata.graphopt] in Cargo.toml: unknown key 'model'; the only key is 'models' ([package.metadata.graphopt.models.NAME] tables)"
        );
        for empty in [serde_json::json!({}), serde_json::json!([])] {
            let error = declared(empty).unwrap_err().to_string();
            assert!(
                error.contains("no [package.metadata.graphopt.models.NAME] tables"),
                "{error}"
            );
        }
    }
}
