//! The train / sample / eval contract end to end: a tiny run, its outputs, resume continuing
//! the same loss curve, and bad input as one-line errors with a non-zero exit.

mod common;
use common::gpu;
use scoregen::config::Config;
use scoregen::io::checkpoint::Checkpoint;
use scoregen::train::{train, TrainOpts, CHECKPOINT, STATE};
use std::path::{Path, PathBuf};
use std::process::Command;

fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_scoregen")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn image_size(p: &Path) -> (u32, u32) {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[1..4], b"PNG");
    (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoregen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const TINY: &str = "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [32, 32]\n[train]\nsteps = 40\n\
                    batch = 256\nlog_every = 10\ncheckpoint_every = 20\nsample_every = 20\nema = 0.9\n[sample]\nsteps = 20\nn = 50\nbatch = 50\n";

/// One-line error (the last stderr line starts with "error:"), non-zero exit, no panic.
fn assert_clean_error(code: i32, err: &str, needles: &[&str]) {
    assert_ne!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn train_then_sample_and_eval_from_the_command_line() {
    let dir = tmp("e2e");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let out = dir.join("run");
    let (code, _, err) = cli(&["train", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for f in [CHECKPOINT, STATE, "loss.png", "loss.csv", "samples.png", "samples.npy", "samples_0000020.png"] {
        assert!(out.join(f).exists(), "{f} missing: {err}");
    }
    let ck = out.join(CHECKPOINT);
    let ck = ck.to_str().unwrap();
    let npy = dir.join("s.npy");
    let (code, _, err) = cli(&[
        "sample",
        "--checkpoint",
        ck,
        "--sampler",
        "heun",
        "--steps",
        "10",
        "--n",
        "9",
        "--batch",
        "4",
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (shape, data) = scoregen::io::npy::read_npy(&npy).unwrap();
    assert_eq!(shape, vec![9, 2]);
    assert!(data.iter().all(|v| v.is_finite()));
    // The adaptive solver on an analytic mixture, written as a density plot.
    let png = dir.join("rk45.png");
    let (code, _, err) =
        cli(&["sample", "--model", "gmm:ncsn", "--sampler", "rk45", "--n", "64", "--out", png.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // Samples beside exact draws of the mixture: two panels.
    assert!(image_size(&png) == (800, 430), "{err}");
    let (code, stdout, err) =
        cli(&["eval", "--checkpoint", ck, "--n", "200", "--steps", "20", "--nll-n", "50", "--json"]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["eval"].as_str().unwrap().to_string())
        .collect();
    for want in ["sliced_w2", "mean_log_density", "nll", "mode_0_fraction"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An interrupted run resumed with --resume continues the same loss curve and ends with the
/// same weights as an uninterrupted one (bit for bit).
#[test]
fn resume_continues_the_same_run() {
    let dir = tmp("resume");
    let cfg = Config::from_toml(TINY, "tiny").unwrap();
    let run = |out: &Path, stop_after: Option<usize>, resume: bool| {
        let o = TrainOpts { out: out.to_path_buf(), steps: None, resume, progress: false, stop_after };
        train(gpu(), &cfg, Path::new("."), &o).unwrap()
    };
    let (a, b) = (dir.join("a"), dir.join("b"));
    let full = run(&a, None, false);
    let half = run(&b, Some(20), false);
    assert_eq!(half.step, 20);
    let rest = run(&b, None, true);
    assert_eq!(rest.step, 40);
    let la = std::fs::read_to_string(a.join("loss.csv")).unwrap();
    let lb = std::fs::read_to_string(b.join("loss.csv")).unwrap();
    assert_eq!(la, lb, "loss curves differ");
    assert_eq!(full.losses.len(), 4);
    let (ca, cb) = (Checkpoint::load(&a.join(CHECKPOINT)).unwrap(), Checkpoint::load(&b.join(CHECKPOINT)).unwrap());
    assert_eq!(ca.tensors, cb.tensors, "weights differ after resume");
    // Stopped between two log_every boundaries (step 15; logs every 10): the partial loss
    // window is kept in the state, so loss.csv still matches the uninterrupted run's.
    let c = dir.join("c");
    assert_eq!(run(&c, Some(15), false).step, 15);
    assert_eq!(run(&c, None, true).step, 40);
    assert_eq!(la, std::fs::read_to_string(c.join("loss.csv")).unwrap(), "loss curve after a mid-window stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tmp("bad");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    // Unknown key: names the key and the file.
    std::fs::write(dir.join("k.toml"), "[data]\nsource = \"toy\"\n[train]\nstepz = 4\n").unwrap();
    let (code, _, err) = cli(&["train", "--config", &p("k.toml"), "--out", &p("o1")]);
    assert_clean_error(code, &err, &["stepz", "k.toml"]);
    // Missing data file: names the path.
    std::fs::write(dir.join("m.toml"), "[data]\nsource = \"idx\"\npath = \"nowhere-images.gz\"\n").unwrap();
    let (code, _, err) = cli(&["train", "--config", &p("m.toml"), "--out", &p("o2")]);
    assert_clean_error(code, &err, &["nowhere-images.gz"]);
    // Unreadable image in a folder: names the file.
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    std::fs::write(dir.join("imgs/broken.png"), b"not a png at all").unwrap();
    let cfg = format!("[data]\nsource = \"images\"\npath = \"{}\"\nsize = 8\n[model]\nnetwork = \"unet\"\n", p("imgs"));
    std::fs::write(dir.join("i.toml"), cfg).unwrap();
    let (code, _, err) = cli(&["train", "--config", &p("i.toml"), "--out", &p("o3")]);
    assert_clean_error(code, &err, &["broken.png"]);
    // A checkpoint from another architecture: every mismatch named, in one line.
    std::fs::write(dir.join("t.toml"), TINY.replace("steps = 40", "steps = 2")).unwrap();
    let (code, _, err) = cli(&["train", "--config", &p("t.toml"), "--out", &p("o4"), "--no-samples"]);
    assert_eq!(code, 0, "{err}");
    // Training again into a folder that holds a run: refused unless --resume or --overwrite.
    let before = std::fs::read(dir.join("o4").join(CHECKPOINT)).unwrap();
    let (code, _, err) = cli(&["train", "--config", &p("t.toml"), "--out", &p("o4"), "--no-samples"]);
    assert_clean_error(code, &err, &["o4", "--resume", "--overwrite"]);
    assert_eq!(std::fs::read(dir.join("o4").join(CHECKPOINT)).unwrap(), before, "the run was touched");
    let (code, _, err) = cli(&["train", "--config", &p("t.toml"), "--out", &p("o4"), "--no-samples", "--overwrite"]);
    assert_eq!(code, 0, "{err}");
    let mut ck = Checkpoint::load(&dir.join("o4").join(CHECKPOINT)).unwrap();
    let cfg = ck.metadata["scoregen.config"].replace("hidden = [32, 32]", "hidden = [32, 48]");
    ck.metadata.insert("scoregen.config".into(), cfg);
    ck.save(&dir.join("other.safetensors")).unwrap();
    let (code, _, err) = cli(&["sample", "--checkpoint", &p("other.safetensors"), "--n", "4", "--out", &p("x.npy")]);
    assert_clean_error(code, &err, &["other.safetensors", "net.2.weight"]);
    // A truncated checkpoint.
    let bytes = std::fs::read(dir.join("o4").join(CHECKPOINT)).unwrap();
    std::fs::write(dir.join("trunc.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = cli(&["sample", "--checkpoint", &p("trunc.safetensors"), "--n", "4", "--out", &p("x.npy")]);
    assert_clean_error(code, &err, &["trunc.safetensors"]);
    // Wrong output extension.
    // Wrong output extension, a PNG of 3-D points, a missing folder: refused before sampling
    // (a long run must not end in an error with its samples lost).
    let (code, _, err) = cli(&["sample", "--model", "gmm:ring8", "--n", "4", "--out", &p("x.txt")]);
    assert_clean_error(code, &err, &["x.txt", ".npy"]);
    assert!(!err.contains("sampling"), "{err}");
    let (code, _, err) = cli(&["sample", "--model", "gmm:ring8", "--n", "4", "--out", &p("no/such/x.npy")]);
    assert_clean_error(code, &err, &["no/such", "does not exist"]);
    assert!(!err.contains("sampling"), "{err}");
    // A batch beyond the device: the error says which flag to lower.
    let (code, _, err) =
        cli(&["sample", "--model", "gmm:ring8", "--n", "100000000", "--batch", "100000000", "--out", &p("x.npy")]);
    assert_clean_error(code, &err, &["binds at most", "lower --batch"]);
    // No chains, no steps, empty batches: refused, not a prior draw or a one-chain crawl.
    for flag in ["--n", "--steps", "--batch"] {
        let (code, _, err) = cli(&["sample", "--model", "gmm:ring8", flag, "0", "--out", &p("x.npy")]);
        assert_clean_error(code, &err, &[flag, "at least 1"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// NaN in the data makes the loss NaN: training stops, says at which step, and keeps the last
/// good checkpoint.
#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let dir = tmp("nan");
    // 1,000 good points and one NaN, which the seeded shuffle reaches part-way through.
    let mut data: Vec<f32> = (0..2000).map(|i| (i as f32 * 0.37).sin()).collect();
    data.extend([f32::NAN, 0.0]);
    scoregen::io::npy::write_npy(&dir.join("d.npy"), &[1001, 2], &data).unwrap();
    let cfg = "[data]\nsource = \"npy\"\npath = \"d.npy\"\n[model]\nhidden = [16]\n[train]\nsteps = 2000\nbatch = 1\n\
               log_every = 5\ncheckpoint_every = 5\n";
    std::fs::write(dir.join("n.toml"), cfg).unwrap();
    let out = dir.join("o");
    let (code, _, err) =
        cli(&["train", "--config", dir.join("n.toml").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clean_error(code, &err, &["step", "checkpoint"]);
    let ck = Checkpoint::load(&out.join(CHECKPOINT)).unwrap();
    assert!(ck.tensors.values().all(|(_, v)| v.iter().all(|x| x.is_finite())), "the kept checkpoint has NaNs");
    // The loss read rarely (every 1,000 steps) and checkpoints often (every 50): the NaN reaches
    // the weights between two readings, and must not replace the good checkpoint.
    let cfg = cfg.replace("log_every = 5\ncheckpoint_every = 5", "log_every = 1000\ncheckpoint_every = 50");
    std::fs::write(dir.join("n2.toml"), cfg).unwrap();
    let out = dir.join("o2");
    let (code, _, err) =
        cli(&["train", "--config", dir.join("n2.toml").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_clean_error(code, &err, &["non-finite", "step"]);
    let ck = Checkpoint::load(&out.join(CHECKPOINT)).unwrap();
    assert!(ck.tensors.values().all(|(_, v)| v.iter().all(|x| x.is_finite())), "a NaN checkpoint was kept");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Data that no picture can show (5-D vectors): periodic and final samples go to .npy files
/// and the run succeeds (a PNG of them used to stop training at its first sample point).
#[test]
fn training_on_vectors_writes_npy_samples() {
    let dir = tmp("vec5");
    let data: Vec<f32> = (0..256 * 5).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    scoregen::io::npy::write_npy(&dir.join("v.npy"), &[256, 5], &data).unwrap();
    let cfg = "[data]\nsource = \"npy\"\npath = \"v.npy\"\n[model]\nhidden = [16]\n[train]\nsteps = 10\nbatch = 32\n\
               log_every = 5\nsample_every = 5\n[sample]\nn = 16\nsteps = 10\n";
    std::fs::write(dir.join("v.toml"), cfg).unwrap();
    let out = dir.join("o");
    let (code, _, err) =
        cli(&["train", "--config", dir.join("v.toml").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (shape, _) = scoregen::io::npy::read_npy(&out.join("samples.npy")).unwrap();
    assert_eq!(shape, vec![16, 5]);
    assert!(out.join("samples_0000005.npy").exists() && !out.join("samples.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sample i does not change with --n when the autotune's small and large matmul
/// configurations differ (products below and above 2^20 outputs): a sampling plan takes one
/// configuration for every batch. `--n 4200` with 256 hidden units is past 2^20.
#[test]
fn samples_do_not_depend_on_n_across_matmul_configurations() {
    let dir = tmp("mmcfg");
    let cfg = TINY.replace("hidden = [32, 32]", "hidden = [256, 256]").replace("steps = 40", "steps = 2");
    std::fs::write(dir.join("w.toml"), cfg).unwrap();
    let out = dir.join("run");
    let (code, _, err) = cli(&[
        "train",
        "--config",
        dir.join("w.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-samples",
    ]);
    assert_eq!(code, 0, "{err}");
    let draw = |n: &str| {
        let npy = dir.join(format!("s{n}.npy"));
        let o = Command::new(env!("CARGO_BIN_EXE_scoregen"))
            .args(["sample", "--checkpoint", out.join(CHECKPOINT).to_str().unwrap(), "--sampler", "ddim"])
            .args(["--steps", "5", "--n", n, "--batch", n, "--out", npy.to_str().unwrap()])
            .env("SCOREGEN_MATMUL", "sg:8x4:32x16,tiled:16x16:8x8:8")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        scoregen::io::npy::read_npy(&npy).unwrap().1
    };
    let (a, b) = (draw("8"), draw("4200"));
    for i in 0..16 {
        assert_eq!(a[i].to_bits(), b[i].to_bits(), "value {i}: --n 8 {} vs --n 4200 {}", a[i], b[i]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An EMA too slow for the run's length (its average still mostly the initial weights) gets a
/// note at the start; one that has time to forget them does not.
#[test]
fn a_slow_ema_for_a_short_run_is_pointed_out() {
    let dir = common::fresh_dir("ema-note");
    for (ema, noted) in [("0.999", true), ("0.5", false)] {
        let cfg = dir.join(format!("ema{ema}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [8]\n[train]\nsteps = 20\nbatch = 16\n\
                 ema = {ema}\ncheckpoint_every = 0\n"
            ),
        )
        .unwrap();
        let out = dir.join(format!("run{ema}"));
        let (code, _, err) =
            cli(&["train", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-samples"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(err.contains("note: train.ema"), noted, "ema {ema}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
