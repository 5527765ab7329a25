//! The WGSL sources, compiled into the binary. One file per kernel family under `shaders/`.

pub const SOURCES: &[(&str, &str)] = &[
    ("matmul", include_str!("../shaders/matmul.wgsl")),
    ("matmul_vec4", include_str!("../shaders/matmul_vec4.wgsl")),
    ("elementwise", include_str!("../shaders/elementwise.wgsl")),
    ("reduce", include_str!("../shaders/reduce.wgsl")),
    ("conv2d", include_str!("../shaders/conv2d.wgsl")),
    ("groupnorm", include_str!("../shaders/groupnorm.wgsl")),
    ("softmax", include_str!("../shaders/softmax.wgsl")),
    ("attention", include_str!("../shaders/attention.wgsl")),
    ("attention_sg", include_str!("../shaders/attention_sg.wgsl")),
    ("layout", include_str!("../shaders/layout.wgsl")),
    ("embedding", include_str!("../shaders/embedding.wgsl")),
    ("philox", include_str!("../shaders/philox.wgsl")),
    ("random", concat!(include_str!("../shaders/philox.wgsl"), include_str!("../shaders/random.wgsl"))),
    ("sampler", concat!(include_str!("../shaders/philox.wgsl"), include_str!("../shaders/sampler.wgsl"))),
    ("matmul_sg", include_str!("../shaders/matmul_sg.wgsl")),
    ("optim", include_str!("../shaders/optim.wgsl")),
    ("matmul_naive", include_str!("../shaders/matmul_naive.wgsl")),
    ("matmul_narrow", include_str!("../shaders/matmul_narrow.wgsl")),
];

pub fn source(name: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Parse and validate one shader with naga (no GPU needed); the error names file and line.
pub fn validate(name: &str) -> Result<(), String> {
    let src = source(name).ok_or_else(|| format!("no shader named {name}"))?;
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
