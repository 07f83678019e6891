//! Which training jobs a burst runs: one with the pipeline's own hyperparameters, or a
//! sweep's grid or random draws over `[burst.sweep.parameters]`.

use std::collections::{BTreeMap, BTreeSet};

use airlock_schemas::{BurstSpec, SweepMethod};
use rand::Rng;

/// One training job to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPlan {
    /// The SageMaker training job name (`<burst id>-<n>`).
    pub name: String,
    /// The hyperparameters sent (SageMaker's strings).
    pub hyperparameters: BTreeMap<String, String>,
    /// Hosts.
    pub instance_count: u32,
}

/// The random stream of a sweep's draws.
const STREAM_SWEEP: u64 = 0x0073_7765_6570;

/// A value as a hyperparameter string: whole numbers without a fraction.
fn text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The jobs of burst `id` for `spec` (validated).
pub fn plan(spec: &BurstSpec, id: &str) -> Vec<JobPlan> {
    let combos: Vec<BTreeMap<String, f64>> = match &spec.sweep {
        None => vec![BTreeMap::new()],
        Some(s) => match s.method {
            SweepMethod::Grid => grid(&s.parameters),
            SweepMethod::Random => random(&s.parameters, s.trials.unwrap_or(1), s.seed),
        },
    };
    combos
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let instance_count = c
                .get("instance_count")
                .map_or(spec.instance_count, |v| *v as u32);
            let hyperparameters = c
                .iter()
                .filter(|(k, _)| *k != "instance_count")
                .map(|(k, v)| (k.clone(), text(*v)))
                .collect();
            JobPlan {
                name: format!("{id}-{}", i + 1),
                hyperparameters,
                instance_count,
            }
        })
        .collect()
}

fn grid(parameters: &BTreeMap<String, Vec<f64>>) -> Vec<BTreeMap<String, f64>> {
    let mut out = vec![BTreeMap::new()];
    for (k, values) in parameters {
        out = out
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(k.clone(), *v);
                    c
                })
            })
            .collect();
    }
    out
}

/// `trials` distinct combinations (fewer when the grid has fewer), each value drawn
/// uniformly from its list.
fn random(
    parameters: &BTreeMap<String, Vec<f64>>,
    trials: u32,
    seed: u64,
) -> Vec<BTreeMap<String, f64>> {
    let mut rng = airlock_model::rng(seed, STREAM_SWEEP);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let possible: usize = parameters.values().map(Vec::len).product();
    let want = (trials as usize).min(possible);
    let mut attempts = 0;
    while out.len() < want && attempts < 100 * want {
        attempts += 1;
        let combo: BTreeMap<String, f64> = parameters
            .iter()
            .map(|(k, v)| (k.clone(), v[rng.random_range(0..v.len())]))
            .collect();
        let key: Vec<u64> = combo.values().map(|v| v.to_bits()).collect();
        if seen.insert(key) {
            out.push(combo);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sweep: &str) -> BurstSpec {
        let text = format!(
            "destination = \"s3://b/p\"\nrole = \"r\"\nimage = \"i\"\ninstance_count = 1\n{sweep}"
        );
        let s: BurstSpec = toml::from_str(&text).expect("burst spec");
        s.validate().expect("valid");
        s
    }

    #[test]
    fn a_grid_runs_every_combination_and_instance_count_sets_hosts() {
        let s = spec(
            "[sweep]\nmethod = \"grid\"\n[sweep.parameters]\nlearning_rate = [0.001, 0.003]\ninstance_count = [1, 2]\n",
        );
        let jobs = plan(&s, "b");
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs.iter().filter(|j| j.instance_count == 2).count(), 2);
        assert_eq!(jobs[0].name, "b-1");
        assert_eq!(jobs[3].name, "b-4");
        assert!(
            jobs.iter()
                .all(|j| !j.hyperparameters.contains_key("instance_count"))
        );
        assert_eq!(jobs[0].hyperparameters["learning_rate"], "0.001");
    }

    #[test]
    fn a_random_sweep_draws_distinct_combinations_reproducibly() {
        let s = spec(
            "[sweep]\nmethod = \"random\"\ntrials = 5\nseed = 3\n[sweep.parameters]\nlearning_rate = [0.001, 0.002, 0.003]\nepochs = [4, 8]\n",
        );
        let a = plan(&s, "b");
        assert_eq!(a, plan(&s, "b"));
        assert_eq!(a.len(), 5);
        let distinct: BTreeSet<_> = a.iter().map(|j| j.hyperparameters.clone()).collect();
        assert_eq!(distinct.len(), 5);
        assert_eq!(a[0].hyperparameters.get("epochs").map(String::len), Some(1));
    }

    #[test]
    fn sweeps_out_of_bounds_are_refused() {
        for bad in [
            "[sweep]\nmethod = \"grid\"\n[sweep.parameters]\nmomentum = [0.9]\n",
            "[sweep]\nmethod = \"grid\"\n[sweep.parameters]\nepochs = [1.5]\n",
            "[sweep]\nmethod = \"random\"\n[sweep.parameters]\nepochs = [1]\n",
            "[sweep]\nmethod = \"grid\"\n[sweep.parameters]\ninstance_count = [0]\n",
        ] {
            let text = format!("destination = \"s3://b/p\"\nrole = \"r\"\nimage = \"i\"\n{bad}");
            let s: BurstSpec = toml::from_str(&text).expect("parses");
            assert!(s.validate().is_err(), "{bad}");
        }
    }
}
