//! Answers: [`ApiError`], every way a request can fail with the status and JSON body it gets,
//! and the builders of successful responses. raftor's typed errors are mapped here, in one place,
//! by what the client may conclude:
//!
//! | raftor says | the write... | answer |
//! |---|---|---|
//! | no leader known within the request timeout | was never sent | `503 {"error": "no leader", "leader": null}` |
//! | `Dropped` (overwritten by a new leader) | will never apply | `503`, retry |
//! | `Timeout`, `Forward(..)`, remote `ShuttingDown` | may or may not apply | `504 {"error": "timeout"}` |
//! | local `ShuttingDown` | may or may not apply | `503 {"error": "shutting down"}` |
//! | `Fatal`, `Codec`, `Remote` | node broken | `500` |

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use raftor::{ChangeError, ClientReadError, ClientWriteError, NodeId};
use serde_json::{json, Value};
use thiserror::Error;

/// Why a request failed.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The key does not exist.
    #[error("not found")]
    NotFound,
    /// No route has this path.
    #[error("no such route")]
    NoRoute,
    /// The route exists, not with this method.
    #[error("method not allowed")]
    Method,
    /// The request is malformed: a bad key, body or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// The value (or the whole body) is larger than allowed.
    #[error("value too large: the limit is {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// No leader became known within the request timeout: nothing was done.
    #[error("no leader")]
    NoLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// A request proxied from another node reached a node that no longer leads.
    #[error("not the leader")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// The outcome is unknown: the write may or may not be applied.
    #[error("timeout")]
    Timeout(String),
    /// A compare-and-set did not match.
    #[error("cas mismatch")]
    CasMismatch {
        /// What the key holds.
        current: Option<Vec<u8>>,
    },
    /// Another membership change is in progress.
    #[error("{0}")]
    Conflict(String),
    /// The node cannot serve this now (shutting down, or a write overwritten by a new leader):
    /// nothing was done, retry.
    #[error("{0}")]
    Unavailable(String),
    /// The leader's HTTP endpoint could not be reached to proxy the request.
    #[error("proxying to the leader failed: {0}")]
    BadGateway(String),
    /// The node is broken.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::Method => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NoLeader { .. } | ApiError::NotLeader { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::CasMismatch { .. } | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let error = self.to_string();
        match self {
            ApiError::NoLeader { leader } | ApiError::NotLeader { leader } => {
                json!({ "error": error, "leader": leader.map(|id| id.0) })
            }
            ApiError::Timeout(detail) => json!({ "error": error, "detail": detail }),
            ApiError::CasMismatch { current } => {
                let current = current
                    .as_ref()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
                json!({ "error": error, "current": current })
            }
            _ => json!({ "error": error }),
        }
    }

    /// The whole response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        json_response(self.status(), &self.body())
    }

    /// A failed write, by what the client may conclude (see the module's table).
    pub fn from_write(error: ClientWriteError) -> ApiError {
        match error {
            ClientWriteError::NotLeader { leader } => ApiError::NoLeader { leader },
            ClientWriteError::Dropped { leader } => ApiError::Unavailable(format!(
                "the write was overwritten by a new leader ({}); retry",
                leader.map_or_else(|| "unknown".to_string(), |id| id.to_string())
            )),
            ClientWriteError::Timeout | ClientWriteError::Forward(_) => {
                ApiError::Timeout(error.to_string())
            }
            ClientWriteError::ShuttingDown => ApiError::Unavailable("shutting down".into()),
            ClientWriteError::Codec(_)
            | ClientWriteError::Fatal(_)
            | ClientWriteError::Remote(_) => ApiError::Internal(error.to_string()),
        }
    }

    /// A failed read. Nothing was read, so every failure is safe to retry.
    pub fn from_read(error: ClientReadError) -> ApiError {
        match error {
            ClientReadError::NotLeader { leader } => ApiError::NoLeader { leader },
            ClientReadError::Timeout | ClientReadError::Forward(_) => {
                ApiError::Timeout(error.to_string())
            }
            ClientReadError::ShuttingDown => ApiError::Unavailable("shutting down".into()),
            ClientReadError::Fatal(_) | ClientReadError::Remote(_) => {
                ApiError::Internal(error.to_string())
            }
        }
    }

    /// A failed membership change.
    pub fn from_change(error: ChangeError) -> ApiError {
        match error {
            ChangeError::NotLeader { leader } => ApiError::NotLeader { leader },
            ChangeError::InProgress => ApiError::Conflict(error.to_string()),
            ChangeError::Invalid(_) => ApiError::BadRequest(error.to_string()),
            ChangeError::Timeout | ChangeError::Forward(_) => ApiError::Timeout(error.to_string()),
            ChangeError::ShuttingDown => ApiError::Unavailable("shutting down".into()),
        }
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A `200` with a JSON body.
pub fn ok_json(body: &Value) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, body)
}

/// A response with raw bytes and a content type.
pub fn raw(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use raftor::NetworkError;

    use super::*;

    #[test]
    fn bodies_follow_the_api() {
        let no_leader = ApiError::NoLeader { leader: None };
        assert_eq!(no_leader.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            no_leader.body(),
            json!({ "error": "no leader", "leader": null })
        );
        let mismatch = ApiError::CasMismatch {
            current: Some(b"old".to_vec()),
        };
        assert_eq!(mismatch.status(), StatusCode::CONFLICT);
        assert_eq!(
            mismatch.body(),
            json!({ "error": "cas mismatch", "current": "old" })
        );
        assert_eq!(ApiError::NotFound.body(), json!({ "error": "not found" }));
    }

    #[test]
    fn unknown_outcomes_are_timeouts() {
        let forward = ClientWriteError::Forward(NetworkError::Timeout(NodeId(2)));
        assert_eq!(
            ApiError::from_write(forward).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let dropped = ClientWriteError::Dropped { leader: None };
        assert_eq!(
            ApiError::from_write(dropped).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
