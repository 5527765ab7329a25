//! Checkpoint round trip, PyTorch-compatible layout, and clear errors for bad files.

mod common;
use common::{gpu, Rng};
use scoregen::graph::plan::ParamStore;
use scoregen::io::checkpoint::Checkpoint;
use scoregen::{Error, Tensor};
use std::collections::BTreeMap;

fn store(rng: &mut Rng, shapes: &[(&str, &[usize])]) -> ParamStore {
    shapes
        .iter()
        .map(|(n, s)| (n.to_string(), Tensor::from_slice(gpu(), &rng.vec(s.iter().product(), -1.0, 1.0), s).unwrap()))
        .collect()
}

#[test]
fn round_trip_and_format() {
    let g = gpu();
    let mut rng = Rng::new(40);
    let p = store(&mut rng, &[("net.0.weight", &[4, 3]), ("net.0.bias", &[4]), ("conv.weight", &[2, 1, 3, 3])]);
    let meta: BTreeMap<String, String> = [("config".to_string(), "{\"arch\":\"mlp\"}".to_string())].into();
    let ck = Checkpoint::from_params(g, &p, meta.clone()).unwrap();
    let dir = std::env::temp_dir().join(format!("scoregen-ck-{}", std::process::id()));
    let path = dir.join("model.safetensors");
    ck.save(&path).unwrap();
    // The format: 8-byte length, JSON header with F32 dtype and offsets, then data.
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    assert_eq!(header["net.0.weight"]["dtype"], "F32");
    assert_eq!(header["net.0.weight"]["shape"], serde_json::json!([4, 3]));
    assert_eq!(header["__metadata__"]["config"], "{\"arch\":\"mlp\"}");
    assert_eq!(bytes.len(), 8 + n + 4 * (12 + 4 + 18));
    let back = Checkpoint::load(&path).unwrap();
    assert_eq!(back, ck);
    // Load into a fresh store of the same architecture.
    let q = store(&mut rng, &[("net.0.weight", &[4, 3]), ("net.0.bias", &[4]), ("conv.weight", &[2, 1, 3, 3])]);
    back.load_into(g, &q, "model.safetensors").unwrap();
    for (name, t) in &q {
        assert_eq!(t.to_vec(g).unwrap(), p[name].to_vec(g).unwrap(), "{name}");
    }
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")),
        "temporary file left behind"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mismatches_and_corruption_are_one_clear_error() {
    let g = gpu();
    let mut rng = Rng::new(41);
    let p = store(&mut rng, &[("a", &[2, 3]), ("b", &[5])]);
    let ck = Checkpoint::from_params(g, &p, BTreeMap::new()).unwrap();
    // wrong shape + missing + unexpected, all named at once
    let other = store(&mut rng, &[("a", &[3, 2]), ("c", &[1])]);
    match ck.load_into(g, &other, "x.safetensors") {
        Err(Error::Invalid(m)) => {
            assert!(
                m.contains("x.safetensors")
                    && m.contains("'a' is [2, 3]")
                    && m.contains("missing 'c'")
                    && m.contains("unexpected 'b'"),
                "{m}"
            );
        }
        r => panic!("{r:?}"),
    }
    let bytes = ck.to_bytes();
    // truncated data, truncated header, garbage, wrong dtype
    for (bad, needle) in [
        (bytes[..bytes.len() - 4].to_vec(), "truncated"),
        (bytes[..6].to_vec(), "too short"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!".to_vec(), "not JSON"),
    ] {
        let e = Checkpoint::from_bytes(&bad).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
    let dir = std::env::temp_dir().join(format!("scoregen-ck2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    match Checkpoint::load(&path) {
        Err(Error::Io(m, _)) => {
            assert!(m.contains("bad.safetensors") && m.contains("truncated") && !m.contains('\n'), "{m}")
        }
        r => panic!("{r:?}"),
    }
    let f16 = String::from("{\"w\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}");
    let mut b = (f16.len() as u64).to_le_bytes().to_vec();
    b.extend(f16.as_bytes());
    b.extend([0, 0]);
    assert!(Checkpoint::from_bytes(&b).unwrap_err().contains("F16"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Interoperability with Python's `safetensors`: a file it wrote (tests/fixtures, made by
/// make_safetensors.py) reads here, F64 converted; a file written here reads back through the
/// crate as the same tensors and metadata. With SCOREGEN_INTEROP set, the file written here is
/// kept for tests/fixtures/read_back.py (Python's reader).
#[test]
fn safetensors_files_cross_between_python_and_scoregen() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_written.safetensors");
    let ck = Checkpoint::load(&fixture).unwrap();
    assert_eq!(ck.metadata["scoregen.note"], "written by Python");
    assert_eq!(ck.tensors["net.0.weight"], (vec![2, 3], vec![-0.5, -0.25, 0.0, 0.25, 0.5, 0.75]));
    assert_eq!(ck.tensors["net.0.bias"], (vec![2], vec![1.5, -2.25]));
    assert_eq!(ck.tensors["scalarish"], (vec![1, 1], vec![3.0]));
    assert_eq!(ck.tensors.len(), 3);
    let path = std::env::temp_dir().join(format!("rust_written-{}.safetensors", std::process::id()));
    ck.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("net.0.weight").unwrap().dtype(), safetensors::Dtype::F32);
    assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), ck);
    if std::env::var_os("SCOREGEN_INTEROP").is_some() {
        eprintln!("kept for tests/fixtures/read_back.py: {}", path.display());
    } else {
        std::fs::remove_file(&path).unwrap();
    }
}
