//! Inline SVG charts for the HTML report, drawn here as text: horizontal
//! bars (the funnel, reasons by code) and line charts (the load over time).
//! No script and nothing fetched: each chart is one `<svg>` element with
//! explicit width and height, every label escaped.

use std::fmt::Write as _;

use crate::progress::thousands;

/// One horizontal bar.
pub struct Bar {
    pub label: String,
    pub value: u64,
    /// Text after the value (e.g. what was dropped at this step).
    pub note: String,
    pub color: &'static str,
}

const BAR_H: u32 = 22;
const GAP: u32 = 6;
const LABEL_W: u32 = 190;
const BARS_W: u32 = 360;
const WIDTH: u32 = 820;

/// Horizontal bars scaled to the largest value, each labelled with its count.
pub fn bars(title: &str, rows: &[Bar]) -> String {
    let max = rows.iter().map(|r| r.value).max().unwrap_or(0).max(1);
    let height = rows.len() as u32 * (BAR_H + GAP) + GAP;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}"><title>{}</title>"#,
        escape(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = GAP + i as u32 * (BAR_H + GAP);
        let w = if r.value == 0 {
            0.0
        } else {
            (r.value as f64 / max as f64 * BARS_W as f64).max(2.0)
        };
        let ty = y + BAR_H / 2 + 5;
        let _ = write!(
            s,
            r#"<text x="{}" y="{ty}" text-anchor="end" class="lbl">{}</text><rect x="{LABEL_W}" y="{y}" width="{w:.1}" height="{BAR_H}" rx="3" fill="{}"/><text x="{:.1}" y="{ty}" class="val">{}{}</text>"#,
            LABEL_W - 8,
            escape(&r.label),
            r.color,
            LABEL_W as f64 + w + 6.0,
            thousands(r.value),
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" {}", escape(&r.note))
            }
        );
    }
    s.push_str("</svg>");
    s
}

/// One line of a line chart: (x, y) points.
pub struct Line {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
}

const PLOT_X: f64 = 70.0;
const PLOT_Y: f64 = 14.0;
const PLOT_W: f64 = 700.0;
const PLOT_H: f64 = 170.0;

/// Lines over a shared x axis (seconds) and y axis starting at zero, with a
/// legend, gridlines and tick labels.
pub fn lines(title: &str, y_unit: &str, series: &[Line]) -> String {
    let x_max = series
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let y_max = nice_ceiling(
        series
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max),
    );
    let height = (PLOT_Y + PLOT_H + 50.0) as u32;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}"><title>{}</title>"#,
        escape(title)
    );
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        let y = PLOT_Y + PLOT_H - PLOT_H * i as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{PLOT_X}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            PLOT_X + PLOT_W,
            PLOT_X - 6.0,
            y + 4.0,
            thousands(v.round() as u64)
        );
    }
    for i in 0..=5 {
        let v = x_max * i as f64 / 5.0;
        let x = PLOT_X + PLOT_W * i as f64 / 5.0;
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
            PLOT_Y + PLOT_H + 16.0,
            duration_label(v)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
        PLOT_X - 60.0,
        PLOT_Y - 2.0,
        escape(y_unit)
    );
    let mut legend_x = PLOT_X;
    for l in series {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    PLOT_X + x / x_max * PLOT_W,
                    PLOT_Y + PLOT_H - y / y_max * PLOT_H
                )
            })
            .collect();
        if pts.len() == 1 {
            let _ = write!(
                s,
                r#"<circle cx="{}" r="3" fill="{}"/>"#,
                pts[0].replacen(',', "\" cy=\"", 1),
                l.color
            );
        } else if !pts.is_empty() {
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                l.color,
                pts.join(" ")
            );
        }
        let ly = PLOT_Y + PLOT_H + 38.0;
        let _ = write!(
            s,
            r#"<rect x="{legend_x:.1}" y="{:.1}" width="14" height="4" fill="{}"/><text x="{:.1}" y="{ly:.1}" class="lbl">{}</text>"#,
            ly - 5.0,
            l.color,
            legend_x + 20.0,
            escape(&l.name)
        );
        legend_x += 30.0 + 8.0 * l.name.chars().count() as f64;
    }
    s.push_str("</svg>");
    s
}

/// A round number at or above `v` (1, 2 or 5 times a power of ten), so the
/// axis ticks are readable; 1 for nothing.
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn duration_label(secs: f64) -> String {
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn labels_are_escaped_and_sizes_explicit() {
        let svg = bars(
            "t<",
            &[Bar {
                label: "a&b".into(),
                value: 1234,
                note: String::new(),
                color: "#c00",
            }],
        );
        assert!(svg.contains("a&amp;b") && svg.contains("t&lt;"));
        assert!(svg.contains("1,234"));
        assert!(svg.contains(r#"width="820" height="34""#));
        let l = lines(
            "x",
            "items/s",
            &[Line {
                name: "n".into(),
                color: "#00c",
                points: vec![(1.0, 5.0), (2.0, 7.0)],
            }],
        );
        assert!(l.contains("<polyline"));
        assert_eq!(duration_label(3725.0), "1h02m");
    }
}
