//! SageMaker training jobs: CreateTrainingJob with the export as the `train` channel,
//! DescribeTrainingJob until it ends, the digest the container tagged its own job with,
//! StopTrainingJob when a burst stops early.

use airlock_publisher::aws::{Aws, describe};
use airlock_schemas::BurstSpec;
use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, Channel, DataSource, OutputDataConfig, ResourceConfig,
    S3DataDistribution, S3DataSource, S3DataType, StoppingCondition, Tag, TrainingInputMode,
    TrainingInstanceType, TrainingJobStatus,
};

use crate::BurstError;
use crate::plan::JobPlan;

/// The tag a training container writes its artifact's digest to.
pub const DIGEST_TAG: &str = "airlock:run-sha256";
/// The tag naming the burst a job belongs to.
pub const BURST_TAG: &str = "airlock:burst";

/// A job created on SageMaker.
#[derive(Debug, Clone)]
pub struct SageMakerJob {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
}

/// How a SageMaker job ended.
#[derive(Debug, Clone)]
pub enum SmEnd {
    /// Completed: where SageMaker put the artifact, and the digest the job tagged itself
    /// with (none: it recorded none).
    Completed {
        /// `ModelArtifacts.S3ModelArtifacts`.
        artifact: String,
        /// The `airlock:run-sha256` tag.
        run_sha256: Option<String>,
    },
    /// Failed or stopped, with SageMaker's reason.
    Failed(String),
}

fn failed(action: &str, message: String) -> BurstError {
    BurstError::Failed(format!("SageMaker: {action}: {message}"))
}

/// CreateTrainingJob for `job`: the training image, the export under `channel` as the
/// `train` channel (fully replicated to every host), outputs under `output`.
pub fn create(
    aws: &Aws,
    spec: &BurstSpec,
    job: &JobPlan,
    channel: &str,
    output: &str,
    burst: &str,
) -> Result<SageMakerJob, BurstError> {
    let sm = aws.sagemaker();
    let input = Channel::builder()
        .channel_name("train")
        .data_source(
            DataSource::builder()
                .s3_data_source(
                    S3DataSource::builder()
                        .s3_data_type(S3DataType::S3Prefix)
                        .s3_uri(channel)
                        .s3_data_distribution_type(S3DataDistribution::FullyReplicated)
                        .build(),
                )
                .build(),
        )
        .build();
    let resources = ResourceConfig::builder()
        .instance_type(TrainingInstanceType::from(spec.instance_type.as_str()))
        .instance_count(i32::try_from(job.instance_count).unwrap_or(1))
        .volume_size_in_gb(30)
        .build();
    let request = sm
        .create_training_job()
        .training_job_name(&job.name)
        .algorithm_specification(
            AlgorithmSpecification::builder()
                .training_image(&spec.image)
                .training_input_mode(TrainingInputMode::File)
                .build(),
        )
        .role_arn(&spec.role)
        .input_data_config(input)
        .output_data_config(OutputDataConfig::builder().s3_output_path(output).build())
        .resource_config(resources)
        .stopping_condition(
            StoppingCondition::builder()
                .max_runtime_in_seconds(i32::try_from(spec.max_runtime_seconds).unwrap_or(i32::MAX))
                .build(),
        )
        .set_hyper_parameters(Some(job.hyperparameters.clone().into_iter().collect()))
        .tags(Tag::builder().key(BURST_TAG).value(burst).build());
    let out = aws
        .rt
        .block_on(request.send())
        .map_err(|e| failed(&format!("create training job {}", job.name), describe(&e)))?;
    Ok(SageMakerJob {
        name: job.name.clone(),
        arn: out.training_job_arn().unwrap_or_default().to_owned(),
    })
}

/// `None` while the job runs; how it ended once it has.
pub fn poll(aws: &Aws, job: &SageMakerJob) -> Result<Option<SmEnd>, BurstError> {
    let sm = aws.sagemaker();
    let d = aws
        .rt
        .block_on(
            sm.describe_training_job()
                .training_job_name(&job.name)
                .send(),
        )
        .map_err(|e| failed(&format!("describe training job {}", job.name), describe(&e)))?;
    match d.training_job_status() {
        Some(TrainingJobStatus::Completed) => {
            let artifact = d
                .model_artifacts()
                .and_then(|m| m.s3_model_artifacts().map(str::to_owned))
                .unwrap_or_default();
            let tags = aws
                .rt
                .block_on(sm.list_tags().resource_arn(&job.arn).send())
                .map_err(|e| failed(&format!("list the tags of {}", job.name), describe(&e)))?;
            let run_sha256 = tags
                .tags()
                .iter()
                .find(|t| t.key() == Some(DIGEST_TAG))
                .and_then(|t| t.value().map(str::to_owned));
            Ok(Some(SmEnd::Completed {
                artifact,
                run_sha256,
            }))
        }
        Some(TrainingJobStatus::Failed | TrainingJobStatus::Stopped) => Ok(Some(SmEnd::Failed(
            d.failure_reason()
                .unwrap_or("stopped")
                .chars()
                .take(1024)
                .collect(),
        ))),
        _ => Ok(None),
    }
}

/// StopTrainingJob (a job already ended is left as it is).
pub fn stop(aws: &Aws, job: &SageMakerJob) -> Result<(), BurstError> {
    stop_named(aws, &job.name)
}

/// StopTrainingJob by name.
pub fn stop_named(aws: &Aws, name: &str) -> Result<(), BurstError> {
    let sm = aws.sagemaker();
    aws.rt
        .block_on(sm.stop_training_job().training_job_name(name).send())
        .map(|_| ())
        .map_err(|e| failed(&format!("stop training job {name}"), describe(&e)))
}

/// Tag the job `arn` with its artifact's digest (what the training container does on
/// SageMaker after writing its model).
pub fn tag_digest(aws: &Aws, arn: &str, run_sha256: &str) -> Result<(), BurstError> {
    let sm = aws.sagemaker();
    let tag = Tag::builder().key(DIGEST_TAG).value(run_sha256).build();
    aws.rt
        .block_on(sm.add_tags().resource_arn(arn).tags(tag).send())
        .map(|_| ())
        .map_err(|e| failed(&format!("tag {arn}"), describe(&e)))
}
