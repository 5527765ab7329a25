//! Interoperability of .npy files with NumPy: arrays NumPy wrote (tests/fixtures/npy, made by
//! make_npy.py) read here in every dtype a data set or label file arrives in; arrays written here
//! are what NumPy reads (float32, C order, its header). With SCOREGEN_INTEROP set, the arrays
//! written here are kept for tests/fixtures/read_back_npy.py (NumPy's reader).

use scoregen::io::npy::{read_npy, read_npy_numbers, write_npy, NpyWriter};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy").join(name)
}

#[test]
fn arrays_numpy_wrote_read_in_every_dtype() {
    assert_eq!(read_npy(&fixture("f32_data.npy")).unwrap(), (vec![2, 3], (0..6).map(|v| v as f32 / 8.0).collect()));
    let (shape, v) = read_npy(&fixture("f64_data.npy")).unwrap();
    assert_eq!((shape, v), (vec![3, 2], vec![0.5, -1.25, 2.0, 3.5, 1e-3, -7.0]));
    assert_eq!(read_npy_numbers(&fixture("i64_labels.npy")).unwrap(), (vec![5], vec![0.0, 9.0, 3.0, 3.0, 7.0]));
    let (shape, v) = read_npy(&fixture("u8_images.npy")).unwrap();
    assert_eq!((shape, v), (vec![2, 2, 3], (0..12).map(|v| (v * 20) as f32).collect()));
    assert_eq!(read_npy(&fixture("f32_big_endian.npy")).unwrap(), (vec![4], vec![1.0, -2.5, 3.25, 0.0]));
    let e = read_npy(&fixture("f32_fortran.npy")).unwrap_err().to_string();
    assert!(e.contains("f32_fortran.npy") && e.contains("Fortran order; save a C-contiguous array"), "{e}");
}

#[test]
fn arrays_written_here_are_numpy_float32_c_order() {
    let dir = std::env::temp_dir().join(format!("scoregen-npy-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let whole = dir.join("whole.npy");
    let data: Vec<f32> = (0..15).map(|v| v as f32 * 0.5 - 3.0).collect();
    write_npy(&whole, &[5, 3], &data).unwrap();
    let streamed = dir.join("streamed.npy");
    let mut w = NpyWriter::create(&streamed, &[5, 3]).unwrap();
    for c in data.chunks(4) {
        w.write(c).unwrap();
    }
    w.finish().unwrap();
    for p in [&whole, &streamed] {
        let b = std::fs::read(p).unwrap();
        // NumPy's layout: magic, version 1.0, a header of dtype/order/shape padded so the data
        // start 16-byte aligned (NumPy's own writer aligns to 64; both read), then the values.
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 16, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3, ), }"), "{header}");
        assert!(header.ends_with('\n'));
        let values: Vec<f32> = b[10 + hlen..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(values, data);
        assert_eq!(read_npy(p).unwrap(), (vec![5, 3], data.clone()));
    }
    if std::env::var_os("SCOREGEN_INTEROP").is_some() {
        eprintln!("kept for tests/fixtures/read_back_npy.py: {} {}", whole.display(), streamed.display());
    } else {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
