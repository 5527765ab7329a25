//! Retrieval-conditioned models as a user runs them: `index build` from the training config,
//! `train` with a [retrieval] section (the neighbour table found on the GPU and kept in the run
//! folder), `sample` with the training database, a swapped one and external queries; the
//! reproducibility contract for queries drawn per chain; the one-line refusals of bad input.

mod common;
use common::{fresh_dir, gpu, run_cli};
use scoregen::ops::knn::Metric;
use scoregen::retrieval::{build, Database, EncoderSpec};
use std::path::Path;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn ok(args: &[&str]) -> String {
    let (code, _, err) = run_cli(args);
    assert_eq!(code, 0, "scoregen {}: {err}", args.join(" "));
    err
}

/// A one-line error (no backtrace) containing every word.
fn refused(args: &[&str], words: &[&str]) {
    let (code, _, err) = run_cli(args);
    assert_ne!(code, 0, "scoregen {} was accepted", args.join(" "));
    // The error is the last line (train announces its run on the line before).
    let e = err.trim().lines().last().unwrap_or_default();
    assert!(!err.contains("panicked") && e.starts_with("error: "), "not a one-line error: {err}");
    for w in words {
        assert!(e.contains(w), "'{w}' missing from: {e}");
    }
}

/// `scoregen index build --data CFG --out OUT` with more flags.
fn index_build(cfg: &Path, out: &Path, extra: &[&str]) {
    let (c, o) = (s(cfg), s(out));
    let mut a = vec!["index", "build", "--data", &c, "--out", &o];
    a.extend(extra);
    ok(&a);
}

fn npy(p: &Path) -> (Vec<usize>, Vec<f32>) {
    scoregen::io::npy::read_npy(p).unwrap()
}

const CONFIG: &str = "[data]\nsource = \"toy\"\nname = \"ring8\"\n[model]\nhidden = [32, 32]\n[retrieval]\n\
    database = \"db.safetensors\"\nk = 4\n[train]\nsteps = 120\nbatch = 256\nlr = 3e-3\ncheckpoint_every = 0\n\
    [sample]\nsampler = \"heun\"\nsteps = 8\n";

#[test]
fn retrieval_conditioned_training_sampling_and_the_swap() {
    let dir = fresh_dir("retrieval-cli");
    let cfg = dir.join("ring.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let db = dir.join("db.safetensors");
    index_build(&cfg, &db, &["--encoder", "identity", "--metric", "l2", "--n", "2000"]);
    let run = dir.join("run");
    ok(&["train", "--config", &s(&cfg), "--out", &s(&run), "--no-samples"]);
    let (shape, table) = npy(&run.join("neighbours.npy"));
    assert_eq!(shape, vec![2000, 4]);
    assert!(table.chunks(4).enumerate().all(|(i, r)| !r.contains(&(i as f32))), "a row is its own neighbour");
    let ck = s(&run.join("checkpoint.safetensors"));
    let sample = |out: &Path, extra: &[&str]| {
        let mut a = vec!["sample", "--checkpoint", &ck, "--seed", "3"];
        let o = s(out);
        a.extend(extra);
        a.extend(["--out", &o]);
        ok(&a);
    };
    // Queries drawn per chain: sample i depends on the seed and i only (n = 20 is a prefix of
    // n = 40), and two shards merged are the whole run.
    let (a, b) = (dir.join("a.npy"), dir.join("b.npy"));
    sample(&a, &["--n", "40"]);
    sample(&b, &["--n", "20", "--batch", "7"]);
    let ((sa, va), (_, vb)) = (npy(&a), npy(&b));
    assert_eq!(sa, vec![40, 2]);
    assert_eq!(&va[..40], &vb[..], "the first 20 chains depend on the run's size or batch");
    let (na, nb) = (npy(&dir.join("a.neighbours.npy")), npy(&dir.join("b.neighbours.npy")));
    assert_eq!(na.0, vec![40, 4]);
    assert_eq!(&na.1[..80], &nb.1[..]);
    for i in 0..2 {
        sample(&dir.join(format!("p{i}.npy")), &["--n", "40", "--shard", &format!("{i}/2")]);
    }
    let merged = dir.join("merged.npy");
    ok(&["merge", &s(&dir.join("p1.npy")), &s(&dir.join("p0.npy")), "--out", &s(&merged)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&merged).unwrap(), "merged shards differ from one run");

    // The swap changes the conditioning and nothing else: with fixed queries, a database that
    // adds one far-away entry (never a neighbour) gives the same samples bit for bit; a
    // database of one mode gives other neighbours (all from it) and other samples.
    let base = Database::load(&db).unwrap();
    let rows = &base.embeddings;
    let mut far = rows.clone();
    far.extend([40.0, 40.0]);
    let save = |name: &str, data: &[f32]| {
        let d = build(gpu(), data, &[2], &EncoderSpec::Identity, Metric::L2, None, name).unwrap();
        let p = dir.join(name);
        d.save(&p).unwrap();
        p
    };
    let far_db = save("far.safetensors", &far);
    // `index build --class 0` keeps the ring's mode 0 (a toy's labels are its components).
    let mode0_db = dir.join("mode0.safetensors");
    index_build(&cfg, &mode0_db, &["--encoder", "identity", "--metric", "l2", "--class", "0"]);
    let m0 = Database::load(&mode0_db).unwrap();
    let mode0 = m0.embeddings.clone();
    assert!(m0.info.n > 150 && m0.labels.as_ref().unwrap().iter().all(|&l| l == 0.0), "{}", m0.info.n);
    assert!(mode0.chunks(2).all(|p| p[0] > 2.0 && p[1].abs() < 2.0), "a point of another mode");
    let q = dir.join("q.npy");
    let qs: Vec<f32> = (0..40).flat_map(|i| [4.0 * (i as f32).cos(), 4.0 * (i as f32).sin()]).collect();
    scoregen::io::npy::write_npy(&q, &[40, 2], &qs).unwrap();
    let (x1, x2, x3) = (dir.join("x1.npy"), dir.join("x2.npy"), dir.join("x3.npy"));
    sample(&x1, &["--n", "40", "--query", &s(&q)]);
    sample(&x2, &["--n", "40", "--query", &s(&q), "--database", &s(&far_db)]);
    sample(&x3, &["--n", "40", "--query", &s(&q), "--database", &s(&mode0_db)]);
    assert_eq!(std::fs::read(&x1).unwrap(), std::fs::read(&x2).unwrap(), "an unused entry changed the samples");
    assert_ne!(npy(&x1).1, npy(&x3).1, "another database, the same samples");
    let n3 = npy(&dir.join("x3.neighbours.npy")).1;
    assert!(n3.iter().all(|&j| (j as usize) < mode0.len() / 2));
    // Guidance over the retrieval context: runs, and moves the samples.
    let g = dir.join("g.npy");
    sample(&g, &["--n", "40", "--guidance", "2"]);
    assert_ne!(npy(&g).1, va, "--guidance 2 changed nothing");

    // A database of embeddings made elsewhere (npy:FILE, one row per training row): training
    // takes it as given, sampling queries it with embeddings of its width.
    let emb = dir.join("emb.npy");
    let scaled: Vec<f32> = rows.iter().map(|v| 0.5 * v).collect();
    scoregen::io::npy::write_npy(&emb, &[2000, 2], &scaled).unwrap();
    let npy_db = dir.join("npydb.safetensors");
    let enc = format!("npy:{}", s(&emb));
    index_build(&cfg, &npy_db, &["--encoder", &enc, "--metric", "l2", "--n", "2000"]);
    let cfg2 = dir.join("ext.toml");
    std::fs::write(&cfg2, CONFIG.replace("db.safetensors", "npydb.safetensors").replace("steps = 120", "steps = 20"))
        .unwrap();
    ok(&["--quiet", "train", "--config", &s(&cfg2), "--out", &s(&dir.join("ext")), "--no-samples"]);
    let ck2 = s(&dir.join("ext/checkpoint.safetensors"));
    ok(&["sample", "--checkpoint", &ck2, "--n", "40", "--query", &s(&q), "--out", &s(&dir.join("e.npy"))]);
    // Bad input, each in one line naming the file or value.
    let pca = dir.join("pca.safetensors");
    index_build(&cfg, &pca, &["--encoder", "pca:1", "--n", "500"]);
    let small = save("small.safetensors", &rows[..6]);
    let pca2 = dir.join("pca2.safetensors");
    index_build(&cfg, &pca2, &["--encoder", "pca:2", "--metric", "l2", "--n", "500"]);
    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a database").unwrap();
    let (q3, q7) = (dir.join("q3.npy"), dir.join("q7.npy"));
    scoregen::io::npy::write_npy(&q3, &[40, 3], &vec![0.5; 120]).unwrap();
    scoregen::io::npy::write_npy(&q7, &[7, 2], &[0.5; 14]).unwrap();
    let out = s(&dir.join("bad.npy"));
    let base_args = ["sample", "--checkpoint", &ck, "--n", "40", "--out", &out];
    for (flag, file, words) in [
        ("--database", &pca, vec!["pca.safetensors", "width 1", "width 2"]),
        ("--database", &small, vec!["small.safetensors", "3 entries", "k = 4"]),
        ("--database", &junk, vec!["junk.safetensors"]),
        ("--database", &empty, vec!["empty.safetensors"]),
        ("--database", &pca2, vec!["pca2.safetensors", "encoder pca:2", "encoder identity"]),
        ("--query", &q3, vec!["q3.npy", "width 2"]),
        ("--query", &q7, vec!["q7.npy", "7 queries for 40 chains"]),
    ] {
        let mut a: Vec<String> = base_args.iter().map(|a| a.to_string()).collect();
        a.extend([flag.to_string(), s(file)]);
        refused(&a.iter().map(|a| a.as_str()).collect::<Vec<_>>(), &words);
    }
    refused(
        &["sample", "--model", "gmm:ring8", "--database", &s(&db), "--out", &out],
        &["db.safetensors", "not retrieval-conditioned"],
    );
    refused(&["eval", "--checkpoint", &ck, "--database", &s(&db)], &["db.safetensors", "null context"]);
    // Training on a database built from another draw (another seed) is refused.
    std::fs::write(&cfg, CONFIG.replace("steps = 120", "steps = 120\nseed = 9")).unwrap();
    refused(
        &["--quiet", "train", "--config", &s(&cfg), "--out", &s(&dir.join("run2"))],
        &["db.safetensors", "not those of the training data"],
    );
    // A [retrieval] with k beyond 64 or with classes: refused when the config is read.
    for (text, words) in [
        (CONFIG.replace("k = 4", "k = 65"), vec!["retrieval.k = 65"]),
        (CONFIG.replace("hidden = [32, 32]", "hidden = [32, 32]\nclasses = 8"), vec!["model.classes"]),
    ] {
        std::fs::write(&cfg, text).unwrap();
        refused(&["--quiet", "train", "--config", &s(&cfg), "--out", &s(&dir.join("run3"))], &words);
    }
}
