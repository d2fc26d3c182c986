//! The key-value handlers, and the two paths every one of them takes:
//!
//! ```text
//!  write(command): wait for a leader ─► raft.client_write ─► applied on the leader ─► Response
//!                    │ none in time: 503          │ follower: forwarded over the raft transport
//!                    └─ retried while the write surely did not happen (no leader yet, the
//!                       leader unreachable, overwritten by a new leader), until the deadline
//!  read(level, f):  wait for a leader ─► raft.read(level, f) ─► f(&KvStore) on this node
//!                                        └ follower: read index from the leader, wait to apply it
//! ```
//!
//! A write is acknowledged (`200`) only once it is committed and applied; a write whose fate is
//! unknown is a `504`, never a `200` and never a silent retry that could apply it twice.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Response, StatusCode};
use raftor::{ClientReadError, ClientWriteError, NetworkError, ReadLevel};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use super::reply::{self, ApiError};
use super::App;
use crate::store::{Command, Outcome, Response as Applied};

/// The pause before retrying an operation that surely did not happen.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// The body of `POST /kv/{key}/cas`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasBody {
    /// The value the key must hold; `null` (or missing): the key must be absent.
    #[serde(default)]
    pub expected: Option<String>,
    /// The new value; `null` (or missing): delete the key.
    #[serde(default)]
    pub value: Option<String>,
}

/// `GET /kv/{key}?consistency=...`.
pub async fn get(app: &App, key: String, query: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let level = consistency(query)?;
    let value = read(app, level, move |store| store.get(&key).map(<[u8]>::to_vec)).await?;
    let value = value.ok_or(ApiError::NotFound)?;
    Ok(reply::raw(
        StatusCode::OK,
        "application/octet-stream",
        value.into(),
    ))
}

/// `PUT /kv/{key}`.
pub async fn put(app: &App, key: String, value: Bytes) -> Result<Response<Full<Bytes>>, ApiError> {
    let command = Command::Put {
        key,
        value: value.to_vec(),
    };
    let applied = write(app, command).await?;
    Ok(reply::ok_json(&json!({ "index": applied.index.0 })))
}

/// `DELETE /kv/{key}`.
pub async fn delete(app: &App, key: String) -> Result<Response<Full<Bytes>>, ApiError> {
    let applied = write(app, Command::Delete { key }).await?;
    let existed = matches!(applied.outcome, Outcome::Deleted { existed: true });
    Ok(reply::ok_json(
        &json!({ "index": applied.index.0, "existed": existed }),
    ))
}

/// `POST /kv/{key}/cas`.
pub async fn cas(app: &App, key: String, body: CasBody) -> Result<Response<Full<Bytes>>, ApiError> {
    let limit = app.limits.max_value_bytes;
    let too_large = |value: &Option<String>| value.as_ref().is_some_and(|v| v.len() > limit);
    if too_large(&body.expected) || too_large(&body.value) {
        return Err(ApiError::TooLarge { limit });
    }
    let command = Command::Cas {
        key,
        expected: body.expected.map(String::into_bytes),
        value: body.value.map(String::into_bytes),
    };
    let applied = write(app, command).await?;
    match applied.outcome {
        Outcome::Mismatch { current } => Err(ApiError::CasMismatch { current }),
        _ => Ok(reply::ok_json(&json!({ "index": applied.index.0 }))),
    }
}

/// The read level a query asks for (linearizable unless it says otherwise).
fn consistency(query: &str) -> Result<ReadLevel, ApiError> {
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "consistency")
        .map(|(_, value)| value);
    match value {
        None | Some("linearizable") => Ok(ReadLevel::Linearizable),
        Some("lease") => Ok(ReadLevel::Lease),
        Some("stale") => Ok(ReadLevel::Stale),
        Some(other) => Err(ApiError::BadRequest(format!(
            "consistency must be linearizable, lease or stale, not {other:?}"
        ))),
    }
}

/// Replicates `command` and returns what applying it did (see the module doc).
pub async fn write(app: &App, command: Command) -> Result<Applied, ApiError> {
    let deadline = Instant::now() + app.limits.request_timeout;
    loop {
        wait_for_leader(app, deadline).await?;
        let attempt = app.raft.client_write(command.clone());
        let error = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(applied)) => return Ok(applied),
            Ok(Err(error)) => error,
            Err(_) => return Err(ApiError::Timeout("no answer in time".into())),
        };
        if !surely_not_written(&error) || Instant::now() + RETRY_PAUSE >= deadline {
            return Err(ApiError::from_write(error));
        }
        tracing::debug!(%error, "write not carried out; retrying");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Whether `error` proves the write was not (and will never be) applied, so retrying it cannot
/// apply it twice.
fn surely_not_written(error: &ClientWriteError) -> bool {
    matches!(
        error,
        ClientWriteError::NotLeader { .. }
            | ClientWriteError::Dropped { .. }
            | ClientWriteError::Forward(NetworkError::Unreachable(_))
    )
}

/// Runs `f` against the state machine once it may serve a read at `level`. Reads change nothing,
/// so any failure but a stopping node is retried until the deadline.
pub async fn read<R, F>(app: &App, level: ReadLevel, f: F) -> Result<R, ApiError>
where
    F: Fn(&crate::store::KvStore) -> R + Clone + Send + 'static,
    R: Send + 'static,
{
    let deadline = Instant::now() + app.limits.request_timeout;
    loop {
        if level != ReadLevel::Stale {
            wait_for_leader(app, deadline).await?;
        }
        let attempt = app.raft.read(level, f.clone());
        let error = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => return Err(ApiError::Timeout("no read index in time".into())),
        };
        let stopping = matches!(
            error,
            ClientReadError::ShuttingDown | ClientReadError::Fatal(_)
        );
        if stopping || Instant::now() + RETRY_PAUSE >= deadline {
            return Err(ApiError::from_read(error));
        }
        tracing::debug!(%error, "read failed; retrying");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Waits until this node knows a leader, or answers `503 no leader` at the deadline.
pub async fn wait_for_leader(app: &App, deadline: Instant) -> Result<raftor::NodeId, ApiError> {
    let left = deadline.saturating_duration_since(Instant::now());
    app.raft
        .wait(left)
        .leader_known()
        .await
        .map_err(|_| ApiError::NoLeader {
            leader: app.raft.metrics().leader,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_levels() {
        assert_eq!(consistency("").ok(), Some(ReadLevel::Linearizable));
        assert_eq!(
            consistency("x=1&consistency=stale").ok(),
            Some(ReadLevel::Stale)
        );
        assert_eq!(
            consistency("consistency=lease").ok(),
            Some(ReadLevel::Lease)
        );
        assert!(consistency("consistency=eventual").is_err());
    }

    #[test]
    fn cas_body_accepts_nulls_and_missing_fields() {
        let body: CasBody =
            serde_json::from_str(r#"{"expected": null, "value": "v"}"#).expect("valid body");
        assert_eq!((body.expected, body.value.as_deref()), (None, Some("v")));
        let body: CasBody = serde_json::from_str(r#"{"expected": "v"}"#).expect("valid body");
        assert_eq!((body.expected.as_deref(), body.value), (Some("v"), None));
        assert!(serde_json::from_str::<CasBody>(r#"{"expected": 3}"#).is_err());
        assert!(serde_json::from_str::<CasBody>(r#"{"typo": "v"}"#).is_err());
    }
}
