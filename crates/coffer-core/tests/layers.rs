//! The dependency rule of the domain's layers, checked on the source itself.
//!
//! `coffer-core/src` is split into layers (docs/architecture.md): `model` at the bottom, then
//! `dataplane`, then `control` and `background` side by side, and the service wiring
//! (`lib.rs`, `coverage.rs`) on top. A module may use its own layer and the layers below it,
//! never one above or beside it. This test reads every source file of a layer, resolves each
//! `crate::…` and `super::…` path of its non-test code to the top-level module it names, and
//! fails on any that the rule forbids, naming the file, the line and the path. It also holds
//! the domain to its function-length limit ([`MAX_FUNCTION_LINES`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each layer and the top-level modules its code may name.
const RULES: &[(&str, &[&str])] = &[
    ("model", &["model"]),
    ("dataplane", &["model", "dataplane"]),
    ("control", &["model", "dataplane", "control"]),
    ("background", &["model", "dataplane", "background"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file under `src` (`model/jobs.rs` -> `["model", "jobs"]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The code of a file without its test module(s) (tests may build the whole service).
fn non_test_code(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// The top-level module names a path starting at `at` in `line` reaches, given the module the
/// line is in. `crate::{a, b::c}` reaches `a` and `b`; `super::super::x` climbs two levels.
fn targets(module: &[String], line: &str, at: usize) -> Vec<String> {
    let rest = &line[at..];
    let mut base: Vec<String>;
    let mut tail: &str;
    if let Some(t) = rest.strip_prefix("crate::") {
        base = Vec::new();
        tail = t;
    } else {
        base = module.to_vec();
        // `super` inside `foo.rs` is the parent of `foo`.
        tail = rest;
        while let Some(t) = tail.strip_prefix("super::") {
            base.pop();
            tail = t;
        }
    }
    if !base.is_empty() {
        return vec![base[0].clone()];
    }
    let names: Vec<String> = if let Some(group) = tail.strip_prefix('{') {
        let mut depth = 1;
        let mut current = String::new();
        let mut names = Vec::new();
        let mut top = true;
        for ch in group.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    top = false
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => {
                    names.push(std::mem::take(&mut current));
                    top = true;
                    continue;
                }
                ':' => top = false,
                _ => {}
            }
            if depth == 1 && top && !ch.is_whitespace() {
                current.push(ch);
            }
        }
        names.push(current);
        names
    } else {
        vec![
            tail.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect(),
        ]
    };
    names
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && n != "self")
        .collect()
}

/// Every forbidden path in `code` of `module` (a file of layer `layer`).
fn violations(module: &[String], code: &str) -> Vec<String> {
    let layer = module[0].as_str();
    let allowed = RULES
        .iter()
        .find(|(l, _)| *l == layer)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no rule for layer {layer}"));
    // Join `use` statements that span lines so a group is read whole.
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut joined = line.to_string();
        if line.trim_start().starts_with("use ") && !line.contains(';') {
            joined = code
                .lines()
                .skip(n)
                .take_while(|l| !l.contains(';'))
                .chain(code.lines().skip(n).find(|l| l.contains(';')))
                .collect::<Vec<_>>()
                .join(" ");
        }
        let code_part = joined.split("//").next().unwrap_or("");
        for pat in ["crate::", "super::"] {
            let mut from = 0;
            while let Some(i) = code_part[from..].find(pat) {
                let at = from + i;
                let preceded_by_ident = code_part[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
                if !preceded_by_ident {
                    for t in targets(module, code_part, at) {
                        if !allowed.contains(&t.as_str()) {
                            out.push(format!("line {}: `{}` reaches `{t}`", n + 1, line.trim()));
                        }
                    }
                }
                from = at + pat.len();
            }
        }
    }
    out
}

#[test]
fn no_module_of_the_domain_imports_a_layer_above_or_beside_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut seen_layers = BTreeSet::new();
    let mut problems = Vec::new();
    for file in files {
        let module = module_path(&src, &file);
        if !RULES.iter().any(|(l, _)| *l == module[0]) {
            continue; // lib.rs, coverage.rs: the wiring on top may use every layer.
        }
        seen_layers.insert(module[0].clone());
        let text = std::fs::read_to_string(&file).unwrap();
        for v in violations(&module, non_test_code(&text)) {
            problems.push(format!(
                "{}: {v}",
                file.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    let expected: BTreeSet<String> = RULES.iter().map(|(l, _)| l.to_string()).collect();
    assert_eq!(seen_layers, expected, "every layer has source files");
    assert!(
        problems.is_empty(),
        "imports against the layer rule (docs/architecture.md):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_catches_upward_and_sideways_imports() {
    let m = |p: &str| p.split('/').map(String::from).collect::<Vec<_>>();
    // Allowed: own layer, lower layers, `super` within the layer.
    assert!(
        violations(
            &m("control/jobs/backup"),
            "use crate::model::jobs::JobRecord;"
        )
        .is_empty()
    );
    assert!(violations(&m("control/jobs/backup"), "use super::copy;").is_empty());
    assert!(
        violations(
            &m("dataplane/backup"),
            "use crate::{model::vaults, dataplane::jobs};"
        )
        .is_empty()
    );
    // Forbidden: a layer above, a sibling layer, the service wiring, climbing out with super.
    assert_eq!(
        violations(&m("model/jobs"), "use crate::dataplane::jobs::Running;").len(),
        1
    );
    assert_eq!(
        violations(&m("model/jobs"), "    let c: &crate::Coffer = x;").len(),
        1
    );
    assert_eq!(
        violations(&m("control/vaults"), "use crate::background::runner;").len(),
        1
    );
    assert_eq!(
        violations(
            &m("background/runner"),
            "use crate::{control::vaults, model};"
        )
        .len(),
        1
    );
    assert_eq!(
        violations(&m("dataplane/copy"), "use super::super::control::jobs;").len(),
        1
    );
    assert_eq!(
        violations(
            &m("model/events"),
            "use crate::{\n    Coffer,\n    model::jobs,\n};"
        )
        .len(),
        1
    );
    // Comments do not count.
    assert!(violations(&m("model/events"), "// see crate::background::runner").is_empty());
}

/// The longest a function of the domain may be, in lines from its signature to its closing
/// brace: the hardest logic stays readable in pieces that each say what they do.
const MAX_FUNCTION_LINES: usize = 80;

#[test]
fn no_function_of_the_domain_is_longer_than_the_limit() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = non_test_code(&text).lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "async fn ",
                "pub async fn ",
                "pub(crate) async fn ",
            ]
            .iter()
            .any(|p| trimmed.starts_with(p));
            if !is_fn || line.trim_end().ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            if let Some(end) = (n + 1..lines.len()).find(|&k| lines[k] == close) {
                let len = end - n + 1;
                if len > MAX_FUNCTION_LINES {
                    long.push(format!(
                        "{}:{}: {} lines: {}",
                        file.strip_prefix(&src).unwrap().display(),
                        n + 1,
                        len,
                        trimmed
                    ));
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions longer than {MAX_FUNCTION_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// The modules of `layer` that `code` (of a file in that layer) names: `crate::LAYER::x`,
/// `crate::LAYER::{x, y::z}`, and `super::x` from a file directly in the layer.
fn sibling_modules(layer: &str, depth: usize, code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pats = vec![format!("crate::{layer}::")];
    if depth == 2 {
        pats.push("super::".to_string());
    }
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        for pat in &pats {
            let mut from = 0;
            while let Some(i) = line[from..].find(pat.as_str()) {
                let at = from + i + pat.len();
                let rest = &line[at..];
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    for name in inner.split(',') {
                        let n: String = name
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        out.insert(n);
                    }
                } else {
                    out.insert(
                        rest.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect(),
                    );
                }
                from = at;
            }
        }
    }
    out.retain(|n| {
        !n.is_empty() && n != "self" && n.chars().next().is_some_and(|c| c.is_lowercase())
    });
    out
}

#[test]
fn the_modules_of_a_layer_do_not_import_each_other_in_a_ring() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for (layer, _) in RULES {
        // Module -> the sibling modules it names (multi-line `use` groups are joined first).
        let mut graph: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for file in &files {
            let module = module_path(&src, file);
            if module.len() < 2 || module[0] != *layer {
                continue;
            }
            let text = std::fs::read_to_string(file).unwrap();
            let code = non_test_code(&text)
                .replace(",\n", ", ")
                .replace("{\n", "{");
            let deps = sibling_modules(layer, module.len(), &code);
            let entry = graph.entry(module[1].clone()).or_default();
            entry.extend(deps.into_iter().filter(|d| *d != module[1]));
        }
        // Depth-first search for a cycle.
        fn visit(
            node: &str,
            graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
            stack: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(p) = stack.iter().position(|s| s == node) {
                let mut ring = stack[p..].to_vec();
                ring.push(node.to_string());
                return Some(ring);
            }
            if done.contains(node) {
                return None;
            }
            stack.push(node.to_string());
            for next in graph.get(node).into_iter().flatten() {
                if let Some(ring) = visit(next, graph, stack, done) {
                    return Some(ring);
                }
            }
            stack.pop();
            done.insert(node.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for node in graph.keys() {
            if let Some(ring) = visit(node, &graph, &mut Vec::new(), &mut done) {
                problems.push(format!("{layer}: {}", ring.join(" -> ")));
                break;
            }
        }
    }
    assert!(
        problems.is_empty(),
        "modules importing each other in a ring:\n{}",
        problems.join("\n")
    );
}
