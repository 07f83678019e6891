//! `make bench`: issue 17's figures. A federated round of the demo federation (three sites,
//! the fraud MLP, one local epoch per round) on a Flower SuperLink and three SuperNodes on
//! loopback: its wall time and where it goes (local training, the site's L0–L2 checks,
//! signing, the aggregator's verification, averaging and signing, and the rest: Flower's
//! transport and the processes it starts), then plain FedAvg on the same federation (the
//! same SuperNodes, the same local training through `airlock federate train-plain`, no
//! checks, signatures or log), and airlock's overhead over it.
//!
//! Usage: cargo bench --bench federation [-- ROWS_PER_SITE [ROUNDS]]

use std::path::{Path, PathBuf};

use airlock_federation::{DemoOptions, Loopback, flower_app_dir, prepare_demo};
use serde_json::Value;

fn flower_bin() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/setup-flower.sh"
        ))
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

fn rounds(path: &Path) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Per round (1 and on): (wall, train, checks, sign, verify, aggregate, round sign) and
/// the slowest site's local work.
fn split(r: &Value) -> [f64; 8] {
    let sites = r["sites"].as_array().cloned().unwrap_or_default();
    let site = |k: &str| mean(sites.iter().map(|s| f(s, k)));
    let slowest = sites
        .iter()
        .map(|s| f(s, "train_seconds") + f(s, "check_seconds") + f(s, "sign_seconds"))
        .fold(0.0, f64::max);
    [
        f(r, "wall_seconds"),
        site("train_seconds"),
        site("check_seconds"),
        site("sign_seconds"),
        f(r, "verify_seconds"),
        f(r, "aggregate_seconds"),
        f(r, "sign_seconds"),
        slowest,
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rows: usize = args.first().map_or(Ok(20_000), |s| s.parse())?;
    let n_rounds: u32 = args.get(1).map_or(Ok(5), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let bin = flower_bin()?;
    let airlock = PathBuf::from(env!("CARGO_BIN_EXE_airlock"));
    let layout = prepare_demo(&DemoOptions {
        out: dir.path().join("fed"),
        rounds: n_rounds,
        epochs_per_round: 1,
        rows_per_site: rows,
        airlock: airlock.clone(),
        flower_bin: bin.clone(),
        sites: 3,
    })?;
    println!(
        "federated round: 3 sites × {rows} rows, fraud MLP 12→64→32→1, 1 local epoch, Flower {} on loopback, {n_rounds} rounds",
        airlock_federation::FLOWER_VERSION
    );
    let fl = Loopback::start(&bin, &dir.path().join("flower"), &airlock, &layout.sites)?;
    let app = flower_app_dir(&dir.path().join("app"))?;
    let ok = fl.run(&app, &layout.run_config(&airlock), &mut |_| {})?;
    if !ok {
        return Err("the airlock federation failed".into());
    }
    let ours: Vec<[f64; 8]> = rounds(&layout.work.join("rounds.jsonl"))?
        .iter()
        .filter(|r| r["round"].as_u64() != Some(0))
        .map(split)
        .collect();

    let plain_app = dir.path().join("plain-app");
    for (name, text) in [
        (
            "pyproject.toml",
            include_str!("flower_plain/pyproject.toml"),
        ),
        ("plain_fedavg/__init__.py", ""),
        (
            "plain_fedavg/client.py",
            include_str!("flower_plain/plain_fedavg/client.py"),
        ),
        (
            "plain_fedavg/server.py",
            include_str!("flower_plain/plain_fedavg/server.py"),
        ),
    ] {
        let p = plain_app.join(name);
        std::fs::create_dir_all(p.parent().ok_or("no parent")?)?;
        std::fs::write(p, text)?;
    }
    let round0 = layout.state.join("rounds/000000");
    let work = dir.path().join("plain-work");
    let abs = |p: &Path| p.display().to_string();
    let ok = fl.run(
        &plain_app,
        &[
            ("airlock", abs(&airlock)),
            ("federation", abs(&layout.federation)),
            ("initial", abs(&round0.join("global.safetensors"))),
            ("preprocess", abs(&round0.join("preprocess.json"))),
            ("rounds", n_rounds.to_string()),
            ("work", abs(&work)),
        ],
        &mut |_| {},
    )?;
    if !ok {
        return Err("the plain FedAvg federation failed".into());
    }
    let plain: Vec<(f64, f64)> = rounds(&work.join("rounds.jsonl"))?
        .iter()
        .map(|r| {
            let sites = r["sites"].as_array().cloned().unwrap_or_default();
            (
                f(r, "wall_seconds"),
                mean(sites.iter().map(|s| f(s, "train_seconds"))),
            )
        })
        .collect();

    let col = |i: usize| mean(ours.iter().map(|r| r[i]));
    let (wall, train, checks, sign) = (col(0), col(1), col(2), col(3));
    let (verify, aggregate, round_sign, slowest) = (col(4), col(5), col(6), col(7));
    let transport = wall - slowest - verify - aggregate - round_sign;
    println!("\nairlock round (mean of {} rounds), seconds:", ours.len());
    println!("  wall                             {wall:8.3}");
    println!("  site: local training (mean)      {train:8.3}");
    println!("  site: L0–L2 checks (mean)        {checks:8.3}");
    println!("  site: signing + writing (mean)   {sign:8.3}");
    println!("  aggregator: verify updates       {verify:8.3}");
    println!("  aggregator: FedAvg               {aggregate:8.3}");
    println!("  aggregator: sign round + log     {round_sign:8.3}");
    println!("  transport + processes (rest)     {transport:8.3}");
    let plain_wall = mean(plain.iter().map(|p| p.0));
    let plain_train = mean(plain.iter().map(|p| p.1));
    println!(
        "\nplain FedAvg on the same Flower federation (mean of {} rounds):",
        plain.len()
    );
    println!("  wall                             {plain_wall:8.3}");
    println!("  site: local training (mean)      {plain_train:8.3}");
    let own = checks + sign + verify + round_sign;
    println!(
        "\nairlock's own work per round (site checks and signing, the aggregator's verification, signing and log): {own:.3} s, {:.1} % of plain FedAvg's round",
        100.0 * own / plain_wall.max(1e-9)
    );
    println!(
        "measured wall time over plain FedAvg: {:+.3} s per round ({:+.1} %); Flower's message polling moves single rounds by seconds",
        wall - plain_wall,
        100.0 * (wall - plain_wall) / plain_wall.max(1e-9)
    );
    Ok(())
}
