fn main() {
    let gpu = scoregen::Gpu::new(&scoregen::GpuOptions::default()).unwrap();
    println!("{}", gpu.describe());
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1024);
    let data: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let a = scoregen::Tensor::from_slice(&gpu, &data, &[n, n]).unwrap();
    let b = scoregen::Tensor::from_slice(&gpu, &data, &[n, n]).unwrap();
    for c in scoregen::ops::matmul::CANDIDATES {
        let o = scoregen::ops::matmul::MatmulOpts { config: Some(*c), ..Default::default() };
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let mut rec = scoregen::Recorder::new(&gpu);
            let _c = scoregen::ops::matmul::matmul(&mut rec, &a, &b, o).unwrap();
            rec.finish().unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{:24} {:8.2} GFLOP/s", c.name(), 2.0 * (n as f64).powi(3) / best / 1e9);
    }
}

