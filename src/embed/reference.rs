//! Plain-loop CPU references of shaders/present.wgsl: what the presenter writes into an
//! `rgba32float` texture, as rows of RGBA values (the tests compare the GPU's texture with them).

/// Image samples `xs` [n, c, h, w] tiled `cols` per row into a width x height RGBA picture,
/// values as they are (grey images in r, g and b), (0, 0, 0, 1) outside the samples.
pub fn images(
    xs: &[f32],
    (c, h, w): (usize, usize, usize),
    cols: usize,
    (width, height): (usize, usize),
) -> Vec<[f32; 4]> {
    let n = xs.len() / (c * h * w);
    let mut out = vec![[0.0, 0.0, 0.0, 1.0]; width * height];
    for py in 0..height {
        for px in 0..width {
            let k = (py / h) * cols + px / w;
            if px / w >= cols || k >= n {
                continue;
            }
            let at = |ch: usize| xs[((k * c + ch) * h + py % h) * w + px % w];
            out[py * width + px] = if c == 3 { [at(0), at(1), at(2), 1.0] } else { [at(0), at(0), at(0), 1.0] };
        }
    }
    out
}

/// 2-D points [n * 2] splatted over [-lim, lim]^2 into width x height pixels: each pixel's
/// count in r and the largest count in g.
pub fn density(xy: &[f32], lim: f32, (width, height): (usize, usize)) -> Vec<[f32; 4]> {
    let mut counts = vec![0u32; width * height];
    for p in xy.chunks_exact(2) {
        let fx = ((p[0] + lim) / (2.0 * lim) * width as f32).floor();
        let fy = ((lim - p[1]) / (2.0 * lim) * height as f32).floor();
        if fx >= 0.0 && fy >= 0.0 && fx < width as f32 && fy < height as f32 {
            counts[fy as usize * width + fx as usize] += 1;
        }
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    counts.iter().map(|&c| [c as f32, max as f32, 0.0, 1.0]).collect()
}
