//! graphopt-macros: the proc-macro behind `graphopt::include_model!`, which documents it.
//! Apps depend on the `graphopt` crate, whose `include_model!` calls it with its own path.
//!
//! It reads only the artifact manifest `$OUT_DIR/graphopt/NAME.json` that graphopt-build
//! wrote, and the list of models the build script's last run built (`GRAPHOPT_MODELS`); it
//! never links graphopt-core.

use std::path::{Path, PathBuf};

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use serde_json::Value;
use syn::{parse_macro_input, Ident};

struct Tensor {
    name: String,
    tensor: String,
    dtype: String,
    shape: Option<Vec<i64>>,
}

struct Manifest {
    sha256: String,
    size_bytes: u64,
    source_size_bytes: u64,
    source_node_count: usize,
    transforms: String,
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
    node_count: usize,
    ops: std::collections::BTreeMap<String, usize>,
    functions: usize,
    function_node_count: usize,
    /// `Model::target`'s consumer, if one was given.
    target: Option<String>,
    /// What graphopt's evaluator cannot run, `node (op): why`.
    evaluator_cannot_run: Vec<String>,
}

// The manifest is read as JSON values rather than through serde's derive, so the macro crate
// (and every app using it) compiles one syn major version.
fn field<'a>(value: &'a Value, key: &str) -> Result<&'a Value, String> {
    value
        .get(key)
        .ok_or_else(|| format!("the manifest has no '{key}'"))
}

fn text(value: &Value, key: &str) -> Result<String, String> {
    field(value, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("the manifest's '{key}' is not a string"))
}

fn number(value: &Value, key: &str) -> Result<u64, String> {
    field(value, key)?
        .as_u64()
        .ok_or_else(|| format!("the manifest's '{key}' is not a number"))
}

impl Tensor {
    /// The shape as `graphopt::Shape` prints it.
    fn shape_text(&self) -> String {
        match &self.shape {
            Some(dims) => format!("{dims:?}"),
            None => "unknown".into(),
        }
    }

    fn from_json(value: &Value) -> Result<Tensor, String> {
        let shape = match value.get("shape") {
            None | Some(Value::Null) => None,
            Some(Value::Array(dims)) => Some(
                dims.iter()
                    .map(|d| d.as_i64().ok_or("a shape dimension is not an integer"))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err("a tensor's 'shape' is not a list".into()),
        };
        Ok(Tensor {
            name: text(value, "name")?,
            tensor: text(value, "tensor")?,
            dtype: text(value, "dtype")?,
            shape,
        })
    }
}

impl Manifest {
    fn from_json(text_of_file: &str) -> Result<Manifest, String> {
        let value: Value = serde_json::from_str(text_of_file).map_err(|e| e.to_string())?;
        let tensors = |key: &str| -> Result<Vec<Tensor>, String> {
            field(&value, key)?
                .as_array()
                .ok_or_else(|| format!("the manifest's '{key}' is not a list"))?
                .iter()
                .map(Tensor::from_json)
                .collect()
        };
        let ops = field(&value, "ops")?
            .as_object()
            .ok_or("the manifest's 'ops' is not an object")?
            .iter()
            .map(|(op, count)| {
                let count = count.as_u64().ok_or("an op count is not a number")?;
                Ok((
                    op.clone(),
                    usize::try_from(count).map_err(|e| e.to_string())?,
                ))
            })
            .collect::<Result<_, String>>()?;
        let count = |key: &str| -> Result<usize, String> {
            usize::try_from(number(&value, key)?).map_err(|e| e.to_string())
        };
        Ok(Manifest {
            sha256: text(&value, "sha256")?,
            size_bytes: number(&value, "size_bytes")?,
            source_size_bytes: number(&value, "source_size_bytes")?,
            source_node_count: count("source_node_count")?,
            functions: field(&value, "functions")?
                .as_array()
                .ok_or("the manifest's 'functions' is not a list")?
                .len(),
            function_node_count: count("function_node_count")?,
            transforms: text(&value, "transforms")?,
            inputs: tensors("inputs")?,
            outputs: tensors("outputs")?,
            node_count: count("node_count")?,
            ops,
            target: match value.get("target") {
                None | Some(Value::Null) => None,
                Some(_) => Some(text(&value, "target")?),
            },
            evaluator_cannot_run: match value.get("evaluator_cannot_run") {
                None => Vec::new(),
                Some(list) => list
                    .as_array()
                    .ok_or("the manifest's 'evaluator_cannot_run' is not a list")?
                    .iter()
                    .map(|p| p.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or("the manifest's 'evaluator_cannot_run' holds a non-string")?,
            },
        })
    }
}

fn error(message: String) -> TokenStream {
    quote!(::core::compile_error!(#message);).into()
}

/// The variable graphopt-build sets for the package's compilation: the models its last
/// build-script run built, comma-separated. Artifacts of other runs are not embeddable.
const MODELS_VAR: &str = "GRAPHOPT_MODELS";

/// The models the build script's last run declared.
fn declared() -> Vec<String> {
    let mut names: Vec<String> = std::env::var(MODELS_VAR)
        .unwrap_or_default()
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// UPPER_SNAKE constant name for a tensor name like `serving_default/probs:0`.
fn const_name(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("T_{out}")
    } else {
        out
    }
}

/// The constant of a tensor `node:port`: the node's constant name, with `_PORT` appended for
/// a port other than 0.
fn tensor_const_name(tensor: &Tensor) -> String {
    let port = tensor
        .tensor
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u32>().ok())
        .unwrap_or(0);
    let base = const_name(&tensor.name);
    if port == 0 {
        base
    } else {
        format!("{base}_{port}")
    }
}

/// The constants of `tensors`, or an error naming two tensors that would share one.
fn const_names(tensors: &[Tensor], module: &str, list: &str) -> Result<Vec<String>, String> {
    let mut seen: std::collections::BTreeMap<String, &str> = std::collections::BTreeMap::new();
    let mut names = Vec::new();
    for tensor in tensors {
        let name = tensor_const_name(tensor);
        if let Some(first) = seen.insert(name.clone(), &tensor.tensor) {
            return Err(format!(
                "include_model!({module}): {list} '{first}' and '{}' both become the constant {module}::{list}::{name}; \
                 rename one of the nodes with the rename_node transform in build.rs (keep declaring it by its old name; its constant follows the new one)",
                tensor.tensor
            ));
        }
        names.push(name);
    }
    Ok(names)
}

fn dtype_variant(dtype: &str) -> Option<&'static str> {
    graphopt_types::DType::from_name(dtype).map(graphopt_types::DType::variant_name)
}

fn spec(t: &Tensor, krate: &proc_macro2::TokenStream) -> Result<proc_macro2::TokenStream, String> {
    let (name, tensor) = (&t.name, &t.tensor);
    let variant = dtype_variant(&t.dtype).ok_or_else(|| {
        format!(
            "tensor '{}' has dtype '{}', which graphopt::DType lacks",
            t.name, t.dtype
        )
    })?;
    let variant = Ident::new(variant, Span::call_site());
    let shape = match &t.shape {
        Some(dims) => quote!(#krate::Shape::Known(&[#(#dims),*])),
        None => quote!(#krate::Shape::Unknown),
    };
    Ok(quote! {
        #krate::TensorSpec::__new(#name, #tensor, #krate::DType::#variant, #shape)
    })
}

/// The path of the facade crate the generated code names, and the rest of the input: the
/// facade's `include_model!` passes `$crate ; NAME`, so that an app that renames its
/// `graphopt` dependency still gets code that resolves; `NAME` alone names `::graphopt`.
fn split_crate(
    input: proc_macro2::TokenStream,
) -> (proc_macro2::TokenStream, proc_macro2::TokenStream) {
    let tokens: Vec<proc_macro2::TokenTree> = input.into_iter().collect();
    let semicolon = tokens
        .iter()
        .position(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ';'));
    match semicolon {
        Some(i) => (
            tokens[..i].iter().cloned().collect(),
            tokens[i + 1..].iter().cloned().collect(),
        ),
        None => (quote!(::graphopt), tokens.into_iter().collect()),
    }
}

// Documented where apps see it: `graphopt::include_model!`.
#[proc_macro]
pub fn include_model(input: TokenStream) -> TokenStream {
    let (krate, input) = split_crate(input.into());
    let input = TokenStream::from(input);
    let module = parse_macro_input!(input as Ident);
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return error("include_model! needs OUT_DIR: build the model with graphopt-build in this package's build.rs".into());
    };
    // The facade's `eval` feature turns this one on: the app runs its models with graphopt's
    // evaluator, so one it cannot run fails the build rather than the app.
    let runs_in_evaluator = cfg!(feature = "eval");
    match expand(&module, &krate, &out_dir, &declared(), runs_in_evaluator) {
        Ok(tokens) => tokens.into(),
        Err(message) => error(message),
    }
}

/// Why a model that the app may run with graphopt's evaluator (`runs_in_evaluator`) cannot be
/// embedded: it has nodes the evaluator cannot run and was not built for another consumer.
fn evaluator_refusal(name: &str, manifest: &Manifest, runs_in_evaluator: bool) -> Option<String> {
    let for_another_consumer = manifest.target.as_deref().is_some_and(|t| t != "graphopt");
    if !runs_in_evaluator || for_another_consumer || manifest.evaluator_cannot_run.is_empty() {
        return None;
    }
    Some(format!(
        "include_model!({name}): graphopt's evaluator, which the `eval` feature runs models with, cannot run {} node(s) of this model: {}; \
         change the model or its transforms, or, if graphopt::eval does not run this model, declare the consumer it is for with .target(\"NAME\") in build.rs",
        manifest.evaluator_cannot_run.len(),
        manifest.evaluator_cannot_run.join("; ")
    ))
}

/// The most a manifest may hold. graphopt-build writes a few KiB (names, shapes and op counts);
/// a file past this is no manifest of its, and is not read into the compiler.
const MANIFEST_LIMIT: u64 = 16 << 20;

/// The manifest at `path`, read only if it is within [`MANIFEST_LIMIT`].
fn read_manifest(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MANIFEST_LIMIT + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MANIFEST_LIMIT {
        return Err(format!(
            "{}: longer than the {} MiB a graphopt-build manifest can be; touch build.rs so that the build script writes it again",
            path.display(),
            MANIFEST_LIMIT >> 20
        ));
    }
    Ok(text)
}

/// The module for `module`, from the manifest in `out_dir`, if the build script's last run
/// built it (`known`) and, when the app runs models with graphopt's evaluator
/// (`runs_in_evaluator`), if the evaluator can run it.
fn expand(
    module: &Ident,
    krate: &proc_macro2::TokenStream,
    out_dir: &Path,
    known: &[String],
    runs_in_evaluator: bool,
) -> Result<proc_macro2::TokenStream, String> {
    // `include_model!(r#digits)` names the model `digits`.
    let name = syn::ext::IdentExt::unraw(module).to_string();
    let dir = out_dir.join("graphopt");
    let manifest_path = dir.join(format!("{name}.json"));
    if !known.contains(&name) {
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return Err(format!(
            "no model '{name}' was built by this package's build.rs; declared models: {known}"
        ));
    }
    let text = read_manifest(&manifest_path)?;
    let manifest =
        Manifest::from_json(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    if let Some(refusal) = evaluator_refusal(&name, &manifest, runs_in_evaluator) {
        return Err(refusal);
    }
    let graph_file = dir.join(format!("{name}.pb"));
    // GRAPH_DEF's type has the manifest's length: a graph of another length (truncated, or
    // its cache entry, which it is a hard link to, replaced in place) would be a type error
    // about array lengths rather than one naming the file.
    let actual = std::fs::metadata(&graph_file)
        .map_err(|e| format!("{}: {e}", graph_file.display()))?
        .len();
    if actual != manifest.size_bytes {
        return Err(format!(
            "include_model!({name}): {} holds {actual} bytes where its manifest records {}: the artifact changed after graphopt-build wrote it; touch build.rs so that the build script runs again and rebuilds it",
            graph_file.display(),
            manifest.size_bytes
        ));
    }
    let size = usize::try_from(manifest.size_bytes)
        .map_err(|_| format!("include_model!({name}): the model is too large to embed"))?;
    let graph_path = graph_file.to_string_lossy().into_owned();
    let manifest_str = manifest_path.to_string_lossy().into_owned();
    // A dtype the facade lacks names the model and its manifest, as the other errors do.
    let specs = |list: &[Tensor]| {
        list.iter()
            .map(|t| spec(t, krate))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("include_model!({name}): {}: {e}", manifest_path.display()))
    };
    let (inputs, outputs) = (specs(&manifest.inputs)?, specs(&manifest.outputs)?);
    let input_names = const_names(&manifest.inputs, &name, "inputs")?;
    let output_names = const_names(&manifest.outputs, &name, "outputs")?;
    let constants =
        |tensors: &[Tensor], names: &[String], specs: &[proc_macro2::TokenStream], what: &str| {
            tensors
                .iter()
                .zip(names)
                .zip(specs)
                .map(|((t, n), s)| {
                    let ident = format_ident!("{}", n);
                    let doc = format!(
                        "{what} `{}`: {}, shape {}.",
                        t.tensor,
                        t.dtype,
                        t.shape_text()
                    );
                    quote! { #[doc = #doc] pub const #ident: #krate::TensorSpec = #s; }
                })
                .collect::<Vec<_>>()
        };
    let input_consts = constants(&manifest.inputs, &input_names, &inputs, "Input");
    let output_consts = constants(&manifest.outputs, &output_names, &outputs, "Output");
    let listing = |tensors: &[Tensor], names: &[String], list: &str| {
        tensors
            .iter()
            .zip(names)
            .map(|(t, n)| {
                format!(
                    "- [`{list}::{n}`]({list}::{n}): `{}`, {}, shape {}\n",
                    t.tensor,
                    t.dtype,
                    t.shape_text()
                )
            })
            .collect::<String>()
    };
    let mut ops: Vec<(&String, &usize)> = manifest.ops.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let op_summary = ops
        .iter()
        .map(|(op, n)| format!("{n} {op}"))
        .collect::<Vec<_>>()
        .join(", ");
    let functions = if manifest.functions == 0 {
        String::new()
    } else {
        format!(
            ", plus {} functions of {} nodes",
            manifest.functions, manifest.function_node_count
        )
    };
    let doc = format!(
        "The `{name}` model, optimized at build time by graphopt: {} nodes ({op_summary}){functions}, \
         {} bytes (from {} nodes, {} bytes), sha256 `{}`.\n\n\
         Transforms: `{}`\n\n\
         # Inputs\n\n{}\n# Outputs\n\n{}",
        manifest.node_count,
        manifest.size_bytes,
        manifest.source_node_count,
        manifest.source_size_bytes,
        manifest.sha256,
        manifest.transforms,
        listing(&manifest.inputs, &input_names, "inputs"),
        listing(&manifest.outputs, &output_names, "outputs"),
    );
    let (sha, transforms) = (&manifest.sha256, &manifest.transforms);
    let (nodes, source_nodes, source_size) = (
        manifest.node_count,
        manifest.source_node_count,
        manifest.source_size_bytes,
    );
    Ok(quote! {
        pub mod #module {
            #![doc = #doc]
            #[repr(C, align(16))]
            struct Aligned<T: ?Sized>(T);
            // Rebuild when the manifest changes, not only the graph.
            const _MANIFEST: &[u8] = include_bytes!(#manifest_str);
            static ALIGNED: &Aligned<[u8; #size]> = &Aligned(*include_bytes!(#graph_path));
            /// The optimized GraphDef (binary protobuf), 16-byte aligned.
            pub static GRAPH_DEF: &[u8] = &ALIGNED.0;
            /// Hex SHA-256 of [`GRAPH_DEF`].
            pub const SHA256: &str = #sha;
            /// The transforms applied, in canonical form.
            pub const TRANSFORMS: &str = #transforms;
            /// Nodes of the optimized main graph.
            pub const NODE_COUNT: usize = #nodes;
            /// Nodes of the main graph before the transforms (after freezing, for a SavedModel).
            pub const SOURCE_NODE_COUNT: usize = #source_nodes;
            /// Size of the source model: its file, or every file of its SavedModel directory.
            pub const SOURCE_SIZE_BYTES: u64 = #source_size;
            /// Every input, in declaration order.
            pub const INPUTS: &[#krate::TensorSpec] = &[#(#inputs),*];
            /// Every output, in declaration order.
            pub const OUTPUTS: &[#krate::TensorSpec] = &[#(#outputs),*];
            /// One constant per input.
            pub mod inputs { #(#input_consts)* }
            /// One constant per output.
            pub mod outputs { #(#output_consts)* }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{
        "name": "digits", "sha256": "ab12", "size_bytes": 2048, "source_sha256": "cd34",
        "source_size_bytes": 4096, "source_node_count": 52, "key": "k", "tool_version": "t",
        "code_sha256": "c", "transforms": "fold_constants",
        "inputs": [{"name": "image", "tensor": "image:0", "dtype": "float", "shape": [-1, 8, 8, 1]}],
        "outputs": [{"name": "functional_1/dense_1/Softmax", "tensor": "functional_1/dense_1/Softmax:0", "dtype": "float", "shape": null},
                    {"name": "split", "tensor": "split:1", "dtype": "int32", "shape": []}],
        "node_count": 20, "ops": {"Conv2D": 2, "Relu": 2}, "functions": [],
        "function_node_count": 0, "function_ops": {}, "cache": "miss"
    }"#;

    fn expand_digits(known: &[&str]) -> Result<String, String> {
        expand_manifest(MANIFEST, known, false)
    }

    fn expand_manifest(
        manifest: &str,
        known: &[&str],
        runs_in_evaluator: bool,
    ) -> Result<String, String> {
        expand_as(
            &Ident::new("digits", Span::call_site()),
            manifest,
            known,
            runs_in_evaluator,
        )
    }

    fn expand_as(
        module: &Ident,
        manifest: &str,
        known: &[&str],
        runs_in_evaluator: bool,
    ) -> Result<String, String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let out =
            std::env::temp_dir().join(format!("graphopt-macros-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(out.join("graphopt")).map_err(|e| e.to_string())?;
        std::fs::write(out.join("graphopt/digits.json"), manifest).map_err(|e| e.to_string())?;
        // The size MANIFEST records.
        std::fs::write(out.join("graphopt/digits.pb"), [0u8; 2048]).map_err(|e| e.to_string())?;
        let known: Vec<String> = known.iter().map(|k| k.to_string()).collect();
        let tokens = expand(module, &quote!(::graphopt), &out, &known, runs_in_evaluator);
        let _ = std::fs::remove_dir_all(&out);
        tokens.map(|t| t.to_string())
    }

    #[test]
    fn the_module_doc_lists_the_constants_and_the_build() {
        let code = expand_digits(&["digits"]).unwrap();
        for wanted in [
            "The `digits` model, optimized at build time by graphopt: 20 nodes (2 Conv2D, 2 Relu), 2048 bytes (from 52 nodes, 4096 bytes), sha256 `ab12`.",
            "- [`inputs::IMAGE`](inputs::IMAGE): `image:0`, float, shape [-1, 8, 8, 1]",
            "- [`outputs::FUNCTIONAL_1_DENSE_1_SOFTMAX`](outputs::FUNCTIONAL_1_DENSE_1_SOFTMAX): `functional_1/dense_1/Softmax:0`, float, shape unknown",
            "- [`outputs::SPLIT_1`](outputs::SPLIT_1): `split:1`, int32, shape []",
            "pub const NODE_COUNT : usize = 20usize",
            "pub const SOURCE_NODE_COUNT : usize = 52usize",
            "pub const SOURCE_SIZE_BYTES : u64 = 4096u64",
            ":: graphopt :: Shape :: Unknown",
        ] {
            assert!(code.contains(wanted), "{wanted}\nnot in\n{code}");
        }
    }

    #[test]
    fn the_code_names_the_facade_by_the_path_it_is_given() {
        // The facade's include_model! passes `$crate ;`: generated code named `::graphopt`,
        // which an app that renamed the dependency (`go = { package = "graphopt" }`) lacks.
        let (krate, rest) = split_crate(syn::parse_str("go ; digits").unwrap());
        assert_eq!(
            (krate.to_string(), rest.to_string()),
            ("go".into(), "digits".into())
        );
        let (krate, rest) = split_crate(syn::parse_str("digits").unwrap());
        assert_eq!(
            (krate.to_string(), rest.to_string()),
            (":: graphopt".into(), "digits".into())
        );
        let out =
            std::env::temp_dir().join(format!("graphopt-macros-krate-{}", std::process::id()));
        std::fs::create_dir_all(out.join("graphopt")).unwrap();
        std::fs::write(out.join("graphopt/digits.json"), MANIFEST).unwrap();
        std::fs::write(out.join("graphopt/digits.pb"), [0u8; 2048]).unwrap();
        let module = Ident::new("digits", Span::call_site());
        let code = expand(&module, &quote!(go), &out, &["digits".into()], false)
            .unwrap()
            .to_string();
        let _ = std::fs::remove_dir_all(&out);
        assert!(!code.contains("graphopt ::"), "{code}");
        for wanted in [
            "pub const INPUTS : & [go :: TensorSpec]",
            "go :: TensorSpec :: __new (\"image\" , \"image:0\" , go :: DType :: Float , go :: Shape :: Known",
            "go :: Shape :: Unknown",
        ] {
            assert!(code.contains(wanted), "{wanted}\nnot in\n{code}");
        }
    }

    #[test]
    fn a_raw_identifier_names_its_model() {
        let raw = syn::parse_str::<Ident>("r#digits").unwrap();
        let tokens = expand_as(&raw, MANIFEST, &["digits"], false).unwrap();
        assert!(tokens.contains("pub mod r#digits"), "{tokens}");
    }

    #[test]
    fn a_manifest_past_its_limit_is_not_read() {
        let huge = format!(
            "{}{}",
            MANIFEST,
            " ".repeat(usize::try_from(MANIFEST_LIMIT).unwrap())
        );
        let err = expand_manifest(&huge, &["digits"], false).unwrap_err();
        assert!(err.contains("longer than the 16 MiB"), "{err}");
        // At the limit it is read (and parses: JSON allows the trailing white space).
        let at_limit = format!(
            "{}{}",
            MANIFEST,
            " ".repeat(usize::try_from(MANIFEST_LIMIT).unwrap() - MANIFEST.len())
        );
        assert!(expand_manifest(&at_limit, &["digits"], false).is_ok());
    }

    #[test]
    fn a_model_not_built_by_the_last_run_is_an_error_listing_the_current_ones() {
        assert_eq!(
            expand_digits(&["mnist", "text"]),
            Err("no model 'digits' was built by this package's build.rs; declared models: mnist, text".into())
        );
        assert_eq!(
            expand_digits(&[]),
            Err(
                "no model 'digits' was built by this package's build.rs; declared models: none"
                    .into()
            )
        );
    }

    #[test]
    fn a_model_the_evaluator_cannot_run_is_refused_only_where_the_app_runs_it() {
        let lacking = MANIFEST.replace(
            r#""cache": "miss""#,
            r#""cache": "miss", "evaluator_cannot_run": ["svd (Svd): graphopt's evaluator has no kernel for this op"]"#,
        );
        let refusal = "include_model!(digits): graphopt's evaluator, which the `eval` feature runs models with, \
            cannot run 1 node(s) of this model: svd (Svd): graphopt's evaluator has no kernel for this op; \
            change the model or its transforms, or, if graphopt::eval does not run this model, declare the consumer \
            it is for with .target(\"NAME\") in build.rs";
        assert_eq!(
            expand_manifest(&lacking, &["digits"], true),
            Err(refusal.into())
        );
        // Without the `eval` feature, or for another consumer, the model is embedded.
        assert!(expand_manifest(&lacking, &["digits"], false).is_ok());
        let for_opencv = lacking.replace(
            r#""cache": "miss""#,
            r#""cache": "miss", "target": "opencv""#,
        );
        assert!(expand_manifest(&for_opencv, &["digits"], true).is_ok());
        let for_graphopt = lacking.replace(
            r#""cache": "miss""#,
            r#""cache": "miss", "target": "graphopt""#,
        );
        assert_eq!(
            expand_manifest(&for_graphopt, &["digits"], true),
            Err(refusal.into())
        );
        // Nothing lacking (and manifests written before the list existed): embedded.
        assert!(expand_manifest(MANIFEST, &["digits"], true).is_ok());
        let malformed = MANIFEST.replace(
            r#""cache": "miss""#,
            r#""cache": "miss", "evaluator_cannot_run": [1]"#,
        );
        assert_eq!(
            expand_manifest(&malformed, &["digits"], true)
                .unwrap_err()
                .rsplit(": ")
                .next(),
            Some("the manifest's 'evaluator_cannot_run' holds a non-string")
        );
    }

    #[test]
    fn a_graph_of_another_size_than_its_manifest_records_is_an_error_naming_it() {
        let error = expand_manifest(
            &MANIFEST.replace(r#""size_bytes": 2048"#, r#""size_bytes": 2049"#),
            &["digits"],
            false,
        )
        .unwrap_err();
        assert!(
            error.starts_with("include_model!(digits): ")
                && error.contains("digits.pb holds 2048 bytes where its manifest records 2049")
                && error.ends_with(
                    "touch build.rs so that the build script runs again and rebuilds it"
                ),
            "{error}"
        );
    }

    /// `MANIFEST` with its outputs replaced by tensors of these node names (port 0).
    fn with_outputs(names: &[&str]) -> String {
        let outputs: Vec<String> = names
            .iter()
            .map(|n| {
                let n = serde_json::Value::from(*n);
                let t = serde_json::Value::from(format!("{}:0", n.as_str().unwrap_or("")));
                format!(r#"{{"name": {n}, "tensor": {t}, "dtype": "float", "shape": [1]}}"#)
            })
            .collect();
        let start = MANIFEST.find(r#""outputs": ["#).unwrap();
        let end = MANIFEST.find(r#""node_count""#).unwrap();
        format!(
            "{}\"outputs\": [{}],\n        {}",
            &MANIFEST[..start],
            outputs.join(", "),
            &MANIFEST[end..]
        )
    }

    #[test]
    fn names_alike_but_for_case_punctuation_or_script_are_an_error_naming_both() {
        for (a, b, constant) in [
            ("input", "INPUT", "INPUT"),
            ("a/b", "a_b", "A_B"),
            ("a.b", "a-b", "A_B"),
            ("inputA", "input_a", "INPUT_A"),
            ("0x", "t_0x", "T_0X"),
            ("é", "ü", "T_"),
            ("split:1", "split_1", "SPLIT_1"),
        ] {
            let error = expand_manifest(&with_outputs(&[a, b]), &["digits"], false).unwrap_err();
            assert!(
                error.contains(&format!("outputs '{a}:0' and '{b}:0' both become the constant digits::outputs::{constant}")),
                "{a} {b}: {error}"
            );
        }
    }

    #[test]
    fn any_node_name_makes_a_rust_identifier() {
        let long = "a".repeat(10_000);
        for (name, constant) in [
            ("", "T_"),
            ("_", "T_"),
            ("type", "TYPE"),
            ("self", "SELF"),
            ("Self", "SELF"),
            ("crate", "CRATE"),
            ("r#fn", "R_FN"),
            ("9", "T_9"),
            ("名前", "T_"),
            ("x名", "X"),
            (long.as_str(), long.to_ascii_uppercase().as_str()),
        ] {
            assert_eq!(const_name(name), constant, "{name}");
            assert!(syn::parse_str::<Ident>(&const_name(name)).is_ok(), "{name}");
        }
        let code =
            expand_manifest(&with_outputs(&["type", "名前", &long]), &["digits"], false).unwrap();
        assert!(code.contains("pub const TYPE"), "{code}");
    }

    #[test]
    fn malformed_manifests_are_errors_naming_what_is_wrong() {
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "expected ident"),
            ("[1, 2]".into(), "the manifest has no 'ops'"),
            ("{}".into(), "the manifest has no 'ops'"),
            (
                MANIFEST.replace(r#""sha256": "ab12""#, r#""sha256": 12"#),
                "'sha256' is not a string",
            ),
            (
                MANIFEST.replace(r#""size_bytes": 2048"#, r#""size_bytes": -1"#),
                "'size_bytes' is not a number",
            ),
            (
                MANIFEST.replace(r#""shape": [-1, 8, 8, 1]"#, r#""shape": "[-1]""#),
                "a tensor's 'shape' is not a list",
            ),
            (
                MANIFEST.replace(r#""shape": [-1, 8, 8, 1]"#, r#""shape": [1.5]"#),
                "a shape dimension is not an integer",
            ),
            (
                MANIFEST.replace(
                    r#""shape": [-1, 8, 8, 1]"#,
                    r#""shape": [18446744073709551615]"#,
                ),
                "a shape dimension is not an integer",
            ),
            (
                MANIFEST.replace(
                    r#""dtype": "float", "shape": [-1"#,
                    r#""dtype": "float8_e4m3fn", "shape": [-1"#,
                ),
                "digits.json: tensor 'image' has dtype 'float8_e4m3fn', which graphopt::DType lacks",
            ),
            (
                MANIFEST.replace(r#""dtype": "float", "shape": [-1"#, r#""shape": [-1"#),
                "the manifest has no 'dtype'",
            ),
            (
                MANIFEST.replace(r#""ops": {"Conv2D": 2, "Relu": 2}"#, r#""ops": [1]"#),
                "'ops' is not an object",
            ),
            (
                MANIFEST.replace(r#""inputs": [{"#, r#""inputs": 3, "x": [{"#),
                "'inputs' is not a list",
            ),
            ("{\"sha256\": ".repeat(200), "recursion limit"),
        ];
        for (manifest, wanted) in cases {
            let error = expand_manifest(&manifest, &["digits"], false).unwrap_err();
            assert!(error.contains(wanted), "{wanted}: {error}");
        }
    }

    #[test]
    fn unknown_ranks_and_dims_are_spelled_as_the_facade_reads_them() {
        let manifest = MANIFEST.replace(r#""shape": [-1, 8, 8, 1]"#, r#""shape": [-1, -1]"#);
        let code = expand_manifest(&manifest, &["digits"], false).unwrap();
        assert!(
            code.contains(":: graphopt :: Shape :: Known (& [- 1i64 , - 1i64])"),
            "{code}"
        );
        assert!(code.contains(":: graphopt :: Shape :: Unknown"), "{code}");
    }

    #[test]
    fn constant_names_are_upper_snake() {
        assert_eq!(const_name("image"), "IMAGE");
        assert_eq!(
            const_name("serving_default/probs:0"),
            "SERVING_DEFAULT_PROBS_0"
        );
        assert_eq!(const_name("inputLayer"), "INPUT_LAYER");
        assert_eq!(const_name("0bad"), "T_0BAD");
        assert_eq!(
            const_name("functional_1/dense_1/Softmax"),
            "FUNCTIONAL_1_DENSE_1_SOFTMAX"
        );
        assert_eq!(
            const_name("StatefulPartitionedCall"),
            "STATEFUL_PARTITIONED_CALL"
        );
        assert_eq!(const_name("a//b__c"), "A_B_C");
    }
}
