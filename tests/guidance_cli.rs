//! Labels from every source, and guided sampling as a user runs it: `train` with model.classes
//! and a classifier, `sample --class --guidance / --guidance-scale / --classifier`, `classify`,
//! and the one-line refusals of bad guidance input.

mod common;
use common::{fresh_dir, run_cli};
use scoregen::data::{DataConfig, Dataset, SourceKind};
use std::path::Path;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn idx(dims: &[u32], bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    v.extend(dims.iter().flat_map(|d| d.to_be_bytes()));
    v.extend(bytes);
    v
}

/// An int64 .npy [n] written as NumPy does.
fn npy_i64(path: &Path, v: &[i64]) {
    let header = format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}", v.len());
    let mut h = header.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((h.len() as u16).to_le_bytes());
    b.extend(h);
    b.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    std::fs::write(path, b).unwrap();
}

fn data_cfg(source: SourceKind, path: &Path, labels: Option<&Path>) -> DataConfig {
    DataConfig {
        source,
        name: None,
        path: Some(s(path)),
        size: Some(4),
        channels: Some(1),
        limit: None,
        labels: labels.map(s),
    }
}

#[test]
fn labels_are_read_from_every_source() {
    let dir = fresh_dir("labels");
    // idx images and idx labels (MNIST's layout).
    std::fs::write(dir.join("img"), idx(&[3, 2, 2], &[0; 12])).unwrap();
    std::fs::write(dir.join("lab"), idx(&[3], &[7, 0, 3])).unwrap();
    let mut c = data_cfg(SourceKind::Idx, &dir.join("img"), Some(&dir.join("lab")));
    (c.size, c.channels) = (None, None);
    let d = Dataset::load(&c, &dir).unwrap();
    assert_eq!(d.labels.as_ref().unwrap().of, vec![7, 0, 3]);
    assert_eq!(d.classes(), 8);
    // An int64 .npy beside .npy data; a count that does not match is refused, naming both.
    scoregen::io::npy::write_npy(&dir.join("x.npy"), &[4, 2], &[0.0; 8]).unwrap();
    npy_i64(&dir.join("y.npy"), &[1, 0, 1, 2]);
    let mut c = data_cfg(SourceKind::Npy, &dir.join("x.npy"), Some(&dir.join("y.npy")));
    (c.size, c.channels) = (None, None);
    assert_eq!(Dataset::load(&c, &dir).unwrap().labels.unwrap().of, vec![1, 0, 1, 2]);
    npy_i64(&dir.join("y.npy"), &[1, 0, 1]);
    let e = Dataset::load(&c, &dir).err().unwrap().to_string();
    assert!(e.contains("y.npy") && e.contains("3 labels for the 4 samples") && e.contains("x.npy"), "{e}");
    npy_i64(&dir.join("y.npy"), &[1, 0, -1, 2]);
    let e = Dataset::load(&c, &dir).err().unwrap().to_string();
    assert!(e.contains("label 2 is -1"), "{e}");
    // An image folder with one subfolder per class: names kept, sorted.
    for (cls, k) in [("cat", 2), ("ant", 1)] {
        std::fs::create_dir_all(dir.join("imgs").join(cls)).unwrap();
        for i in 0..k {
            image::GrayImage::new(4, 4).save(dir.join("imgs").join(cls).join(format!("{i}.png"))).unwrap();
        }
    }
    let d = Dataset::load(&data_cfg(SourceKind::Images, &dir.join("imgs"), None), &dir).unwrap();
    let l = d.labels.unwrap();
    assert_eq!((l.names.clone(), l.of.clone()), (vec!["ant".to_string(), "cat".into()], vec![0, 1, 1]));
    // The ring's components: each point's label is its nearest mode.
    let gmm = scoregen::dist::gmm::Gmm::ring8();
    let (x, y) = scoregen::data::toy::Toy::Ring8.sample_labelled(500, &mut scoregen::rng::HostRng::new(1)).unwrap();
    let near = (0..500).filter(|&i| gmm.nearest_mode(&[x[2 * i] as f64, x[2 * i + 1] as f64]) == y[i] as usize);
    assert!(near.count() >= 495);
    let _ = std::fs::remove_dir_all(&dir);
}

const COND: &str = "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [64, 64]\nclasses = 8\n[train]\n\
                    steps = 400\nbatch = 512\nlr = 3e-3\nlog_every = 100\ncheckpoint_every = 0\n[sample]\nsampler = \
                    \"heun\"\nsteps = 30\nn = 400\nbatch = 400\n";
const CLF: &str = "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nnetwork = \"classifier\"\nhidden = [64, 64]\n\
                   classes = 8\n[train]\nsteps = 300\nbatch = 512\nlr = 3e-3\nlog_every = 100\ncheckpoint_every = 0\n";

fn train(dir: &Path, name: &str, cfg: &str) -> String {
    let c = dir.join(format!("{name}.toml"));
    std::fs::write(&c, cfg).unwrap();
    let out = dir.join(name);
    let (code, _, err) = run_cli(&["--quiet", "train", "--config", &s(&c), "--out", &s(&out), "--no-samples"]);
    assert_eq!(code, 0, "{err}");
    s(&out.join("checkpoint.safetensors"))
}

/// The fraction of samples of `file` nearest the ring mode of their label.
fn on_mode(file: &Path) -> f64 {
    let (_, x) = scoregen::io::npy::read_npy(file).unwrap();
    let (_, y) = scoregen::io::npy::read_npy_numbers(&scoregen::app::classify::labels_beside(file)).unwrap();
    let gmm = scoregen::dist::gmm::Gmm::ring8();
    let hit = (0..y.len()).filter(|&i| gmm.nearest_mode(&[x[2 * i] as f64, x[2 * i + 1] as f64]) == y[i] as usize);
    hit.count() as f64 / y.len() as f64
}

#[test]
fn conditional_and_classifier_guided_sampling_from_the_command_line() {
    let dir = fresh_dir("guide-cli");
    let cond = train(&dir, "cond", COND);
    let clf = train(&dir, "clf", CLF);
    let sample = |extra: &[&str], out: &str| -> (i32, String) {
        let out = dir.join(out);
        let mut args = vec!["--quiet", "sample", "--checkpoint", &cond, "--out"];
        let o = s(&out);
        args.push(&o);
        args.extend(extra);
        let (code, _, err) = run_cli(&args);
        (code, err)
    };
    // Classes cycle over the chains; the labels are written beside; both guidance conventions
    // give the same samples.
    let (code, err) = sample(&["--class", "all", "--guidance", "1"], "w1.npy");
    assert_eq!(code, 0, "{err}");
    let (code, err) = sample(&["--class", "all", "--guidance-scale", "2"], "s2.npy");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dir.join("w1.npy")).unwrap(), std::fs::read(dir.join("s2.npy")).unwrap());
    let (_, y) = scoregen::io::npy::read_npy_numbers(&dir.join("w1.labels.npy")).unwrap();
    assert_eq!(y.len(), 400);
    assert!(y.iter().enumerate().all(|(i, &c)| c == (i % 8) as f64));
    assert!(on_mode(&dir.join("w1.npy")) > 0.95, "CFG w = 1: {}", on_mode(&dir.join("w1.npy")));
    // A guidance interval that holds every noise level is plain guidance; one that holds none is
    // plain conditional sampling (w = 0), bit for bit.
    let (code, err) = sample(&["--class", "all", "--guidance", "1", "--guidance-interval", "0,inf"], "i_all.npy");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dir.join("w1.npy")).unwrap(), std::fs::read(dir.join("i_all.npy")).unwrap());
    let (code, err) = sample(&["--class", "all", "--guidance", "1", "--guidance-interval", "1e6,1e7"], "i_none.npy");
    assert_eq!(code, 0, "{err}");
    let (code, err) = sample(&["--class", "all"], "w0.npy");
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dir.join("w0.npy")).unwrap(), std::fs::read(dir.join("i_none.npy")).unwrap());
    // Classifier guidance of the same checkpoint used unconditionally: toward the class.
    let (code, err) = sample(&["--class", "2,5", "--classifier", &clf, "--classifier-scale", "4"], "cg.npy");
    assert_eq!(code, 0, "{err}");
    assert!(on_mode(&dir.join("cg.npy")) > 0.9, "classifier guidance: {}", on_mode(&dir.join("cg.npy")));
    // classify judges the samples by their labels.
    let (code, out, err) =
        run_cli(&["--quiet", "classify", "--classifier", &clf, "--samples", &s(&dir.join("w1.npy"))]);
    assert_eq!(code, 0, "{err}");
    let all: f64 = out.lines().last().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(all > 0.9, "{out}");
    // Shards of a class-cycling run merge to the whole run, labels included; a shard drawn for
    // other classes is not part of it.
    for (i, cls) in [(0, "all"), (1, "all"), (2, "all"), (9, "3")] {
        let part = format!("part{i}.npy");
        let shard = format!("{}/3", i.min(2));
        let (code, err) = sample(&["--class", cls, "--guidance", "1", "--shard", &shard], &part);
        assert_eq!(code, 0, "{err}");
    }
    let parts: Vec<String> = [0, 1, 2].iter().map(|i| s(&dir.join(format!("part{i}.npy")))).collect();
    let merged = s(&dir.join("merged.npy"));
    let (code, _, err) = run_cli(&["merge", "--out", &merged, &parts[0], &parts[1], &parts[2]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&merged).unwrap(), std::fs::read(dir.join("w1.npy")).unwrap());
    let labels = |f: &str| scoregen::io::npy::read_npy_numbers(&dir.join(f)).unwrap();
    assert_eq!(labels("merged.labels.npy"), labels("w1.labels.npy"));
    let other = s(&dir.join("part9.npy"));
    let (code, _, err) = run_cli(&["merge", "--out", &merged, &parts[0], &parts[1], &other]);
    assert!(code != 0 && err.contains("different runs"), "{err}");
    // A PNG grid of 2-D points is a scatter; images are covered by the grid's column count.
    let (code, err) = sample(&["--class", "3"], "c3.png");
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_guidance_input_is_refused_in_one_line() {
    let dir = fresh_dir("guide-bad");
    let cond = train(&dir, "cond", &COND.replace("steps = 400", "steps = 5"));
    let clf = train(&dir, "clf", &CLF.replace("steps = 300", "steps = 5"));
    let unc = train(&dir, "unc", &COND.replace("classes = 8\n", "").replace("steps = 400", "steps = 5"));
    let vp_clf =
        train(&dir, "vpclf", &format!("{}[process]\nkind = \"vp\"\n", CLF.replace("steps = 300", "steps = 5")));
    let out = s(&dir.join("o.npy"));
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--checkpoint", &cond, "--class", "8"], vec!["class 8", "8 classes"]),
        (vec!["--checkpoint", &cond, "--class", "dog"], vec!["'dog'", "class name"]),
        (vec!["--checkpoint", &unc, "--class", "1", "--guidance", "2"], vec!["no class labels"]),
        (vec!["--checkpoint", &cond, "--guidance", "2"], vec!["--guidance 2", "--class"]),
        (vec!["--checkpoint", &unc, "--classifier", &vp_clf, "--class", "1"], vec!["vpclf", "noise process"]),
        (vec!["--checkpoint", &clf, "--class", "1"], vec!["is a classifier", "--classifier"]),
        (vec!["--checkpoint", &unc, "--classifier", &cond, "--class", "1"], vec!["is a score model"]),
        (vec!["--checkpoint", &cond, "--class", "1", "--guidance", "nan"], vec!["--guidance NaN", "finite"]),
        (vec!["--checkpoint", &cond, "--class", "1", "--guidance-scale", "inf"], vec!["--guidance inf", "finite"]),
        (
            vec!["--checkpoint", &unc, "--classifier", &clf, "--class", "1", "--classifier-scale", "inf"],
            vec!["--classifier-scale inf", "finite"],
        ),
        (vec!["--checkpoint", &cond, "--class", "1", "--guidance-interval", "0.3,5"], vec!["--guidance W"]),
        (
            vec!["--checkpoint", &cond, "--class", "1", "--guidance", "2", "--guidance-interval", "5,0.3"],
            vec!["--guidance-interval 5,0.3", "LO < HI"],
        ),
        (
            vec!["--checkpoint", &cond, "--class", "1", "--guidance", "2", "--guidance-interval", "0.3"],
            vec!["--guidance-interval 0.3", "LO,HI"],
        ),
        (
            vec!["--checkpoint", &cond, "--class", "1", "--guidance", "2", "--guidance-interval", "-1,x"],
            vec!["--guidance-interval -1,x"],
        ),
    ];
    for (extra, words) in cases {
        let mut args = vec!["sample", "--out", &out];
        args.extend(&extra);
        let (code, _, err) = run_cli(&args);
        assert_ne!(code, 0, "{extra:?} was accepted");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert!(words.iter().all(|w| err.contains(w)), "{extra:?}: {err}");
    }
    // A classifier of another data shape: 3-D points with labels.
    scoregen::io::npy::write_npy(&dir.join("x3.npy"), &[4, 3], &[0.5; 12]).unwrap();
    npy_i64(&dir.join("y3.npy"), &[0, 1, 0, 1]);
    let c3 = format!(
        "[data]\nsource = \"npy\"\npath = \"{}\"\nlabels = \"{}\"\n[model]\nnetwork = \"classifier\"\nhidden = [8]\n\
         classes = 2\n[train]\nsteps = 2\nbatch = 4\ncheckpoint_every = 0\nlog_every = 1\n",
        s(&dir.join("x3.npy")),
        s(&dir.join("y3.npy"))
    );
    let c3 = train(&dir, "c3", &c3);
    let (code, _, err) = run_cli(&["sample", "--out", &out, "--checkpoint", &unc, "--classifier", &c3, "--class", "1"]);
    assert!(code != 0 && err.contains("[3]") && err.contains("[2]"), "{err}");
    // Labels whose count does not match the data, and classes the data do not have: refused
    // before training.
    npy_i64(&dir.join("y3.npy"), &[0, 1, 0]);
    let bad = dir.join("bad.toml");
    let text = format!(
        "[data]\nsource = \"npy\"\npath = \"{}\"\nlabels = \"{}\"\n[model]\nclasses = 2\n",
        s(&dir.join("x3.npy")),
        s(&dir.join("y3.npy"))
    );
    std::fs::write(&bad, text).unwrap();
    let (code, _, err) = run_cli(&["train", "--config", &s(&bad), "--out", &s(&dir.join("bad"))]);
    assert!(code != 0 && err.contains("3 labels for the 4 samples"), "{err}");
    std::fs::write(&bad, "[data]\nsource = \"toy\"\nname = \"moons\"\n[model]\nclasses = 2\n").unwrap();
    let (code, _, err) = run_cli(&["train", "--config", &s(&bad), "--out", &s(&dir.join("bad"))]);
    assert!(code != 0 && err.contains("model.classes = 2") && err.contains("no labels"), "{err}");
    std::fs::write(&bad, "[data]\nsource = \"toy\"\n[model]\nclasses = 70000\n").unwrap();
    let (code, _, err) = run_cli(&["train", "--config", &s(&bad), "--out", &s(&dir.join("bad"))]);
    assert!(code != 0 && err.contains("model.classes = 70000"), "{err}");
    std::fs::write(&bad, "[data]\nsource = \"toy\"\n[train]\nlabel_dropout = 0.2\n").unwrap();
    let (code, _, err) = run_cli(&["train", "--config", &s(&bad), "--out", &s(&dir.join("bad"))]);
    assert!(code != 0 && err.contains("train.label_dropout"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
