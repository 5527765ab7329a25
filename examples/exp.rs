fn main() {
    let gpu = scoregen::Gpu::new(&scoregen::GpuOptions::default()).unwrap();
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1024);
    let data: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let a = scoregen::Tensor::from_slice(&gpu, &data, &[n, n]).unwrap();
    let b = scoregen::Tensor::from_slice(&gpu, &data, &[n, n]).unwrap();
    let (want, _) = scoregen::ops::matmul::matmul_ref(&data[..64*n], &[64, n], &data, &[n, n], Default::default()).unwrap();
    for c in ["sg:8x4:32x16", "sg:8x8:16x16", "sg:8x2:32x16", "reg:8x8:16x16"] {
        let o = scoregen::ops::matmul::MatmulOpts { config: Some(scoregen::ops::matmul::MatmulConfig::parse(c).unwrap()), ..Default::default() };
        let mut best = f64::MAX;
        let mut out = None;
        for _ in 0..4 {
            let t = std::time::Instant::now();
            let mut rec = scoregen::Recorder::new(&gpu);
            let cc = scoregen::ops::matmul::matmul(&mut rec, &a, &b, o).unwrap();
            rec.finish().unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            out = Some(cc);
        }
        let got = out.unwrap().to_vec(&gpu).unwrap();
        let err = got[..64*n].iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        println!("{c:24} {:8.2} GFLOP/s  maxerr {err}", 2.0 * (n as f64).powi(3) / best / 1e9);
    }
}
