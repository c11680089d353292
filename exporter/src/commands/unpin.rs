//! `egressor unpin --bpf.pin-path DIR`: detaches the programs an agent left pinned
//! ([`crate::dataplane::pins`]) and deletes its checkpoint, for uninstalling. Refuses while
//! an agent runs with that checkpoint (it holds the lock).

use crate::{
    checkpoint::{CheckpointError, CheckpointFile},
    cli::UnpinArgs,
    dataplane::{DataplaneError, pins},
};

/// What `egressor unpin` could not do.
#[derive(Debug, thiserror::Error)]
pub enum UnpinError {
    /// An agent is running, or the checkpoint cannot be locked.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The pins cannot be removed.
    #[error(transparent)]
    Pins(#[from] DataplaneError),
}

/// Removes the pins and the checkpoint; returns whether anything was pinned.
///
/// # Errors
/// [`UnpinError`] naming the flag and the path.
pub fn run(args: &UnpinArgs) -> Result<bool, UnpinError> {
    let file = CheckpointFile::lock(&args.checkpoint_file)?;
    let removed = pins::remove_all(&args.pin_path)?;
    file.remove();
    file.remove_lock();
    Ok(removed)
}
