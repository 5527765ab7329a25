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
    let s = 512u32;
    let mut img = RgbImage::from_pixel(s, s, Rgb([255, 255, 255]));
    density_panel(&mut img, 0, xy, lim);
    save(&img, path)
}

/// Several 2-D point sets side by side, one 384 x 384 density panel each over [-lim, lim]^2,
/// 8-pixel gaps.
pub fn scatter_row(path: &Path, sets: &[Vec<f32>], lim: f32) -> Result<()> {
    let (s, gap) = (384u32, 8u32);
    let n = sets.len().max(1) as u32;
    let mut img = RgbImage::from_pixel(n * s + (n - 1) * gap, s, Rgb([255, 255, 255]));
    for (i, xy) in sets.iter().enumerate() {
        density_panel(&mut img, i as u32 * (s + gap), xy, lim);
    }
    save(&img, path)
}

/// Points as a log-density histogram in the s x s panel at x offset `ox` (s: the image's
/// height), with axes through the origin.
fn density_panel(img: &mut RgbImage, ox: u32, xy: &[f32], lim: f32) {
    let s = img.height();
    let mut hist = vec![0u32; (s * s) as usize];
    for p in xy.chunks(2) {
        let fx = ((p[0] + lim) / (2.0 * lim) * s as f32).floor();
        let fy = ((lim - p[1]) / (2.0 * lim) * s as f32).floor();
        if fx >= 0.0 && fy >= 0.0 && (fx as u32) < s && (fy as u32) < s {
            hist[fy as usize * s as usize + fx as usize] += 1;
        }
    }
    let max = (*hist.iter().max().unwrap_or(&1)).max(1) as f32;
    for (i, &c) in hist.iter().enumerate() {
        if c > 0 {
            let t = (1.0 + c as f32).ln() / (1.0 + max).ln();
            let v = |a: f32, b: f32| (a + (b - a) * t) as u8;
            img.put_pixel(ox + i as u32 % s, i as u32 / s, Rgb([v(120.0, 10.0), v(160.0, 20.0), v(230.0, 90.0)]));
        }
    }
    for i in 0..s {
        img.put_pixel(ox + i, s / 2, Rgb([200, 200, 200]));
        img.put_pixel(ox + s / 2, i, Rgb([200, 200, 200]));
    }
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

/// A colour ramp from dark blue (t = 0) through teal to yellow (t = 1).
fn ramp(t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    let stops =
        [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];
    let f = t * (stops.len() - 1) as f32;
    let i = (f.floor() as usize).min(stops.len() - 2);
    let r = f - i as f32;
    let c = |k: usize| (stops[i][k] + (stops[i + 1][k] - stops[i][k]) * r) as u8;
    Rgb([c(0), c(1), c(2)])
}

/// A line from a to b (pixel coordinates), clipped to the image.
fn line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), c: Rgb<u8>) {
    let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for k in 0..=n {
        let t = k as f32 / n as f32;
        let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

/// A learned 2-D field beside samples, 1024 x 512 over [-lim, lim]^2 each: on the left a heat map
/// of `heat` (k x k values, row-major from the bottom-left corner; the scale runs from the
/// 30th percentile, below which all is dark, to the maximum) under the score field's arrows (x, y, sx, sy, in data units; drawn with the
/// longest arrow one grid cell long); on the right the samples as `scatter` draws them.
pub fn field(path: &Path, heat: &[f64], k: usize, arrows: &[[f32; 4]], lim: f32, samples: &[f32]) -> Result<()> {
    let s = 512u32;
    let mut img = RgbImage::from_pixel(2 * s, s, Rgb([255, 255, 255]));
    let mut sorted: Vec<f64> = heat.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| sorted.get(((sorted.len().max(1) - 1) as f64 * f) as usize).copied().unwrap_or(0.0);
    let (lo, hi) = (q(0.3), q(1.0).max(q(0.3) + 1e-12));
    for py in 0..s {
        for px in 0..s {
            let (i, j) = ((px as usize * k) / s as usize, ((s - 1 - py) as usize * k) / s as usize);
            let v = heat[j * k + i];
            let c = if v.is_finite() { ramp(((v - lo) / (hi - lo)) as f32) } else { Rgb([255, 0, 0]) };
            img.put_pixel(px, py, c);
        }
    }
    let to_px = |x: f32, y: f32| ((x + lim) / (2.0 * lim) * s as f32, (lim - y) / (2.0 * lim) * s as f32);
    let longest = arrows.iter().map(|a| (a[2] * a[2] + a[3] * a[3]).sqrt()).fold(0f32, f32::max).max(1e-12);
    let cell = s as f32 / (arrows.len() as f32).sqrt().max(1.0);
    for a in arrows {
        let (x0, y0) = to_px(a[0], a[1]);
        let (dx, dy) = (a[2] / longest * cell, -a[3] / longest * cell);
        let tip = (x0 + dx, y0 + dy);
        line(&mut img, (x0, y0), tip, Rgb([255, 255, 255]));
        // the head: two short strokes back from the tip
        let (ux, uy) = (-dx * 0.3, -dy * 0.3);
        line(&mut img, tip, (tip.0 + ux - uy * 0.5, tip.1 + uy + ux * 0.5), Rgb([255, 255, 255]));
        line(&mut img, tip, (tip.0 + ux + uy * 0.5, tip.1 + uy - ux * 0.5), Rgb([255, 255, 255]));
    }
    density_panel(&mut img, s, samples, lim);
    for i in 0..s {
        img.put_pixel(s, i, Rgb([0, 0, 0]));
    }
    save(&img, path)
}

/// Acceptance (0 to 1, grid lines every 0.25) against log sigma (increasing to the right), one
/// point per level joined in order, 640 x 360.
pub fn acceptance(path: &Path, levels: &[(f64, f64)]) -> Result<()> {
    let (w, h) = (640u32, 360u32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let logs: Vec<f64> = levels.iter().map(|l| l.0.max(1e-30).ln()).collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(lo + 1e-9);
    let map = |ls: f64, a: f64| {
        let x = 30.0 + (ls - lo) / (hi - lo) * (w as f64 - 60.0);
        let y = 20.0 + (1.0 - a.clamp(0.0, 1.0)) * (h as f64 - 40.0);
        (x as f32, y as f32)
    };
    for q in [0.25, 0.5, 0.75, 1.0] {
        line(&mut img, map(lo, q), map(hi, q), Rgb([220, 220, 220]));
    }
    line(&mut img, map(lo, 0.0), map(hi, 0.0), Rgb([0, 0, 0]));
    line(&mut img, map(lo, 0.0), map(lo, 1.0), Rgb([0, 0, 0]));
    let pts: Vec<(f32, f32)> = logs.iter().zip(levels).map(|(&ls, l)| map(ls, l.1)).collect();
    for pair in pts.windows(2) {
        line(&mut img, pair[0], pair[1], Rgb([30, 80, 200]));
    }
    for &(x, y) in &pts {
        for dy in -2..=2 {
            line(&mut img, (x - 2.0, y + dy as f32), (x + 2.0, y + dy as f32), Rgb([200, 40, 40]));
        }
    }
    save(&img, path)
}
