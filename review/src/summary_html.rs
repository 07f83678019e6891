//! The page's change summary (first section, with `--previous`) and the source facts and
//! warning taken from the card's recorded configuration.

use airlock_schemas::ModelCard;

use crate::clinical::estimate_cells;
use crate::format::level;
use crate::html::{Html, html};
use crate::provenance::parse_provenance;
use crate::summary::{Judgement, Setting, Summary, summarize, tree_state};
use crate::{Previous, ReviewInput};

/// What is wrong with the recorded source, when it is not a clean, recorded commit (`None`
/// when it is, or when the card records no configuration at all).
pub(crate) fn source_problem(card: &ModelCard) -> Option<String> {
    let src = &card.configuration.as_ref()?.source;
    let what = match (&src.git_commit, src.git_dirty) {
        (Some(_), Some(false)) => return None,
        (None, _) => {
            "No git commit is recorded: the code this model was built from cannot be identified."
                .to_owned()
        }
        (Some(c), Some(true)) => format!(
            "Built from a work tree with uncommitted changes: commit {c} does not describe the \
             code exactly."
        ),
        (Some(c), None) => {
            format!("Commit {c} is recorded, but not whether its work tree was clean.")
        }
    };
    Some(if src.uncommitted_allowed {
        format!(
            "{what} The pipeline allowed this release without a clean commit ([release] \
             allow_uncommitted = true, or a DEMO run)."
        )
    } else {
        format!("{what} The card does not record that the pipeline allowed this.")
    })
}

/// The warning under the banner when the release was not built from a clean commit.
pub(crate) fn source_warning(h: &mut Html, card: &ModelCard) {
    if let Some(problem) = source_problem(card) {
        html!(
            h,
            "<div class=\"warning\" id=\"source-warning\">Provenance: ",
            Html::text(&problem),
            "</div>\n"
        );
    }
}

/// The source as the card records it, checked against the signed provenance's commit.
pub(crate) fn source_facts(h: &mut Html, input: &ReviewInput<'_>) {
    h.push_static("<h3>Source (as the model card records it)</h3>\n");
    let Some(cfg) = &input.card.configuration else {
        h.push_static(
            "<p class=\"unknown\" id=\"source-not-recorded\">This release's card records no \
             training configuration (older airlock): its source commit and work tree state are \
             not recorded in it.</p>\n",
        );
        return;
    };
    let src = &cfg.source;
    h.push_static("<dl class=\"facts\" id=\"source\">\n<dt>Git commit</dt><dd>");
    match &src.git_commit {
        Some(c) => {
            html!(h, "<code class=\"digest\">", Html::text(c), "</code>");
            let signed = input
                .provenance
                .map(parse_provenance)
                .and_then(|p| p.git_commit);
            if signed.as_ref().is_some_and(|s| s != c) {
                h.push_static(
                    " <span class=\"fail\">(DIFFERS from the commit in the signed \
                     provenance)</span>",
                );
            }
        }
        None => {
            h.push_static("<span class=\"fail\">not recorded</span>");
        }
    };
    html!(
        h,
        "</dd>\n<dt>Work tree</dt><dd class=\"",
        if src.git_dirty == Some(false) {
            "ok"
        } else {
            "fail"
        },
        "\" id=\"work-tree\">",
        tree_state(src.git_dirty),
        "</dd>\n<dt>Release without a clean commit</dt><dd id=\"uncommitted-allowed\">",
        if src.uncommitted_allowed {
            "allowed by the pipeline (<code>[release] allow_uncommitted = true</code>, or a \
             DEMO run)"
        } else {
            "not allowed"
        },
        "</dd>\n</dl>\n"
    );
}

/// The change summary: what differs, measured leak values and metrics side by side.
pub(crate) fn summary_section(h: &mut Html, input: &ReviewInput<'_>, prev: &Previous<'_>) {
    let s = summarize(input, prev);
    html!(
        h,
        "<section id=\"change-summary\">\n<h2>What changed since ",
        Html::text(&prev.card.name),
        " ",
        Html::text(&prev.card.version),
        "</h2>\n<p class=\"lead\">Compared with the release in <code class=\"digest\">",
        Html::text(&prev.bundle.display().to_string()),
        "</code>.",
        if prev.verified {
            ""
        } else {
            " <strong class=\"fail\" id=\"summary-previous-unverified\">That release does NOT \
             verify against this trust policy: its side of this comparison is what its files \
             say, vouched for by no one.</strong>"
        },
        "</p>\n"
    );
    settings_table(h, &s);
    leaks_table(h, &s);
    metrics_table(h, &s);
    h.push_static("</section>\n");
}

fn not_recorded_note(s: &Summary) -> Option<&'static str> {
    Some(match s.recorded {
        (true, true) => return None,
        (false, false) => "neither release's card",
        (false, true) => "the previous release's card",
        (true, false) => "this release's card",
    })
}

fn settings_table(h: &mut Html, s: &Summary) {
    h.push_static("<h3>Settings and data</h3>\n");
    if let Some(which) = not_recorded_note(s) {
        html!(
            h,
            "<p class=\"unknown\" id=\"configuration-not-recorded\">The training configuration \
             was not recorded in ",
            which,
            " (older airlock): hyperparameters, seed and data row counts cannot be compared. \
             Below is what both releases record: architecture, inputs and data digests.</p>\n"
        );
    }
    h.push_static(
        "<table id=\"summary-settings\">\n<colgroup><col style=\"width:28%\"><col \
         style=\"width:36%\"><col></colgroup>\n<thead><tr><th>Changed</th><th>Previous</th>\
         <th>This release</th></tr></thead>\n<tbody>\n",
    );
    if s.changed.is_empty() {
        h.push_static(
            "<tr class=\"none-changed\"><td colspan=\"3\" class=\"unchanged\">No setting or \
             data file changed.</td></tr>\n",
        );
    }
    for c in &s.changed {
        setting_row(h, c);
    }
    h.push_static("</tbody>\n</table>\n");
    if !s.unchanged.is_empty() {
        let n = s.unchanged.len();
        html!(
            h,
            "<details class=\"unchanged-items\" id=\"unchanged-items\"><summary data-unchanged=\"",
            n,
            "\">",
            n,
            if s.changed.is_empty() { "" } else { " other" },
            if n == 1 {
                " item unchanged"
            } else {
                " items unchanged"
            },
            "</summary><p class=\"muted\">"
        );
        let items = s.unchanged.iter().map(|u| {
            let mut h = Html::text(&u.item);
            html!(h, ": ", Html::text(&u.after));
            h
        });
        html!(h, Html::join(items, "; "), "</p></details>\n");
    }
}

fn setting_row(h: &mut Html, c: &Setting) {
    html!(
        h,
        "<tr class=\"row-changed\" data-item=\"",
        Html::text(&c.item),
        "\"><td><strong>",
        Html::text(&c.item),
        "</strong>"
    );
    if !c.note.is_empty() {
        html!(
            h,
            "<br><span class=\"muted\">",
            Html::text(&c.note),
            "</span>"
        );
    }
    html!(
        h,
        "</td><td",
        value_class(&c.before, false),
        ">",
        Html::text(&c.before),
        "</td><td",
        value_class(&c.after, true),
        ">",
        Html::text(&c.after),
        "</td></tr>\n"
    );
}

/// A digest breaks anywhere; a list of names breaks at its spaces (and anywhere only when
/// a name alone is wider than the column).
fn value_class(v: &str, after: bool) -> &'static str {
    let digest = v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit());
    match (digest, after) {
        (true, true) => " class=\"digest changed\"",
        (true, false) => " class=\"digest\"",
        (false, true) => " class=\"changed\"",
        (false, false) => "",
    }
}

fn leaks_table(h: &mut Html, s: &Summary) {
    h.push_static(
        "<h3>Leak checks, measured</h3>\n<table id=\"summary-leaks\">\n<colgroup><col \
         style=\"width:34%\"><col style=\"width:22%\"><col style=\"width:22%\"><col></colgroup>\n\
         <thead><tr><th>Measure</th><th>Previous</th><th>This release</th><th>Limit</th></tr>\
         </thead>\n<tbody>\n",
    );
    for r in &s.leaks {
        html!(
            h,
            "<tr data-summary-layer=\"",
            Html::text(&r.id),
            "\"><td>",
            Html::text(&r.measure),
            "</td><td class=\"num\">",
            Html::text(&r.before),
            "</td><td class=\"num\">",
            Html::text(&r.after),
            "</td><td class=\"num\">",
            Html::text(&r.limit),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");
}

fn metrics_table(h: &mut Html, s: &Summary) {
    let conf = s.confidence.1.or(s.confidence.0).map(level);
    html!(
        h,
        "<h3>Holdout metrics with their intervals</h3>\n<p id=\"noise-rule\">A difference is \
         called <strong>better</strong> or <strong>worse</strong> only when the two releases' ",
        Html::text(conf.as_deref().unwrap_or("bootstrap")),
        " intervals do not overlap. When they overlap, the difference is <strong>within \
         noise</strong>: another holdout of the same size could have reversed it. Without an \
         interval on both sides, noise cannot be told from a change.</p>\n"
    );
    h.push_static(
        "<table id=\"summary-metrics\">\n<colgroup><col style=\"width:17%\"><col \
         style=\"width:10%\"><col style=\"width:17%\"><col style=\"width:10%\"><col \
         style=\"width:17%\"><col></colgroup>\n<thead><tr><th>Metric</th><th>Previous</th>\
         <th>Interval</th><th>This release</th><th>Interval</th><th>Difference</th></tr>\
         </thead>\n<tbody>\n",
    );
    for m in &s.metrics {
        let diff = match (m.before.value, m.after.value) {
            (Some(a), Some(b))
                if a.is_finite()
                    && b.is_finite()
                    && !matches!(
                        m.judgement,
                        Judgement::Unchanged | Judgement::DifferentTasks
                    ) =>
            {
                format!("{:+.4}: ", b - a)
            }
            _ => String::new(),
        };
        html!(
            h,
            "<tr data-metric=\"",
            Html::text(&m.name),
            "\" data-judgement=\"",
            m.judgement.class(),
            "\"><td>",
            Html::text(&m.label),
            "</td>",
            estimate_cells(&m.before),
            estimate_cells(&m.after),
            "<td class=\"",
            m.judgement.class(),
            "\">",
            Html::text(&diff),
            m.judgement.words(),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");
}
