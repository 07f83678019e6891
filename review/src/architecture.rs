//! The model section's per-family and per-task facts: the task, what the output means, a
//! CNN's input images, its convolution blocks and whether its input normalization ships;
//! and the words the comparisons use for the same.

use airlock_schemas::{CardMetrics, CnnArchitecture, CnnSpec, ConvBlock, ImageInput, ModelCard};

use crate::html::{Html, html};
use crate::task::{is_binary, task_words};

/// `3 × 64 × 64 (RGB)`: channels × height × width.
pub(crate) fn image_words(i: &ImageInput) -> String {
    let kind = match i.channels {
        1 => "grayscale".to_owned(),
        3 => "RGB".to_owned(),
        n => format!("{n} channels"),
    };
    format!("{} × {} × {} ({kind})", i.channels, i.height, i.width)
}

/// `16 channels, kernel 3, stride 1, padding 1, max-pool 2` (and `, batch norm` or `, no
/// batch norm` when `batch_norm` is said: the card's blocks have it folded away, the
/// recorded configuration's say whether it was trained with one).
pub(crate) fn block_words(b: &ConvBlock, batch_norm: bool) -> String {
    let pool = match b.pool {
        Some(p) if p > 1 => format!("max-pool {p}"),
        _ => "no pooling".to_owned(),
    };
    let mut s = format!(
        "{} channels, kernel {}, stride {}, padding {}, {pool}",
        b.channels, b.kernel, b.stride, b.padding
    );
    if batch_norm {
        s.push_str(if b.batch_norm {
            ", batch norm"
        } else {
            ", no batch norm"
        });
    }
    s
}

/// Whether a card's input normalization ships, in words.
pub(crate) fn normalization_words(c: &CnnArchitecture) -> &'static str {
    if c.input_normalization {
        "ships as the tensors input.mean and input.std"
    } else {
        "folded into the first convolution"
    }
}

/// Whether the card is of a CNN, or names a family other than the MLP.
pub(crate) fn is_cnn(card: &ModelCard) -> bool {
    card.architecture.cnn.is_some() || card.architecture.kind != "mlp"
}

/// `<dt>`/`<dd>` facts of a model that is not a binary MLP: the task, and a CNN's input.
pub(crate) fn family_facts(h: &mut Html, card: &ModelCard) {
    if !is_binary(card) {
        html!(h, "<dt>Task</dt><dd id=\"task\">", task_words(card));
        if let CardMetrics::Multiclass(_) = card.metrics {
            html!(h, " (", card.output.classes.len(), " classes)");
        }
        h.push_static("</dd>\n");
    }
    if !is_cnn(card) {
        return;
    }
    let Some(c) = &card.architecture.cnn else {
        h.push_static(
            "<dt>Convolutions</dt><dd class=\"fail\" id=\"cnn-missing\">The card names a \
             family other than the MLP but records no input size or convolution blocks.</dd>\n",
        );
        return;
    };
    html!(
        h,
        "<dt>Input images</dt><dd id=\"image-input\">",
        Html::text(&image_words(&c.input)),
        "</dd>\n<dt>Input normalization</dt><dd id=\"input-normalization\" data-ships=\"",
        c.input_normalization,
        "\">",
        Html::text(normalization_words(c)),
        "</dd>\n"
    );
}

/// What the model outputs and what its raw output goes through, per task.
pub(crate) fn output_fact(h: &mut Html, card: &ModelCard) {
    let o = &card.output;
    html!(
        h,
        "<dt>Output</dt><dd>predicts <code>",
        Html::text(&o.label)
    );
    match &card.metrics {
        CardMetrics::Binary(_) => html!(
            h,
            "</code>, classes ",
            Html::text(&o.classes.join(" / ")),
            "; the raw output goes through ",
            Html::text(&o.transform),
            " to give the probability of <em>",
            Html::text(
                o.classes
                    .last()
                    .map_or("the positive class", String::as_str)
            ),
            "</em></dd>\n"
        ),
        CardMetrics::Multiclass(_) => html!(
            h,
            "</code>, one of ",
            o.classes.len(),
            " classes: ",
            Html::text(&o.classes.join(" / ")),
            "; the raw outputs go through ",
            Html::text(&o.transform),
            " to give each class's probability</dd>\n"
        ),
        CardMetrics::Regression(_) => html!(
            h,
            "</code>, a number; the raw output goes through ",
            Html::text(&o.transform),
            " to give the predicted value itself</dd>\n"
        ),
    }
}

/// A CNN's convolution blocks, with each block's output size.
pub(crate) fn conv_table(h: &mut Html, card: &ModelCard) {
    let Some(c) = &card.architecture.cnn else {
        return;
    };
    let spec = CnnSpec {
        input: c.input,
        conv: c.conv.clone(),
        hidden: Vec::new(),
        dropout: 0.0,
    };
    let shapes = spec.shapes();
    html!(
        h,
        "<h3>Convolution blocks (",
        c.conv.len(),
        ", input side first; each: convolution, ReLU, then max-pooling if any)</h3>\n\
         <table id=\"conv-blocks\">\n<colgroup><col style=\"width:6%\"><col span=\"5\" \
         style=\"width:13%\"><col></colgroup>\n<thead><tr><th>#</th><th>Channels</th>\
         <th>Kernel</th><th>Stride</th><th>Padding</th><th>Max-pool</th><th>Output \
         (channels × height × width)</th></tr></thead>\n<tbody>\n"
    );
    // Each block's output, up to the first that does not fit its input.
    let mut side = Some((c.input.height, c.input.width));
    for (i, b) in c.conv.iter().enumerate() {
        side = side
            .and_then(|(y, x)| Some((b.out_side(y)?, b.out_side(x)?)))
            .filter(|&(y, x)| y > 0 && x > 0);
        let out = side.map_or_else(
            || "—".to_owned(),
            |(y, x)| format!("{} × {y} × {x}", b.channels),
        );
        html!(
            h,
            "<tr data-block=\"",
            i + 1,
            "\"><td class=\"num\">",
            i + 1,
            "</td><td class=\"num\">",
            b.channels,
            "</td><td class=\"num\">",
            b.kernel,
            "</td><td class=\"num\">",
            b.stride,
            "</td><td class=\"num\">",
            b.padding,
            "</td><td class=\"num\">",
            pool_cell(b),
            "</td><td class=\"num\">",
            Html::text(&out),
            "</td></tr>\n"
        );
    }
    h.push_static("</tbody>\n</table>\n");
    if let Err(e) = shapes {
        html!(
            h,
            "<p class=\"fail\" id=\"conv-error\">These blocks do not fit the card's input \
             images: ",
            Html::text(&e),
            ".</p>\n"
        );
    }
}

fn pool_cell(b: &ConvBlock) -> Html {
    match b.pool {
        Some(p) if p > 1 => {
            let mut h = Html::new();
            h.push(p);
            h
        }
        _ => Html::raw_static("none"),
    }
}

/// What a CNN takes: one image per row, and where its normalization lives.
pub(crate) fn image_input(h: &mut Html, card: &ModelCard) {
    let Some(c) = &card.architecture.cnn else {
        return;
    };
    html!(
        h,
        "<h3>Input</h3>\n<p id=\"input-images\">One image per row, ",
        Html::text(&image_words(&c.input)),
        ", pixel values scaled to [0, 1]. ",
        if c.input_normalization {
            "Each channel is then standardized by the released tensors <code>input.mean</code> \
             and <code>input.std</code>: aggregates over the training images, declared and \
             checked by L0."
        } else {
            "The standardization over the training images is folded into the first \
             convolution's weights: no input statistics ship."
        },
        "</p>\n"
    );
}
