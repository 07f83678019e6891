//! The features of the DEMO model (`pipelines/fraud-detector.toml`), in its card's order,
//! and the properties the serve body targets check.

/// The DEMO model's input features, in order.
pub const FEATURES: [&str; 12] = [
    "amount",
    "merchant_category",
    "hour",
    "distance_from_home_km",
    "txn_count_24h",
    "amount_to_avg_ratio",
    "is_online",
    "is_foreign",
    "card_present",
    "account_age_days",
    "days_since_last_txn",
    "failed_pin_attempts",
];

/// [`FEATURES`] as the parsers take them.
pub fn features() -> Vec<String> {
    FEATURES.iter().map(|f| (*f).to_owned()).collect()
}

/// What a parser accepted is whole rows of finite `f32`s: the model never sees a partial
/// row, an infinity or a NaN.
pub fn check_rows(x: &[f32], n_features: usize) {
    assert_eq!(
        x.len() % n_features,
        0,
        "{} values are not whole rows of {n_features}",
        x.len()
    );
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        panic!("value {i} is {}, not finite", x[i]);
    }
}

/// The rows as CSV, with the header: each value as Rust prints an `f32`, the shortest
/// text that reads back as the same `f32`.
pub fn to_csv(features: &[String], x: &[f32]) -> String {
    let mut out = features.join(",");
    out.push('\n');
    for row in x.chunks(features.len()) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// The rows as a JSON body. Each value is written as the `f64` it widens to exactly, so
/// that JSON's reading as `f64` and narrowing to `f32` gives it back unchanged.
pub fn to_json(features: &[String], x: &[f32]) -> String {
    let rows: Vec<String> = x
        .chunks(features.len())
        .map(|row| {
            let fields: Vec<String> = features
                .iter()
                .zip(row)
                .map(|(f, v)| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(f).expect("name"),
                        f64::from(*v)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    format!("{{\"instances\":[{}]}}", rows.join(","))
}

/// Whether two row sets are the same `f32`s bit for bit (so `-0` differs from `0`).
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
