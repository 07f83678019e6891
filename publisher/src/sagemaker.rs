//! SageMaker: a model package per release in the model's package group (the Model
//! Registry), and optionally a real-time endpoint serving it, whose capacity Application
//! Auto Scaling may follow demand with.

use std::time::{Duration, Instant};

use airlock_schemas::AutoscalingSpec;
use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};

use aws_sdk_sagemaker::types::{
    ContainerDefinition, EndpointStatus, InferenceSpecification, ModelApprovalStatus,
    ModelCompressionType, ModelDataSource, ModelPackageContainerDefinition, ProductionVariant,
    ProductionVariantInstanceType, S3ModelDataSource, S3ModelDataType,
};

use crate::aws::{Aws, describe};

/// What SageMaker should do with a release.
#[derive(Debug, Clone)]
pub struct SageMakerOptions {
    /// Model package group; the model's name when absent.
    pub group: Option<String>,
    /// Serving image (an ECR URI of an image that runs `airlock serve`).
    pub image: String,
    /// Deploy to a real-time endpoint.
    pub deploy: Option<DeployOptions>,
}

/// `--deploy ENDPOINT` and its settings.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Endpoint name.
    pub endpoint: String,
    /// IAM role SageMaker assumes to pull the image and the model data.
    pub role: String,
    /// Instance type, e.g. `ml.m5.large`.
    pub instance_type: String,
    /// Instance count.
    pub instance_count: i32,
    /// How long to wait for InService.
    pub timeout: Duration,
    /// How often to ask.
    pub poll: Duration,
}

/// Why a SageMaker step failed.
#[derive(Debug, thiserror::Error)]
pub enum SageMakerError {
    /// A request failed.
    #[error("SageMaker: cannot {action}: {message}")]
    Request {
        /// What was being done.
        action: String,
        /// The service's answer.
        message: String,
    },
    /// The endpoint ended in a failed state.
    #[error("SageMaker endpoint {endpoint} is {status}: {reason}")]
    EndpointFailed {
        /// Endpoint.
        endpoint: String,
        /// Its status.
        status: String,
        /// The service's reason.
        reason: String,
    },
    /// The endpoint did not come InService in time.
    #[error(
        "SageMaker endpoint {endpoint} is still {status} after {waited:?}; it may still come InService (check with `aws sagemaker describe-endpoint --endpoint-name {endpoint}`)"
    )]
    Timeout {
        /// Endpoint.
        endpoint: String,
        /// Last status seen.
        status: String,
        /// Time waited.
        waited: Duration,
    },
}

impl SageMakerError {
    /// What kind of failure this is: always [`airlock_schemas::ErrorKind::Remote`].
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Request { .. } | Self::EndpointFailed { .. } | Self::Timeout { .. } => {
                airlock_schemas::ErrorKind::Remote
            }
        }
    }
}

fn req<E>(
    action: impl Into<String>,
) -> impl FnOnce(
    aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> SageMakerError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let action = action.into();
    move |e| SageMakerError::Request {
        action,
        message: describe(&e),
    }
}

/// A SageMaker resource name (`^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`) made from parts.
pub fn resource_name(parts: &[&str]) -> String {
    let mut out = String::new();
    for c in parts.join("-").chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

/// What went into the registry for a release.
#[derive(Debug, Clone)]
pub struct Release<'a> {
    /// Model name.
    pub name: &'a str,
    /// Version.
    pub version: &'a str,
    /// `s3://…/` prefix holding the bundle's files by name (the model data).
    pub model_data: &'a str,
    /// SHA-256 of the signed statement.
    pub statement_sha256: &'a str,
    /// SHA-256 of the model file.
    pub model_sha256: &'a str,
    /// Key ids of the approvals that counted.
    pub approvals: &'a [String],
    /// Whether the approval threshold is met.
    pub approved: bool,
}

fn model_data_source(uri: &str) -> ModelDataSource {
    ModelDataSource::builder()
        .s3_data_source(
            S3ModelDataSource::builder()
                .s3_uri(uri)
                .s3_data_type(S3ModelDataType::S3Prefix)
                .compression_type(ModelCompressionType::None)
                .build(),
        )
        .build()
}

/// The account the SageMaker calls act in (STS GetCallerIdentity).
pub fn account(aws: &Aws) -> Result<String, SageMakerError> {
    aws.rt.block_on(async {
        aws.sts()
            .get_caller_identity()
            .send()
            .await
            .map_err(req("ask STS for the account"))?
            .account()
            .map(str::to_owned)
            .ok_or_else(|| SageMakerError::Request {
                action: "ask STS for the account".into(),
                message: "no account in the answer".into(),
            })
    })
}

/// Register the release as a model package; returns its ARN and whether it was created now.
/// A package of the same group carrying the same statement digest is reused, so a rerun
/// creates nothing new.
pub fn register(
    aws: &Aws,
    opts: &SageMakerOptions,
    rel: &Release<'_>,
) -> Result<(String, bool), SageMakerError> {
    let sm = aws.sagemaker();
    let group = opts
        .group
        .clone()
        .unwrap_or_else(|| resource_name(&[rel.name]));
    aws.rt.block_on(async {
        match sm
            .describe_model_package_group()
            .model_package_group_name(&group)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    aws_sdk_s3::error::ProvideErrorMetadata::message(s)
                        .is_some_and(|m| m.contains("does not exist"))
                }) =>
            {
                sm.create_model_package_group()
                    .model_package_group_name(&group)
                    .model_package_group_description(format!(
                        "airlock releases of {} (signed, approved weights only)",
                        rel.name
                    ))
                    .send()
                    .await
                    .map_err(req(format!("create model package group {group}")))?;
            }
            Err(e) => return Err(req(format!("describe model package group {group}"))(e)),
        }
        // Reuse a package for the same statement (a rerun after a later step failed).
        let list = sm
            .list_model_packages()
            .model_package_group_name(&group)
            .max_results(100)
            .send()
            .await
            .map_err(req(format!("list model packages of {group}")))?;
        for p in list.model_package_summary_list() {
            let Some(arn) = p.model_package_arn() else {
                continue;
            };
            let d = sm
                .describe_model_package()
                .model_package_name(arn)
                .send()
                .await
                .map_err(req(format!("describe model package {arn}")))?;
            if d.customer_metadata_properties()
                .and_then(|m| m.get("airlock:statement-sha256"))
                .is_some_and(|s| s == rel.statement_sha256)
            {
                return Ok((arn.to_owned(), false));
            }
        }
        let status = if rel.approved {
            ModelApprovalStatus::Approved
        } else {
            ModelApprovalStatus::PendingManualApproval
        };
        let mut create = sm
            .create_model_package()
            .model_package_group_name(&group)
            .model_package_description(format!("{} {}", rel.name, rel.version))
            .model_approval_status(status)
            .customer_metadata_properties("airlock:model", rel.name)
            .customer_metadata_properties("airlock:version", rel.version)
            .customer_metadata_properties("airlock:statement-sha256", rel.statement_sha256)
            .customer_metadata_properties("airlock:model-sha256", rel.model_sha256)
            .customer_metadata_properties("airlock:approvals", rel.approvals.len().to_string())
            .inference_specification(
                InferenceSpecification::builder()
                    .containers(
                        ModelPackageContainerDefinition::builder()
                            .image(&opts.image)
                            .model_data_source(model_data_source(rel.model_data))
                            .build(),
                    )
                    .supported_content_types("application/json")
                    .supported_content_types("text/csv")
                    .supported_response_mime_types("application/json")
                    .build(),
            );
        // Values are limited to 256 characters: one approving key id per property.
        for (i, k) in rel.approvals.iter().enumerate() {
            create = create.customer_metadata_properties(format!("airlock:approver-{}", i + 1), k);
        }
        create
            .send()
            .await
            .map_err(req(format!("create a model package in {group}")))?
            .model_package_arn()
            .map(|a| (a.to_owned(), true))
            .ok_or_else(|| SageMakerError::Request {
                action: "create a model package".into(),
                message: "no ARN in the answer".into(),
            })
    })
}

/// Bring `deploy.endpoint` InService on this release: CreateModel, CreateEndpointConfig,
/// then CreateEndpoint or UpdateEndpoint, and wait. Returns the endpoint's ARN.
pub fn deploy(
    aws: &Aws,
    opts: &SageMakerOptions,
    deploy: &DeployOptions,
    rel: &Release<'_>,
    package_arn: &str,
) -> Result<String, SageMakerError> {
    let sm = aws.sagemaker();
    // Names carry a digest of everything they are made of, so changing the image, role or
    // instances makes new ones (and updates the endpoint) instead of reusing stale ones.
    let short = |parts: &[&str]| {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update(b"\0");
        }
        hex::encode(h.finalize())[..12].to_owned()
    };
    let model_id = short(&[rel.statement_sha256, &opts.image, &deploy.role]);
    let model = resource_name(&[rel.name, rel.version, &model_id]);
    let count = deploy.instance_count.to_string();
    let config_id = short(&[&model, &deploy.instance_type, &count]);
    // Room for the digest within the 63-character limit.
    let endpoint_part: String = deploy.endpoint.chars().take(50).collect();
    let config = resource_name(&[&endpoint_part, &config_id]);
    aws.rt.block_on(async {
        if sm.describe_model().model_name(&model).send().await.is_err() {
            sm.create_model()
                .model_name(&model)
                .execution_role_arn(&deploy.role)
                .primary_container(
                    ContainerDefinition::builder()
                        .image(&opts.image)
                        .model_data_source(model_data_source(rel.model_data))
                        .environment("AIRLOCK_MODEL_PACKAGE_ARN", package_arn)
                        .environment("AIRLOCK_STATEMENT_SHA256", rel.statement_sha256)
                        .build(),
                )
                .send()
                .await
                .map_err(req(format!("create model {model}")))?;
        }
        if sm
            .describe_endpoint_config()
            .endpoint_config_name(&config)
            .send()
            .await
            .is_err()
        {
            sm.create_endpoint_config()
                .endpoint_config_name(&config)
                .production_variants(
                    ProductionVariant::builder()
                        .variant_name(VARIANT)
                        .model_name(&model)
                        .instance_type(ProductionVariantInstanceType::from(
                            deploy.instance_type.as_str(),
                        ))
                        .initial_instance_count(deploy.instance_count)
                        .build(),
                )
                .send()
                .await
                .map_err(req(format!("create endpoint config {config}")))?;
        }
        let existing = sm
            .describe_endpoint()
            .endpoint_name(&deploy.endpoint)
            .send()
            .await
            .ok();
        match existing {
            Some(e) if e.endpoint_config_name() == Some(config.as_str()) => {
                eprintln!("  endpoint {} already runs this release", deploy.endpoint);
            }
            Some(_) => {
                // An update must start from a settled endpoint.
                wait(&sm, deploy, false).await?;
                eprintln!("  updating endpoint {} to {config}", deploy.endpoint);
                sm.update_endpoint()
                    .endpoint_name(&deploy.endpoint)
                    .endpoint_config_name(&config)
                    .send()
                    .await
                    .map_err(req(format!("update endpoint {}", deploy.endpoint)))?;
            }
            None => {
                eprintln!("  creating endpoint {} with {config}", deploy.endpoint);
                sm.create_endpoint()
                    .endpoint_name(&deploy.endpoint)
                    .endpoint_config_name(&config)
                    .send()
                    .await
                    .map_err(req(format!("create endpoint {}", deploy.endpoint)))?;
            }
        }
        wait(&sm, deploy, true).await
    })
}

/// Poll DescribeEndpoint until InService (or, with `strict` false, any settled state).
async fn wait(
    sm: &aws_sdk_sagemaker::Client,
    deploy: &DeployOptions,
    strict: bool,
) -> Result<String, SageMakerError> {
    let start = Instant::now();
    loop {
        let d = sm
            .describe_endpoint()
            .endpoint_name(&deploy.endpoint)
            .send()
            .await
            .map_err(req(format!("describe endpoint {}", deploy.endpoint)))?;
        let status = d.endpoint_status().cloned();
        let arn = d.endpoint_arn().unwrap_or_default().to_owned();
        match status {
            Some(EndpointStatus::InService) => return Ok(arn),
            Some(EndpointStatus::Failed) if strict => {
                return Err(SageMakerError::EndpointFailed {
                    endpoint: deploy.endpoint.clone(),
                    status: "Failed".into(),
                    reason: d.failure_reason().unwrap_or("no reason given").to_owned(),
                });
            }
            Some(EndpointStatus::Failed) => return Ok(arn),
            _ => {}
        }
        let status = status.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned());
        if start.elapsed() >= deploy.timeout {
            return Err(SageMakerError::Timeout {
                endpoint: deploy.endpoint.clone(),
                status,
                waited: start.elapsed(),
            });
        }
        eprintln!("  endpoint {} is {status}; waiting", deploy.endpoint);
        tokio::time::sleep(deploy.poll).await;
    }
}

/// The one production variant of every endpoint airlock deploys.
pub const VARIANT: &str = "AllTraffic";

/// Application Auto Scaling's resource id of `endpoint`'s variant:
/// `endpoint/<endpoint>/variant/AllTraffic`.
pub fn scalable_resource_id(endpoint: &str) -> String {
    format!("endpoint/{endpoint}/variant/{VARIANT}")
}

/// The name of the target-tracking policy airlock puts on `endpoint`'s variant:
/// `airlock-<endpoint>-invocations` (one per endpoint, replaced by each deploy).
pub fn scaling_policy_name(endpoint: &str) -> String {
    format!("airlock-{endpoint}-invocations")
}

/// Let `endpoint`'s capacity follow demand: register its variant as a scalable target
/// (RegisterScalableTarget, `sagemaker:variant:DesiredInstanceCount` between
/// `min_instances` and `max_instances`), then put the target-tracking policy
/// [`scaling_policy_name`] on the predefined metric `SageMakerVariantInvocationsPerInstance`
/// (PutScalingPolicy). Both calls create or replace, so a rerun, or a deploy with changed
/// settings, leaves exactly these settings registered. Run once the endpoint is InService.
/// Returns the policy's ARN.
pub fn autoscale(
    aws: &Aws,
    endpoint: &str,
    scaling: &AutoscalingSpec,
) -> Result<String, SageMakerError> {
    let aas = aws.application_autoscaling();
    let resource_id = scalable_resource_id(endpoint);
    let policy = scaling_policy_name(endpoint);
    let action = |call: &str| format!("register autoscaling for endpoint {endpoint} ({call})");
    // The spec's bounds (at most 1000 instances, a day of cooldown) fit an i32.
    let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    let tracking = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(scaling.target_invocations_per_instance)
        .predefined_metric_specification(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(MetricType::SageMakerVariantInvocationsPerInstance)
                .build()
                .map_err(|e| SageMakerError::Request {
                    action: action("PutScalingPolicy"),
                    message: e.to_string(),
                })?,
        )
        .scale_in_cooldown(int(scaling.scale_in_cooldown_seconds))
        .scale_out_cooldown(int(scaling.scale_out_cooldown_seconds))
        .build()
        .map_err(|e| SageMakerError::Request {
            action: action("PutScalingPolicy"),
            message: e.to_string(),
        })?;
    aws.rt.block_on(async {
        aas.register_scalable_target()
            .service_namespace(ServiceNamespace::Sagemaker)
            .resource_id(&resource_id)
            .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
            .min_capacity(int(scaling.min_instances))
            .max_capacity(int(scaling.max_instances))
            .send()
            .await
            .map_err(req(action(&format!(
                "RegisterScalableTarget {resource_id}"
            ))))?;
        let put = aas
            .put_scaling_policy()
            .policy_name(&policy)
            .service_namespace(ServiceNamespace::Sagemaker)
            .resource_id(&resource_id)
            .scalable_dimension(ScalableDimension::SageMakerVariantDesiredInstanceCount)
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(tracking)
            .send()
            .await
            .map_err(req(action(&format!("PutScalingPolicy {policy}"))))?;
        Ok(put.policy_arn().to_owned())
    })
}
