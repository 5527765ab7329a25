//! The WGSL sources, compiled into the binary. One file per kernel family under `shaders/`.

/// Every shader: (name, WGSL source), shared parts prepended.
pub const SOURCES: &[(&str, &str)] = &[
    ("matmul", include_str!("../shaders/matmul.wgsl")),
    (
        "matmul_vec4",
        concat!(
            include_str!("../shaders/matmul_epilogue.wgsl"),
            include_str!("../shaders/matmul_vec4.wgsl"),
            include_str!("../shaders/matmul_put4.wgsl")
        ),
    ),
    (
        "elementwise",
        concat!(include_str!("../shaders/elementwise_ops.wgsl"), include_str!("../shaders/elementwise.wgsl")),
    ),
    (
        "elementwise4",
        concat!(include_str!("../shaders/elementwise_ops.wgsl"), include_str!("../shaders/elementwise4.wgsl")),
    ),
    ("reduce", include_str!("../shaders/reduce.wgsl")),
    ("conv2d", include_str!("../shaders/conv2d.wgsl")),
    ("groupnorm", include_str!("../shaders/groupnorm.wgsl")),
    ("softmax", include_str!("../shaders/softmax.wgsl")),
    ("attention", include_str!("../shaders/attention.wgsl")),
    (
        "attention_sg",
        concat!(
            include_str!("../shaders/attention_io.wgsl"),
            include_str!("../shaders/attention_online.wgsl"),
            include_str!("../shaders/attention_sg.wgsl")
        ),
    ),
    (
        "attention_kv",
        concat!(include_str!("../shaders/attention_io.wgsl"), include_str!("../shaders/attention_kv.wgsl")),
    ),
    (
        "attention_v4",
        concat!(
            include_str!("../shaders/attention_io.wgsl"),
            include_str!("../shaders/attention_online.wgsl"),
            include_str!("../shaders/attention_v4.wgsl")
        ),
    ),
    ("layout", include_str!("../shaders/layout.wgsl")),
    ("embedding", include_str!("../shaders/embedding.wgsl")),
    ("philox", include_str!("../shaders/philox.wgsl")),
    ("random", concat!(include_str!("../shaders/philox.wgsl"), include_str!("../shaders/random.wgsl"))),
    (
        "sampler",
        concat!(
            include_str!("../shaders/philox.wgsl"),
            include_str!("../shaders/sampler_common.wgsl"),
            include_str!("../shaders/sampler.wgsl")
        ),
    ),
    (
        "mcmc",
        concat!(
            include_str!("../shaders/philox.wgsl"),
            include_str!("../shaders/sampler_common.wgsl"),
            include_str!("../shaders/mcmc.wgsl")
        ),
    ),
    (
        "matmul_sg",
        concat!(
            include_str!("../shaders/matmul_epilogue.wgsl"),
            include_str!("../shaders/matmul_sg.wgsl"),
            include_str!("../shaders/matmul_put4.wgsl")
        ),
    ),
    ("conv_gemm", include_str!("../shaders/conv_gemm.wgsl")),
    ("knn", include_str!("../shaders/knn.wgsl")),
    // Samples into an application's texture (embed), one variant per storage format.
    (
        "present_rgba8",
        concat!("alias Target = texture_storage_2d<rgba8unorm, write>;\n", include_str!("../shaders/present.wgsl")),
    ),
    (
        "present_rgba32f",
        concat!("alias Target = texture_storage_2d<rgba32float, write>;\n", include_str!("../shaders/present.wgsl")),
    ),
    ("optim", include_str!("../shaders/optim.wgsl")),
    ("matmul_naive", include_str!("../shaders/matmul_naive.wgsl")),
    (
        "matmul_narrow",
        concat!(include_str!("../shaders/matmul_epilogue.wgsl"), include_str!("../shaders/matmul_narrow.wgsl")),
    ),
];

/// The WGSL source of shader `name`.
pub fn source(name: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Parse and validate one shader with naga (no GPU needed); the error names file and line.
pub fn validate(name: &str) -> Result<(), String> {
    let src = source(name).ok_or_else(|| format!("no shader named {name}"))?;
    validate_source(name, src)
}

/// Validate WGSL text (a source, or a source after `specialise`) with naga.
pub fn validate_source(name: &str, src: &str) -> Result<(), String> {
    let module =
        naga::front::wgsl::parse_str(src).map_err(|e| format!("shaders/{name}.wgsl: {}", e.emit_to_string(src)))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
    )
    .validate(&module)
    .map_err(|e| format!("shaders/{name}.wgsl: {}", e.emit_to_string(src)))?;
    Ok(())
}

/// Marker that asks `specialise` to unroll a loop: `for (var d = 0u; d < N; d++) { // @unroll`.
pub const UNROLL: &str = "// @unroll";

/// The source with every loop marked `// @unroll` written out in full for the given override
/// values (else the declared defaults), or None when the source has no such loop. The marked
/// loops count from 0 to a bound made of integer literals, overrides, + - * / % and
/// parentheses; each copy of the body is put in its own block with the counter replaced by
/// its value. The source stays valid WGSL without this
/// step (the loops run as loops); it exists because compilers unroll by heuristics, and a loop
/// left rolled forces every private array it indexes into scratch memory (Mesa/lavapipe gives
/// up past ~50 scalar operations per iteration, attention_sg.wgsl at four queries per
/// invocation ran 3x slower).
pub fn specialise(src: &str, constants: &[(&str, f64)]) -> Result<Option<String>, String> {
    if !src.contains(UNROLL) {
        return Ok(None);
    }
    let lines: Vec<&str> = src.lines().collect();
    // Overrides not given take their declared defaults (`override NAME: u32 = 3u;`).
    let mut all: Vec<(&str, f64)> = constants.to_vec();
    for l in &lines {
        let Some(rest) = l.trim_start().strip_prefix("override ") else { continue };
        let Some((name, rest)) = rest.split_once(':') else { continue };
        let Some((_, value)) = rest.split_once('=') else { continue };
        let value = value.split(';').next().unwrap_or("").trim().trim_end_matches(['u', 'i']);
        if let (false, Ok(v)) = (all.iter().any(|(k, _)| *k == name.trim()), value.parse::<f64>()) {
            all.push((name.trim(), v));
        }
    }
    let mut out = Vec::with_capacity(lines.len() * 4);
    expand(&lines, &all, &mut out)?;
    Ok(Some(out.join("\n") + "\n"))
}

fn expand(lines: &[&str], constants: &[(&str, f64)], out: &mut Vec<String>) -> Result<(), String> {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if !line.trim_end().ends_with(UNROLL) {
            out.push(line.to_string());
            i += 1;
            continue;
        }
        // for (var X = 0u; X < N; X++) {  // @unroll
        let head = line.trim_start();
        let parsed = (|| {
            let rest = head.strip_prefix("for (var ")?;
            let (var, rest) = rest.split_once(" = 0u; ")?;
            let (cond, rest) = rest.split_once("; ")?;
            let bound = cond.strip_prefix(&format!("{var} < "))?;
            rest.strip_prefix(&format!("{var}++) {{"))?;
            Some((var.to_string(), bound.trim().to_string()))
        })();
        let (var, bound) =
            parsed.ok_or_else(|| format!("line {}: unsupported @unroll loop: {}", i + 1, line.trim()))?;
        let n = eval_bound(&bound, constants).map_err(|e| format!("line {}: @unroll bound {bound}: {e}", i + 1))?;
        // The body runs to the line that closes the loop's brace.
        let mut depth = 0i64;
        let mut end = None;
        for (j, l) in lines.iter().enumerate().skip(i) {
            let code = l.split("//").next().unwrap_or("");
            depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            if depth == 0 {
                end = Some(j);
                break;
            }
        }
        let end = end.ok_or_else(|| format!("line {}: @unroll loop is not closed", i + 1))?;
        if end == i {
            return Err(format!("line {}: put an @unroll loop's body on its own lines", i + 1));
        }
        let body = &lines[i + 1..end];
        let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        for k in 0..n {
            out.push(format!("{indent}{{"));
            let copy: Vec<String> = body.iter().map(|l| replace_ident(l, &var, &format!("{k}u"))).collect();
            let refs: Vec<&str> = copy.iter().map(String::as_str).collect();
            expand(&refs, constants, out)?;
            out.push(format!("{indent}}}"));
        }
        i = end + 1;
    }
    Ok(())
}

/// Value of a loop bound: integer literals (`8u`), overrides given in `constants`, + - * / %
/// and parentheses.
fn eval_bound(expr: &str, constants: &[(&str, f64)]) -> Result<u64, String> {
    fn sum(t: &[String], i: &mut usize, c: &[(&str, f64)]) -> Result<i64, String> {
        let mut v = product(t, i, c)?;
        while *i < t.len() && (t[*i] == "+" || t[*i] == "-") {
            let op = t[*i].clone();
            *i += 1;
            let r = product(t, i, c)?;
            v = if op == "+" { v + r } else { v - r };
        }
        Ok(v)
    }
    fn product(t: &[String], i: &mut usize, c: &[(&str, f64)]) -> Result<i64, String> {
        let mut v = atom(t, i, c)?;
        while *i < t.len() && (t[*i] == "*" || t[*i] == "/" || t[*i] == "%") {
            let op = t[*i].clone();
            *i += 1;
            let r = atom(t, i, c)?;
            if op != "*" && r == 0 {
                return Err("division by zero".into());
            }
            v = match op.as_str() {
                "*" => v * r,
                "/" => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }
    fn atom(t: &[String], i: &mut usize, c: &[(&str, f64)]) -> Result<i64, String> {
        let tok = t.get(*i).ok_or("unexpected end")?.clone();
        *i += 1;
        if tok == "(" {
            let v = sum(t, i, c)?;
            if t.get(*i).map(String::as_str) != Some(")") {
                return Err("missing )".into());
            }
            *i += 1;
            return Ok(v);
        }
        if let Ok(v) = tok.trim_end_matches(['u', 'i']).parse::<i64>() {
            return Ok(v);
        }
        c.iter()
            .find(|(k, _)| *k == tok)
            .map(|(_, v)| *v as i64)
            .ok_or_else(|| format!("{tok} is not an override given"))
    }
    let mut tokens = Vec::new();
    let mut cur = String::new();
    for ch in expr.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            cur.push(ch);
        } else {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            if "+-*/%()".contains(ch) {
                tokens.push(ch.to_string());
            } else if !ch.is_whitespace() {
                return Err(format!("unexpected '{ch}'"));
            }
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut i = 0;
    let v = sum(&tokens, &mut i, constants)?;
    if i != tokens.len() {
        return Err(format!("unexpected '{}'", tokens[i]));
    }
    u64::try_from(v).map_err(|_| format!("negative trip count {v}"))
}

/// Replace whole-word occurrences of identifier `id` (not in comments) with `with`.
fn replace_ident(line: &str, id: &str, with: &str) -> String {
    let (code, comment) = match line.find("//") {
        Some(p) => line.split_at(p),
        None => (line, ""),
    };
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut s = String::with_capacity(code.len() + 8);
    let b = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        if code[i..].starts_with(id)
            && (i == 0 || !word(b[i - 1] as char))
            && code[i + id.len()..].chars().next().map(|c| !word(c)).unwrap_or(true)
            && (i == 0 || b[i - 1] != b'.')
        {
            s.push_str(with);
            i += id.len();
        } else {
            let c = code[i..].chars().next().unwrap();
            s.push(c);
            i += c.len_utf8();
        }
    }
    s + comment
}
