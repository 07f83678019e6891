//! `airlock federate` with no subcommand: the embedded demo. Three banks, each with its own
//! synthetic transactions (skewed toward its own customers), its own key and its own
//! folder, train a fraud model together through a Flower SuperLink and three SuperNodes on
//! loopback. Afterwards the global model becomes a run directory, and it is compared with
//! each site's local-only model on the pooled holdout of all three.
//!
//! [`Loopback`] starts and stops the Flower processes; the tests use it too.

use std::io::{BufRead as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_model::{Description, Params, Preprocess};
use airlock_schemas::PipelineSpec;
use burn::backend::Flex;
use serde::Serialize;

use crate::{Federation, FederationError, FinalizeOptions, finalize, verify_chain};

/// The Flower release airlock's app is written for (`tests/setup-flower.sh` installs it).
pub const FLOWER_VERSION: &str = "1.42.0";

/// airlock's Flower app, embedded so the binary carries the exact app it calls.
const APP_FILES: [(&str, &str); 5] = [
    ("pyproject.toml", include_str!("../flower/pyproject.toml")),
    (
        "airlock_flower/__init__.py",
        include_str!("../flower/airlock_flower/__init__.py"),
    ),
    (
        "airlock_flower/common.py",
        include_str!("../flower/airlock_flower/common.py"),
    ),
    (
        "airlock_flower/client.py",
        include_str!("../flower/airlock_flower/client.py"),
    ),
    (
        "airlock_flower/server.py",
        include_str!("../flower/airlock_flower/server.py"),
    ),
];

fn demo_err(what: impl std::fmt::Display) -> FederationError {
    FederationError::Failed(what.to_string())
}

/// Write airlock's Flower app into `into` (created) and return it.
pub fn flower_app_dir(into: &Path) -> Result<PathBuf, FederationError> {
    for (name, text) in APP_FILES {
        let path = into.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| FederationError::io("create", dir, e))?;
        }
        std::fs::write(&path, text).map_err(|e| FederationError::io("write", &path, e))?;
    }
    Ok(into.to_owned())
}

/// One SuperNode: a site and what its ClientApp is told (`--node-config`).
#[derive(Debug, Clone)]
pub struct LoopbackSite {
    /// The site's name.
    pub name: String,
    /// The federation file as this site holds it.
    pub federation: PathBuf,
    /// Its data.
    pub data: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// Its scratch folder.
    pub work: PathBuf,
    /// More `--node-config` entries (key, string value).
    pub extra: Vec<(String, String)>,
}

/// A Flower SuperLink and SuperNodes on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Loopback {
    bin: PathBuf,
    home: PathBuf,
    logs: PathBuf,
    superlink: Child,
    nodes: Vec<(String, Child)>,
}

fn free_port() -> Result<u16, FederationError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| demo_err(format!("no free port on 127.0.0.1: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| demo_err(e.to_string()))
}

impl Loopback {
    /// Start a SuperLink and one SuperNode per site, with the Flower executables in `bin`,
    /// Flower's home and the processes' logs under `dir`; `airlock` is the binary the
    /// ClientApps call.
    pub fn start(
        bin: &Path,
        dir: &Path,
        airlock: &Path,
        sites: &[LoopbackSite],
    ) -> Result<Self, FederationError> {
        let home = dir.join("flower-home");
        let logs = dir.join("flower-logs");
        for d in [&home, &logs] {
            std::fs::create_dir_all(d).map_err(|e| FederationError::io("create", d, e))?;
        }
        let port = free_port()?;
        std::fs::write(
            home.join("config.toml"),
            format!("[superlink]\ndefault = \"airlock\"\n\n[superlink.airlock]\naddress = \"127.0.0.1:{port}\"\ninsecure = true\n"),
        )
        .map_err(|e| FederationError::io("write", &home.join("config.toml"), e))?;
        let superlink = spawn(
            bin,
            &home,
            &logs.join("superlink.log"),
            "flower-superlink",
            &[
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ],
        )?;
        let mut me = Self {
            bin: bin.to_owned(),
            home,
            logs,
            superlink,
            nodes: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if Instant::now() > deadline || me.superlink.try_wait().ok().flatten().is_some() {
                return Err(demo_err(format!(
                    "the Flower SuperLink did not start (see {})",
                    me.logs.join("superlink.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for s in sites {
            std::fs::create_dir_all(&s.work)
                .map_err(|e| FederationError::io("create", &s.work, e))?;
            let mut config = format!(
                "site={} federation={} data={} key={} airlock={} work={}",
                quoted(&s.name),
                quoted_path(&s.federation),
                quoted_path(&s.data),
                quoted_path(&s.key),
                quoted_path(airlock),
                quoted_path(&s.work)
            );
            for (k, v) in &s.extra {
                config.push_str(&format!(" {k}={}", quoted(v)));
            }
            let child = spawn(
                bin,
                &me.home,
                &me.logs.join(format!("supernode-{}.log", s.name)),
                "flower-supernode",
                &[
                    "--insecure",
                    "--superlink",
                    &format!("127.0.0.1:{port}"),
                    "--port",
                    &free_port()?.to_string(),
                    "--node-config",
                    &config,
                ],
            )?;
            me.nodes.push((s.name.clone(), child));
        }
        Ok(me)
    }

    /// `flwr run APP` on this SuperLink with `config` (`--run-config`), its log lines
    /// passed to `line` as they come. Returns whether `flwr run` succeeded.
    pub fn run(
        &self,
        app: &Path,
        config: &[(&str, String)],
        line: &mut dyn FnMut(&str),
    ) -> Result<bool, FederationError> {
        let run_config = config
            .iter()
            .map(|(k, v)| format!("{k}={}", quoted(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = command(&self.bin, &self.home, "flwr")
            .args(["run"])
            .arg(app)
            .args(["airlock", "--stream", "--run-config", &run_config])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| demo_err(format!("cannot start flwr ({}): {e}", self.bin.display())))?;
        let stderr = child.stderr.take();
        let errs = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut e) = stderr {
                let _ = std::io::Read::read_to_string(&mut e, &mut s);
            }
            s
        });
        if let Some(out) = child.stdout.take() {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                line(&l);
            }
        }
        let status = child.wait().map_err(|e| demo_err(e.to_string()))?;
        for l in errs.join().unwrap_or_default().lines() {
            line(l);
        }
        Ok(status.success())
    }

    /// Stop site `name`'s SuperNode (a site that drops out).
    pub fn kill_site(&mut self, name: &str) {
        for (n, c) in &mut self.nodes {
            if n == name {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The folder holding the Flower processes' logs.
    pub fn logs(&self) -> &Path {
        &self.logs
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        for (_, c) in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.superlink.kill();
        let _ = self.superlink.wait();
    }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn quoted_path(p: &Path) -> String {
    quoted(
        &std::path::absolute(p)
            .unwrap_or_else(|_| p.to_owned())
            .display()
            .to_string(),
    )
}

fn command(bin: &Path, home: &Path, program: &str) -> Command {
    let mut c = Command::new(bin.join(program));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_owned()];
    paths.extend(std::env::split_paths(&path));
    c.env("PATH", std::env::join_paths(paths).unwrap_or(path))
        .env("FLWR_HOME", home)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    c
}

fn spawn(
    bin: &Path,
    home: &Path,
    log: &Path,
    program: &str,
    args: &[&str],
) -> Result<Child, FederationError> {
    let out = std::fs::File::create(log).map_err(|e| FederationError::io("create", log, e))?;
    let err = out
        .try_clone()
        .map_err(|e| FederationError::io("open", log, e))?;
    command(bin, home, program)
        .args(args)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| {
            demo_err(format!(
                "cannot start {program} from {}: {e} (run tests/setup-flower.sh)",
                bin.display()
            ))
        })
}

/// What `airlock federate` (the demo) is given.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The demo's folder (created; its earlier content is replaced).
    pub out: PathBuf,
    /// Training rounds.
    pub rounds: u32,
    /// Local epochs per round.
    pub epochs_per_round: u32,
    /// Transactions per site.
    pub rows_per_site: usize,
    /// Sites (the three demo banks, then `bank-3`, `bank-4`... whose data is drawn like
    /// the first ones', from other seeds).
    pub sites: usize,
    /// The `airlock` binary the Flower apps call.
    pub airlock: PathBuf,
    /// The folder holding `flower-superlink`, `flower-supernode` and `flwr`.
    pub flower_bin: PathBuf,
}

/// A model's ROC AUC on the pooled holdout.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    /// Whose model.
    pub model: String,
    /// Its ROC AUC on the holdout rows of all sites together.
    pub roc_auc: f64,
    /// Its log loss there.
    pub log_loss: f64,
}

/// What the demo made and measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// The federation file.
    pub federation: PathBuf,
    /// The global model's run directory (ready for `airlock package`).
    pub run_dir: PathBuf,
    /// The global model's score, then each site's local-only model's.
    pub scores: Vec<Score>,
    /// The releasing site's data (what `airlock package` checks the run against).
    pub release_data: PathBuf,
}

/// Run the demo: data, keys and policy for three sites and an aggregator, every round on
/// Flower over loopback, the run directory, and the comparison.
pub fn demo(o: &DemoOptions, say: &mut dyn FnMut(&str)) -> Result<DemoReport, FederationError> {
    let layout = crate::demo_setup::prepare(o)?;
    say(&format!(
        "federation {}: {} sites ({}), {} rounds of {} local epochs; Flower {} on 127.0.0.1",
        layout.federation.display(),
        layout.sites.len(),
        layout
            .sites
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        o.rounds,
        o.epochs_per_round,
        FLOWER_VERSION
    ));
    let app = flower_app_dir(&o.out.join("flower-app"))?;
    let fl = Loopback::start(&o.flower_bin, &o.out, &o.airlock, &layout.sites)?;
    let ok = fl.run(&app, &layout.run_config(&o.airlock), &mut |l| say(l))?;
    drop(fl);
    let fed = Federation::load(&layout.federation)?;
    let last = verify_chain(&fed, &layout.state)?.map_or(0, |r| r.round);
    if !ok || last != o.rounds {
        return Err(demo_err(format!(
            "the federation stopped after signed round {last} of {} (Flower's logs: {})",
            o.rounds,
            o.out.join("flower-logs").display()
        )));
    }
    let run_dir = o.out.join("global-run");
    let release_data = layout.sites[0].data.clone();
    finalize(&FinalizeOptions {
        federation: layout.federation.clone(),
        state: layout.state.clone(),
        data: release_data.clone(),
        out: run_dir.clone(),
        progress: false,
    })?;
    say(&format!(
        "global model: run directory {}",
        run_dir.display()
    ));
    let scores = crate::demo_setup::compare(o, &layout, &fed, say)?;
    Ok(DemoReport {
        federation: layout.federation,
        run_dir,
        scores,
        release_data,
    })
}

/// A model's outputs on the pooled holdout files, standardized with `pre`.
pub(crate) fn score(
    spec: &PipelineSpec,
    description: &Description,
    params: &Params,
    pre: &Preprocess,
    holdouts: &[PathBuf],
    model: &str,
) -> Result<Score, FederationError> {
    let (mut out, mut y) = (Vec::new(), Vec::new());
    let device = Default::default();
    let net = airlock_infer::to_net::<Flex>(description, params, false, &device);
    for h in holdouts {
        let d = airlock_model::load_dataset(spec, h, true)
            .map_err(airlock_trainer::TrainError::from)?;
        let x = pre.apply(&d.table.features, 0..d.rows());
        out.extend(airlock_infer::predict_outputs(
            &net,
            &x,
            description.input_len(),
            &device,
        ));
        y.extend(d.table.labels.unwrap_or_default());
    }
    Ok(Score {
        model: model.to_owned(),
        roc_auc: airlock_model::roc_auc(&out, &y).unwrap_or(0.5),
        log_loss: airlock_model::log_loss(&out, &y),
    })
}

/// Print a line to stderr (what the CLI's `say` does).
pub fn eprint_line(l: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{l}");
}
