//! The page's holdout metrics section, per task: ROC AUC and accuracy with the ROC curve
//! (binary), accuracy, macro-F1 and the confusion matrix (multi-class), RMSE, MAE and R²
//! with the residual plot (regression), each beside the loss per epoch.

use airlock_schemas::{CardMetrics, MAX_CLASSES, ModelCard, MulticlassCardMetrics};

use crate::charts::{loss_chart, plotted_residuals, residual_chart, roc_chart};
use crate::clinical::estimate_cells;
use crate::format::{fmt4, grouped, percent, plain};
use crate::html::{Html, html};
use crate::summary::estimate;

/// Above this many classes the confusion matrix numbers its columns (the names are in the
/// rows and in each column's tooltip) and uses a smaller type.
const NAMED_COLUMNS: usize = 10;
/// Above this many classes the matrix uses its smallest type and is split into tables.
const COMPACT_COLUMNS: usize = 24;
/// Most columns of one confusion-matrix table (at the smallest type).
const TABLE_COLUMNS: usize = 32;

/// The section itself.
pub(crate) fn metrics_section(h: &mut Html, card: &ModelCard) {
    let m = &card.metrics;
    h.push_static("<section id=\"metrics\">\n<h2>3. How well it works (holdout data)</h2>\n");
    h.push_static(
        "<p class=\"lead\">Measured on rows the model never saw during training. An interval \
         is the range the figure would plausibly take on another holdout of the same size \
         (bootstrap); <em>none</em> means the card records no interval.</p>\n",
    );
    h.push_static(
        "<table id=\"holdout-metrics\">\n<colgroup><col style=\"width:18%\"><col \
         style=\"width:16%\"><col style=\"width:20%\"><col></colgroup>\n<thead><tr><th>\
         Measure</th><th>Value</th><th>Interval</th><th>What it means</th></tr></thead>\n<tbody>\n",
    );
    match m {
        CardMetrics::Binary(_) => binary_rows(h, card),
        CardMetrics::Multiclass(_) => multiclass_rows(h, card),
        CardMetrics::Regression(_) => regression_rows(h, card),
    }
    h.push_static("</tbody>\n</table>\n");
    let [tr, va, ho] = card.training.split_rows;
    html!(
        h,
        "<p class=\"muted\">Rows used: ",
        Html::text(&grouped(tr)),
        " training, ",
        Html::text(&grouped(va)),
        " validation, ",
        Html::text(&grouped(ho)),
        " holdout.</p>\n"
    );
    if let CardMetrics::Multiclass(mc) = m {
        confusion_matrix(h, card, mc);
    }
    h.push_static("<div class=\"charts\">\n");
    h.push(loss_chart(&card.training.epochs));
    h.push_static("\n");
    match m {
        CardMetrics::Binary(b) => h.push(roc_chart(&card.training.roc_curve, b.roc_auc)),
        CardMetrics::Multiclass(_) => h,
        CardMetrics::Regression(r) => h.push(residual_chart(&r.residuals)),
    };
    h.push_static("\n</div>\n");
    charts_caption(h, card);
    h.push_static("</section>\n");
}

/// What the charts show and how to read them.
fn charts_caption(h: &mut Html, card: &ModelCard) {
    const LOSS: &str = "<p class=\"muted\">Loss chart: the two lines should fall and stay \
         close; a validation line that rises while training keeps falling is a sign of \
         overfitting.";
    match &card.metrics {
        CardMetrics::Binary(_) => {
            h.push_static(
                "<p class=\"muted\">Loss chart: the two lines should fall and stay close; a \
                 validation line that rises while training keeps falling is a sign of \
                 overfitting. ROC chart: the further the curve bows towards the top left above \
                 the dashed diagonal, the better.</p>\n",
            );
        }
        CardMetrics::Multiclass(_) => html!(h, LOSS, "</p>\n"),
        CardMetrics::Regression(r) => {
            html!(
                h,
                LOSS,
                "</p>\n<p class=\"muted\" id=\"residual-caption\">Residual plot: the holdout \
                 rows sorted by prediction into bins of at least 10 rows; each point is a \
                 bin's mean residual (label − prediction) at its mean prediction, the band \
                 ± its root-mean-square residual. Points on the dashed zero line mean no \
                 systematic error; points above it mean the model predicts too low there, \
                 below it too high. ",
                plotted_residuals(&r.residuals).len(),
                " of ",
                r.residuals.len(),
                " bins plotted.</p>\n"
            );
        }
    }
}

/// A metric row with its interval (when the card records one) and what it means.
fn estimate_row(
    h: &mut Html,
    card: &ModelCard,
    name: &'static str,
    label: &'static str,
    meaning: &'static str,
) {
    html!(
        h,
        "<tr data-metric=\"",
        name,
        "\"><td>",
        label,
        "</td>",
        estimate_cells(&estimate(card, name)),
        "<td class=\"muted\">",
        meaning,
        "</td></tr>\n"
    );
}

/// A row with a plain value and no interval.
fn plain_row(h: &mut Html, name: &'static str, value: &str, meaning: &'static str) {
    html!(
        h,
        "<tr><td>",
        name,
        "</td><td class=\"num\">",
        Html::text(value),
        "</td><td></td><td class=\"muted\">",
        meaning,
        "</td></tr>\n"
    );
}

/// The loss and holdout-rows rows every task has.
fn loss_rows(h: &mut Html, card: &ModelCard, loss_meaning: &'static str) {
    let m = &card.metrics;
    plain_row(h, "Loss", &fmt4(m.loss()), loss_meaning);
    plain_row(
        h,
        "Holdout rows",
        &grouped(m.holdout_rows()),
        "How many rows the figures above are measured on.",
    );
}

fn binary_rows(h: &mut Html, card: &ModelCard) {
    let threshold = card
        .evaluation
        .as_ref()
        .map_or_else(|| "0.5".to_owned(), |e| plain(e.threshold));
    for (name, label, meaning) in [
        (
            "roc_auc",
            "ROC AUC",
            "Chance that a random positive scores above a random negative (0.5 is a coin toss, 1.0 is perfect).",
        ),
        (
            "accuracy",
            "Accuracy",
            "Share of holdout rows classified correctly at the operating threshold",
        ),
    ] {
        html!(
            h,
            "<tr data-metric=\"",
            name,
            "\"><td>",
            label,
            "</td>",
            estimate_cells(&estimate(card, name)),
            "<td class=\"muted\">",
            meaning
        );
        if name == "accuracy" {
            html!(h, " (", Html::text(&threshold), ").");
        }
        h.push_static("</td></tr>\n");
    }
    loss_rows(h, card, "Binary cross-entropy: lower is better.");
    plain_row(
        h,
        "Positive rate",
        &card
            .metrics
            .binary()
            .map_or_else(|| "n/a".to_owned(), |b| percent(b.positive_rate)),
        "Share of holdout rows with the positive label.",
    );
}

fn multiclass_rows(h: &mut Html, card: &ModelCard) {
    estimate_row(
        h,
        card,
        "accuracy",
        "Accuracy",
        "Share of holdout rows whose most probable class is the true class.",
    );
    estimate_row(
        h,
        card,
        "macro_f1",
        "Macro-F1",
        "Mean over the classes of F1 (the balance of precision and recall), each class \
         counting the same however rare: 1.0 is perfect; well below the accuracy when a \
         class is poorly recognized.",
    );
    loss_rows(h, card, "Categorical cross-entropy: lower is better.");
}

fn regression_rows(h: &mut Html, card: &ModelCard) {
    estimate_row(
        h,
        card,
        "rmse",
        "RMSE",
        "Root mean squared error, in the label's units: the typical size of an error, large \
         errors weighing more. Lower is better.",
    );
    estimate_row(
        h,
        card,
        "mae",
        "MAE",
        "Mean absolute error, in the label's units: the average size of an error. Lower is \
         better.",
    );
    estimate_row(
        h,
        card,
        "r2",
        "R²",
        "Share of the label's variation the model explains: 1.0 is perfect, 0 is no better \
         than always predicting the mean, below 0 is worse than that.",
    );
    loss_rows(
        h,
        card,
        "Mean squared error, in the label's units squared: lower is better.",
    );
}

/// Why a card's confusion matrix cannot be shown, or its number of classes `K` when it
/// is `K × K` for the card's `K` (2 to [`MAX_CLASSES`]) classes. Cards are verified, but
/// may be old or odd: nothing here assumes the shapes agree.
pub(crate) fn confusion_shape(card: &ModelCard, counts: &[Vec<u64>]) -> Result<usize, String> {
    let k = card.output.classes.len();
    if k == 0 {
        return Err("the card names no classes".into());
    }
    if k > MAX_CLASSES {
        return Err(format!(
            "the card names {k} classes, more than the {MAX_CLASSES} a multi-class model may have"
        ));
    }
    if counts.len() != k {
        return Err(format!(
            "it has {} rows for the card's {k} classes",
            counts.len()
        ));
    }
    if let Some((i, r)) = counts.iter().enumerate().find(|(_, r)| r.len() != k) {
        return Err(format!(
            "its row {} has {} counts for the card's {k} classes",
            i + 1,
            r.len()
        ));
    }
    Ok(k)
}

/// One class's totals in a confusion matrix, summed wide so no count can overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassTotals {
    /// Rows truly of the class (its row).
    pub(crate) truly: u128,
    /// Rows predicted as the class (its column).
    pub(crate) predicted: u128,
    /// Rows of the class predicted as it (the diagonal).
    pub(crate) right: u128,
}

impl ClassTotals {
    /// Share of the class's rows recognized, `None` when it has none.
    pub(crate) fn recall(&self) -> Option<f64> {
        share(self.right, self.truly)
    }

    /// Share of the rows predicted as the class that are of it, `None` when none is.
    pub(crate) fn precision(&self) -> Option<f64> {
        share(self.right, self.predicted)
    }
}

/// Each class's totals in a `K × K` matrix.
pub(crate) fn class_totals(counts: &[Vec<u64>]) -> Vec<ClassTotals> {
    (0..counts.len())
        .map(|c| ClassTotals {
            truly: counts[c].iter().map(|&n| u128::from(n)).sum(),
            predicted: counts
                .iter()
                .map(|r| u128::from(r.get(c).copied().unwrap_or(0)))
                .sum(),
            right: u128::from(counts[c].get(c).copied().unwrap_or(0)),
        })
        .collect()
}

/// `part / whole`, or `None` for an empty whole.
fn share(part: u128, whole: u128) -> Option<f64> {
    // Precision lost above 2^53 rows is irrelevant to a percentage.
    #[allow(clippy::cast_precision_loss)]
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// A share as the matrix's margins show it: one decimal when there is room, none when not,
/// and where room is shortest without the `%` (the headers say it), so `100` fits.
fn margin(v: Option<f64>, k: usize) -> Html {
    match v {
        None => Html::raw_static("<span class=\"muted\">n/a</span>"),
        Some(x) if k > COMPACT_COLUMNS => Html::text(&format!("{:.0}", x * 100.0)),
        Some(x) if k > NAMED_COLUMNS => Html::text(&format!("{:.0}%", x * 100.0)),
        Some(x) => Html::text(&format!("{:.1}%", x * 100.0)),
    }
}

/// The confusion matrix: rows the true class, columns the predicted one, in the card's
/// class order; the diagonal (rows right) highlighted; each class's recall on the right
/// and precision below. Above [`COMPACT_COLUMNS`] classes the columns are split over
/// tables of at most [`TABLE_COLUMNS`], so every count stays legible at 1280 px. An odd
/// matrix gets a line saying why it is not shown.
fn confusion_matrix(h: &mut Html, card: &ModelCard, m: &MulticlassCardMetrics) {
    h.push_static(
        "<h3>Confusion matrix (holdout rows: each row a true class, each column the class \
         predicted)</h3>\n",
    );
    let k = match confusion_shape(card, &m.confusion) {
        Ok(k) => k,
        Err(why) => {
            html!(
                h,
                "<p class=\"fail\" id=\"confusion-error\">The card's confusion matrix cannot \
                 be shown: ",
                Html::text(&why),
                ".</p>\n"
            );
            return;
        }
    };
    let totals = class_totals(&m.confusion);
    let matrix = Matrix {
        names: &card.output.classes,
        counts: &m.confusion,
        totals: &totals,
    };
    let tables = if k > COMPACT_COLUMNS {
        k.div_ceil(TABLE_COLUMNS)
    } else {
        1
    };
    let per_table = k.div_ceil(tables);
    html!(
        h,
        "<div id=\"confusion-matrix\" data-classes=\"",
        k,
        "\">\n"
    );
    for start in (0..k).step_by(per_table) {
        matrix.table(h, start..(start + per_table).min(k), tables > 1);
    }
    h.push_static("</div>\n");
    confusion_caption(h, m, &totals, k);
}

/// A `K × K` confusion matrix (checked by [`confusion_shape`]) with the card's class names.
struct Matrix<'a> {
    names: &'a [String],
    counts: &'a [Vec<u64>],
    totals: &'a [ClassTotals],
}

impl Matrix<'_> {
    fn k(&self) -> usize {
        self.counts.len()
    }

    /// The matrix's columns `cols` as one table (`split`: one of several), with the
    /// recall column when it holds the last one.
    fn table(&self, h: &mut Html, cols: std::ops::Range<usize>, split: bool) {
        let k = self.k();
        let last = cols.end == k;
        let (size, first, recall) = if k > COMPACT_COLUMNS {
            (" tiny", "11%", "4%")
        } else if k > NAMED_COLUMNS {
            (" compact", "12%", "4.5%")
        } else {
            ("", "18%", "9%")
        };
        html!(
            h,
            "<table class=\"confusion",
            size,
            "\" data-predicted=\"",
            cols.start + 1,
            "-",
            cols.end,
            "\">\n"
        );
        if split {
            html!(
                h,
                "<caption>Predicted classes ",
                cols.start + 1,
                " to ",
                cols.end,
                " of ",
                k,
                "</caption>\n"
            );
        }
        html!(
            h,
            "<colgroup><col style=\"width:",
            first,
            "\"><col span=\"",
            cols.len(),
            "\">"
        );
        if last {
            html!(h, "<col style=\"width:", recall, "\">");
        }
        h.push_static("</colgroup>\n<thead><tr><th>True class</th>");
        for j in cols.clone() {
            if k > NAMED_COLUMNS {
                html!(
                    h,
                    "<th title=\"",
                    Html::text(&self.names[j]),
                    "\">",
                    j + 1,
                    "</th>"
                );
            } else {
                html!(h, "<th>", Html::text(&self.names[j]), "</th>");
            }
        }
        if last {
            h.push_static(if k > COMPACT_COLUMNS {
                "<th class=\"margin\">Recall %</th>"
            } else {
                "<th class=\"margin\">Recall</th>"
            });
        }
        h.push_static("</tr></thead>\n<tbody>\n");
        for i in 0..k {
            self.row(h, i, cols.clone(), last);
        }
        h.push_static(if k > COMPACT_COLUMNS {
            "</tbody>\n<tfoot><tr><th class=\"margin\">Precision %</th>"
        } else {
            "</tbody>\n<tfoot><tr><th class=\"margin\">Precision</th>"
        });
        for t in &self.totals[cols] {
            html!(
                h,
                "<td class=\"num margin\">",
                margin(t.precision(), k),
                "</td>"
            );
        }
        if last {
            h.push_static("<td class=\"margin\"></td>");
        }
        h.push_static("</tr></tfoot>\n</table>\n");
    }

    /// True class `i`: its name, the counts predicted as each class of `cols`, and its
    /// recall when `recall`.
    fn row(&self, h: &mut Html, i: usize, cols: std::ops::Range<usize>, recall: bool) {
        let k = self.k();
        html!(
            h,
            "<tr data-true-class=\"",
            i,
            "\"><th class=\"true-class\">"
        );
        if k > NAMED_COLUMNS {
            html!(h, "<span class=\"muted\">", i + 1, "</span> ");
        }
        html!(h, Html::text(&self.names[i]), "</th>");
        for j in cols {
            let n = self.counts[i][j];
            html!(
                h,
                if i == j {
                    "<td class=\"num diag\">"
                } else {
                    "<td class=\"num\">"
                }
            );
            // Where room is shortest, no thousands separator: 4 digits fit on one line.
            if k > COMPACT_COLUMNS {
                h.push(n);
            } else {
                h.push(Html::text(&grouped(n)));
            }
            h.push_static("</td>");
        }
        if recall {
            html!(
                h,
                "<td class=\"num margin\">",
                margin(self.totals[i].recall(), k),
                "</td>"
            );
        }
        h.push_static("</tr>\n");
    }
}

/// How to read the matrix, and a warning when it does not count the holdout's rows.
fn confusion_caption(h: &mut Html, m: &MulticlassCardMetrics, totals: &[ClassTotals], k: usize) {
    h.push_static(
        "<p class=\"muted\" id=\"confusion-caption\">The highlighted diagonal counts the rows \
         classified correctly. Recall: the share of a class's rows the model recognizes. \
         Precision: the share of the rows predicted as a class that truly are of it.",
    );
    if k > NAMED_COLUMNS {
        h.push_static(" Columns are numbered as the rows; each column's name is in its tooltip.");
    }
    h.push_static("</p>\n");
    let counted: u128 = totals.iter().map(|t| t.truly).sum();
    if counted != u128::from(m.holdout_rows) {
        html!(
            h,
            "<p class=\"fail\" id=\"confusion-count\">The matrix counts ",
            Html::text(&u64::try_from(counted).map_or_else(|_| counted.to_string(), grouped)),
            " rows, but the card's holdout has ",
            Html::text(&grouped(m.holdout_rows)),
            ".</p>\n"
        );
    }
}
