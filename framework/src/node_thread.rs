//! [`NodeThread`]: an actix system on a named OS thread, where one node or several run.
//!
//! A node's actor needs an actix system to run in. Started inside one (from `#[actix_rt::main]`,
//! an actix test, or [`NodeThread::run`]), a node joins the arbiter it was started on. Started
//! anywhere else (from `#[tokio::main]`, say), it gets a private `NodeThread` named
//! `raftor-node-{id}`, which [`Raft::shutdown`](crate::Raft::shutdown) stops. That is the simple
//! default, and the right one when each node has a machine, or at least a core, to itself.
//!
//! Several nodes in one process can share a thread instead:
//!
//! ```text
//!  NodeThread::start("raftor-nodes") ──► OS thread "raftor-nodes": actix System + arbiter
//!  thread.run(Raft::bootstrap(1, ..)) ──► runs there: NodeActor 1 ─┐
//!  thread.run(Raft::bootstrap(2, ..)) ──► runs there: NodeActor 2 ─┼─ one core, one event loop
//!  thread.run(Raft::bootstrap(3, ..)) ──► runs there: NodeActor 3 ─┘
//!  raft.client_write(..) from any runtime ──► mailbox ──► that thread
//! ```
//!
//! **When to share.** Many nodes in one process (tests, simulations, demos, an in-process
//! benchmark), and small machines. Three node threads and a client runtime on two cores spend
//! much of their time switching threads, as every message between two nodes wakes another one;
//! on one shared thread a message to a neighbour is a mailbox push on the same event loop. The
//! cluster benchmark (`-t shared` against `-t per-node`) measures the difference.
//!
//! **The trade-off.** The nodes on one thread share one core and one event loop. Handlers are
//! short, but whatever a node does on the thread delays the others: a slow `StateMachine::apply`
//! or `LogStorage` call that blocks (rather than awaiting) stalls every node there, and can make
//! their heartbeats late enough to start elections. Give a node its own thread when its state
//! machine or storage is heavy, or when the nodes should fail independently.
//!
//! **Lifetime.** The thread runs until [`NodeThread::stop`] or until the last clone of the
//! `NodeThread` is dropped; the `Raft` handles of the nodes on it do not keep it alive. When it
//! stops, every node on it stops with it (see [`NodeThread`] for what their handles then answer).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix_rt::{Arbiter, ArbiterHandle, System};
use futures::FutureExt;
use tokio::sync::oneshot;

use crate::error::StartError;

/// An actix system on a named OS thread of its own, which several nodes can share. Cheap to
/// clone: clones share the thread. See the [module docs](self) for when to share a thread and
/// what it costs.
///
/// ```no_run
/// # async fn example() -> Result<(), raftor::StartError> {
/// let thread = raftor::NodeThread::start("raftor-nodes")?;
/// // Runs on the thread; a `Raft::bootstrap` or `Raft::start` run this way places its node there.
/// let name = thread.run(async { std::thread::current().name().map(String::from) }).await?;
/// assert_eq!(name.as_deref(), Some("raftor-nodes"));
/// thread.stop().await;
/// # Ok(())
/// # }
/// ```
///
/// Stopping the thread ([`stop`](NodeThread::stop), or dropping the last clone) drops every node
/// actor on it without the orderly [`Raft::shutdown`](crate::Raft::shutdown): their handles
/// answer `ShuttingDown` to writes and reads at once, their metrics report `running: false`, and
/// `shutdown` on them returns at once. Shut the nodes down first to stop them in order.
///
/// Dropping the last clone stops the system, then:
/// - off any async runtime (plain sync code), waits for the thread to exit before returning;
/// - on a thread that runs a tokio runtime (inside any async task, on any actix thread, on this
///   thread itself), returns at once, as waiting would block that runtime, and the thread exits
///   a moment later. Use [`stop`](NodeThread::stop) to wait from async code.
#[derive(Clone)]
pub struct NodeThread {
    inner: Arc<Inner>,
}

/// What the clones share. Dropping it stops the system.
struct Inner {
    /// The thread's name, for errors and `Debug`.
    name: String,
    /// The actix system running on the thread; `stop` ends its event loop.
    system: System,
    /// The system's arbiter: where `run` spawns futures and where nodes start.
    arbiter: ArbiterHandle,
    /// The thread, until someone joins it (`stop`, or dropping the last clone).
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl NodeThread {
    /// Starts the thread and returns once its actix system runs. Blocks the caller for as long
    /// as starting a thread takes, from sync or async code alike.
    pub fn start(name: impl Into<String>) -> Result<NodeThread, StartError> {
        let name = name.into();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let runner = System::new();
                runner.block_on(async {
                    let _ = tx.send((System::current(), Arbiter::current()));
                });
                if let Err(error) = runner.run() {
                    tracing::error!(%error, "node thread exited with an error");
                }
            })
            .map_err(|e| StartError::Runtime(format!("cannot spawn thread {name:?}: {e}")))?;
        let Ok((system, arbiter)) = rx.recv() else {
            // The thread ended before its system ran; its panic, if any, says why.
            let why = thread
                .join()
                .err()
                .map_or("no reason given".into(), panic_message);
            return Err(StartError::Runtime(format!(
                "thread {name:?} died while starting: {why}"
            )));
        };
        Ok(NodeThread {
            inner: Arc::new(Inner {
                name,
                system,
                arbiter,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs `future` on the thread, inside its actix system, and returns its output. A node
    /// started by the future (`thread.run(Raft::bootstrap(..))`, `thread.run(Raft::start(..))`)
    /// runs its actor on this thread, and stays there after the future returns.
    ///
    /// Fails with [`StartError::ThreadStopped`] if the thread has stopped, or stops before the
    /// future finishes (the future is then dropped). A panic in the future is resumed here, in
    /// the caller; the thread and its other nodes carry on.
    pub async fn run<F>(&self, future: F) -> Result<F::Output, StartError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let spawned = self.inner.arbiter.spawn(async move {
            let _ = tx.send(AssertUnwindSafe(future).catch_unwind().await);
        });
        if !spawned {
            return Err(self.stopped());
        }
        match rx.await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(self.stopped()),
        }
    }

    /// Stops the system (every node on the thread with it) and waits for the thread to exit,
    /// joining it on tokio's blocking pool when called on a tokio runtime (and on the calling
    /// thread otherwise). Other clones then fail to [`run`](NodeThread::run) anything.
    ///
    /// Returns without waiting when called on the thread itself, or when another clone's `stop`
    /// is already waiting for it.
    pub async fn stop(self) {
        self.inner.system.stop();
        let Some(thread) = self.inner.take_thread() else {
            return;
        };
        if thread.thread().id() == std::thread::current().id() {
            return; // Joining itself would never end; the thread exits once this task yields.
        }
        let name = self.inner.name.clone();
        let joined = if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .unwrap_or(Ok(()))
        } else {
            thread.join()
        };
        if let Err(panic) = joined {
            tracing::error!(thread = %name, panic = %panic_message(panic), "node thread panicked");
        }
    }

    /// The arbiter nodes start on.
    pub(crate) fn arbiter(&self) -> &ArbiterHandle {
        &self.inner.arbiter
    }

    fn stopped(&self) -> StartError {
        StartError::ThreadStopped(self.inner.name.clone())
    }
}

impl fmt::Debug for NodeThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeThread")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn take_thread(&self) -> Option<JoinHandle<()>> {
        match self.thread.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

/// The last clone is gone: stop the system, and join the thread only where blocking is harmless
/// (see [`NodeThread`]).
impl Drop for Inner {
    fn drop(&mut self) {
        self.system.stop();
        let Some(thread) = self.take_thread() else {
            return;
        };
        let on_runtime = tokio::runtime::Handle::try_current().is_ok();
        if !on_runtime && thread.thread().id() != std::thread::current().id() {
            if let Err(panic) = thread.join() {
                tracing::error!(thread = %self.name, panic = %panic_message(panic), "node thread panicked");
            }
        }
    }
}

/// The text of a panic payload, for the log.
fn panic_message(panic: Box<dyn Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic.downcast_ref::<&str>().map_or_else(
            || "a non-string panic".into(),
            |message| message.to_string(),
        ),
    }
}
