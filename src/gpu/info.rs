//! `scoregen info`: every adapter with the limits and features that matter to the engine.

use super::context::{enumerate_adapters, BackendChoice, WANTED_FEATURES};

fn mib(b: u64) -> String {
    format!("{} MiB", b / (1 << 20))
}

/// A human-readable report of every adapter for `backend`.
pub fn adapters_report(backend: BackendChoice) -> String {
    let adapters = enumerate_adapters(backend);
    if adapters.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        let f = a.features();
        s += &format!("adapter {i}: {}\n", info.name);
        s += &format!("  backend        {:?}\n  device type    {:?}\n", info.backend, info.device_type);
        s += &format!("  driver         {} {}\n", info.driver, info.driver_info);
        s += &format!("  vendor/device  {:#06x}/{:#06x}\n", info.vendor, info.device);
        s += "  limits we use (requested in full when the device is opened):\n";
        let rows: [(&str, String); 9] = [
            ("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage.to_string()),
            ("max_storage_buffer_binding_size", mib(l.max_storage_buffer_binding_size)),
            ("max_buffer_size", mib(l.max_buffer_size)),
            ("max_uniform_buffer_binding_size", l.max_uniform_buffer_binding_size.to_string()),
            ("max_compute_workgroup_storage_size", format!("{} B", l.max_compute_workgroup_storage_size)),
            ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup.to_string()),
            ("max_compute_workgroup_size_x", l.max_compute_workgroup_size_x.to_string()),
            ("max_compute_workgroup_size_y", l.max_compute_workgroup_size_y.to_string()),
            ("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension.to_string()),
        ];
        for (k, v) in rows {
            s += &format!("    {k:<40} {v}\n");
        }
        s += "  features:\n";
        for (feat, why) in WANTED_FEATURES {
            let has = f.contains(*feat);
            s += &format!("    {:<40} {} ({})\n", feature_name(*feat), if has { "yes, used" } else { "no" }, why);
        }
        let f16 = wgpu::Features::SHADER_F16;
        let has = if f.contains(f16) { "yes" } else { "no" };
        s += &format!("    {:<40} {has} (f16 storage: not used yet; f32 is the default)\n", feature_name(f16));
    }
    s
}

/// The WebGPU / wgpu name of a single feature flag (wgpu's Debug form nests two bit sets).
fn feature_name(f: wgpu::Features) -> String {
    match f {
        wgpu::Features::TIMESTAMP_QUERY => "timestamp-query".into(),
        wgpu::Features::SUBGROUP => "subgroups".into(),
        wgpu::Features::SHADER_F16 => "shader-f16".into(),
        other => format!("{other:?}"),
    }
}
