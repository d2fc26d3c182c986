//! A node's own actix runtime thread, for handles started outside actix (e.g. from
//! `#[tokio::main]`): one thread running an actix `System`, stopped and joined on shutdown.

use std::thread::JoinHandle;

use actix_rt::{ArbiterHandle, System};
use tokio::sync::oneshot;

use crate::error::StartError;
use crate::types::NodeId;

/// A running actix system on a thread of its own.
pub(crate) struct NodeRuntime {
    system: System,
    arbiter: ArbiterHandle,
    thread: JoinHandle<()>,
}

impl NodeRuntime {
    /// Starts the thread and waits until its system runs.
    pub(crate) async fn start(id: NodeId) -> Result<NodeRuntime, StartError> {
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("raftor-node-{id}"))
            .spawn(move || {
                let runner = System::new();
                runner.block_on(async {
                    let _ = tx.send((System::current(), actix_rt::Arbiter::current()));
                });
                if let Err(error) = runner.run() {
                    tracing::error!(%error, "node runtime exited with an error");
                }
            })
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        let (system, arbiter) = rx
            .await
            .map_err(|_| StartError::Runtime("runtime thread died".into()))?;
        Ok(NodeRuntime {
            system,
            arbiter,
            thread,
        })
    }

    /// Where to start actors.
    pub(crate) fn arbiter(&self) -> &ArbiterHandle {
        &self.arbiter
    }

    /// Stops the system and joins the thread (off the async executor).
    pub(crate) async fn stop(self) {
        self.system.stop();
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
