//! GPU runtime: embedding into a host-owned device, pooling, profiling, CLI errors.

mod common;
use common::assert_close;
use scoregen::ops::elementwise::{unary, Unary};
use scoregen::{Gpu, Recorder, Tensor};
use std::process::Command;

#[test]
fn adopts_a_device_owned_by_the_host_application() {
    // The host creates its own instance, adapter and device with WebGPU default limits ...
    let inst = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions::default())).expect("adapter");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).expect("device");
    // ... and hands clones to scoregen, keeping its own handles.
    let g = Gpu::from_wgpu(device.clone(), queue.clone());
    assert_eq!(g.limits.max_storage_buffer_binding_size, device.limits().max_storage_buffer_binding_size);
    let x = Tensor::from_slice(&g, &[1.0, -2.0, 3.0], &[3]).unwrap();
    let mut rec = Recorder::new(&g);
    let y = unary(&mut rec, Unary::Square, &x).unwrap();
    rec.finish().unwrap();
    assert_eq!(y.to_vec(&g).unwrap(), vec![1.0, 4.0, 9.0]);
    // The host's buffer API sees the same device: copy our result into a host buffer.
    let host = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 12,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(y.buffer().buffer(), 0, &host, 0, 12);
    queue.submit(Some(enc.finish()));
    host.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let v: Vec<f32> = bytemuck::cast_slice(&host.slice(..).get_mapped_range().unwrap()).to_vec();
    assert_eq!(v, vec![1.0, 4.0, 9.0]);
}

#[test]
fn pool_reuses_buffers_and_pipelines_are_cached() {
    // A device of its own: no other test adds pipelines or buffers to it.
    let g = &Gpu::new(&scoregen::GpuOptions::from_env().unwrap()).unwrap();
    let x = Tensor::from_slice(g, &vec![0.5; 4096], &[4096]).unwrap();
    let run = || {
        let mut rec = Recorder::new(g);
        let y = unary(&mut rec, Unary::Exp, &x).unwrap();
        let z = unary(&mut rec, Unary::Log, &y).unwrap();
        rec.finish().unwrap();
        z
    };
    for _ in 0..2 {
        run().to_vec(g).unwrap();
    }
    let (p0, b0) = (g.pipelines_created(), g.pool_stats().buffers_created);
    assert!(p0 >= 1, "the first runs built their pipelines");
    for _ in 0..5 {
        assert_close(&run().to_vec(g).unwrap(), &vec![0.5; 4096], 1e-6, 1e-6, "exp/log");
    }
    // Warm runs build no pipeline and take every buffer from the pool (the readback's
    // staging buffer included).
    assert_eq!(g.pipelines_created(), p0, "pipelines were built again");
    assert_eq!(g.pool_stats().buffers_created, b0, "the pool grew");
}

#[test]
fn profiling_reports_kernel_times_or_says_why_not() {
    let opts = scoregen::GpuOptions { profile: true, ..scoregen::GpuOptions::from_env().unwrap() };
    let g = Gpu::new(&opts).unwrap();
    let x = Tensor::from_slice(&g, &vec![1.0; 100_000], &[100_000]).unwrap();
    let mut rec = Recorder::new(&g);
    let _y = unary(&mut rec, Unary::Silu, &x).unwrap();
    rec.finish().unwrap();
    let report = g.profile_report().unwrap();
    if g.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        assert!(report.contains("elementwise4::unary_v4"), "{report}"); // 100,000 = 4 x 25,000
    } else {
        assert!(report.contains("no timestamp queries"), "{report}");
    }
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoregen"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn no_adapter_is_one_line_exit_3() {
    let (code, _, err) = cli(
        &["--backend", "vulkan", "bench", "gemm", "--sizes", "64"],
        &[("VK_ICD_FILENAMES", "/nonexistent.json"), ("VK_DRIVER_FILES", "/nonexistent.json")],
    );
    assert_eq!(code, 3, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("mesa-vulkan-drivers"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn bad_flags_are_clear_errors() {
    let (code, _, err) = cli(&["--backend", "opengl2", "info"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error:") && err.contains("opengl2") && !err.contains("panicked"), "{err}");
    let (code, _, err) = cli(&["--adapter", "99", "bench", "gemm", "--sizes", "64"], &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--adapter 99"), "{err}");
    // Sizes beyond the device (a 40 GB host matrix aborted the process before), and zero.
    for (size, needle) in [("100000", "binds at most"), ("0", "at least 1")] {
        let (code, _, err) = cli(&["bench", "gemm", "--sizes", size], &[]);
        assert_eq!(code, 1, "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert!(errors.len() == 1 && errors[0].contains(needle), "{err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    }
}

#[test]
fn bench_sample_runs_with_untrained_weights() {
    // The default --train-steps 0 (speed only) once tripped the config's own checks.
    let (code, out, err) = cli(&["bench", "sample", "--chains", "64", "--steps-per-level", "2", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("{\"bench\":\"sample\"") && l.contains("\"unit\":\"s\"")), "{out}");
}

#[test]
fn bench_json_lines_parse() {
    let (code, out, err) = cli(&["bench", "gemm", "--sizes", "64,100", "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    // Per size: ours, the epilogue's time over ours, the naive kernel, ours over naive.
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(lines.iter().filter(|l| l.contains("\"impl\":\"scoregen+bias+silu/scoregen\"")).count(), 2, "{out}");
    for l in lines {
        assert!(l.starts_with("{\"bench\":\"gemm\",\"n\":") && l.ends_with('}') && l.contains("\"value\":"), "{l}");
    }
}

/// On a headless machine (no XDG_RUNTIME_DIR) a successful command prints no error lines:
/// Mesa's device-select layer used to print "error: XDG_RUNTIME_DIR is invalid" twice.
#[test]
fn headless_success_prints_no_error_lines() {
    let out = std::env::temp_dir().join(format!("scoregen-headless-{}.npy", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_scoregen"))
        .args(["sample", "--model", "gmm:ring8", "--n", "4", "--steps", "10", "--out", out.to_str().unwrap()])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.to_lowercase().contains("error"), "{err}");
    let _ = std::fs::remove_file(&out);
}
