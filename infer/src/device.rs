//! Which burn backend and device a run uses.

use std::fmt;
use std::str::FromStr;

/// A device as written on the command line or in a pipeline: `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The CPU, through the fastest CPU backend measured here ([`Backend::DEFAULT_CPU`]).
    Cpu,
    /// CUDA device N, through burn-cuda (needs the `cuda` cargo feature).
    Cuda(usize),
}

/// A burn backend airlock can train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// burn-flex: pure-Rust CPU backend with SIMD kernels.
    Flex,
    /// burn-ndarray: CPU backend on the ndarray crate.
    NdArray,
    /// burn-cuda: NVIDIA GPUs.
    Cuda,
}

impl Backend {
    /// The CPU backend used for `--device cpu`. burn-flex trains the fraud-detector MLP
    /// faster than burn-ndarray on this project's machines (`make bench` measures both).
    pub const DEFAULT_CPU: Backend = Backend::Flex;

    /// Name recorded in the training record.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::NdArray => "ndarray",
            Self::Cuda => "cuda",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not `cpu`, `cuda` or `cuda:N`.
    #[error("unknown device {given:?}: expected cpu, cuda or cuda:N")]
    Parse {
        /// What was given.
        given: String,
    },
    /// A CUDA device was asked for, but this binary has no CUDA backend.
    #[error(
        "device {device} needs CUDA support, but this airlock was built without it; \
         rebuild with `cargo build --release --features cuda` (or `make build-cuda`), or use --device cpu"
    )]
    CudaNotBuilt {
        /// The device asked for.
        device: DeviceSpec,
    },
    /// The CUDA backend is built in, but the device cannot be opened.
    #[error("device {device} is not available: {reason}")]
    Unavailable {
        /// The device asked for.
        device: DeviceSpec,
        /// What the driver said.
        reason: String,
    },
}

impl DeviceError {
    /// What kind of failure this is: always [`airlock_schemas::ErrorKind::BadInput`] (the
    /// device asked for cannot be used: choose another).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Parse { .. } | Self::CudaNotBuilt { .. } | Self::Unavailable { .. } => {
                airlock_schemas::ErrorKind::BadInput
            }
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| {
                    // Only plain decimal: no sign, no spaces.
                    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| n.parse().ok())
                        .flatten()
                })
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Parse {
                    given: s.to_owned(),
                }),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// The backend this device trains on, after checking it can be used.
    pub fn resolve(self) -> Result<Backend, DeviceError> {
        match self {
            Self::Cpu => Ok(Backend::DEFAULT_CPU),
            Self::Cuda(index) => cuda::probe(index).map(|()| Backend::Cuda),
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod cuda {
    use super::{DeviceError, DeviceSpec};

    pub(super) fn probe(index: usize) -> Result<(), DeviceError> {
        Err(DeviceError::CudaNotBuilt {
            device: DeviceSpec::Cuda(index),
        })
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod cuda {
    use super::{DeviceError, DeviceSpec};
    use burn::backend::Cuda;
    use burn::backend::cuda::CudaDevice;
    use burn::tensor::Tensor;
    use std::sync::{Arc, Mutex};

    /// Open the device and run one tiny kernel. cubecl reports a missing driver or device
    /// by panicking (often on a worker thread, with the main thread then failing on a
    /// closed channel), so the probe runs behind `catch_unwind` with the default hook
    /// replaced by one that keeps the first panic message as the reason.
    pub(super) fn probe(index: usize) -> Result<(), DeviceError> {
        let first = Arc::new(Mutex::new(None::<String>));
        let hook = std::panic::take_hook();
        let keep = Arc::clone(&first);
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| {
                    info.payload()
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                })
                .unwrap_or_else(|| "unknown panic".to_owned());
            if let Ok(mut slot) = keep.lock() {
                slot.get_or_insert(msg);
            }
        }));
        let result = std::panic::catch_unwind(|| {
            let device = CudaDevice::new(index);
            let t = Tensor::<Cuda, 1>::from_floats([1.0, 2.0], &device);
            t.sum().into_scalar()
        });
        std::panic::set_hook(hook);
        result.map(|_| ()).map_err(|_| DeviceError::Unavailable {
            device: DeviceSpec::Cuda(index),
            reason: first.lock().ok().and_then(|m| m.clone()).map_or_else(
                || "the CUDA driver could not be initialized".to_owned(),
                explain,
            ),
        })
    }

    /// Shorten the driver loader's message (it lists dozens of library names).
    fn explain(msg: String) -> String {
        if msg.contains("Unable to dynamically load") && msg.contains("\"cuda\"") {
            "no NVIDIA driver found (libcuda.so could not be loaded; check the driver \
             installation and LD_LIBRARY_PATH)"
                .to_owned()
        } else {
            msg
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cpu));
        assert_eq!("cuda".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cuda(0)));
        assert_eq!(
            "cuda:3".parse::<DeviceSpec>().ok(),
            Some(DeviceSpec::Cuda(3))
        );
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:+1", "CPU", "cuda:1x"] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).resolve().expect_err("no cuda");
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
