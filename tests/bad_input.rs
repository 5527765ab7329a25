//! The bad-input suite: configs, data files, checkpoints, mixture files, command-line flags,
//! environment and faults (stale locks and temporaries, interrupted runs, concurrent runs).
//! Every case ends in a one-line error that names the value or file and a non-zero exit, or in
//! a correct result; none panics, aborts or hangs (each command runs under a deadline).

mod common;
use scoregen::io::checkpoint::Checkpoint;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Out {
    code: i32,
    err: String,
}

/// Run the CLI with extra environment, killed after 120 s (a hang fails the test, not CI).
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoregen"));
    c.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return Out { code: status.code().unwrap_or(-1), err };
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("scoregen {args:?} hung for 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> Out {
    run_env(args, &[])
}

/// One line starting "error:" that holds every needle, exit code `code`, no panic.
fn expect_error(o: &Out, code: i32, needles: &[&str], case: &str) {
    assert_eq!(o.code, code, "{case}: exit code {} ({})", o.code, o.err);
    assert!(!o.err.contains("panicked") && !o.err.contains("internal error"), "{case}: {}", o.err);
    if code == 2 {
        // clap's own error format (usage follows the error line).
        assert!(o.err.starts_with("error:"), "{case}: {}", o.err);
        for n in needles {
            assert!(o.err.contains(n), "{case}: '{n}' missing from {}", o.err);
        }
        return;
    }
    let lines: Vec<&str> = o.err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{case}: not one error line: {}", o.err);
    assert!(lines[0].starts_with("error: "), "{case}: {}", o.err);
    for n in needles {
        assert!(lines[0].contains(n), "{case}: '{n}' missing from: {}", lines[0]);
    }
    // The prefix once: "invalid input: x: invalid input: y" was the old style.
    for p in ["invalid input:", "i/o error:", "device limit:"] {
        assert!(lines[0].matches(p).count() <= 1, "{case}: prefix twice: {}", lines[0]);
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoregen-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

const TINY: &str = "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [16]\n[train]\nsteps = 2\n\
                    batch = 32\nlog_every = 1\ncheckpoint_every = 1\n[sample]\nsteps = 10\nn = 8\nbatch = 8\n";

/// A trained (2-step) checkpoint to corrupt.
fn tiny_run(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    let out = dir.join("run");
    let o = run(&["train", "--config", &s(&dir.join("tiny.toml")), "--out", &s(&out), "--no-samples"]);
    assert_eq!(o.code, 0, "{}", o.err);
    out
}

#[test]
fn bad_configs_and_data_files() {
    let dir = tmp("cfg");
    let base = "[data]\nsource = \"toy\"\nname = \"ring8\"\n";
    // (extra TOML after a valid [data] table or a whole config, needles)
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("{base}[train]\nstepz = 3\n"), vec!["stepz"]),
        (format!("{base}[process]\nkind = \"vee\"\n"), vec!["vee"]),
        (format!("{base}[sample]\nsampler = \"foo\"\n"), vec!["foo"]),
        (format!("{base}[model]\nnetwork = \"cnn\"\n"), vec!["cnn"]),
        (format!("{base}[model]\nparam = \"logit\"\n"), vec!["logit"]),
        ("[data]\nsource = \"csv\"\n".into(), vec!["csv"]),
        ("[data]\nsource = \"toy\"\nname = \"blob\"\n".into(), vec!["blob"]),
        (format!("{base}[train]\nsteps = 0\n"), vec!["train.steps"]),
        (format!("{base}[train]\nbatch = 0\n"), vec!["train.batch"]),
        (format!("{base}[train]\nlr = nan\n"), vec!["train.lr"]),
        (format!("{base}[train]\nlr = -1.0\n"), vec!["train.lr"]),
        (format!("{base}[train]\nema = 1.5\n"), vec!["train.ema"]),
        (format!("{base}[train]\nclip = -1.0\n"), vec!["train.clip"]),
        (format!("{base}[sample]\neps = 2.0\n"), vec!["sample.eps"]),
        (format!("{base}[sample]\nlevels = 0\n"), vec!["sample.levels"]),
        (format!("{base}[process]\nsigma_max = 1e39\n"), vec!["sigma_max"]),
        (format!("{base}[process]\nsigma_min = 1e-300\n"), vec!["sigma_min"]),
        (format!("{base}[process]\nsigma_min = 5.0\nsigma_max = 1.0\n"), vec!["sigma_min"]),
        (format!("{base}[model]\ndropout = 1.0\n"), vec!["model.dropout"]),
        (format!("{base}[model]\nhidden = [0]\n"), vec!["model.hidden"]),
        ("[data\nsource = \"toy\"\n".into(), vec!["c.toml"]),
        (format!("{base}size = 0\n"), vec!["data.size"]),
        (format!("{base}limit = 0\n"), vec!["data.limit"]),
        (format!("{base}[model]\nnetwork = \"unet\"\n"), vec!["unet"]),
        ("[data]\nsource = \"idx\"\npath = \"nowhere.gz\"\n".into(), vec!["nowhere.gz"]),
        ("[data]\nsource = \"npy\"\npath = \"nowhere.npy\"\n".into(), vec!["nowhere.npy"]),
        ("[data]\nsource = \"npy\"\n".into(), vec!["data.path"]),
        (format!("{base}[process]\nkind = \"vp\"\nsigma_max = 50.0\n"), vec!["process.sigma_max", "vp"]),
        (format!("{base}[process]\nkind = \"ve\"\nbeta_max = 5.0\n"), vec!["process.beta_max", "ve"]),
        (format!("{base}path = \"x.npy\"\n"), vec!["data.path", "toy"]),
        ("[data]\nsource = \"idx\"\npath = \"a.gz\"\nsize = 8\n".into(), vec!["data.size", "idx"]),
        (
            format!(
                "{base}[process]\nkind = \"fixed\"\n[train]\nobjective = \"nce\"\n[sample]\nsampler = \"langevin\"\n"
            ),
            vec!["nce", "model.param", "energy"],
        ),
        (format!("{base}[process]\nkind = \"fixed\"\n"), vec!["sample.sampler", "langevin"]),
        (format!("{base}[model]\nparam = \"energy\"\n[train]\nobjective = \"nce\"\n"), vec!["process.kind", "fixed"]),
        (format!("{base}[train]\nprojections = 4\n"), vec!["train.projections", "ssm"]),
        (format!("{base}[train]\nobjective = \"ssm\"\nprojections = 0\n"), vec!["train.projections"]),
        (format!("{base}[train]\nobjective = \"sm\"\n"), vec!["sm", "ssm-vr"]),
        (format!("{base}[train]\nobjective = \"nce\"\nnce_ratio = 0\n"), vec!["train.nce_ratio"]),
        (
            format!("{base}[process]\nkind = \"fixed\"\nsigma_max = 2.0\n[sample]\nsampler = \"langevin\"\n"),
            vec!["process.sigma_max", "fixed"],
        ),
    ];
    for (i, (text, needles)) in cases.iter().enumerate() {
        std::fs::write(dir.join("c.toml"), text).unwrap();
        let o = run(&["train", "--config", &s(&dir.join("c.toml")), "--out", &s(&dir.join(format!("o{i}")))]);
        expect_error(&o, 1, needles, text);
        assert!(o.err.contains("c.toml") || needles.iter().any(|n| n.contains("nowhere")), "{text}: {}", o.err);
    }
    // A missing config file; data files that are not what they claim.
    let o = run(&["train", "--config", &s(&dir.join("absent.toml"))]);
    expect_error(&o, 1, &["absent.toml"], "missing config");
    let mut idx = vec![0, 0, 8, 3];
    idx.extend([0u32, 28, 28].iter().flat_map(|v| v.to_be_bytes()));
    std::fs::write(dir.join("empty-idx"), &idx).unwrap();
    std::fs::write(
        dir.join("complex.npy"),
        b"\x93NUMPY\x01\x00\x43\x00{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }       \n",
    )
    .unwrap();
    std::fs::write(dir.join("cut.npy"), b"\x93NUMPY\x01\x00").unwrap();
    std::fs::create_dir_all(dir.join("imgs")).unwrap();
    std::fs::write(dir.join("imgs/broken.png"), b"not a png").unwrap();
    for (src, file, needle) in [
        ("idx", "empty-idx", "no images"),
        ("npy", "complex.npy", "<c8"),
        ("npy", "cut.npy", "cut.npy"),
        ("images", "imgs", "broken.png"),
    ] {
        let size = if src == "images" { "size = 8\n" } else { "" };
        let text = format!("[data]\nsource = \"{src}\"\npath = \"{}\"\n{size}", s(&dir.join(file)));
        std::fs::write(dir.join("d.toml"), text).unwrap();
        let o = run(&["train", "--config", &s(&dir.join("d.toml")), "--out", &s(&dir.join(format!("od-{file}")))]);
        expect_error(&o, 1, &[needle], file);
    }
    objectives_the_data_cannot_take(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// ESM above its dimension bound, and NCE on data whose covariance is singular at a level too
/// small to regularise it: one-line errors before any training (no output folder).
fn objectives_the_data_cannot_take(dir: &Path) {
    let wide: Vec<f32> = (0..100 * 65).map(|i| ((i * 7919) % 101) as f32 / 50.0).collect();
    scoregen::io::npy::write_npy(&dir.join("wide.npy"), &[100, 65], &wide).unwrap();
    // The second column is twice the first: rank 1.
    let line: Vec<f32> = (0..200).flat_map(|i| [i as f32 / 100.0, i as f32 / 50.0]).collect();
    scoregen::io::npy::write_npy(&dir.join("line.npy"), &[200, 2], &line).unwrap();
    let cases = [
        ("wide.npy", "[train]\nobjective = \"esm\"\n", vec!["esm", "65 dimensions", "64", "ssm"]),
        (
            "line.npy",
            "[model]\nparam = \"energy\"\n[process]\nkind = \"fixed\"\nsigma_min = 1e-6\n[train]\nobjective = \"nce\"\n\
             [sample]\nsampler = \"langevin\"\n",
            vec!["nce", "singular", "process.sigma_min", "diagonal"],
        ),
    ];
    for (file, rest, needles) in cases {
        let text = format!("[data]\nsource = \"npy\"\npath = \"{}\"\n{rest}", s(&dir.join(file)));
        std::fs::write(dir.join("o.toml"), &text).unwrap();
        let out = dir.join(format!("oo-{file}"));
        let o = run(&["train", "--config", &s(&dir.join("o.toml")), "--out", &s(&out)]);
        expect_error(&o, 1, &needles, &text);
        assert!(!out.exists(), "{file}: the refusal came after the output folder was made");
    }
}

#[test]
fn bad_checkpoints_mixtures_and_flags() {
    let dir = tmp("ck");
    let good = tiny_run(&dir).join("checkpoint.safetensors");
    let ck = Checkpoint::load(&good).unwrap();
    let out = s(&dir.join("s.npy"));
    let variant = |name: &str, f: &dyn Fn(&mut Checkpoint)| -> String {
        let mut c = ck.clone();
        f(&mut c);
        let p = dir.join(name);
        c.save(&p).unwrap();
        s(&p)
    };
    let config = ck.metadata["scoregen.config"].clone();
    let cases: Vec<(String, &str)> = vec![
        (s(&dir.join("absent.safetensors")), "absent.safetensors"),
        (
            {
                std::fs::write(dir.join("garbage.safetensors"), b"garbage garbage garbage").unwrap();
                s(&dir.join("garbage.safetensors"))
            },
            "garbage.safetensors",
        ),
        (
            {
                std::fs::write(dir.join("cut.safetensors"), &std::fs::read(&good).unwrap()[..40]).unwrap();
                s(&dir.join("cut.safetensors"))
            },
            "cut.safetensors",
        ),
        (variant("shape0.st", &|c| drop(c.metadata.insert("scoregen.data_shape".into(), "[0]".into()))), "[0]"),
        (
            variant("huge.st", &|c| drop(c.metadata.insert("scoregen.data_shape".into(), "[2000000000000]".into()))),
            "data_shape",
        ),
        (
            variant("ms.st", &|c| {
                c.metadata.remove("scoregen.data_mean");
                c.metadata.insert("scoregen.data_mean_square".into(), "inf".into());
            }),
            "variance",
        ),
        (variant("vnan.st", &|c| drop(c.metadata.insert("scoregen.data_var".into(), "NaN".into()))), "variance"),
        (variant("vneg.st", &|c| drop(c.metadata.insert("scoregen.data_var".into(), "-1".into()))), "variance"),
        (variant("mlen.st", &|c| drop(c.metadata.insert("scoregen.data_mean".into(), "[1.0]".into()))), "mean"),
        (variant("mbig.st", &|c| drop(c.metadata.insert("scoregen.data_mean".into(), "[1e39, 0]".into()))), "mean"),
        (
            variant("smax.st", &|c| {
                let t = config.replace("sigma_max = 10.0", "sigma_max = 1e39");
                c.metadata.insert("scoregen.config".into(), t);
            }),
            "sigma_max",
        ),
        (variant("nocfg.st", &|c| drop(c.metadata.remove("scoregen.config"))), "scoregen.config"),
        (variant("notensor.st", &|c| drop(c.tensors.pop_first())), "net."),
    ];
    for (path, needle) in &cases {
        let o = run(&["sample", "--checkpoint", path, "--out", &out]);
        expect_error(&o, 1, &[needle], path);
    }
    // Mixture files.
    let comp = |w: &str, m: &str, sd: &str| format!("[[component]]\nweight = {w}\nmean = {m}\nstd = {sd}\n");
    for (i, (text, needle)) in [
        (comp("1.0", "[0.0, 0.0]", "inf"), "std"),
        (comp("1.0", "[0.0, 0.0]", "1e300"), "std"),
        (comp("1.0", "[nan, 0.0]", "1.0"), "mean"),
        (comp("inf", "[0.0, 0.0]", "1.0"), "weight"),
        (comp("1.0", "[0.0, 0.0]", "1.0") + "colour = 3\n", "colour"),
        (comp("1.0", "[0.0, 0.0]", "1.0") + &comp("1.0", "[0.0]", "1.0"), "same"),
        ("[[component]]\nweight = 1.0\n".to_string(), "needs"),
    ]
    .iter()
    .enumerate()
    {
        let p = dir.join(format!("m{i}.toml"));
        std::fs::write(&p, text).unwrap();
        let o = run(&["sample", "--model", &format!("gmm:{}", s(&p)), "--out", &out]);
        expect_error(&o, 1, &[needle, &format!("m{i}.toml")], text);
    }
    // Flags: (args, exit code, needle).
    let g = "gmm:ring8";
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec!["sample", "--model", "gmm:absent.toml", "--out", &out], 1, "absent.toml"),
        (vec!["sample", "--model", "ring8", "--out", &out], 2, "gmm:"),
        (vec!["sample", "--out", &out], 1, "--checkpoint"),
        (vec!["sample", "--model", g, "--n", "0", "--out", &out], 1, "--n"),
        (vec!["sample", "--model", g, "--steps", "0", "--out", &out], 1, "--steps"),
        (vec!["sample", "--model", g, "--batch", "0", "--out", &out], 1, "--batch"),
        (vec!["sample", "--model", g, "--n", "1000000000000", "--out", &out], 1, "--n 1000000000000"),
        (vec!["sample", "--model", g, "--sampler", "bogus", "--out", &out], 2, "bogus"),
        (vec!["sample", "--model", g, "--clip-denoised", "maybe", "--out", &out], 2, "maybe"),
        (vec!["sample", "--model", g, "--sampler", "ald", "--steps", "5", "--out", &out], 1, "--steps 5"),
        (vec!["sample", "--model", g, "--out", &s(&dir.join("x.txt"))], 1, "x.txt"),
        (vec!["sample", "--model", g, "--out", &s(&dir.join("no/such/x.npy"))], 1, "does not exist"),
        (vec!["sample", "--model", g, "--out", "/proc/x.npy"], 1, "/proc/x.npy"),
        (
            {
                std::fs::create_dir_all(dir.join("d.npy")).unwrap();
                vec!["sample", "--model", g, "--out", &s(&dir.join("d.npy"))]
            },
            1,
            "folder",
        ),
        (vec!["eval", "--model", g, "--probes", "0"], 2, "probes"),
        (vec!["eval", "--model", g, "--probes", "100000000"], 2, "100000000"),
        (vec!["eval", "--model", g, "--n", "0", "--nll-n", "1000000000"], 1, "--nll-n"),
        (vec!["--backend", "opengl2", "info"], 2, "opengl2"),
        (vec!["eval", "--model", g, "--n", "0", "--nll-n", "0", "--levels=-1"], 1, "--levels"),
        (vec!["eval", "--model", g, "--n", "0", "--nll-n", "0", "--levels", "nan"], 1, "--levels"),
        (vec!["eval", "--model", g, "--n", "0", "--nll-n", "0", "--levels", "0.1", "--fisher-n", "1"], 1, "--fisher-n"),
        (vec!["eval", "--model", g, "--n", "0", "--reference", "compose:c.toml"], 1, "--reference"),
        (vec!["field", "--model", g, "--out", &s(&dir.join("f.png")), "--level", "0"], 1, "--level"),
        (vec!["field", "--model", g, "--out", &s(&dir.join("f.png")), "--lim", "inf"], 1, "--lim"),
        (vec!["field", "--model", g, "--out", &s(&dir.join("f.npy"))], 1, ".png"),
        (vec!["bench", "objectives", "--hidden", "0"], 1, "--hidden"),
        (vec!["bench", "objectives", "--batch", "0"], 1, "--batch"),
        (vec!["bench", "mlp", "--steps", "0"], 1, "--steps"),
        (vec!["bench", "sample", "--steps-per-level", "0"], 1, "--steps-per-level"),
        (vec!["bench", "unet", "--config", "assets/configs/mnist.toml"], 1, "is not \"unet\""),
        (vec!["bench", "unet", "--config", &s(&dir.join("absent.toml"))], 1, "absent.toml"),
        (
            vec!["train", "--config", "assets/configs/toy2d.toml", "--steps", "0", "--out", &s(&dir.join("z"))],
            1,
            "--steps 0",
        ),
    ]
    .into_iter()
    .map(|(a, c, n)| (a.into_iter().map(String::from).collect(), c, n))
    .collect();
    for (args, code, needle) in &cases {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let o = run(&a);
        expect_error(&o, *code, &[needle], &format!("{a:?}"));
    }
    // Environment.
    let o = run_env(&["info"], &[("SCOREGEN_BACKEND", "bogus")]);
    expect_error(&o, 2, &["bogus"], "SCOREGEN_BACKEND");
    let o = run_env(&["info"], &[("SCOREGEN_ADAPTER", "x")]);
    assert_ne!(o.code, 0, "{}", o.err);
    // A matmul configuration with a zero workgroup, from the variable or a corrupted autotune
    // cache, is ignored (a warning), and sampling gives a correct result.
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let key = scoregen::gpu::tune::adapter_key(common::gpu());
    std::fs::write(cache.join("tune.txt"), format!("matmul\t{key}\treg:0x8:16x16\n")).unwrap();
    for env in [vec![("SCOREGEN_MATMUL", "reg:0x8:16x16")], vec![("SCOREGEN_CACHE_DIR", cache.to_str().unwrap())]] {
        let o = run_env(&["sample", "--checkpoint", &s(&good), "--n", "4", "--out", &out], &env);
        assert_eq!(o.code, 0, "{env:?}: {}", o.err);
        assert!(!o.err.contains("panicked"), "{}", o.err);
    }
    // Non-finite weights: sample writes and reports the count, eval refuses the metrics
    // (it used to hang in the exact-W2 assignment); both exit 1.
    let nan =
        variant("nan.st", &|c| c.tensors.values_mut().for_each(|(_, v)| v.iter_mut().for_each(|x| *x = f32::NAN)));
    let o = run(&["sample", "--checkpoint", &nan, "--n", "8", "--out", &out]);
    expect_error(&o, 1, &["8 of 8 samples", "s.npy"], "NaN samples");
    assert!(Path::new(&out).exists());
    let o = run(&["eval", "--checkpoint", &nan, "--n", "50", "--nll-n", "0"]);
    expect_error(&o, 1, &["50 of 50 samples"], "NaN eval");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn faults_resume_locks_and_temporaries() {
    let dir = tmp("faults");
    let runf = tiny_run(&dir);
    let cfg = s(&dir.join("tiny.toml"));
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "--config", &cfg, "--out", runf.to_str().unwrap(), "--no-samples"];
        a.extend(extra);
        run(&a)
    };
    // A folder that holds a run, without --resume or --overwrite.
    expect_error(&train(&[]), 1, &["--resume"], "held folder");
    // --resume to fewer steps than the run has.
    expect_error(&train(&["--resume", "--steps", "1"]), 1, &["--steps 1", "step 2"], "resume backwards");
    // --resume to the same step: nothing to do, the run untouched.
    let before = std::fs::read(runf.join("checkpoint.safetensors")).unwrap();
    let o = train(&["--resume"]);
    assert_eq!(o.code, 0, "{}", o.err);
    assert!(o.err.contains("nothing to train") && !o.err.contains("steps/s"), "{}", o.err);
    assert_eq!(before, std::fs::read(runf.join("checkpoint.safetensors")).unwrap());
    // A live lock (this test's own process) refuses a second trainer, naming the pid.
    std::fs::write(runf.join(".lock"), std::process::id().to_string()).unwrap();
    let o = train(&["--resume", "--steps", "3"]);
    expect_error(&o, 1, &[&std::process::id().to_string()], "live lock");
    // A stale lock (no such process) and a stale temporary are taken over and swept.
    std::fs::write(runf.join(".lock"), "4000000000").unwrap();
    std::fs::write(runf.join(".checkpoint.safetensors.tmp4000000000"), b"partial").unwrap();
    let o = train(&["--resume", "--steps", "3"]);
    assert_eq!(o.code, 0, "{}", o.err);
    assert!(!runf.join(".lock").exists() && !runf.join(".checkpoint.safetensors.tmp4000000000").exists());
    // --resume where the state is missing but a run is there: refused, nothing replaced.
    std::fs::remove_file(runf.join("train_state.safetensors")).unwrap();
    let before = std::fs::read(runf.join("checkpoint.safetensors")).unwrap();
    expect_error(&train(&["--resume", "--steps", "5"]), 1, &["train_state.safetensors", "--overwrite"], "no state");
    assert_eq!(before, std::fs::read(runf.join("checkpoint.safetensors")).unwrap());
    // A failed atomic write leaves no temporary behind (the target is a non-empty folder).
    let target = dir.join("taken");
    std::fs::create_dir_all(target.join("inner")).unwrap();
    assert!(scoregen::io::write_atomic(&target, b"x").is_err());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two trainers started together into one folder: exactly one trains, the other gets the
/// lock's one-line error; the run that finished is whole.
#[test]
fn concurrent_runs_into_one_folder() {
    let dir = tmp("conc");
    std::fs::write(dir.join("t.toml"), TINY.replace("steps = 2\n", "steps = 300\n")).unwrap();
    let args =
        ["train", "--config", &s(&dir.join("t.toml")), "--out", &s(&dir.join("o")), "--no-samples", "--overwrite"];
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_scoregen")).args(args).stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code(), b.status.code()];
    let errs = [String::from_utf8_lossy(&a.stderr).to_string(), String::from_utf8_lossy(&b.stderr).to_string()];
    let ok = codes.iter().filter(|c| **c == Some(0)).count();
    assert!(ok >= 1, "{errs:?}");
    if ok == 1 {
        let loser = if codes[0] == Some(0) { &errs[1] } else { &errs[0] };
        assert!(loser.contains("another scoregen process"), "{loser}");
    }
    let ck = Checkpoint::load(&dir.join("o").join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.metadata["scoregen.step"], "300");
    let _ = std::fs::remove_dir_all(&dir);
}

/// kill -9 in the middle of training, then `--resume`, three times over: the run ends with the
/// weights and the loss history of an uninterrupted run, bit for bit.
#[test]
fn kill_9_and_resume_end_where_an_uninterrupted_run_ends() {
    let dir = tmp("kill");
    let cfg = TINY.replace("steps = 2\n", "steps = 300\n").replace("checkpoint_every = 1", "checkpoint_every = 7");
    std::fs::write(dir.join("k.toml"), cfg).unwrap();
    let train = |out: &str, resume: bool| {
        let mut a =
            vec!["train".to_string(), "--config".into(), s(&dir.join("k.toml")), "--out".into(), s(&dir.join(out))];
        a.extend(["--no-samples".to_string()]);
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let whole = run(&train("whole", false).iter().map(|a| a.as_str()).collect::<Vec<_>>());
    assert_eq!(whole.code, 0, "{}", whole.err);
    let state = dir.join("cut").join("train_state.safetensors");
    let mut killed = 0;
    for round in 0..3 {
        let args = train("cut", round > 0);
        let mut child = Command::new(env!("CARGO_BIN_EXE_scoregen"))
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Until a state of this round's has been written (or the run ended), then SIGKILL.
        let before = std::fs::metadata(&state).and_then(|m| m.modified()).ok();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) && child.try_wait().unwrap().is_none() {
            let now = std::fs::metadata(&state).and_then(|m| m.modified()).ok();
            if now.is_some() && now != before {
                std::thread::sleep(Duration::from_millis(15 * (round + 1)));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let at: usize = Checkpoint::load(&dir.join("cut").join("checkpoint.safetensors")).unwrap().metadata
        ["scoregen.step"]
        .parse()
        .unwrap();
    assert!(killed >= 2 && at < 300, "the kills must land mid-run: {killed} killed, at step {at}");
    eprintln!("killed {killed} times; resumed from step {at}");
    let done = run(&train("cut", true).iter().map(|a| a.as_str()).collect::<Vec<_>>());
    assert_eq!(done.code, 0, "{}", done.err);
    let (a, b) = (
        Checkpoint::load(&dir.join("whole").join("checkpoint.safetensors")).unwrap(),
        Checkpoint::load(&dir.join("cut").join("checkpoint.safetensors")).unwrap(),
    );
    assert_eq!(a.tensors, b.tensors, "weights after kill -9 and resume differ from the uninterrupted run's");
    let losses = |d: &str| std::fs::read_to_string(dir.join(d).join("loss.csv")).unwrap();
    assert_eq!(losses("whole"), losses("cut"), "loss.csv after kill -9 and resume");
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("cut"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk (a 64 KiB tmpfs, where this user may mount one): training's checkpoint write
/// and a streamed sample file fail with a one-line error naming the file, and leave no partial
/// file behind. Skipped (and says so) where mounting is not permitted.
#[test]
fn a_full_disk_is_a_one_line_error_and_leaves_nothing_behind() {
    let dir = tmp("full");
    let mnt = dir.join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs", &s(&mnt)])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|st| st.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not permitted)");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let result = std::panic::catch_unwind(|| {
        std::fs::write(dir.join("f.toml"), TINY.replace("hidden = [16]", "hidden = [256, 256]")).unwrap();
        let o = run(&["train", "--config", &s(&dir.join("f.toml")), "--out", &s(&mnt.join("run")), "--no-samples"]);
        expect_error(&o, 1, &["small"], "train onto a full disk");
        let out = s(&mnt.join("x.npy"));
        let o = run(&["sample", "--model", "gmm:ring8", "--n", "100000", "--steps", "10", "--out", &out]);
        expect_error(&o, 1, &["x.npy", "GB free"], "sample onto a full disk");
        let partial: Vec<_> = walk(&mnt).into_iter().filter(|n| n.contains(".tmp") || n.ends_with(".npy")).collect();
        assert!(partial.is_empty(), "partial files left on the full disk: {partial:?}");
    });
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
