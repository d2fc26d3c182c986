//! The HTTP side of a node: an accept loop, one hyper HTTP/1.1 connection task per client, and
//! the handlers behind them.
//!
//! ```text
//!  accept ─► connection task ─► api::handle(request) ─► route ─► kv.rs      (PUT/GET/DELETE/CAS)
//!                                                             ├► cluster.rs (/cluster, /health,
//!                                                             │              membership changes)
//!                                                             └► /metrics
//!  stop signal ─► stop accepting; each connection finishes its in-flight request, then closes
//! ```
//!
//! Every handler runs on this node: writes go through `Raft::client_write` (a follower forwards
//! them to the leader over the raft transport), reads through `Raft::read` (a follower asks the
//! leader for a read index, then reads its own state machine), and membership changes, which only
//! the leader can make, are proxied to the leader's HTTP address.
//!
//! Nothing waits forever: a request gets an answer within the request timeout (plus a little), a
//! client that sends its headers too slowly is dropped, and on shutdown the connections get a
//! grace period to finish before they are cut.

mod api;
mod cluster;
mod kv;
mod reply;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use raftor::Raft;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::directory::Directory;
use crate::metrics::Counters;
use crate::store::KvStore;

pub use reply::ApiError;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the accept loop pauses after `accept` fails (out of file descriptors, say).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The limits requests are held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest value a PUT or CAS may carry, in bytes.
    pub max_value_bytes: usize,
    /// How long a request may wait for a leader, a commit or a read index.
    pub request_timeout: Duration,
}

/// What every handler shares: the node and its surroundings.
pub struct App {
    /// The local raft node.
    pub raft: Raft<KvStore>,
    /// Every known node's addresses.
    pub directory: Directory,
    /// The server's counters, for `/metrics`.
    pub counters: Arc<Counters>,
    /// The request limits.
    pub limits: Limits,
}

/// Serves HTTP on `listener` until `stop` turns true, then lets in-flight requests finish
/// (within the request timeout and a second) and returns.
pub async fn serve(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    debug!(%remote, "http connection");
                    connections.spawn(serve_connection(stream, Arc::clone(&app), stop.clone()));
                }
                Err(error) => {
                    warn!(%error, "http accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    drop(listener);
    let grace = app.limits.request_timeout + Duration::from_secs(1);
    info!(
        open = connections.len(),
        "http: stopped accepting; finishing requests"
    );
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        warn!("http: requests still running after the grace period; cutting them");
        connections.shutdown().await;
    }
}

/// Serves one client connection; on `stop`, finishes the request in flight and closes.
async fn serve_connection(stream: TcpStream, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(api::handle(&app, request).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(%error, "http connection ended with an error");
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
