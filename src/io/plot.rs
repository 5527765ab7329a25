//! PNG outputs: image grids, 2-D scatter/density plots and loss curves, drawn with plain
//! loops into an RGB buffer (no plotting dependency).

use crate::error::{Error, Result};
use image::{Rgb, RgbImage};
use std::path::Path;

fn save(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::io(format!("{}: cannot encode PNG", path.display()), e))?;
    super::write_atomic(path, &bytes)
}

/// Images [n, C, H, W] in [-1, 1] (C = 1 or 3) as a grid of `cols` columns, 2-pixel gaps.
pub fn image_grid(path: &Path, data: &[f32], shape: &[usize], cols: usize) -> Result<()> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let n = data.len() / (c * h * w);
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let (gw, gh) = ((cols * (w + 2) + 2) as u32, (rows * (h + 2) + 2) as u32);
    let mut img = RgbImage::from_pixel(gw, gh, Rgb([32, 32, 32]));
    for k in 0..n {
        let (ox, oy) = (2 + (k % cols) * (w + 2), 2 + (k / cols) * (h + 2));
        for y in 0..h {
            for x in 0..w {
                let px = |ch: usize| {
                    let v = data[((k * c + ch) * h + y) * w + x];
                    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
                };
                let p = if c == 1 { [px(0); 3] } else { [px(0), px(1), px(2)] };
                img.put_pixel((ox + x) as u32, (oy + y) as u32, Rgb(p));
            }
        }
    }
    save(&img, path)
}

/// 2-D points [n * 2] as a log-density heat map over [-lim, lim]^2 (512 x 512).
pub fn scatter(path: &Path, xy: &[f32], lim: f32) -> Result<()> {
    let s = 512usize;
    let mut hist = vec![0u32; s * s];
    for p in xy.chunks(2) {
        let fx = ((p[0] + lim) / (2.0 * lim) * s as f32).floor();
        let fy = ((lim - p[1]) / (2.0 * lim) * s as f32).floor();
        if fx >= 0.0 && fy >= 0.0 && (fx as usize) < s && (fy as usize) < s {
            hist[fy as usize * s + fx as usize] += 1;
        }
    }
    let max = (*hist.iter().max().unwrap_or(&1)).max(1) as f32;
    let mut img = RgbImage::from_pixel(s as u32, s as u32, Rgb([255, 255, 255]));
    for (i, &c) in hist.iter().enumerate() {
        if c > 0 {
            let t = (1.0 + c as f32).ln() / (1.0 + max).ln();
            let v = |a: f32, b: f32| (a + (b - a) * t) as u8;
            img.put_pixel((i % s) as u32, (i / s) as u32, Rgb([v(120.0, 10.0), v(160.0, 20.0), v(230.0, 90.0)]));
        }
    }
    for i in 0..s as u32 {
        // axes through the origin
        img.put_pixel(i, s as u32 / 2, Rgb([200, 200, 200]));
        img.put_pixel(s as u32 / 2, i, Rgb([200, 200, 200]));
    }
    save(&img, path)
}

/// Loss against step, log-scaled y, 640 x 360.
pub fn loss_curve(path: &Path, points: &[(usize, f64)]) -> Result<()> {
    let (w, h) = (640u32, 360u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let pts: Vec<(f64, f64)> =
        points.iter().filter(|p| p.1.is_finite() && p.1 > 0.0).map(|&(s, l)| (s as f64, l.ln())).collect();
    if pts.len() >= 2 {
        let (x0, x1) = (pts[0].0, pts.last().unwrap().0.max(pts[0].0 + 1.0));
        let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-6);
        let map = |p: (f64, f64)| {
            let x = 20.0 + (p.0 - x0) / (x1 - x0) * (w as f64 - 40.0);
            let y = 20.0 + (hi - p.1) / (hi - lo) * (h as f64 - 40.0);
            (x, y)
        };
        for pair in pts.windows(2) {
            let (a, b) = (map(pair[0]), map(pair[1]));
            let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) as usize).max(1);
            for k in 0..=steps {
                let t = k as f64 / steps as f64;
                let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                img.put_pixel(x as u32, y as u32, Rgb([30, 80, 200]));
            }
        }
    }
    for x in 20..w - 20 {
        img.put_pixel(x, h - 20, Rgb([0, 0, 0]));
    }
    for y in 20..h - 20 {
        img.put_pixel(20, y, Rgb([0, 0, 0]));
    }
    save(&img, path)
}
