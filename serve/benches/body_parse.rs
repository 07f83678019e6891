//! `POST /invocations` body parsing alone, without HTTP or the model: the 256-row JSON
//! request of `cargo bench --bench publish -- serve` (values `i * 0.5`), the same rows with
//! values of eight significant digits, and both as CSV. Prints requests/s and MB/s per
//! core, best of five rounds of about a second each.
//!
//! Usage: cargo bench -p airlock-serve --bench body_parse

use std::time::{Duration, Instant};

use airlock_serve::body::{parse_csv, parse_json};

/// The DEMO pipeline's features.
const FEATURES: [&str; 12] = airlock_model::demo::DEMO_FEATURES;

const ROWS: usize = 256;

fn main() {
    let features: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
    // The publish bench's body: every row the same, feature i = i * 0.5.
    let row: serde_json::Map<String, serde_json::Value> = features
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), serde_json::json!(i as f64 * 0.5)))
        .collect();
    let short = serde_json::json!({ "instances": vec![row; ROWS] }).to_string();
    // Rows of distinct values with eight significant digits (a fixed LCG).
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 1000.0
    };
    let mut grid = Vec::with_capacity(ROWS);
    for _ in 0..ROWS {
        grid.push(
            (0..features.len())
                .map(|_| format!("{:.8e}", next()))
                .collect::<Vec<_>>(),
        );
    }
    let long = format!(
        "{{\"instances\": [{}]}}",
        grid.iter()
            .map(|r| {
                let cells: Vec<String> = features
                    .iter()
                    .zip(r)
                    .map(|(f, v)| format!("\"{f}\": {v}"))
                    .collect();
                format!("{{{}}}", cells.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let csv: String = grid.iter().map(|r| r.join(",") + "\n").collect();
    println!("body parsing, {ROWS}-row requests, one core, best of 5 rounds:");
    case(
        "JSON, values i*0.5 (the serve bench)",
        short.as_bytes(),
        |b| parse_json(&features, b),
    );
    case("JSON, 8 significant digits", long.as_bytes(), |b| {
        parse_json(&features, b)
    });
    case("CSV, 8 significant digits", csv.as_bytes(), |b| {
        parse_csv(&features, b)
    });
}

fn case<E: std::fmt::Debug>(name: &str, body: &[u8], parse: impl Fn(&[u8]) -> Result<Vec<f32>, E>) {
    let x = parse(body).expect("the body parses");
    assert_eq!(x.len(), ROWS * FEATURES.len());
    let mut best = 0.0_f64;
    for _ in 0..5 {
        let (start, mut n) = (Instant::now(), 0u64);
        while start.elapsed() < Duration::from_secs(1) {
            for _ in 0..16 {
                std::hint::black_box(parse(std::hint::black_box(body)).expect("parses"));
            }
            n += 16;
        }
        best = best.max(n as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "  {name:<40} {:>8.0} requests/s  {:>7.1} MB/s  ({} bytes)",
        best,
        best * body.len() as f64 / 1e6,
        body.len()
    );
}
