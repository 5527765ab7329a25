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
            // Registered on its own or as part of a registered source (shared parts).
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                scoregen::shaders::SOURCES.iter().any(|(_, s)| s.contains(&text)),
                "{} is not in src/shaders.rs",
                path.display()
            );
        }
    }
}

#[test]
fn unrolled_shaders_validate_with_naga() {
    use scoregen::shaders::{source, specialise, validate_source, SOURCES, UNROLL};
    let marked: Vec<&str> = SOURCES.iter().filter(|(_, s)| s.contains(UNROLL)).map(|(n, _)| *n).collect();
    for name in ["attention_sg", "attention_kv", "attention_v4", "conv2d"] {
        assert!(marked.contains(&name), "{name} has no @unroll loop");
    }
    for (kh, kw, s, pad) in [(3.0, 3.0, 1.0, 1.0), (1.0, 1.0, 1.0, 0.0), (4.0, 2.0, 2.0, 3.0)] {
        let c = [("PKH", kh), ("PKW", kw), ("PS", s), ("PPAD", pad)];
        let src = specialise(source("conv2d").unwrap(), &c).unwrap().unwrap();
        validate_source("conv2d (unrolled)", &src).unwrap();
    }
    // attention_sg over the head sizes and query counts it is built with.
    for (d4, dv4, tq, kb) in [
        (1.0, 1.0, 1.0, 4.0),
        (16.0, 16.0, 7.0, 2.0),
        (8.0, 2.0, 8.0, 4.0),
        (32.0, 32.0, 4.0, 2.0),
        (3.0, 5.0, 3.0, 1.0),
    ] {
        let c = [("D4", d4), ("DV4", dv4), ("TQ", tq), ("SG8", 1.0), ("KB", kb)];
        let src = specialise(source("attention_sg").unwrap(), &c).unwrap().unwrap();
        assert!(!src.contains(UNROLL) && !src.contains("for (var d "), "every marked loop written out");
        let (last_t, last_d) = (tq as usize - 1, dv4 as usize - 1);
        assert!(src.contains(&format!("acc[{last_t}u][{last_d}u]")), "every query and dimension written out");
        assert!(!src.contains(&format!("acc[{}u]", last_t + 1)) && !src.contains(&format!("acc[0u][{}u]", last_d + 1)));
        let last_b = kb as usize - 1;
        assert!(src.contains(&format!("kd[{last_b}u] = ")) && !src.contains(&format!("kd[{}u] = ", last_b + 1)));
        validate_source("attention_sg (unrolled)", &src).unwrap();
    }
    // attention_kv over key counts (full and partial key slots) and head sizes (value shares
    // of one to four vec4s, some lanes without one).
    for (d4, dv4, nk) in [(16.0, 16.0, 49.0), (1.0, 1.0, 1.0), (32.0, 32.0, 64.0), (8.0, 9.0, 8.0), (3.0, 5.0, 57.0)] {
        let c = [("D4", d4), ("DV4", dv4), ("NK", nk), ("SG8", 1.0)];
        let src = specialise(source("attention_kv").unwrap(), &c).unwrap().unwrap();
        assert!(!src.contains(UNROLL), "every marked loop written out");
        let (slots, last_j) = ((nk as usize).div_ceil(8), nk as usize - 1);
        assert!(
            src.contains(&format!("kr[{}u][{}u] = ", slots - 1, d4 as usize - 1))
                && !src.contains(&format!("kr[{slots}u]"))
        );
        assert!(src.contains(&format!("vr[{last_j}u]")) && !src.contains(&format!("vr[{}u]", last_j + 1)));
        validate_source("attention_kv (unrolled)", &src).unwrap();
    }
    // attention_v4 (no subgroups) over head sizes, queries per invocation and keys per step.
    for (d4, dv4, tq, kb) in [(16.0, 16.0, 7.0, 2.0), (1.0, 1.0, 1.0, 1.0), (32.0, 8.0, 8.0, 2.0), (3.0, 5.0, 2.0, 1.0)]
    {
        let c = [("D4", d4), ("DV4", dv4), ("TQ", tq), ("KB", kb)];
        let src = specialise(source("attention_v4").unwrap(), &c).unwrap().unwrap();
        assert!(!src.contains(UNROLL), "every marked loop written out");
        let (last_t, last_d) = (tq as usize - 1, dv4 as usize - 1);
        assert!(src.contains(&format!("acc[{last_t}u][{last_d}u]")) && !src.contains(&format!("acc[{}u]", last_t + 1)));
        validate_source("attention_v4 (unrolled)", &src).unwrap();
    }
    // The implicit-GEMM convolution in each mode over its row blocks.
    for mode in [0.0, 1.0, 2.0, 3.0] {
        for rg in [1.0, 2.0, 4.0] {
            let c =
                [("MODE", mode), ("RG", rg), ("KWL", if mode == 1.0 { 1.0 } else { 3.0 + (mode == 3.0) as u8 as f64 })];
            let src = specialise(source("conv_gemm").unwrap(), &c).unwrap().unwrap();
            assert!(!src.contains(UNROLL), "conv_gemm: every marked loop written out");
            let last = 8 * rg as usize - 1;
            assert!(src.contains(&format!("acc3[{last}u]")) && !src.contains(&format!("acc3[{}u]", last + 1)));
            validate_source("conv_gemm (unrolled)", &src).unwrap();
        }
    }
    // The matmul stores (with the bias + SiLU epilogue) over the row blocks they are built with.
    for (name, rows) in [("matmul_vec4", "TM"), ("matmul_sg", "RG")] {
        for n in [1.0, 2.0, 4.0] {
            let src = specialise(source(name).unwrap(), &[(rows, n), ("BIAS", 1.0), ("ACT", 1.0)]).unwrap().unwrap();
            assert!(!src.contains(UNROLL), "{name}: every marked loop written out");
            let last = if name == "matmul_sg" { 8 * n as usize } else { n as usize } - 1;
            assert!(src.contains(&format!("acc3[{last}u]")) && !src.contains(&format!("acc3[{}u])", last + 1)));
            validate_source(&format!("{name} (unrolled)"), &src).unwrap();
        }
    }
}

#[test]
fn unroll_writes_out_marked_loops_only() {
    use scoregen::shaders::specialise;
    let src = "fn f() {
    var a: array<f32, 8>;
    for (var i = 0u; i < N; i++) { // @unroll
        a[i] = f32(i) + a[i]; // i stays in comments
        for (var j = 0u; j < 2u; j++) { // @unroll
            a[i + j] += 1.0;
        }
        let ii = s.i;
    }
    for (var k = 0u; k < N; k++) { a[k] = 0.0; }
}
";
    let out = specialise(src, &[("N", 3.0)]).unwrap().unwrap();
    assert!(out.contains("a[2u] = f32(2u) + a[2u]; // i stays in comments"));
    assert!(out.contains("a[1u + 1u] += 1.0;"));
    assert!(out.contains("let ii = s.i;"), "fields and longer names are left alone");
    assert!(out.contains("for (var k = 0u; k < N; k++)"), "unmarked loops stay");
    assert_eq!(out.matches("a[0u + 0u]").count(), 1);
    assert!(specialise("fn f() {}", &[]).unwrap().is_none());
    // An override not given takes its declared default.
    let src =
        "override N: u32 = 2u;\nfn f() {\n    for (var i = 0u; i < N; i++) { // @unroll\n        g(i);\n    }\n}\n";
    let out = specialise(src, &[]).unwrap().unwrap();
    assert!(out.contains("g(1u);") && !out.contains("g(2u);"), "{out}");
    let out = specialise(src, &[("N", 3.0)]).unwrap().unwrap();
    assert!(out.contains("g(2u);"), "{out}");
    // Bounds are expressions of literals and overrides.
    let out =
        specialise("for (var i = 0u; i < (N + 7u) / 8u - 1u; i++) { // @unroll\n    x[i] = 0;\n}\n", &[("N", 17.0)]);
    let out = out.unwrap().unwrap();
    assert!(out.contains("x[1u] = 0;") && !out.contains("x[2u]"), "{out}");
    let err = specialise("for (var i = 0u; i < M; i++) { // @unroll\n}\n", &[("N", 3.0)]).unwrap_err();
    assert!(err.contains("M"), "{err}");
    let err = specialise("for (var i = 1u; i < 4u; i++) { // @unroll\n}\n", &[]).unwrap_err();
    assert!(err.contains("unsupported"), "{err}");
}

/// The field names of `struct Params` in a shader file, in order.
fn wgsl_params(file: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders").join(format!("{file}.wgsl"));
    let src = std::fs::read_to_string(&path).unwrap();
    let body = src
        .split("struct Params {")
        .nth(1)
        .unwrap_or_else(|| panic!("{file}.wgsl has no Params"))
        .split('}')
        .next()
        .unwrap();
    // Fields are `name: type,`; array types hold commas inside <...>.
    let mut depth = 0;
    let mut fields = Vec::new();
    let mut cur = String::new();
    for ch in body.chars() {
        match ch {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                fields.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    fields.push(cur);
    fields.iter().filter_map(|f| f.split(':').next()).map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect()
}

/// Every kernel's parameter block in Rust (ops::kernels) has its shader's fields in order, and
/// every shader with a `Params` is covered.
#[test]
fn kernel_params_match_the_shaders() {
    let mut covered = std::collections::BTreeSet::new();
    for (shaders, fields) in scoregen::ops::kernels::ALL {
        for s in *shaders {
            assert_eq!(wgsl_params(s), fields.to_vec(), "{s}.wgsl Params against ops::kernels");
            covered.insert(s.to_string());
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        if text.contains("struct Params {") {
            assert!(covered.contains(&name), "{name}.wgsl declares Params but ops::kernels has no struct for it");
        }
    }
}

/// Every storage binding of every shader file is named in ops::kernels::slots with its number,
/// and every named slot exists in the shader.
#[test]
fn binding_slots_match_the_shaders() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files_with_bindings = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        let mut found: Vec<(String, u32)> = Vec::new();
        for part in text.split("@binding(").skip(1) {
            let n: u32 = part.split(')').next().unwrap().parse().unwrap();
            let after = part.split_once("var").unwrap().1;
            let after = if after.starts_with('<') { after.split_once('>').unwrap().1 } else { after };
            let name = after.trim().split(':').next().unwrap().trim().to_string();
            if name != "p" {
                found.push((name.to_uppercase(), n));
            }
        }
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        if found.is_empty() {
            continue;
        }
        files_with_bindings.insert(stem.clone());
        let slots = scoregen::ops::kernels::slots::ALL
            .iter()
            .find(|(s, _)| *s == stem)
            .unwrap_or_else(|| panic!("{stem}.wgsl has bindings but no ops::kernels::slots::{stem}"))
            .1;
        let mut want: Vec<(String, u32)> = slots.iter().map(|(n, b)| (n.to_string(), *b)).collect();
        found.sort();
        want.sort();
        assert_eq!(found, want, "{stem}.wgsl bindings against ops::kernels::slots::{stem}");
    }
    assert_eq!(files_with_bindings.len(), scoregen::ops::kernels::slots::ALL.len(), "a slots module without a shader");
}
