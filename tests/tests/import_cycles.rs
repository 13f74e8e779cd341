//! No import circle inside a layer: within each top-level module of the library,
//! the files (modules) name one another one way only, so each can be read, and
//! changed, after the ones it uses. `layers.rs` keeps the layers one way; this
//! keeps the inside of each layer so. A module naming its own ancestors (a child
//! using what its `mod.rs` declares) is how Rust nests, and is not counted.
//!
//! Read from the source, as `layers.rs` is: the production code of every file
//! (before its first `#[cfg(test)]`), its `use` trees expanded and its inline
//! `crate::`/`super::` paths, each resolved to the deepest module file it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src")
}

/// Every module of the library by its path (`engine::walk`), with its file.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read shared/src") {
            let path = entry.expect("dir entry").path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut module = prefix.to_vec();
                if name != "mod" && name != "lib" {
                    module.push(name);
                }
                out.insert(module.join("::"), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&source_root(), &[], &mut out);
    out
}

fn production_code(text: &str) -> &str {
    let cut = ["#[cfg(test)]", "#[cfg(all(test"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min()
        .unwrap_or(text.len());
    &text[..cut]
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` is `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = without_aliases(tree);
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.trim_end_matches("::").to_string()
            } else {
                format!("{prefix}{p}")
            }
        })
        .collect()
}

/// A `use` tree with `as name` renames and whitespace left out.
fn without_aliases(tree: &str) -> String {
    let mut out = String::new();
    let mut words = tree.split_whitespace();
    while let Some(word) = words.next() {
        if word == "as" {
            // Keep what follows the new name: `d}},` keeps `}},`.
            let renamed = words.next().unwrap_or_default();
            out.push_str(renamed.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_'));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Every path `code` names that starts with `crate::` or `super::`.
fn named_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    // `use` statements start their line (after any `pub` or `pub(crate)`).
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let start = offset + line.len() - line.trim_start().len();
        offset += line.len();
        let statement = code[start..]
            .strip_prefix("pub ")
            .or_else(|| code[start..].strip_prefix("pub(crate) "))
            .or_else(|| code[start..].strip_prefix("pub(super) "))
            .unwrap_or(&code[start..]);
        if let Some(tree) = statement.strip_prefix("use ") {
            let end = tree.find(';').unwrap_or(tree.len());
            paths.extend(expand(&tree[..end]));
        }
    }
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            if code[..at].ends_with("::") {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .filter(|p| p.starts_with("crate::") || p.starts_with("super::"))
        .collect()
}

/// The deepest module `path` (named from `module`) reaches.
fn resolve(path: &str, module: &str, known: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split("::").filter(|s| !s.is_empty()).peekable();
    if parts.peek() == Some(&"crate") {
        parts.next();
    } else {
        // `super` from module a::b (a/b.rs or a/b/mod.rs) is `a`.
        segments = module.split("::").filter(|s| !s.is_empty()).collect();
        while parts.peek() == Some(&"super") {
            parts.next();
            segments.pop();
        }
    }
    segments.extend(parts);
    (0..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|candidate| known.contains_key(candidate))
}

fn is_ancestor(ancestor: &str, of: &str) -> bool {
    ancestor.is_empty() || of.starts_with(&format!("{ancestor}::"))
}

/// The edges between modules of one layer, ancestors left out.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let known = modules();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).unwrap();
        let layer = module.split("::").next().unwrap_or_default();
        for path in named_paths(production_code(&text)) {
            let Some(target) = resolve(&path, module, &known) else {
                continue;
            };
            let same_layer = target.split("::").next() == Some(layer);
            if same_layer && target != *module && !is_ancestor(&target, module) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// A circle of modules, if there is one (depth-first search).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node.to_string()) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut done, &mut Vec::new()))
}

/// The circles left to untangle (issue 26), each as the modules that reach one
/// another. The test fails on any other circle, and on one of these once it is
/// gone (so the list only shrinks).
const KNOWN: &[&[&str]] = &[];

#[test]
fn no_module_circle_inside_a_layer() {
    let edges = edges();
    assert!(
        edges.len() > 20,
        "found edges from only {} modules",
        edges.len()
    );
    let found: Vec<Vec<String>> = tangles(&edges)
        .into_iter()
        .map(|g| g.into_iter().collect())
        .collect();
    let known: Vec<Vec<String>> = KNOWN
        .iter()
        .map(|g| g.iter().map(|m| m.to_string()).collect())
        .collect();
    for tangle in &found {
        if !known.contains(tangle) {
            let mut only = BTreeMap::new();
            for m in tangle {
                only.insert(
                    m.clone(),
                    edges[m]
                        .iter()
                        .filter(|t| tangle.contains(t))
                        .cloned()
                        .collect(),
                );
            }
            let cycle = find_cycle(&only).unwrap_or_default();
            panic!(
                "an import circle: {} (modules that reach one another: {})",
                cycle.join(" -> "),
                tangle.join(", ")
            );
        }
    }
    for tangle in &known {
        assert!(
            found.contains(tangle),
            "{} no longer reach one another: take them out of KNOWN",
            tangle.join(", ")
        );
    }
}

/// The groups of modules that reach one another (each a circle or several).
fn tangles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(node) = todo.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|k| (k, reach(k))).collect();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    for (module, from) in &reached {
        if !from.contains(*module) || groups.iter().any(|g| g.contains(*module)) {
            continue;
        }
        let group = from
            .iter()
            .filter(|other| reached.get(other).is_some_and(|r| r.contains(*module)))
            .cloned()
            .collect();
        groups.push(group);
    }
    groups
}

#[test]
fn the_checker_sees_a_circle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges
        .entry("engine::state".into())
        .or_default()
        .insert("engine::walk".into());
    edges
        .entry("engine::walk".into())
        .or_default()
        .insert("engine::state".into());
    edges
        .entry("engine::check".into())
        .or_default()
        .insert("engine::walk".into());
    assert_eq!(
        find_cycle(&edges),
        Some(vec![
            "engine::walk".into(),
            "engine::state".into(),
            "engine::walk".into()
        ])
    );
    assert_eq!(
        expand("super::{check::join, Checker, a::{b, c as d}}"),
        [
            "super::check::join",
            "super::Checker",
            "super::a::b",
            "super::a::c"
        ]
    );
}
