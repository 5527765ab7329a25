//! PNG outputs: image grids (pixels), and plots drawn with `plotters` (axes with ticks and
//! values, titles, legends): 2-D sample densities beside their reference, loss curves with the
//! learning rate, learned score fields, MCMC acceptance against sigma. Labels use the font in
//! `assets/fonts` (bundled, so no system font library is needed).

use crate::error::{Error, Result};
use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
const SANS: &str = "sans-serif";

fn save(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::io(format!("{}: cannot encode PNG", path.display()), e))?;
    super::write_atomic(path, &bytes)
}

/// A w x h plot drawn by `draw` onto a white area, saved as a PNG.
fn register_font() {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        let parsed = plotters::style::register_font(SANS, FontStyle::Normal, FONT).is_ok();
        assert!(parsed, "the bundled font parses");
    });
}

fn render(path: &Path, (w, h): (u32, u32), draw: impl FnOnce(&Area) -> Drawn) -> Result<()> {
    register_font();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root)
            .and_then(|_| root.present().map_err(|e| e.into()))
            .map_err(|e| Error::Invalid(format!("{}: cannot draw the plot ({e})", path.display())))?;
    }
    save(&RgbImage::from_raw(w, h, buf).expect("a w x h x 3 buffer"), path)
}

/// `text` in the bundled font, light on a dark strip of w x h pixels, as RGBA8 rows (an
/// application's overlay: the window example's step count and noise level).
pub fn text_rgba(text: &str, (w, h): (u32, u32)) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![16u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let style = TextStyle::from((SANS, (h as f64 * 0.7).max(8.0))).color(&RGBColor(235, 235, 235));
        root.draw_text(text, &style, (6, (h as i32 - (h as f64 * 0.7) as i32) / 2))
            .and_then(|_| root.present())
            .map_err(|e| Error::Invalid(format!("cannot draw the text '{text}' ({e})")))?;
    }
    Ok(buf.chunks(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect())
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

/// Several titled 2-D point sets side by side (samples beside their data or ground truth, a
/// guidance sweep), one density panel each over [-lim, lim]^2 with axes.
pub fn scatter_row(path: &Path, sets: &[(String, Vec<f32>)], lim: f32) -> Result<()> {
    let n = sets.len().max(1) as u32;
    render(path, (n * 400, 430), |root| {
        for (panel, (title, xy)) in root.split_evenly((1, n as usize)).iter().zip(sets) {
            density_panel(panel, title, xy, lim)?;
        }
        Ok(())
    })
}

/// The colour of a density bin holding `c` of at most `max` points (log scale, light to dark blue).
fn density_colour(c: u32, max: u32) -> RGBColor {
    let t = (1.0 + c as f32).ln() / (1.0 + max.max(1) as f32).ln();
    let v = |a: f32, b: f32| (a + (b - a) * t) as u8;
    RGBColor(v(170.0, 10.0), v(200.0, 20.0), v(240.0, 90.0))
}

/// Points as a log-density histogram (one bin per two pixels) in a chart over [-lim, lim]^2.
fn density_panel(area: &Area, title: &str, xy: &[f32], lim: f32) -> Drawn {
    let lim = lim as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (SANS, 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(36)
        .build_cartesian_2d(-lim..lim, -lim..lim)?;
    chart.configure_mesh().disable_mesh().label_style((SANS, 12)).draw()?;
    let (pw, _) = chart.plotting_area().dim_in_pixel();
    let bins = (pw as usize / 2).max(8);
    let cell = 2.0 * lim / bins as f64;
    let mut hist = vec![0u32; bins * bins];
    for p in xy.chunks_exact(2) {
        let (fx, fy) = ((p[0] as f64 + lim) / cell, (p[1] as f64 + lim) / cell);
        if fx >= 0.0 && fy >= 0.0 && (fx as usize) < bins && (fy as usize) < bins {
            hist[fy as usize * bins + fx as usize] += 1;
        }
    }
    let max = hist.iter().copied().max().unwrap_or(0);
    let bin = |i: usize| (-lim + (i % bins) as f64 * cell, -lim + (i / bins) as f64 * cell);
    chart.draw_series(hist.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &c)| {
        let (x, y) = bin(i);
        Rectangle::new([(x, y), (x + cell, y + cell)], density_colour(c, max).filled())
    }))?;
    let axis = RGBColor(200, 200, 200);
    chart.draw_series([PathElement::new(vec![(-lim, 0.0), (lim, 0.0)], axis)])?;
    chart.draw_series([PathElement::new(vec![(0.0, -lim), (0.0, lim)], axis)])?;
    Ok(())
}

/// A tick label of a value shown on a log10 axis: the value itself, to 3 significant figures.
fn pow10_label(v: &f64) -> String {
    let x = 10f64.powf(*v);
    if (1e-3..1e4).contains(&x) {
        format!("{x:.*}", (2 - x.log10().floor() as i32).max(0) as usize)
    } else {
        format!("{x:.2e}")
    }
}

/// Loss against step (log scale) with the learning rate on a second axis, 800 x 450.
pub fn loss_curve(path: &Path, points: &[(usize, f64)], lr: &dyn Fn(usize) -> f64) -> Result<()> {
    let pts: Vec<(f64, f64)> =
        points.iter().filter(|p| p.1.is_finite() && p.1 > 0.0).map(|&(s, l)| (s as f64, l.log10())).collect();
    let x0 = pts.first().map_or(0.0, |p| p.0);
    let x1 = pts.last().map_or(1.0, |p| p.0).max(x0 + 1.0);
    let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(0.01);
    let (lo, hi) = if pts.is_empty() { (-1.0, 0.0) } else { (lo - pad, hi + pad) };
    let lrs: Vec<(f64, f64)> = points.iter().map(|&(s, _)| (s as f64, lr(s))).collect();
    let lr_max = lrs.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-12) * 1.1;
    render(path, (800, 450), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("training loss", (SANS, 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .right_y_label_area_size(64)
            .build_cartesian_2d(x0..x1, lo..hi)?
            .set_secondary_coord(x0..x1, 0.0..lr_max);
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("step")
            .y_desc("loss (log scale)")
            .x_label_formatter(&|v| format!("{}", v.round() as i64))
            .y_label_formatter(&pow10_label)
            .label_style((SANS, 12))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("learning rate")
            .y_label_formatter(&|v| format!("{v:.1e}"))
            .label_style((SANS, 12))
            .draw()?;
        let blue = RGBColor(30, 80, 200);
        let red = RGBColor(200, 60, 40);
        chart
            .draw_series(LineSeries::new(pts, blue.stroke_width(2)))?
            .label("loss")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
        chart
            .draw_secondary_series(LineSeries::new(lrs, red))?
            .label("learning rate (right axis)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
        chart
            .configure_series_labels()
            .label_font((SANS, 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// A colour ramp from dark blue (t = 0) through teal to yellow (t = 1).
fn ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let stops =
        [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];
    let f = t * (stops.len() - 1) as f64;
    let i = (f.floor() as usize).min(stops.len() - 2);
    let r = f - i as f64;
    let c = |k: usize| (stops[i][k] + (stops[i + 1][k] - stops[i][k]) * r) as u8;
    RGBColor(c(0), c(1), c(2))
}

/// A learned 2-D field beside samples over [-lim, lim]^2 each: on the left a heat map of
/// `heat` (k x k values, row-major from the bottom-left corner; the scale runs from the 30th
/// percentile, below which all is dark, to the maximum) under the score field's arrows (x, y,
/// sx, sy, in data units; the longest arrow one grid cell long); on the right the samples'
/// density.
pub fn field(path: &Path, heat: &[f64], k: usize, arrows: &[[f32; 4]], lim: f32, samples: &[f32]) -> Result<()> {
    let mut sorted: Vec<f64> = heat.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| sorted.get(((sorted.len().max(1) - 1) as f64 * f) as usize).copied().unwrap_or(0.0);
    let (lo, hi) = (q(0.3), q(1.0).max(q(0.3) + 1e-12));
    let l = lim as f64;
    render(path, (1000, 520), |root| {
        let (left, right) = root.split_horizontally(500);
        let mut chart = ChartBuilder::on(&left)
            .caption("-U (log-density up to a constant) and the score", (SANS, 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(36)
            .build_cartesian_2d(-l..l, -l..l)?;
        chart.configure_mesh().disable_mesh().label_style((SANS, 12)).draw()?;
        let c = 2.0 * l / k as f64;
        chart.draw_series(heat.iter().enumerate().map(|(i, &v)| {
            let (x, y) = (-l + (i % k) as f64 * c, -l + (i / k) as f64 * c);
            let colour = if v.is_finite() { ramp((v - lo) / (hi - lo)) } else { RED };
            Rectangle::new([(x, y), (x + c, y + c)], colour.filled())
        }))?;
        let longest = arrows.iter().map(|a| (a[2] * a[2] + a[3] * a[3]).sqrt()).fold(0f32, f32::max).max(1e-12);
        let cell = 2.0 * l / (arrows.len() as f64).sqrt().max(1.0);
        chart.draw_series(arrows.iter().flat_map(|a| {
            let (x0, y0) = (a[0] as f64, a[1] as f64);
            let (dx, dy) = (a[2] as f64 / longest as f64 * cell, a[3] as f64 / longest as f64 * cell);
            let tip = (x0 + dx, y0 + dy);
            // the head: two short strokes back from the tip
            let (ux, uy) = (-dx * 0.3, -dy * 0.3);
            [
                vec![(x0, y0), tip],
                vec![tip, (tip.0 + ux - uy * 0.5, tip.1 + uy + ux * 0.5)],
                vec![tip, (tip.0 + ux + uy * 0.5, tip.1 + uy - ux * 0.5)],
            ]
            .map(|p| PathElement::new(p, WHITE))
        }))?;
        density_panel(&right, &format!("samples (n = {})", samples.len() / 2), samples, lim)
    })
}

/// Acceptance (0 to 1) against sigma (log scale), one point per level joined in order, 800 x 450.
pub fn acceptance(path: &Path, levels: &[(f64, f64)]) -> Result<()> {
    let sig = || levels.iter().map(|l| l.0.max(1e-30));
    let lo = sig().fold(f64::INFINITY, f64::min).min(1.0);
    let hi = sig().fold(0.0, f64::max).max(lo * 1.01);
    render(path, (800, 450), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("MCMC acceptance per noise level", (SANS, 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d((lo / 1.1..hi * 1.1).log_scale(), 0.0..1.0)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_desc("sigma (log scale)")
            .y_desc("fraction of proposals accepted")
            .label_style((SANS, 12))
            .draw()?;
        let pts: Vec<(f64, f64)> = levels.iter().map(|l| (l.0.max(1e-30), l.1.clamp(0.0, 1.0))).collect();
        let blue = RGBColor(30, 80, 200);
        chart.draw_series(LineSeries::new(pts.clone(), blue))?;
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, RGBColor(200, 40, 40).filled())))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> RgbImage {
        image::open(path).unwrap().to_rgb8()
    }

    /// Pixels in the box that are not white.
    fn inked(img: &RgbImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> usize {
        (y0..y1).flat_map(|y| (x0..x1).map(move |x| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0 != [255; 3]).count()
    }

    #[test]
    fn plots_have_labelled_axes_and_draw_their_data_where_it_is() {
        let dir = std::env::temp_dir().join(format!("scoregen-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Density: points only in the upper-right quadrant ink only that quadrant of the plot.
        let p = dir.join("s.png");
        let xy: Vec<f32> =
            (0..2000).flat_map(|i| [2.0 + (i % 40) as f32 * 0.05, 2.0 + (i / 40) as f32 * 0.05]).collect();
        scatter_row(&p, &[("a".into(), xy.clone()), ("b".into(), xy)], 5.0).unwrap();
        let img = read(&p);
        assert_eq!(img.dimensions(), (800, 430));
        let blue = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    let c = img.get_pixel(x, y).0;
                    c[2] as i32 > c[0] as i32 + 40
                })
                .count()
        };
        // Panel a's plot spans about x 44..392, y 32..394: upper right inked, lower left not.
        assert!(blue(230, 390, 40, 200) > 1000, "{}", blue(230, 390, 40, 200));
        assert_eq!(blue(50, 210, 220, 390), 0, "{}", p.display());
        // Tick labels: ink in the left label strip and under the plot.
        assert!(inked(&img, (0, 40, 40, 390)) > 100 && inked(&img, (50, 400, 390, 430)) > 100);
        // Loss curve: the y labels (left) and learning-rate labels (right) are drawn; a rising and a
        // falling loss make different pictures.
        let q = dir.join("l.png");
        let falling: Vec<(usize, f64)> = (1..50).map(|s| (s * 10, 10.0 / s as f64)).collect();
        loss_curve(&q, &falling, &|s| 1e-3 * s as f64).unwrap();
        let a = read(&q);
        assert!(inked(&a, (0, 50, 60, 400)) > 200 && inked(&a, (740, 50, 800, 400)) > 200);
        let rising: Vec<(usize, f64)> = (1..50).map(|s| (s * 10, s as f64)).collect();
        loss_curve(&q, &rising, &|_| 1e-3).unwrap();
        assert_ne!(read(&q), a);
        // Acceptance: a point at acceptance 1 is drawn near the top, none near the bottom.
        let r = dir.join("a.png");
        acceptance(&r, &[(0.01, 1.0), (0.1, 1.0), (1.0, 1.0)]).unwrap();
        let img = read(&r);
        let red = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (60..790).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0 == [200, 40, 40])
                .count()
        };
        assert!(red(25, 50) > 20 && red(300, 400) == 0, "{} {}", red(25, 50), red(300, 400));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
