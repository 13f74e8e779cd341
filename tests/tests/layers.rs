//! The library's layers run one way (see `shared/src/lib.rs`): each module's
//! production code names only the layers below it. Read from the source, so a new
//! upward `crate::` path fails here with the file and the path it named.

use std::path::{Path, PathBuf};

/// Each top-level module, and the modules its production code may name.
const LAYERS: &[(&str, &[&str])] = &[
    ("time", &[]),
    ("guard", &[]),
    ("memory", &[]),
    ("tls", &[]),
    ("aws", &["tls"]),
    ("model", &["time"]),
    ("lang", &[]),
    ("engine", &["time", "guard", "model", "lang"]),
    (
        "nodes",
        &[
            "time", "guard", "memory", "tls", "aws", "model", "lang", "engine",
        ],
    ),
    ("validate", &["model", "lang", "engine"]),
    ("ports", &["time", "guard", "aws", "model"]),
    (
        "app",
        &[
            "time", "guard", "model", "lang", "engine", "nodes", "validate", "ports",
        ],
    ),
    (
        "webhook",
        &["time", "guard", "model", "lang", "engine", "ports", "app"],
    ),
    (
        "wiring",
        &[
            "time", "guard", "aws", "model", "lang", "engine", "nodes", "validate", "ports", "app",
            "webhook",
        ],
    ),
    ("view", &["time", "model", "engine", "ports", "app"]),
];

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read shared/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's production code: everything before its first `#[cfg(test)]` module
/// (test helpers may reach up: they drive whole runs).
fn production_code(text: &str) -> &str {
    let cut = ["#[cfg(test)]", "#[cfg(all(test"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min()
        .unwrap_or(text.len());
    &text[..cut]
}

/// Every `crate::<module>` a text names.
fn named_modules(code: &str) -> Vec<String> {
    code.match_indices("crate::")
        .map(|(at, m)| {
            code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_module_names_only_the_layers_below_it() {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 40, "found only {} files", files.len());
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap()
            .trim_end_matches(".rs");
        if module == "lib" {
            continue;
        }
        let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| *name == module) else {
            violations.push(format!("{}: not in the layer map", relative.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for named in named_modules(production_code(&text)) {
            if named != module && !allowed.contains(&named.as_str()) {
                violations.push(format!(
                    "{}: names crate::{named}, a layer above {module}",
                    relative.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_path() {
    // The check itself: a file of the engine naming the app is caught.
    let text = "use crate::model::Job;\nuse crate::app::runner::Runner;\n#[cfg(test)]\nuse crate::wiring::App;";
    assert_eq!(named_modules(production_code(text)), ["model", "app"]);
}

#[test]
fn the_library_speaks_http_not_lambda_types() {
    let manifest = std::fs::read_to_string(source_root().join("../Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("lambda_http"),
        "shared/Cargo.toml depends on lambda_http; its conversion belongs in functions/webhook"
    );
}
