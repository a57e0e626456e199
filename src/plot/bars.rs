//! A bar chart to PNG, for histograms (the pass-rate histogram of `quorum
//! train filter`): bars on a numeric x axis, each in the highlight colour or
//! grey, a count above each bar, and an optional shaded x span with its
//! edges drawn (the band a problem must lie in to be kept). Same backend,
//! font and PNG encoding as [`super::render_png`].

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{draw_err, encode_png, ensure_font, COLORS};
use super::{tick_label, PlotError};

/// Bars outside the highlight.
const GREY: RGBColor = RGBColor(160, 160, 160);

/// One bar, centred at `x`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub height: f64,
    /// Drawn in the highlight colour (else grey).
    pub highlighted: bool,
}

/// A shaded x span, e.g. the filter band.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub lo: f64,
    pub hi: f64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub bars: Vec<Bar>,
    /// Width of every bar in x units.
    pub bar_width: f64,
    pub x_range: (f64, f64),
    /// Legend names of the highlighted and the grey bars.
    pub highlight_name: String,
    pub other_name: String,
    pub span: Option<Span>,
}

/// Renders `chart` to PNG bytes of `size` pixels.
pub fn render_bars_png(chart: &BarChart, size: (u32, u32)) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let (w, h) = size;
    let top = chart
        .bars
        .iter()
        .map(|b| b.height)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.3;
    let (x0, x1) = chart.x_range;
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 26))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, 0.0..top)
            .map_err(draw_err)?;
        let x_scale = x0.abs().max(x1.abs());
        let x_fmt = |v: &f64| tick_label(*v, x_scale);
        let y_fmt = |v: &f64| tick_label(*v, top);
        ctx.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_err)?;

        let band_color = COLORS[2];
        if let Some(span) = &chart.span {
            let shade = band_color.mix(0.12).filled();
            ctx.draw_series(std::iter::once(Rectangle::new(
                [(span.lo, 0.0), (span.hi, top)],
                shade,
            )))
            .map_err(draw_err)?
            .label(span.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 22, y + 6)], shade));
            for edge in [span.lo, span.hi] {
                ctx.draw_series(DashedLineSeries::new(
                    [(edge, 0.0), (edge, top)],
                    8,
                    5,
                    band_color.stroke_width(2),
                ))
                .map_err(draw_err)?;
            }
        }

        let half = chart.bar_width / 2.0;
        for (highlighted, color, name) in [
            (true, COLORS[0], &chart.highlight_name),
            (false, GREY, &chart.other_name),
        ] {
            let bars: Vec<&Bar> = chart
                .bars
                .iter()
                .filter(|b| b.highlighted == highlighted)
                .collect();
            if bars.is_empty() {
                continue;
            }
            ctx.draw_series(bars.iter().map(|b| {
                Rectangle::new([(b.x - half, 0.0), (b.x + half, b.height)], color.filled())
            }))
            .map_err(draw_err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 22, y + 6)], color.filled()));
        }
        let count_style = TextStyle::from(("sans-serif", 14).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        ctx.draw_series(chart.bars.iter().map(|b| {
            Text::new(
                format!("{}", b.height),
                (b.x, b.height + top * 0.01),
                count_style.clone(),
            )
        }))
        .map_err(draw_err)?;
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperMiddle)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    encode_png(&buf, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_near(buf: &[u8], rgb: (u8, u8, u8)) -> usize {
        buf.chunks_exact(3)
            .filter(|p| {
                p[0].abs_diff(rgb.0) < 10 && p[1].abs_diff(rgb.1) < 10 && p[2].abs_diff(rgb.2) < 10
            })
            .count()
    }

    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn chart(bars: Vec<Bar>, span: Option<Span>) -> BarChart {
        BarChart {
            title: "Pass rates".into(),
            x_label: "pass rate".into(),
            y_label: "problems".into(),
            bars,
            bar_width: 0.2,
            x_range: (-0.125, 1.125),
            highlight_name: "kept".into(),
            other_name: "dropped".into(),
            span,
        }
    }

    #[test]
    fn highlighted_and_grey_bars_are_drawn() {
        let bars = (0..=4)
            .map(|c| Bar {
                x: c as f64 / 4.0,
                height: [3.0, 1.0, 2.0, 0.0, 5.0][c],
                highlighted: (1..=3).contains(&c),
            })
            .collect();
        let span = Span {
            lo: 0.2,
            hi: 0.8,
            name: "band".into(),
        };
        let png_bytes = render_bars_png(&chart(bars, Some(span)), (600, 400)).unwrap();
        let (w, h, buf) = decode(&png_bytes);
        assert_eq!((w, h), (600, 400));
        assert!(count_near(&buf, (31, 119, 180)) > 500, "blue kept bars");
        assert!(count_near(&buf, (160, 160, 160)) > 1500, "grey bars");
        // Without highlighted bars or a span: only grey.
        let grey_only = vec![Bar {
            x: 0.0,
            height: 2.0,
            highlighted: false,
        }];
        let (_, _, buf) = decode(&render_bars_png(&chart(grey_only, None), (600, 400)).unwrap());
        assert_eq!(count_near(&buf, (31, 119, 180)), 0);
        assert!(count_near(&buf, (160, 160, 160)) > 500);
    }
}
