//! The part of CycloneDX 1.6's JSON format that an airlock ML-BOM uses, as serde types:
//! member names and nesting as in `bom-1.6.schema.json`, members in the schema's order, an
//! empty list or an absent value left out. Nothing here knows about airlock.

use serde::Serialize;

/// `bom-1.6.schema.json`'s `$id`, written as the document's `$schema`.
pub const SCHEMA_URI: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bom {
    /// [`SCHEMA_URI`].
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    /// `CycloneDX`.
    #[serde(rename = "bomFormat")]
    pub bom_format: &'static str,
    /// `1.6`.
    #[serde(rename = "specVersion")]
    pub spec_version: &'static str,
    /// `urn:uuid:...`.
    #[serde(rename = "serialNumber")]
    pub serial_number: String,
    /// Revision of the BOM with this serial number.
    pub version: u32,
    /// What the BOM describes, when and by what tool.
    pub metadata: Metadata,
    /// The other components (the datasets).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// What depends on what, by `bom-ref`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// Notes by people on components (the officers' decisions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Pre-defined lifecycle phases (`post-build`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lifecycles: Vec<Lifecycle>,
    /// The tools that wrote the BOM.
    pub tools: Tools,
    /// The component the BOM describes.
    pub component: Component,
}

/// One pre-defined lifecycle phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    /// `design`, `pre-build`, `build`, `post-build`, ...
    pub phase: &'static str,
}

/// `metadata.tools` in the 1.5+ form (components, not the deprecated list).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tools {
    /// The tools, as components.
    pub components: Vec<Component>,
}

/// A component (`type` is one of the schema's classifications).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Component {
    /// `application`, `file`, `machine-learning-model`, `data`, ...
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Identifier within the BOM.
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    /// Name.
    pub name: String,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Digests of the component's bytes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
    /// Documents about the component that are not in the BOM.
    #[serde(rename = "externalReferences", skip_serializing_if = "Vec::is_empty")]
    pub external_references: Vec<ExternalReference>,
    /// Sub-components (the files of a release).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// For a `machine-learning-model`.
    #[serde(rename = "modelCard", skip_serializing_if = "Option::is_none")]
    pub model_card: Option<ModelCard>,
    /// For `data`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ComponentData>,
    /// Name-value pairs outside the standard's fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

/// A digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hash {
    /// `SHA-256`.
    pub alg: &'static str,
    /// Lowercase hex.
    pub content: String,
}

impl Hash {
    /// A SHA-256 digest, lowercase hex.
    pub fn sha256(hex: &str) -> Self {
        Self {
            alg: "SHA-256",
            content: hex.to_owned(),
        }
    }
}

/// `externalReferences[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalReference {
    /// An IRI reference (a bundle-relative file name here).
    pub url: String,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `attestation`, `model-card`, `evidence`, ...
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Digests of what `url` names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
}

/// A name-value pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Property {
    /// Name (airlock's are under `airlock:`).
    pub name: String,
    /// Value.
    pub value: String,
}

impl Property {
    /// `name` = `value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `modelCard`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCard {
    /// Task, architecture, datasets, inputs and outputs.
    #[serde(rename = "modelParameters")]
    pub model_parameters: ModelParameters,
    /// Performance metrics.
    #[serde(rename = "quantitativeAnalysis")]
    pub quantitative_analysis: QuantitativeAnalysis,
    /// Uses, limitations, risks.
    pub considerations: Considerations,
}

/// `modelCard.modelParameters`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelParameters {
    /// The learning approach.
    pub approach: Approach,
    /// e.g. `binary-classification`.
    pub task: String,
    /// e.g. `multilayer perceptron`.
    #[serde(rename = "architectureFamily")]
    pub architecture_family: String,
    /// The specific architecture.
    #[serde(rename = "modelArchitecture")]
    pub model_architecture: String,
    /// The training datasets, by reference to their `data` components.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetRef>,
    /// One entry per input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<MlFormat>,
    /// One entry per output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<MlFormat>,
}

/// `modelParameters.approach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approach {
    /// `supervised`, ...
    #[serde(rename = "type")]
    pub type_: &'static str,
}

/// A dataset of `modelParameters.datasets`, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetRef {
    /// The `bom-ref` of a `data` component.
    #[serde(rename = "ref")]
    pub ref_: String,
}

/// `inputOutputMLParameters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MlFormat {
    /// In words.
    pub format: String,
}

/// `modelCard.quantitativeAnalysis`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuantitativeAnalysis {
    /// The metrics.
    #[serde(rename = "performanceMetrics")]
    pub performance_metrics: Vec<PerformanceMetric>,
}

/// One metric (values are strings in CycloneDX).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PerformanceMetric {
    /// Metric name.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its value.
    pub value: String,
    /// What it was measured on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
    /// Its interval, when one was computed.
    #[serde(rename = "confidenceInterval", skip_serializing_if = "Option::is_none")]
    pub confidence_interval: Option<ConfidenceInterval>,
}

/// `performanceMetric.confidenceInterval`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfidenceInterval {
    /// Lower end.
    #[serde(rename = "lowerBound")]
    pub lower_bound: String,
    /// Upper end.
    #[serde(rename = "upperBound")]
    pub upper_bound: String,
}

/// `modelCard.considerations`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Considerations {
    /// What the model is for.
    #[serde(rename = "useCases", skip_serializing_if = "Vec::is_empty")]
    pub use_cases: Vec<String>,
    /// What it cannot do, or where it may not run.
    #[serde(rename = "technicalLimitations", skip_serializing_if = "Vec::is_empty")]
    pub technical_limitations: Vec<String>,
    /// Risks and how they were met.
    #[serde(
        rename = "ethicalConsiderations",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ethical_considerations: Vec<Risk>,
}

/// `risk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// The risk.
    pub name: String,
    /// How it was met.
    #[serde(rename = "mitigationStrategy")]
    pub mitigation_strategy: String,
}

/// `componentData`: what a `data` component holds, described, never its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentData {
    /// `dataset`, `configuration`, ...
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// The dataset's name.
    pub name: String,
    /// In words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `dependencies[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The dependent's `bom-ref`.
    #[serde(rename = "ref")]
    pub ref_: String,
    /// What it depends on (an empty list: nothing).
    #[serde(rename = "dependsOn")]
    pub depends_on: Vec<String>,
}

/// `annotations[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotation {
    /// What it is about, by `bom-ref`.
    pub subjects: Vec<String>,
    /// Who wrote it.
    pub annotator: Annotator,
    /// When (RFC 3339).
    pub timestamp: String,
    /// What it says.
    pub text: String,
}

/// `annotations[].annotator`, as an individual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Annotator {
    /// The person.
    pub individual: Individual,
}

/// `organizationalContact`, by name only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Individual {
    /// The name.
    pub name: String,
}
