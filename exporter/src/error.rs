//! Errors the agent reports to its operator. Configuration and flag errors exit with code 2
//! ([`EXIT_USAGE`]), everything else with 1.

use std::path::PathBuf;

/// Exit code for bad flags or configuration (as clap uses for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for failures at run time (missing privileges, kernel refusing a program).
pub const EXIT_FAILURE: u8 = 1;

/// A problem with flags, the config file or the price sheet: the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named on the command line cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A file is not valid YAML for its schema; `message` names the field, line and column.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A file parsed but some values are wrong; every problem is listed.
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One line per problem, naming the field.
        problems: Vec<String>,
    },
    /// `--interface` names an interface this machine does not have.
    #[error("--interface {name}: no such network interface (see `ip link`)")]
    UnknownInterface {
        /// The name given.
        name: String,
    },
    /// The cgroup v2 directory to attach to is missing or not cgroup v2.
    #[error("--cgroup.path {path}: {problem}")]
    CgroupPath {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A database file given on the command line cannot be used.
    #[error("{flag} {path}: {message}")]
    Database {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A flag value or combination that cannot work.
    #[error("{flag}: {problem}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl ConfigError {
    /// Reads a file named on the command line.
    ///
    /// # Errors
    /// [`ConfigError::Read`] naming the file.
    pub fn read_file(path: &std::path::Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })
    }

    /// Parses YAML text into `T`; `origin` names the source.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] whose message names the field, line and column.
    pub fn parse_yaml<T: serde::de::DeserializeOwned>(
        text: &str,
        origin: &std::path::Path,
    ) -> Result<T, ConfigError> {
        serde_yaml_ng::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_owned(), message: e.to_string() })
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad flags or configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Loading or attaching the eBPF programs failed.
    #[error(transparent)]
    Dataplane(#[from] crate::dataplane::DataplaneError),
    /// The checkpoint file cannot be locked (another agent runs) or created.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// The reader thread could not be started.
    #[error("starting the map reader thread")]
    Reader(#[source] std::io::Error),
    /// The HTTP listener could not be opened or failed.
    #[error("serving HTTP on {address}")]
    Http {
        /// The listen address.
        address: std::net::SocketAddr,
        #[source]
        /// The socket error.
        source: std::io::Error,
    },
}

impl AgentError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Config(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}
