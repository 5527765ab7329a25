//! Sampling across machines: four `sample --shard I/4` processes, merged, equal one run bit for
//! bit (MCMC with per-chain tests and a batch size that divides nothing); `merge` refuses shards
//! of different runs and incomplete sets in one line.

mod common;
use std::path::Path;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn four_shards_merged_equal_one_run() {
    let dir = common::fresh_dir("shard");
    let base = |out: &Path, seed: &str| -> Vec<String> {
        ["sample", "--model", "gmm:ring8", "--sampler", "hmc", "--steps", "30", "--n", "1001", "--batch", "96"]
            .iter()
            .map(|a| a.to_string())
            .chain(["--seed".into(), seed.into(), "--out".into(), s(out)])
            .collect()
    };
    let whole = dir.join("whole.npy");
    let (code, _, err) = common::run_cli(&base(&whole, "5").iter().map(|a| a.as_str()).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    // Four separate processes at once, as four machines would run them.
    let procs: Vec<_> = (0..4)
        .map(|i| {
            let mut args = base(&dir.join(format!("part{i}.npy")), "5");
            args.extend(["--shard".into(), format!("{i}/4")]);
            std::process::Command::new(env!("CARGO_BIN_EXE_scoregen")).args(&args).output().unwrap()
        })
        .collect();
    for o in &procs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let parts: Vec<String> = [2, 0, 3, 1].iter().map(|i| s(&dir.join(format!("part{i}.npy")))).collect();
    let merged = dir.join("merged.npy");
    let mut args = vec!["merge".to_string()];
    args.extend(parts.clone());
    args.extend(["--out".into(), s(&merged)]);
    let (code, _, err) = common::run_cli(&args.iter().map(|a| a.as_str()).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&merged).unwrap(), "merged shards differ from one run");
    // A shard of another run (seed 6), and an incomplete set: refused in one line.
    let other = dir.join("other.npy");
    let mut a = base(&other, "6");
    a.extend(["--shard".into(), "3/4".into()]);
    assert_eq!(common::run_cli(&a.iter().map(|a| a.as_str()).collect::<Vec<_>>()).0, 0);
    let out = s(&dir.join("bad.npy"));
    for (inputs, words) in [
        (vec![parts[0].clone(), parts[1].clone(), parts[2].clone(), s(&other)], "different runs"),
        (vec![parts[0].clone(), parts[1].clone(), parts[2].clone()], "4 shards"),
    ] {
        let mut args = vec!["merge"];
        args.extend(inputs.iter().map(|s| s.as_str()));
        args.extend(["--out", &out]);
        let (code, _, err) = common::run_cli(&args);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert!(code == 1 && lines.len() == 1 && err.contains(words), "{err}");
        assert!(!Path::new(&out).exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
