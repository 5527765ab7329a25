//! Every WGSL file parses and validates with naga: no GPU needed.

#[test]
fn every_shader_validates_with_naga() {
    let mut failures = Vec::new();
    for (name, _) in scoregen::shaders::SOURCES {
        if let Err(e) = scoregen::shaders::validate(name) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(scoregen::shaders::SOURCES.len() >= 2);
}

#[test]
fn every_wgsl_file_is_registered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().map(|e| e == "wgsl").unwrap_or(false) {
            let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(scoregen::shaders::source(&stem).is_some(), "{} is not in src/shaders.rs", path.display());
        }
    }
}
