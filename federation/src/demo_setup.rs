//! The demo federation's files: each site's data, key and folder; the aggregator's key;
//! the trust policy, the pipeline and the federation file; and the comparison of the
//! global model with each site's local-only model.

use std::path::{Path, PathBuf};

use airlock_model::demo::{DEMO_FEATURES, DEMO_IDENTIFIERS, DEMO_SITES, write_demo_site_csv};
use airlock_trainer::{TrainOptions, train_pipeline};
use airlock_trust::keys::{drop_group_other_write, generate};

use crate::demo::{DemoOptions, LoopbackSite, Score, score};
use crate::{Federation, FederationError, verify_chain};

/// Marks a folder the demo made (and may replace).
const MARKER: &str = ".airlock-federation-demo";
/// The seed of the demo's data.
const DATA_SEED: u64 = 7;

/// Where the demo put everything (the tests build on it).
#[derive(Debug, Clone)]
pub struct Layout {
    pub federation: PathBuf,
    pub state: PathBuf,
    pub aggregator_key: PathBuf,
    pub audit_log: PathBuf,
    pub work: PathBuf,
    pub sites: Vec<LoopbackSite>,
    pub holdouts: Vec<PathBuf>,
}

impl Layout {
    /// The ServerApp's `--run-config`.
    pub fn run_config(&self, airlock: &Path) -> Vec<(&'static str, String)> {
        let abs = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_owned())
                .display()
                .to_string()
        };
        vec![
            ("airlock", abs(airlock)),
            ("federation", abs(&self.federation)),
            ("state", abs(&self.state)),
            ("key", abs(&self.aggregator_key)),
            ("audit-log", abs(&self.audit_log)),
            ("work", abs(&self.work)),
        ]
    }
}

fn io<'a>(
    action: &'static str,
    p: &'a Path,
) -> impl FnOnce(std::io::Error) -> FederationError + 'a {
    move |e| FederationError::io(action, p, e)
}

/// Write the demo's files under `o.out` (replacing an earlier demo there, never anything
/// else).
pub fn prepare(o: &DemoOptions) -> Result<Layout, FederationError> {
    let out = &o.out;
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(io("read", out))?
            .next()
            .is_none();
        if !empty && !out.join(MARKER).exists() {
            return Err(FederationError::Failed(format!(
                "{} exists and was not made by `airlock federate`; choose another --out",
                out.display()
            )));
        }
        std::fs::remove_dir_all(out).map_err(io("remove", out))?;
    }
    std::fs::create_dir_all(out).map_err(io("create", out))?;
    std::fs::write(out.join(MARKER), "made by `airlock federate`\n").map_err(io("write", out))?;
    let mut sites = Vec::new();
    let mut holdouts = Vec::new();
    let mut trust = String::from(
        "# DEMO trust policy of the demo federation, written by `airlock federate`.\n\
         # Its keys live on this machine: never use them for real data.\n",
    );
    let mut site_tables = String::new();
    if !(1..=16).contains(&o.sites) {
        return Err(FederationError::Failed(
            "the demo runs 1 to 16 sites".into(),
        ));
    }
    for i in 0..o.sites {
        let name = &site_name(i);
        let dir = out.join("sites").join(name);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let data = dir.join("data.csv");
        write_demo_site_csv(&data, o.rows_per_site, DATA_SEED, i)?;
        let holdout = out.join("holdout").join(format!("{name}.csv"));
        write_demo_site_csv(&holdout, o.rows_per_site / 2, DATA_SEED + 1000, i)?;
        holdouts.push(holdout);
        let key = generate(&dir.join("site"))?;
        trust.push_str(&format!(
            "\n[[keys]]\nname = \"{name}\"\nrole = \"site\"\npublic_key = \"sites/{name}/site.pub\"\n"
        ));
        site_tables.push_str(&format!(
            "\n[[federation.sites]]\nname = \"{name}\"\nkey_id = \"{}\"\nregion = \"{}\"\n",
            key.key_id,
            ["eu-central-1", "eu-west-1", "eu-north-1"][i % 3]
        ));
        restrict(&[&dir, &key.public_key])?;
        sites.push(LoopbackSite {
            name: name.clone(),
            federation: out.join("federation.toml"),
            data,
            key: key.private_key,
            work: dir.join("work"),
            extra: Vec::new(),
        });
    }
    let agg_dir = out.join("aggregator");
    std::fs::create_dir_all(&agg_dir).map_err(io("create", &agg_dir))?;
    let agg = generate(&agg_dir.join("aggregator"))?;
    trust.push_str(
        "\n[[keys]]\nname = \"aggregator\"\nrole = \"aggregator\"\npublic_key = \"aggregator/aggregator.pub\"\n",
    );
    let trust_path = out.join("trust.toml");
    std::fs::write(&trust_path, trust).map_err(io("write", &trust_path))?;
    let pipeline = out.join("pipeline.toml");
    std::fs::write(&pipeline, pipeline_text(o)).map_err(io("write", &pipeline))?;
    let federation = out.join("federation.toml");
    std::fs::write(
        &federation,
        format!(
            "# The demo federation, written by `airlock federate`: three banks train one fraud\n\
             # model; only checked, signed weights leave each of them.\n\
             [federation]\nname = \"fraud-consortium\"\npipeline = \"pipeline.toml\"\ntrust = \"trust.toml\"\n\
             rounds = {}\nepochs_per_round = {}\nmin_sites = {}\nround_timeout_seconds = 600\n\n\
             [federation.aggregator]\nkey_id = \"{}\"\nregion = \"eu-central-1\"\n{site_tables}",
            o.rounds,
            o.epochs_per_round,
            o.sites.div_ceil(2).max(1),
            agg.key_id
        ),
    )
    .map_err(io("write", &federation))?;
    restrict(&[
        out,
        &trust_path,
        &agg_dir,
        &agg.public_key,
        &out.join("sites"),
    ])?;
    Ok(Layout {
        federation,
        state: agg_dir.join("state"),
        aggregator_key: agg.private_key,
        audit_log: agg_dir.join("audit.log"),
        work: agg_dir.join("work"),
        sites,
        holdouts,
    })
}

/// The demo's site `i`.
pub fn site_name(i: usize) -> String {
    DEMO_SITES
        .get(i)
        .map_or_else(|| format!("bank-{i}"), |s| (*s).to_owned())
}

fn restrict(paths: &[&Path]) -> Result<(), FederationError> {
    for p in paths {
        drop_group_other_write(p).map_err(io("restrict the permissions of", p))?;
    }
    Ok(())
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pipeline every site trains (and the local-only baselines, for as many epochs).
fn pipeline_text(o: &DemoOptions) -> String {
    format!(
        "# The demo federation's pipeline: every site trains this model on its own data\n\
         # (`airlock federate site --data`); data.source is the releasing site's.\n\
         [release]\nname = \"fraud-detector-federated\"\nversion = \"1.0.0\"\n\
         intended_use = \"Score card transactions for fraud review across the consortium. Not for credit decisions.\"\n\n\
         [data]\nsource = \"sites/{}/data.csv\"\nidentifiers = [{}]\nfeatures = [{}]\nlabel = \"fraud\"\n\
         subgroups = [{{ column = \"age\", bands = [30, 45, 60] }}, \"is_foreign\"]\n\n\
         [splits]\ntrain = 0.70\nvalidation = 0.15\nholdout = 0.15\n\n\
         [model]\nkind = \"mlp\"\nhidden = [64, 32]\ndropout = 0.1\n\n\
         [optimizer]\nkind = \"adam\"\nlearning_rate = 0.003\nweight_decay = 0.0001\n\n\
         [training]\nepochs = {}\nbatch_size = 64\nseed = 42\ndevice = \"cpu\"\n\n\
         # No one site can replay a federation's training: L4 is off, and the review says so.\n\
         [leak]\nreproduce = false\n",
        DEMO_SITES[0],
        list(&DEMO_IDENTIFIERS),
        list(&DEMO_FEATURES),
        o.rounds * o.epochs_per_round
    )
}

/// The global model and each site's local-only model (the same pipeline, as many epochs,
/// its own data only) on the pooled holdout.
pub(crate) fn compare(
    o: &DemoOptions,
    layout: &Layout,
    fed: &Federation,
    say: &mut dyn FnMut(&str),
) -> Result<Vec<Score>, FederationError> {
    let last = verify_chain(fed, &layout.state)?
        .ok_or_else(|| FederationError::Failed("no round".into()))?;
    let mut scores = vec![score(
        &fed.pipeline,
        &fed.description,
        &last.params,
        &last.preprocess,
        &layout.holdouts,
        "global (federated)",
    )?];
    let text =
        std::fs::read_to_string(&fed.pipeline_path).map_err(io("read", &fed.pipeline_path))?;
    for s in &layout.sites {
        say(&format!(
            "training {}'s local-only model on its own data",
            s.name
        ));
        let local = o.out.join("local");
        std::fs::create_dir_all(&local).map_err(io("create", &local))?;
        let pipeline = local.join(format!("{}.toml", s.name));
        let own = text.replace(
            &format!("source = \"sites/{}/data.csv\"", DEMO_SITES[0]),
            &format!("source = \"../sites/{}/data.csv\"", s.name),
        );
        std::fs::write(&pipeline, own).map_err(io("write", &pipeline))?;
        let run = train_pipeline(&TrainOptions {
            pipeline,
            out: Some(local.join(format!("{}-run", s.name))),
            device: None,
            cpu_backend: None,
            progress: false,
            hosts: None,
        })?;
        let r = airlock_model::read_run(&run.run_dir, false)
            .map_err(|e| FederationError::Failed(e.to_string()))?;
        let ckpt = airlock_model::Checkpoint::read(
            &run.run_dir.join(airlock_model::CHECKPOINT_FILE),
            &fed.description,
        )
        .map_err(|e| FederationError::Failed(e.to_string()))?;
        scores.push(score(
            &fed.pipeline,
            &fed.description,
            &ckpt.params,
            &r.pre,
            &layout.holdouts,
            &format!("{} (local only)", s.name),
        )?);
    }
    Ok(scores)
}
