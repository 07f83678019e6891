//! What kind of target a card's model predicts, as the review tells it from the card's own
//! metrics (every card records them, old binary cards included), and which metrics belong
//! to each task.

use airlock_schemas::{CardMetrics, ModelCard};

/// A card's task: `binary`, `multiclass` or `regression`, told by its metrics.
pub(crate) fn task_name(card: &ModelCard) -> &'static str {
    match &card.metrics {
        CardMetrics::Binary(_) => "binary",
        CardMetrics::Multiclass(_) => "multiclass",
        CardMetrics::Regression(_) => "regression",
    }
}

/// The task as a reader says it.
pub(crate) fn task_words(card: &ModelCard) -> &'static str {
    match &card.metrics {
        CardMetrics::Binary(_) => "binary classification",
        CardMetrics::Multiclass(_) => "multi-class classification",
        CardMetrics::Regression(_) => "regression",
    }
}

/// Whether the card is of a binary classifier (the page and summary it always had).
pub(crate) fn is_binary(card: &ModelCard) -> bool {
    matches!(card.metrics, CardMetrics::Binary(_))
}

/// The holdout metrics every card of the task records, in the order they are shown.
pub(crate) fn task_metrics(card: &ModelCard) -> &'static [&'static str] {
    match &card.metrics {
        CardMetrics::Binary(_) => &["roc_auc", "accuracy", "loss"],
        CardMetrics::Multiclass(_) => &["accuracy", "macro_f1", "loss"],
        CardMetrics::Regression(_) => &["rmse", "mae", "r2", "loss"],
    }
}

/// The metrics two releases are compared on: the three binary ones when both are binary
/// (as always), else each side's task metrics, this release's first.
pub(crate) fn compared_metrics(old: &ModelCard, new: &ModelCard) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for card in [new, old] {
        for &n in task_metrics(card) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// Whether two cards are of different tasks (so no metric of one can be judged against
/// the other's: a cross-entropy is not a squared error).
pub(crate) fn tasks_differ(old: &ModelCard, new: &ModelCard) -> bool {
    task_name(old) != task_name(new)
}
