//! [`TcpServer`]: the receiving side. Bound first, served once the node's `Raft` handle exists:
//!
//! ```text
//!  TcpServer::bind(id, addr, config) ──► Raft::start(.., TcpNetwork, ..) ──► server.serve(raft)
//!                                                                               │ ServerHandle
//!  accept loop ─► per connection: handshake ─► read requests ─► RaftRpc (concurrently) ─► answers
//! ```
//!
//! The accept loop owns every connection task, and each connection task owns its requests'
//! tasks: stopping the loop (through [`ServerHandle::shutdown`], or by dropping the handle) stops
//! them all.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info_span, warn, Instrument};

use crate::network::RaftRpc;
use crate::types::NodeId;

use super::config::TcpConfig;
use super::error::TcpError;
use super::inbound;

/// How long the accept loop pauses after `accept` fails (out of file descriptors, say), rather
/// than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A bound listener for node `id`, not yet answering: connections wait in the kernel's backlog
/// until [`TcpServer::serve`].
pub struct TcpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    id: NodeId,
    config: TcpConfig,
}

/// A running server. [`ServerHandle::shutdown`] stops it and waits until it has; dropping the
/// handle stops it too, without waiting.
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TcpServer {
    /// Binds node `id`'s listener to `addr` (port 0 picks a free port: see
    /// [`TcpServer::local_addr`]).
    pub async fn bind(
        id: NodeId,
        addr: SocketAddr,
        config: TcpConfig,
    ) -> Result<TcpServer, TcpError> {
        let config = config.validate()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| TcpError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TcpError::Bind { addr, source })?;
        Ok(TcpServer {
            listener,
            local_addr,
            id,
            config,
        })
    }

    /// The address the listener is bound to, with the actual port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts answering peers' RPCs by calling `node` (the local `Raft` handle), on a task of the
    /// current tokio runtime. Panics outside a tokio runtime, as `tokio::spawn` does.
    pub fn serve(self, node: Arc<dyn RaftRpc>) -> ServerHandle {
        let local_addr = self.local_addr();
        let (stop, stopped) = oneshot::channel();
        let span = info_span!("tcp_server", node_id = %self.id, addr = %local_addr);
        let task = tokio::spawn(self.accept_loop(node, stopped).instrument(span));
        ServerHandle {
            local_addr,
            stop: Some(stop),
            task,
        }
    }

    /// Accepts connections until told to stop, at most `max_inbound_connections` at once.
    async fn accept_loop(self, node: Arc<dyn RaftRpc>, mut stop: oneshot::Receiver<()>) {
        let slots = Arc::new(Semaphore::new(self.config.max_inbound_connections));
        let local = Arc::new(inbound::Local {
            id: self.id,
            config: self.config,
            node,
        });
        let mut connections = JoinSet::new();
        debug!("serving");
        loop {
            tokio::select! {
                _ = &mut stop => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = accept(&self.listener, &slots) => match accepted {
                    Ok((stream, remote, slot)) => {
                        let serve = inbound::serve(stream, remote, Arc::clone(&local), slot);
                        connections.spawn(serve.in_current_span());
                    }
                    Err(error) => {
                        warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        connections.shutdown().await;
        debug!("stopped");
    }
}

/// Waits for a free connection slot, then for a connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (stream, remote) = listener.accept().await?;
    Ok((stream, remote, slot))
}

impl fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("running", &!self.task.is_finished())
            .finish()
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes every connection (requests being answered are abandoned: to
    /// their senders, lost messages) and waits until all of it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
