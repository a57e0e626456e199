//! One line chart to PNG bytes: plotters' bitmap backend into an RGB buffer, text with the
//! embedded DejaVu Sans (plotters' `ab_glyph` path: no system fontconfig/freetype), PNG
//! encoding with the `png` crate.

use std::sync::OnceLock;

use plotters::prelude::*;

use super::PlotError;

/// DejaVu Sans (see `assets/fonts/LICENSE-DejaVu.txt`), registered as plotters' `sans-serif`.
const FONT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));

/// Series colours (matplotlib's tab10), in order.
pub(super) const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A line (dense series: train loss, lr).
    Line,
    /// A line with a dot per point (sparse series: evals).
    LineDots,
}

/// One named series of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub mark: Mark,
    /// Index into the colour cycle.
    pub color: usize,
    /// Drawn in a pale tint (a noisy raw series under its smoothed line).
    pub faded: bool,
}

/// A chart: title, axis labels, series, and how to scale y.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
    /// Plot log10(y) (labels show y) when the data spans more than this ratio.
    pub log_y_above_ratio: Option<f64>,
    /// Shown in the middle when no series has a point.
    pub empty_note: String,
}

/// Registers the embedded font once per process.
pub(super) fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw("the embedded font does not parse".into()))
    }
}

/// `c` moved `amount` of the way to white.
fn tint(c: RGBColor, amount: f64) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * amount).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

pub(super) fn draw_err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// A tick label on an axis whose largest magnitude is `scale`: about four significant
/// digits, or scientific on an axis of tiny or huge values (so one axis never mixes styles).
pub fn tick_label(v: f64, scale: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-2..1e5).contains(&scale) {
        format!("{v:.1e}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// `lo..hi` widened so a constant series still gets a visible band, plus a 5% margin.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let m = (hi - lo) * 0.05;
        (lo - m, hi + m)
    } else {
        let m = if lo.abs() > 0.0 { lo.abs() * 0.1 } else { 1.0 };
        (lo - m, hi + m)
    }
}

/// Renders `chart` to PNG bytes of `size` pixels.
pub fn render_png(chart: &Chart, size: (u32, u32)) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let (w, h) = size;
    let points = || chart.series.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let empty = x0 > x1;
    let log_y = !empty
        && y0 > 0.0
        && chart.y_range.is_none()
        && chart.log_y_above_ratio.is_some_and(|r| y1 / y0 > r);
    let ty = |y: f64| if log_y { y.log10() } else { y };
    let (x0, x1) = if empty { (0.0, 1.0) } else { (x0, x1) };
    let (x0, x1) = if x1 > x0 {
        (x0, x1)
    } else {
        (x0 - 1.0, x1 + 1.0)
    };
    let (y0, y1) = match (chart.y_range, empty) {
        (Some(r), _) => r,
        (None, true) => (0.0, 1.0),
        (None, false) => padded(ty(y0), ty(y1)),
    };

    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 26))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        let y_scale = if log_y { 1.0 } else { y0.abs().max(y1.abs()) };
        let x_scale = x0.abs().max(x1.abs());
        let y_fmt = |v: &f64| {
            if log_y {
                tick_label(10f64.powf(*v), 10f64.powf(*v).abs())
            } else {
                tick_label(*v, y_scale)
            }
        };
        let x_fmt = |v: &f64| tick_label(*v, x_scale);
        let y_desc = if log_y {
            format!("{} (log scale)", chart.y_label)
        } else {
            chart.y_label.clone()
        };
        ctx.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;
        let mut labelled = false;
        for s in chart.series.iter().filter(|s| !s.points.is_empty()) {
            let base = COLORS[s.color % COLORS.len()];
            let color = if s.faded { tint(base, 0.6) } else { base };
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, ty(y))).collect();
            ctx.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
                });
            labelled = true;
            if s.mark == Mark::LineDots {
                ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(draw_err)?;
            }
        }
        if labelled {
            ctx.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .label_font(("sans-serif", 16))
                .draw()
                .map_err(draw_err)?;
        } else {
            let style =
                TextStyle::from(("sans-serif", 22).into_font()).color(&RGBColor(90, 90, 90));
            root.draw_text(
                &chart.empty_note,
                &style,
                (w as i32 / 2 - 180, h as i32 / 2),
            )
            .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    encode_png(&buf, size)
}

pub(super) fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, PlotError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(draw_err)?;
    writer.write_image_data(rgb).map_err(draw_err)?;
    writer.finish().map_err(draw_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.0, 5.0), "0");
        assert_eq!(tick_label(2.5, 5.0), "2.5");
        assert_eq!(tick_label(1234.0, 2000.0), "1234");
        assert_eq!(tick_label(0.0123456, 0.05), "0.01235");
        // An lr axis up to 3e-3: every tick scientific, not `0.001` beside `5.0e-4`.
        assert_eq!(tick_label(5e-4, 3e-3), "5.0e-4");
        assert_eq!(tick_label(1e-3, 3e-3), "1.0e-3");
        assert_eq!(tick_label(250_000.0, 300_000.0), "2.5e5");
    }
}
