//! The three embedding examples, run as a user runs them (`cargo test` builds them): headless
//! writes a PNG of the samples; texture's read-back equals the CLI's samples for the same seed
//! bit for bit (points and an image model); window runs a fixed number of frames under Xvfb
//! (or the display in DISPLAY) and its frames are neither blank nor all alike.

use std::path::{Path, PathBuf};
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/examples-HASH -> target/<profile>/examples/NAME
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let p = deps.parent().unwrap().join("examples").join(name);
    assert!(p.exists(), "{} not built (cargo test builds the examples)", p.display());
    p
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{cmd:?} failed:\n{out}\n{err}");
    format!("{out}{err}")
}

fn cli(args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_scoregen")).args(args))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoregen-examples-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn same_bits(a: &Path, b: &Path) {
    let (sa, va) = scoregen::io::npy::read_npy(a).unwrap();
    let (sb, vb) = scoregen::io::npy::read_npy(b).unwrap();
    assert_eq!(sa, sb);
    let differ = va.iter().zip(&vb).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    assert_eq!(differ, 0, "{} and {} differ in {differ} of {} values", a.display(), b.display(), va.len());
}

#[test]
fn headless_example_writes_the_samples_as_a_png() {
    let dir = tmp("headless");
    let png = dir.join("h.png");
    run(Command::new(example("headless")).args(["--steps", "20", "--batch", "3000", "--size", "96", "--out", s(&png)]));
    let img = image::open(&png).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (96, 96));
    // Eight modes on a ring of radius 4 over [-6, 6]^2: ink away from the centre, none at it.
    let lit = |x0: u32, y0: u32, r: u32| {
        (y0 - r..y0 + r)
            .flat_map(|y| (x0 - r..x0 + r).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[1] > 40)
            .count()
    };
    assert!(lit(80, 48, 6) > 10, "no points at the mode (4, 0)");
    assert_eq!(lit(48, 48, 6), 0, "points at the origin, between the modes");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn texture_example_equals_the_cli_samples_for_the_same_seed() {
    let dir = tmp("texture");
    // Points: the samples copied to the application's buffer are the CLI's; the texture's
    // counts are the plain-loop splat of them.
    let out = dir.join("ring");
    let args = ["--steps", "30", "--batch", "700", "--seed", "5"];
    run(Command::new(example("texture")).args(args).args(["--size", "64", "--per-frame", "7", "--out", s(&out)]));
    let cli_npy = dir.join("cli.npy");
    cli(&["sample", "--model", "gmm:ring8", "--sampler", "heun", "--n", "700", "--quiet", "--out", s(&cli_npy)]
        .iter()
        .copied()
        .chain(args)
        .collect::<Vec<_>>());
    same_bits(&out.with_extension("samples.npy"), &cli_npy);
    let (shape, counts) = scoregen::io::npy::read_npy(&out.with_extension("npy")).unwrap();
    assert_eq!(shape, vec![64, 64]);
    let xs = scoregen::io::npy::read_npy(&cli_npy).unwrap().1;
    let want: Vec<f32> = scoregen::embed::reference::density(&xs, 6.0, (64, 64)).iter().map(|p| p[0]).collect();
    assert_eq!(counts, want);
    // An image model (a tiny MLP trained for a few steps on 8 x 8 idx images): the texture's
    // pixel values are the CLI's samples.
    let idx = dir.join("imgs.idx");
    let mut b = vec![0, 0, 8, 3];
    for d in [40u32, 8, 8] {
        b.extend(d.to_be_bytes());
    }
    b.extend((0..40 * 64).map(|i| ((i * 37 + i / 64 * 11) % 256) as u8));
    std::fs::write(&idx, b).unwrap();
    let cfg = dir.join("img.toml");
    let toml = format!(
        "[data]\nsource = \"idx\"\npath = \"{}\"\n[model]\nhidden = [32]\n[train]\nsteps = 3\nbatch = 16\n",
        s(&idx)
    );
    std::fs::write(&cfg, toml).unwrap();
    let run_dir = dir.join("run");
    cli(&["train", "--config", s(&cfg), "--out", s(&run_dir), "--no-samples", "--quiet"]);
    let ck = run_dir.join("checkpoint.safetensors");
    let img = dir.join("img");
    let args = ["--steps", "6", "--batch", "10", "--seed", "9", "--sampler", "ddim"];
    run(Command::new(example("texture")).args(["--model", s(&ck), "--out", s(&img)]).args(args));
    let cli_img = dir.join("cli_img.npy");
    cli(&["sample", "--checkpoint", s(&ck), "--n", "10", "--quiet", "--out", s(&cli_img)]
        .iter()
        .copied()
        .chain(args)
        .collect::<Vec<_>>());
    same_bits(&img.with_extension("npy"), &cli_img);
    let (shape, clipped) = scoregen::io::npy::read_npy(&cli_img).unwrap();
    assert_eq!(shape, vec![10, 1, 8, 8]);
    // The denoised estimate is clipped to [-1, 1] by default (DDPM's last step lands on it);
    // `--clip-denoised false` leaves the barely trained network's estimate as it is.
    assert!(clipped.iter().all(|v| v.abs() <= 1.0));
    let raw = dir.join("raw.npy");
    cli(&["sample", "--checkpoint", s(&ck), "--n", "10", "--quiet", "--clip-denoised", "false", "--out", s(&raw)]
        .iter()
        .copied()
        .chain(args)
        .collect::<Vec<_>>());
    let raw = scoregen::io::npy::read_npy(&raw).unwrap().1;
    assert!(raw.iter().any(|v| v.abs() > 1.0), "no value left [-1, 1] unclipped");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn window_example_runs_frames_that_are_drawn_and_change() {
    let dir = tmp("window");
    let args = ["--frames", "40", "--batch", "4000", "--capture", s(&dir)];
    let mut cmd = if std::env::var_os("DISPLAY").is_some() {
        Command::new(example("window"))
    } else {
        let found = Command::new("xvfb-run").arg("--help").output().is_ok();
        assert!(found, "no DISPLAY and no xvfb-run: apt-get install xvfb (the CI script does)");
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 1024x768x24"]).arg(example("window"));
        c
    };
    run(cmd.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir()));
    let frames: Vec<image::RgbaImage> =
        [1, 20, 40].iter().map(|f| image::open(dir.join(format!("frame_{f:05}.png"))).unwrap().to_rgba8()).collect();
    for (f, img) in frames.iter().enumerate() {
        let (w, h) = img.dimensions();
        assert_eq!((w, h), (512, 540));
        // Points drawn (pixels brighter than the background) and the text strip written.
        let points = img.enumerate_pixels().filter(|(_, y, p)| *y < 512 && p.0[1] > 60).count();
        let text = img.enumerate_pixels().filter(|(_, y, p)| *y >= 512 && p.0[0] > 200).count();
        assert!(points > 500 && text > 100, "frame {f}: {points} lit pixels, {text} text pixels");
    }
    assert!(frames[0] != frames[1] && frames[1] != frames[2], "the frames do not change");
    let _ = std::fs::remove_dir_all(&dir);
}
