//! The store's IO thread. The storage worker runs on the node actor's thread, so the WAL never
//! blocks it: every operation is sent to this thread as a job and answered through a oneshot.
//! Jobs run one at a time, in the order they were sent.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::storage::StorageError;

use super::engine::Engine;

/// One operation for the IO thread.
type Job = Box<dyn FnOnce(&mut Engine) + Send>;

/// A running IO thread that owns an [`Engine`]. Dropping it lets the thread finish its current
/// job and joins it, so the data directory's lock is free once the drop returns.
pub(crate) struct IoThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl IoThread {
    /// Starts a thread that builds its engine with `open`, and reports how that went.
    pub(crate) async fn start(
        name: String,
        open: impl FnOnce() -> Result<Engine, StorageError> + Send + 'static,
    ) -> Result<IoThread, StorageError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (opened_tx, opened_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut engine = match open() {
                    Ok(engine) => engine,
                    Err(error) => {
                        let _ = opened_tx.send(Err(error));
                        return;
                    }
                };
                let _ = opened_tx.send(Ok(()));
                while let Ok(job) = rx.recv() {
                    job(&mut engine);
                }
            })
            .map_err(super::io_error("start WAL thread"))?;
        let mut io = IoThread {
            jobs: Some(jobs),
            thread: Some(thread),
        };
        match opened_rx.await {
            Ok(Ok(())) => Ok(io),
            Ok(Err(error)) => Err(error),
            Err(_) => {
                io.jobs = None;
                Err(stopped())
            }
        }
    }

    /// Runs `operation` on the thread and waits for its answer without blocking this one.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut Engine) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |engine| {
            let _ = tx.send(operation(engine));
        });
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(stopped());
        }
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the job in hand (if any) is done.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stopped() -> StorageError {
    StorageError::Io {
        operation: "wal",
        message: "the WAL's IO thread stopped".into(),
    }
}
