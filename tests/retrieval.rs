//! Retrieval databases: PCA fitted on the GPU finds a known principal subspace and embeds as the
//! plain-loop projection does; databases survive a round trip; corrupt or mismatched files and
//! encoders are refused in one line; `scoregen index build / info` from the command line.

mod common;
use common::{gpu, Rng};
use scoregen::io::checkpoint::Checkpoint;
use scoregen::ops::knn::{KnnIndex, Metric};
use scoregen::retrieval::encoder::{fit_pca, top_eigenvectors, Encoder};
use scoregen::retrieval::{build, Database, EncoderSpec};

/// Data with variance 9 and 4 along two random orthonormal directions and 0.01 elsewhere, in 10
/// dimensions: pca:2 recovers both directions, in order, and embeds like (x - mean) P^T.
#[test]
fn pca_finds_the_principal_directions() {
    let (d, n) = (10, 4000);
    let mut rng = Rng::new(4);
    let mut dirs: Vec<Vec<f64>> = (0..2).map(|_| (0..d).map(|_| rng.uniform(-1.0, 1.0) as f64).collect()).collect();
    let n0 = dirs[0].iter().map(|x| x * x).sum::<f64>().sqrt();
    dirs[0].iter_mut().for_each(|x| *x /= n0);
    let p: f64 = dirs[1].iter().zip(&dirs[0]).map(|(a, b)| a * b).sum();
    let d0 = dirs[0].clone();
    dirs[1].iter_mut().zip(&d0).for_each(|(a, b)| *a -= p * b);
    let n1 = dirs[1].iter().map(|x| x * x).sum::<f64>().sqrt();
    dirs[1].iter_mut().for_each(|x| *x /= n1);
    let mut host = scoregen::rng::HostRng::new(9);
    let data: Vec<f32> = (0..n)
        .flat_map(|_| {
            let (a, b) = (3.0 * host.normal(), 2.0 * host.normal());
            (0..d).map(|j| (1.0 + a * dirs[0][j] + b * dirs[1][j] + 0.1 * host.normal()) as f32).collect::<Vec<_>>()
        })
        .collect();
    let pca = fit_pca(gpu(), &data, d, 2).unwrap();
    for (c, dir) in dirs.iter().enumerate() {
        let row = &pca.proj[c * d..(c + 1) * d];
        let cos: f64 = row.iter().zip(dir).map(|(a, b)| *a as f64 * b).sum();
        assert!(cos.abs() > 0.999, "component {c}: |cos| {cos}");
    }
    let e = pca.encode(gpu(), &data[..50 * d], d).unwrap();
    for r in 0..50 {
        for c in 0..2 {
            let want: f32 = (0..d).map(|j| (data[r * d + j] - pca.mean[j]) * pca.proj[c * d + j]).sum();
            assert!((e[r * 2 + c] - want).abs() < 1e-3 * (1.0 + want.abs()), "row {r} comp {c}");
        }
    }
    // The eigen-solver alone on a known spectrum.
    let a: Vec<f64> = (0..16).map(|ij| if ij / 4 == ij % 4 { [1.0, 5.0, 3.0, 0.5][ij / 4] } else { 0.0 }).collect();
    let v = top_eigenvectors(&a, 4, 2);
    assert!((v[1] - 1.0).abs() < 1e-9 && (v[4 + 2] - 1.0).abs() < 1e-9, "{v:?}");
}

/// A database built, saved, loaded and searched; a file with edited metadata, a checkpoint that
/// is no database and a pca wider than the data are refused, naming the file or value.
#[test]
fn databases_round_trip_and_bad_files_are_refused() {
    let dir = common::fresh_dir("retrieval");
    let mut rng = Rng::new(8);
    let data = rng.vec(300 * 6, -1.0, 1.0);
    let db = build(gpu(), &data, &[6], &EncoderSpec::Pca(3), Metric::Cosine, None, "test").unwrap();
    let path = dir.join("db.safetensors");
    db.save(&path).unwrap();
    let back = Database::load(&path).unwrap();
    assert_eq!((back.info.n, back.info.d, back.embeddings.clone()), (300, 3, db.embeddings.clone()));
    assert!(back.encoder_tensors.contains_key("encoder.proj"));
    let index = KnnIndex::new(gpu(), &back.embeddings, 3, Metric::Cosine, 128).unwrap();
    let (_, nn) = index.search(gpu(), &back.embeddings[..3 * 4], 1).unwrap();
    assert_eq!(nn, vec![0, 1, 2, 3], "each row is its own nearest neighbour");
    let mut ck = Checkpoint::load(&path).unwrap();
    let meta = ck.metadata["scoregen.database"].replace("\"n\":300", "\"n\":301");
    ck.metadata.insert("scoregen.database".into(), meta);
    ck.save(&dir.join("edited.safetensors")).unwrap();
    let e = Database::load(&dir.join("edited.safetensors")).err().unwrap().to_string();
    assert!(e.contains("edited.safetensors") && e.contains("[301, 3]"), "{e}");
    ck.metadata.clear();
    ck.save(&dir.join("plain.safetensors")).unwrap();
    let e = Database::load(&dir.join("plain.safetensors")).err().unwrap().to_string();
    assert!(e.contains("plain.safetensors") && e.contains("not a scoregen database"), "{e}");
    let e = build(gpu(), &data, &[6], &EncoderSpec::Pca(7), Metric::Ip, None, "test").err().unwrap().to_string();
    assert!(e.contains("pca:7") && e.contains("6 dimensions"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The command line: build from a .npy through identity and npy: encoders, describe, refuse an
/// embeddings file with the wrong number of rows and an unknown encoder.
#[test]
fn index_from_the_command_line() {
    let dir = common::fresh_dir("index-cli");
    let s = |p: &std::path::Path| p.display().to_string();
    let mut rng = Rng::new(2);
    scoregen::io::npy::write_npy(&dir.join("x.npy"), &[40, 3], &rng.vec(120, -1.0, 1.0)).unwrap();
    scoregen::io::npy::write_npy(&dir.join("e.npy"), &[40, 5], &rng.vec(200, -1.0, 1.0)).unwrap();
    scoregen::io::npy::write_npy(&dir.join("e39.npy"), &[39, 5], &rng.vec(195, -1.0, 1.0)).unwrap();
    let db = s(&dir.join("db.safetensors"));
    let x = s(&dir.join("x.npy"));
    for enc in ["identity".to_string(), format!("npy:{}", s(&dir.join("e.npy")))] {
        let (code, _, err) = common::run_cli(&["index", "build", "--data", &x, "--encoder", &enc, "--out", &db]);
        assert_eq!(code, 0, "{err}");
        let (code, out, err) = common::run_cli(&["index", "info", &db]);
        assert!(code == 0 && out.contains("40 embeddings"), "{out}{err}");
    }
    let bad = format!("npy:{}", s(&dir.join("e39.npy")));
    let (code, _, err) = common::run_cli(&["index", "build", "--data", &x, "--encoder", &bad, "--out", &db]);
    assert!(code == 1 && err.contains("39 embeddings for 40 data rows"), "{err}");
    let (code, _, err) = common::run_cli(&["index", "build", "--data", &x, "--encoder", "clip", "--out", &db]);
    assert!(code == 2 && err.contains("identity, pca:K, db:FILE or npy:FILE"), "{err}");
    // db:FILE reuses a database's fitted PCA: other data embed with the same projection (the
    // same fingerprint), so a database swapped in at sampling time speaks the model's language.
    let pca = s(&dir.join("pca.safetensors"));
    let (code, _, err) = common::run_cli(&["index", "build", "--data", &x, "--encoder", "pca:2", "--out", &pca]);
    assert_eq!(code, 0, "{err}");
    scoregen::io::npy::write_npy(&dir.join("y.npy"), &[7, 3], &rng.vec(21, -1.0, 1.0)).unwrap();
    let other = s(&dir.join("other.safetensors"));
    let from = format!("db:{pca}");
    let y = s(&dir.join("y.npy"));
    let (code, _, err) = common::run_cli(&["index", "build", "--data", &y, "--encoder", &from, "--out", &other]);
    assert_eq!(code, 0, "{err}");
    let (a, b) =
        (Database::load(std::path::Path::new(&pca)).unwrap(), Database::load(std::path::Path::new(&other)).unwrap());
    assert!(a.info.fitted.is_some() && a.info.fitted == b.info.fitted && b.info.encoder == "pca:2");
    let (_, ys) = scoregen::io::npy::read_npy(&dir.join("y.npy")).unwrap();
    assert_eq!(a.embed(gpu(), &ys).unwrap(), b.embeddings);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model's [retrieval] against a database: the same encoder kind fitted on other data (another
/// PCA), another width and too few entries are each refused, naming both sides.
#[test]
fn databases_are_checked_against_the_model() {
    use scoregen::retrieval::RetrievalConfig;
    let mut rng = Rng::new(5);
    let data = rng.vec(200 * 4, -1.0, 1.0);
    let db = build(gpu(), &data, &[4], &EncoderSpec::Pca(2), Metric::Cosine, None, "test").unwrap();
    let other =
        build(gpu(), &rng.vec(200 * 4, -2.0, 1.0), &[4], &EncoderSpec::Pca(2), Metric::Cosine, None, "o").unwrap();
    let cfg = RetrievalConfig {
        database: "train.safetensors".into(),
        k: 8,
        dropout: None,
        encoder: Some(db.info.encoder.clone()),
        width: Some(2),
        metric: Some(Metric::Cosine),
        fitted: db.info.fitted.clone(),
    };
    cfg.check_database(&db, "model.safetensors", "train.safetensors").unwrap();
    let e = cfg.check_database(&other, "model.safetensors", "other.safetensors").unwrap_err().to_string();
    assert!(
        e.contains("other.safetensors") && e.contains("model.safetensors") && e.contains("fitted on other data"),
        "{e}"
    );
    let wide = RetrievalConfig { width: Some(3), ..cfg.clone() };
    let e = wide.check_database(&db, "model.safetensors", "train.safetensors").unwrap_err().to_string();
    assert!(e.contains("width 2") && e.contains("width 3"), "{e}");
    let many = RetrievalConfig { k: 201, ..cfg };
    let e = many.check_database(&db, "model.safetensors", "train.safetensors").unwrap_err().to_string();
    assert!(e.contains("200 entries") && e.contains("k = 201"), "{e}");
}
