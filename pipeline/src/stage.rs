//! The stages of a run, in order.

/// The stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    /// Train the model on the on-prem data (a run directory under runs/).
    Train,
    /// Strip, leak-check and sign the run into a release bundle (under releases/).
    Package,
    /// Verify the bundle and count the officers' approvals.
    Gate,
    /// Upload to the registry (and register in SageMaker's Model Registry).
    Publish,
    /// Bring the SageMaker endpoint InService on the release.
    Deploy,
}

impl Stage {
    /// The stage's name, as in `--from` and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Package => "package",
            Self::Gate => "gate",
            Self::Publish => "publish",
            Self::Deploy => "deploy",
        }
    }
}
