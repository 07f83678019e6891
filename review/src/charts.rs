//! The page's inline SVG charts: loss per epoch, the ROC curve, the calibration curve and a
//! regression's residual plot. No script, no external reference: each chart is plain SVG
//! markup sized by its `viewBox`.

use airlock_schemas::{Calibration, CalibrationBin, EpochMetrics, ResidualBin, RocPoint};

use crate::format::fmt4;
use crate::html::{Fixed, Html, html};

/// Plot geometry in SVG user units; the SVG scales to the page width.
#[derive(Debug, Clone, Copy)]
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    fn x0(&self) -> f64 {
        self.left
    }
    fn x1(&self) -> f64 {
        self.width - self.right
    }
    fn y0(&self) -> f64 {
        self.height - self.bottom
    }
    fn y1(&self) -> f64 {
        self.top
    }
    /// Map `v` in `[lo, hi]` to x; values outside are clamped so nothing draws off-chart.
    fn x(&self, v: f64, lo: f64, hi: f64) -> f64 {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.x0() + t.clamp(0.0, 1.0) * (self.x1() - self.x0())
    }
    fn y(&self, v: f64, lo: f64, hi: f64) -> f64 {
        let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.y0() - t.clamp(0.0, 1.0) * (self.y0() - self.y1())
    }
}

/// `{v:.1}`: how every coordinate is written.
fn c1(v: f64) -> Fixed {
    Fixed(v, 1)
}

/// A "nice" tick step (1, 2, 2.5 or 5 × 10^k) giving about `target` ticks up to `max`.
pub(crate) fn nice_step(max: f64, target: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 0.2;
    }
    let raw = max / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Just enough decimals to tell ticks apart: one per power of ten below 1, plus one for
/// 2.5-style steps.
pub(crate) fn tick_label(v: f64, step: f64) -> String {
    let exp = step.log10().floor();
    let mantissa = step / 10f64.powf(exp);
    let mut decimals = (-exp).max(0.0) as usize;
    if (mantissa - mantissa.round()).abs() > 1e-6 {
        decimals += 1;
    }
    format!("{v:.decimals$}")
}

/// A polyline's `points`: `x,y x,y ...`.
fn point_list(points: &[(f64, f64)]) -> Html {
    let mut h = Html::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        if i > 0 {
            h.push_static(" ");
        }
        html!(h, c1(x), ",", c1(y));
    }
    h
}

/// The `<svg>` start tag, its accessible title and the visible title.
fn open(h: &mut Html, id: &'static str, f: &Frame, title: &Html) {
    html!(
        h,
        "<svg id=\"",
        id,
        "\" class=\"chart\" viewBox=\"0 0 ",
        f.width,
        " ",
        f.height,
        "\" role=\"img\" aria-labelledby=\"",
        id,
        "-title\">"
    );
    html!(h, "<title id=\"", id, "-title\">", title, "</title>");
    html!(
        h,
        "<text class=\"chart-title\" x=\"",
        f.x0(),
        "\" y=\"22\">",
        title,
        "</text>"
    );
}

/// A horizontal grid line at `y` with its label on the left.
fn grid_line(h: &mut Html, f: &Frame, y: f64, label: &Html) {
    html!(
        h,
        "<line class=\"grid\" x1=\"",
        c1(f.x0()),
        "\" y1=\"",
        c1(y),
        "\" x2=\"",
        c1(f.x1()),
        "\" y2=\"",
        c1(y),
        "\"/><text class=\"tick\" x=\"",
        c1(f.x0() - 6.0),
        "\" y=\"",
        c1(y + 4.0),
        "\" text-anchor=\"end\">",
        label,
        "</text>"
    );
}

/// A tick mark at `x` on the horizontal axis with its label below.
fn x_tick(h: &mut Html, f: &Frame, x: f64, label: &Html) {
    html!(
        h,
        "<line class=\"tickmark\" x1=\"",
        c1(x),
        "\" y1=\"",
        c1(f.y0()),
        "\" x2=\"",
        c1(x),
        "\" y2=\"",
        c1(f.y0() + 5.0),
        "\"/><text class=\"tick\" x=\"",
        c1(x),
        "\" y=\"",
        c1(f.y0() + 18.0),
        "\" text-anchor=\"middle\">",
        label,
        "</text>"
    );
}

/// A note in the middle of an empty chart, `dy` below the centre.
fn empty_note(h: &mut Html, f: &Frame, dy: f64, note: &'static str) {
    html!(
        h,
        "<text class=\"empty\" x=\"",
        c1((f.x0() + f.x1()) / 2.0),
        "\" y=\"",
        c1((f.y0() + f.y1()) / 2.0 + dy),
        "\" text-anchor=\"middle\">",
        note,
        "</text>"
    );
}

fn axes(h: &mut Html, f: &Frame, xlabel: &'static str, ylabel: &'static str) {
    let (x0, x1, y0, y1) = (c1(f.x0()), c1(f.x1()), c1(f.y0()), c1(f.y1()));
    html!(
        h,
        "<line class=\"axis\" x1=\"",
        x0,
        "\" y1=\"",
        y0,
        "\" x2=\"",
        x1,
        "\" y2=\"",
        y0,
        "\"/><line class=\"axis\" x1=\"",
        x0,
        "\" y1=\"",
        y0,
        "\" x2=\"",
        x0,
        "\" y2=\"",
        y1,
        "\"/>"
    );
    html!(
        h,
        "<text class=\"axis-label\" x=\"",
        c1((f.x0() + f.x1()) / 2.0),
        "\" y=\"",
        c1(f.height - 8.0),
        "\" text-anchor=\"middle\">",
        xlabel,
        "</text>"
    );
    let (cx, cy) = (c1(14.0), c1((f.y0() + f.y1()) / 2.0));
    html!(
        h,
        "<text class=\"axis-label\" x=\"",
        cx,
        "\" y=\"",
        cy,
        "\" text-anchor=\"middle\" transform=\"rotate(-90 ",
        cx,
        " ",
        cy,
        ")\">",
        ylabel,
        "</text>"
    );
}

/// Train and validation loss per epoch: two polylines, one circle per finite point.
pub(crate) fn loss_chart(epochs: &[EpochMetrics]) -> Html {
    let f = Frame {
        width: 640.0,
        height: 320.0,
        left: 60.0,
        right: 20.0,
        top: 44.0,
        bottom: 48.0,
    };
    let mut h = Html::new();
    open(
        &mut h,
        "loss-chart",
        &f,
        &Html::raw_static("Training and validation loss per epoch"),
    );
    let finite_max = epochs
        .iter()
        .flat_map(|e| [e.train_loss, e.validation_loss])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let step = nice_step(finite_max, 5.0);
    let ymax = if finite_max > 0.0 {
        (finite_max / step).ceil() * step
    } else {
        1.0
    };
    let mut k = 0u32;
    loop {
        let v = f64::from(k) * step;
        if v > ymax + step * 1e-9 {
            break;
        }
        grid_line(
            &mut h,
            &f,
            f.y(v, 0.0, ymax),
            &Html::text(&tick_label(v, step)),
        );
        k += 1;
    }
    let n = epochs.len();
    let xi = |i: usize| {
        if n <= 1 {
            f.x(0.5, 0.0, 1.0)
        } else {
            f.x(i as f64, 0.0, (n - 1) as f64)
        }
    };
    epoch_ticks(&mut h, &f, epochs, &xi);
    axes(&mut h, &f, "epoch", "loss");
    if epochs.is_empty() {
        empty_note(&mut h, &f, 0.0, "No per-epoch figures were recorded.");
    }
    loss_series(&mut h, &f, epochs, ymax, &xi);
    // Legend, top right.
    let lx = f.x1() - 210.0;
    for (i, (series, label)) in [
        ("train", "training loss"),
        ("validation", "validation loss"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = lx + i as f64 * 110.0;
        html!(
            h,
            "<line class=\"legend ",
            series,
            "\" x1=\"",
            c1(x),
            "\" y1=\"18\" x2=\"",
            c1(x + 18.0),
            "\" y2=\"18\"/><text class=\"legend-label\" x=\"",
            c1(x + 22.0),
            "\" y=\"22\">",
            label,
            "</text>"
        );
    }
    h.push_static("</svg>");
    h
}

/// X ticks: every epoch when few, about ten otherwise.
fn epoch_ticks(h: &mut Html, f: &Frame, epochs: &[EpochMetrics], xi: &dyn Fn(usize) -> f64) {
    let n = epochs.len();
    let every = if n <= 15 { 1 } else { n.div_ceil(10) };
    let last_regular = (n.saturating_sub(1) / every) * every;
    for (i, e) in epochs.iter().enumerate() {
        // The last epoch gets a tick too, unless it would crowd the previous label.
        let last = i + 1 == n && 2 * (i - last_regular) >= every;
        if i.is_multiple_of(every) || last {
            let mut label = Html::new();
            label.push(e.epoch);
            x_tick(h, f, xi(i), &label);
        }
    }
}

/// The two loss lines with one circle (and tooltip) per finite point.
fn loss_series(
    h: &mut Html,
    f: &Frame,
    epochs: &[EpochMetrics],
    ymax: f64,
    xi: &dyn Fn(usize) -> f64,
) {
    for (series, label, get) in [
        (
            "train",
            "training",
            (|e: &EpochMetrics| e.train_loss) as fn(&EpochMetrics) -> f64,
        ),
        ("validation", "validation", |e: &EpochMetrics| {
            e.validation_loss
        }),
    ] {
        let pts: Vec<(usize, f64, f64, f64)> = epochs
            .iter()
            .enumerate()
            .filter(|(_, e)| get(e).is_finite())
            .map(|(i, e)| (e.epoch, get(e), xi(i), f.y(get(e), 0.0, ymax)))
            .collect();
        let xy: Vec<(f64, f64)> = pts.iter().map(|&(_, _, x, y)| (x, y)).collect();
        html!(
            h,
            "<polyline class=\"series ",
            series,
            "\" data-series=\"",
            series,
            "\" points=\"",
            point_list(&xy),
            "\"/>"
        );
        for (epoch, v, x, y) in pts {
            html!(
                h,
                "<circle class=\"pt ",
                series,
                "\" cx=\"",
                c1(x),
                "\" cy=\"",
                c1(y),
                "\" r=\"3\"><title>epoch ",
                epoch,
                ": ",
                label,
                " loss ",
                Html::text(&fmt4(v)),
                "</title></circle>"
            );
        }
    }
}

/// The holdout ROC curve with the chance diagonal; the AUC is in the title.
pub(crate) fn roc_chart(curve: &[RocPoint], auc: f64) -> Html {
    let f = Frame {
        width: 420.0,
        height: 400.0,
        left: 56.0,
        right: 20.0,
        top: 44.0,
        bottom: 48.0,
    };
    let mut h = Html::new();
    let title = Html::text(&format!("ROC curve (AUC {})", fmt4(auc)));
    open(&mut h, "roc-chart", &f, &title);
    for k in 0..=5 {
        let v = f64::from(k) * 0.2;
        let mut label = Html::new();
        label.push(Fixed(v, 1));
        grid_line(&mut h, &f, f.y(v, 0.0, 1.0), &label);
        x_tick(&mut h, &f, f.x(v, 0.0, 1.0), &label);
    }
    axes(&mut h, &f, "false positive rate", "true positive rate");
    html!(
        h,
        "<line class=\"diagonal\" x1=\"",
        c1(f.x0()),
        "\" y1=\"",
        c1(f.y0()),
        "\" x2=\"",
        c1(f.x1()),
        "\" y2=\"",
        c1(f.y1()),
        "\"><title>chance (AUC 0.5)</title></line>"
    );
    let pts: Vec<&RocPoint> = curve
        .iter()
        .filter(|p| p.fpr.is_finite() && p.tpr.is_finite())
        .collect();
    if pts.is_empty() {
        empty_note(&mut h, &f, -20.0, "No ROC curve was recorded.");
    } else {
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (f.x(p.fpr, 0.0, 1.0), f.y(p.tpr, 0.0, 1.0)))
            .collect();
        html!(
            h,
            "<polyline class=\"series roc\" data-series=\"roc\" points=\"",
            point_list(&xy),
            "\"/>"
        );
        for (p, &(x, y)) in pts.iter().zip(&xy) {
            html!(
                h,
                "<circle class=\"pt roc\" cx=\"",
                c1(x),
                "\" cy=\"",
                c1(y),
                "\" r=\"1.8\"><title>false positives ",
                Html::text(&fmt4(p.fpr)),
                " / true positives ",
                Html::text(&fmt4(p.tpr)),
                "</title></circle>"
            );
        }
    }
    h.push_static("</svg>");
    h
}

/// The calibration (reliability) curve: mean predicted probability against observed
/// positive rate per bin, with the diagonal of perfect calibration. Bins with no rows (or
/// without finite figures) are omitted; the ECE is in the title.
pub(crate) fn calibration_chart(c: &Calibration) -> Html {
    let f = Frame {
        width: 420.0,
        height: 400.0,
        left: 56.0,
        right: 20.0,
        top: 44.0,
        bottom: 48.0,
    };
    let mut h = Html::new();
    let title = Html::text(&format!(
        "Calibration curve (ECE {})",
        fmt4(c.expected_calibration_error)
    ));
    open(&mut h, "calibration-chart", &f, &title);
    for k in 0..=5 {
        let v = f64::from(k) * 0.2;
        let mut label = Html::new();
        label.push(Fixed(v, 1));
        grid_line(&mut h, &f, f.y(v, 0.0, 1.0), &label);
        x_tick(&mut h, &f, f.x(v, 0.0, 1.0), &label);
    }
    axes(
        &mut h,
        &f,
        "mean predicted probability",
        "observed positive rate",
    );
    html!(
        h,
        "<line class=\"diagonal\" x1=\"",
        c1(f.x0()),
        "\" y1=\"",
        c1(f.y0()),
        "\" x2=\"",
        c1(f.x1()),
        "\" y2=\"",
        c1(f.y1()),
        "\"><title>perfect calibration</title></line>"
    );
    let bins = plotted_bins(c);
    if bins.is_empty() {
        empty_note(&mut h, &f, -20.0, "No calibration bin has rows.");
    } else {
        let xy: Vec<(f64, f64)> = bins
            .iter()
            .map(|&(_, p, o)| (f.x(p, 0.0, 1.0), f.y(o, 0.0, 1.0)))
            .collect();
        html!(
            h,
            "<polyline class=\"series calibration\" data-series=\"calibration\" points=\"",
            point_list(&xy),
            "\"/>"
        );
        for (&(b, p, o), &(x, y)) in bins.iter().zip(&xy) {
            html!(
                h,
                "<circle class=\"pt calibration\" cx=\"",
                c1(x),
                "\" cy=\"",
                c1(y),
                "\" r=\"3.5\"><title>",
                Html::text(&format!(
                    "bin {}–{}: {} rows, mean predicted {}, observed {}",
                    fmt4(b.lower),
                    fmt4(b.upper),
                    b.rows,
                    fmt4(p),
                    fmt4(o)
                )),
                "</title></circle>"
            );
        }
    }
    h.push_static("</svg>");
    h
}

/// The bins a calibration curve plots: rows > 0 and both figures finite.
pub(crate) fn plotted_bins(c: &Calibration) -> Vec<(&CalibrationBin, f64, f64)> {
    c.bins
        .iter()
        .filter(|b| b.rows > 0)
        .filter_map(|b| match (b.mean_predicted, b.observed_rate) {
            (Some(p), Some(o)) if p.is_finite() && o.is_finite() => Some((b, p, o)),
            _ => None,
        })
        .collect()
}

/// The residual bins a residual plot draws: rows > 0 and every figure finite (the rms
/// never negative), in order of their mean prediction.
pub(crate) fn plotted_residuals(bins: &[ResidualBin]) -> Vec<&ResidualBin> {
    let mut out: Vec<&ResidualBin> = bins
        .iter()
        .filter(|b| {
            b.rows > 0
                && b.predicted.is_finite()
                && b.mean_residual.is_finite()
                && b.rms_residual.is_finite()
                && b.rms_residual >= 0.0
        })
        .collect();
    out.sort_by(|a, b| a.predicted.total_cmp(&b.predicted));
    out
}

/// An axis over `[lo, hi]` widened to whole "nice" steps: (start, end, step). A single
/// value gets a margin either side; anything non-finite falls back to `[0, 1]`.
fn axis_range(lo: f64, hi: f64, target: f64) -> (f64, f64, f64) {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return (0.0, 1.0, 0.2);
    }
    let (lo, hi) = if hi - lo > f64::EPSILON * lo.abs().max(hi.abs()).max(1.0) {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    };
    let step = nice_step(hi - lo, target);
    let (start, end) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    if start.is_finite() && end.is_finite() && end > start {
        (start, end, step)
    } else {
        (0.0, 1.0, 0.2)
    }
}

/// The tick values of an axis from [`axis_range`]: at most 16, so an odd range can never
/// make the chart long; a value within rounding of zero is zero (never "-0.0").
fn ticks(start: f64, end: f64, step: f64) -> Vec<f64> {
    (0..16u32)
        .map(|k| start + f64::from(k) * step)
        .take_while(|v| *v <= end + step * 1e-9)
        .map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v })
        .collect()
}

/// The residual plot of a regression: per bin of holdout rows (sorted by prediction), the
/// mean residual (label − prediction) at the bin's mean prediction, a band of ± the bin's
/// root-mean-square residual, and the zero line of an unbiased model.
pub(crate) fn residual_chart(bins: &[ResidualBin]) -> Html {
    let f = Frame {
        width: 480.0,
        height: 360.0,
        left: 66.0,
        right: 20.0,
        top: 44.0,
        bottom: 48.0,
    };
    let mut h = Html::new();
    open(
        &mut h,
        "residual-chart",
        &f,
        &Html::raw_static("Residual plot"),
    );
    let pts = plotted_residuals(bins);
    let (xlo, xhi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, b| {
        (a.0.min(b.predicted), a.1.max(b.predicted))
    });
    let (x0, x1, xstep) = if pts.is_empty() {
        (0.0, 1.0, 0.2)
    } else {
        axis_range(xlo, xhi, 4.0)
    };
    let reach = pts
        .iter()
        .map(|b| b.mean_residual.abs() + b.rms_residual)
        .fold(0.0f64, f64::max);
    let (_, ymax, ystep) = axis_range(0.0, if reach > 0.0 { reach } else { 1.0 }, 3.0);
    for v in ticks(-ymax, ymax, ystep) {
        let label = Html::text(&tick_label(v, ystep));
        grid_line(&mut h, &f, f.y(v, -ymax, ymax), &label);
    }
    for v in ticks(x0, x1, xstep) {
        x_tick(
            &mut h,
            &f,
            f.x(v, x0, x1),
            &Html::text(&tick_label(v, xstep)),
        );
    }
    axes(
        &mut h,
        &f,
        "mean predicted value (per bin)",
        "mean residual (label − prediction)",
    );
    let zero = c1(f.y(0.0, -ymax, ymax));
    html!(
        h,
        "<line class=\"zero\" x1=\"",
        c1(f.x0()),
        "\" y1=\"",
        zero,
        "\" x2=\"",
        c1(f.x1()),
        "\" y2=\"",
        zero,
        "\"><title>no bias (residual 0)</title></line>"
    );
    if pts.is_empty() {
        empty_note(&mut h, &f, -20.0, "No residual bin was recorded.");
    } else {
        let at = |b: &ResidualBin, v: f64| (f.x(b.predicted, x0, x1), f.y(v, -ymax, ymax));
        residual_series(&mut h, &pts, &at);
    }
    residual_legend(&mut h, &f);
    h.push_static("</svg>");
    h
}

/// The ± rms band, the line of mean residuals and one circle (with its figures) per bin.
fn residual_series(
    h: &mut Html,
    pts: &[&ResidualBin],
    at: &dyn Fn(&ResidualBin, f64) -> (f64, f64),
) {
    let upper = pts.iter().map(|b| at(b, b.mean_residual + b.rms_residual));
    let lower = pts
        .iter()
        .rev()
        .map(|b| at(b, b.mean_residual - b.rms_residual));
    let band: Vec<(f64, f64)> = upper.chain(lower).collect();
    html!(
        h,
        "<polygon class=\"band\" data-series=\"rms-band\" points=\"",
        point_list(&band),
        "\"><title>± root-mean-square residual of each bin</title></polygon>"
    );
    let xy: Vec<(f64, f64)> = pts.iter().map(|b| at(b, b.mean_residual)).collect();
    html!(
        h,
        "<polyline class=\"series residual\" data-series=\"residual\" points=\"",
        point_list(&xy),
        "\"/>"
    );
    for (b, &(x, y)) in pts.iter().zip(&xy) {
        html!(
            h,
            "<circle class=\"pt residual\" cx=\"",
            c1(x),
            "\" cy=\"",
            c1(y),
            "\" r=\"3.5\"><title>",
            Html::text(&format!(
                "{} rows, mean prediction {}: mean residual {}, rms {}",
                b.rows,
                fmt4(b.predicted),
                fmt4(b.mean_residual),
                fmt4(b.rms_residual)
            )),
            "</title></circle>"
        );
    }
}

/// The residual plot's legend, top right: the line and the band.
fn residual_legend(h: &mut Html, f: &Frame) {
    let x = f.x1() - 190.0;
    html!(
        h,
        "<line class=\"legend residual\" x1=\"",
        c1(x),
        "\" y1=\"18\" x2=\"",
        c1(x + 18.0),
        "\" y2=\"18\"/><text class=\"legend-label\" x=\"",
        c1(x + 22.0),
        "\" y=\"22\">mean residual</text><rect class=\"band\" x=\"",
        c1(x + 108.0),
        "\" y=\"12\" width=\"18\" height=\"12\"/><text class=\"legend-label\" x=\"",
        c1(x + 130.0),
        "\" y=\"22\">± rms</text>"
    );
}
