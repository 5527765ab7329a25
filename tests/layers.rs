//! The crate's layers point one way: each top-level module may use only modules of a lower
//! layer (or its own). The library's core never reaches the CLI's orchestration (`config`,
//! `train`, `app`, `bench`), so an application that embeds scoregen does not need them.

use std::collections::BTreeMap;
use std::path::Path;

/// Layers from the bottom; a module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["error", "shaders", "rng", "progress"],
    &["gpu"],
    &["tensor"],
    &["ops"],
    &["graph"],
    &["nn", "optim", "dist", "io"],
    &["score", "data", "metrics", "retrieval"],
    &["model"],
    &["sample"],
    // The CLI's orchestration.
    &["config"],
    &["train"],
    &["app"],
    // The embedding API (opens models through app's loader).
    &["embed"],
    &["bench"],
];

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

/// The top-level modules each file of `src/` names through `crate::`, outside tests.
fn uses() -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src")).unwrap();
            let top = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
            if top == "main" || top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for part in code.split("crate::").skip(1) {
                let m: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !m.is_empty() && m != top && m.chars().next().unwrap().is_lowercase() {
                    out.entry(top.clone()).or_default().push((m, rel.display().to_string()));
                }
            }
        }
    }
    out
}

#[test]
fn modules_use_only_lower_layers() {
    let mut bad = Vec::new();
    for (module, used) in uses() {
        let Some(own) = layer_of(&module) else {
            bad.push(format!("module '{module}' is in no layer of tests/layers.rs"));
            continue;
        };
        for (m, file) in used {
            match layer_of(&m) {
                Some(l) if l < own => {}
                Some(_) => bad.push(format!("{file}: '{module}' uses '{m}', which is not below it")),
                None => bad.push(format!("{file}: uses '{m}', in no layer")),
            }
        }
    }
    bad.sort();
    bad.dedup();
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
}
