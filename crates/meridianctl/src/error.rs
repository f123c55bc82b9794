//! The error type of `meridianctl` and its mapping to exit statuses (1 failed, 2 usage).

use std::fmt;

/// Why a verb did not succeed.
#[derive(Debug)]
pub enum CtlError {
    /// The operation failed: unreachable, refused, timed out, bad answer. Exit status 1.
    Failed(String),
    /// The command line asked for something impossible. Exit status 2.
    Usage(String),
}

impl CtlError {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }

    /// Process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Failed(_) => 1,
            Self::Usage(_) => 2,
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(m) | Self::Usage(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CtlError {}
