//! Routing: a request's method and path become a [`Route`], its key is decoded and checked, its
//! body read within a limit; then the route's handler runs and every answer is counted.
//!
//! Keys are one URL path segment, percent-decoded: `/kv/a%2Fb` is the key `a/b`. A key must be
//! valid UTF-8, non-empty and at most [`MAX_KEY_BYTES`] bytes; anything else is a `400`.

use std::time::Instant;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use serde::de::DeserializeOwned;

use super::reply::{self, ApiError};
use super::{cluster, kv, App};
use crate::client::FORWARDED_HEADER;
use crate::metrics;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The largest JSON body of a cluster request.
const MAX_JSON_BYTES: usize = 64 << 10;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /kv/{key}`.
    Get(String),
    /// `PUT /kv/{key}`.
    Put(String),
    /// `DELETE /kv/{key}`.
    Delete(String),
    /// `POST /kv/{key}/cas`.
    Cas(String),
    /// `GET /cluster`.
    Cluster,
    /// `POST /cluster/learners`.
    AddLearner,
    /// `POST /cluster/voters`.
    SetVoters,
    /// `POST /cluster/transfer-leader`.
    TransferLeader,
    /// `GET /metrics`.
    Metrics,
    /// `GET /health`.
    Health,
}

impl Route {
    /// The route's name in the metrics.
    fn name(route: &Result<Route, ApiError>) -> &'static str {
        match route {
            Ok(Route::Get(_)) => "kv_get",
            Ok(Route::Put(_)) => "kv_put",
            Ok(Route::Delete(_)) => "kv_delete",
            Ok(Route::Cas(_)) => "kv_cas",
            Ok(Route::Cluster) => "cluster",
            Ok(Route::AddLearner) => "add_learner",
            Ok(Route::SetVoters) => "set_voters",
            Ok(Route::TransferLeader) => "transfer_leader",
            Ok(Route::Metrics) => "metrics",
            Ok(Route::Health) => "health",
            Err(_) => "invalid",
        }
    }

    /// The route of `method` on `path`.
    pub fn of(method: &Method, path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (segments.as_slice(), method) {
            (["kv", key], &Method::GET) => Ok(Route::Get(decode_key(key)?)),
            (["kv", key], &Method::PUT) => Ok(Route::Put(decode_key(key)?)),
            (["kv", key], &Method::DELETE) => Ok(Route::Delete(decode_key(key)?)),
            (["kv", key, "cas"], &Method::POST) => Ok(Route::Cas(decode_key(key)?)),
            (["cluster"], &Method::GET) => Ok(Route::Cluster),
            (["cluster", "learners"], &Method::POST) => Ok(Route::AddLearner),
            (["cluster", "voters"], &Method::POST) => Ok(Route::SetVoters),
            (["cluster", "transfer-leader"], &Method::POST) => Ok(Route::TransferLeader),
            (["metrics"], &Method::GET) => Ok(Route::Metrics),
            (["health"], &Method::GET) => Ok(Route::Health),
            (["kv", _] | ["kv", _, "cas"] | ["cluster", ..] | ["metrics"] | ["health"], _) => {
                Err(ApiError::Method)
            }
            _ => Err(ApiError::NoRoute),
        }
    }
}

/// Answers one request, and counts it.
pub async fn handle(app: &App, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let route = Route::of(request.method(), request.uri().path());
    let name = Route::name(&route);
    let response = match route {
        Ok(route) => dispatch(app, route, request).await,
        Err(error) => Err(error),
    };
    let response = response.unwrap_or_else(ApiError::into_response);
    app.counters
        .observe_request(name, response.status().as_u16(), started.elapsed());
    response
}

async fn dispatch(
    app: &App,
    route: Route,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let forwarded = request.headers().contains_key(FORWARDED_HEADER);
    let query = request.uri().query().unwrap_or("").to_string();
    let max_value = app.limits.max_value_bytes;
    match route {
        Route::Get(key) => kv::get(app, key, &query).await,
        Route::Put(key) => kv::put(app, key, read_body(request, max_value).await?).await,
        Route::Delete(key) => kv::delete(app, key).await,
        Route::Cas(key) => {
            // Both values, and the JSON around them (escapes may double a value's size).
            let limit = max_value.saturating_mul(4).saturating_add(1024);
            let body = read_body(request, limit).await?;
            kv::cas(app, key, parse_json(&body)?).await
        }
        Route::Cluster => Ok(reply::ok_json(&cluster::describe(app))),
        Route::Metrics => {
            let text = metrics::render(&app.raft.metrics(), &app.counters);
            let content_type = "text/plain; version=0.0.4";
            Ok(reply::raw(hyper::StatusCode::OK, content_type, text.into()))
        }
        Route::Health => Ok(cluster::health(app)),
        Route::AddLearner | Route::SetVoters | Route::TransferLeader => {
            let body = read_body(request, MAX_JSON_BYTES).await?;
            cluster::change(app, route, body, forwarded).await
        }
    }
}

/// Reads the whole body, refusing one over `limit` bytes with `413`.
pub async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::TooLarge { limit })
        }
        Err(error) => Err(ApiError::BadRequest(format!("reading the body: {error}"))),
    }
}

/// Parses a JSON body.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::BadRequest(format!("bad JSON: {error}")))
}

/// Percent-decodes a key's path segment and checks it.
pub fn decode_key(segment: &str) -> Result<String, ApiError> {
    let bad = |why: &str| Err(ApiError::BadRequest(format!("invalid key: {why}")));
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'%' {
            bytes.push(byte);
            rest = tail;
            continue;
        }
        let Some(hex) = tail.get(..2) else {
            return bad("truncated percent-escape");
        };
        let decoded = std::str::from_utf8(hex)
            .ok()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        let Some(decoded) = decoded else {
            return bad("invalid percent-escape");
        };
        bytes.push(decoded);
        rest = &tail[2..];
    }
    let Ok(key) = String::from_utf8(bytes) else {
        return bad("not UTF-8");
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return bad(&format!("longer than {MAX_KEY_BYTES} bytes"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let route = |method: Method, path: &str| Route::of(&method, path).ok();
        assert_eq!(route(Method::GET, "/kv/a"), Some(Route::Get("a".into())));
        assert_eq!(
            route(Method::POST, "/kv/a%2Fb/cas"),
            Some(Route::Cas("a/b".into()))
        );
        assert_eq!(route(Method::GET, "/cluster"), Some(Route::Cluster));
        assert!(matches!(
            Route::of(&Method::POST, "/kv/a"),
            Err(ApiError::Method)
        ));
        assert!(matches!(
            Route::of(&Method::GET, "/nope"),
            Err(ApiError::NoRoute)
        ));
        assert!(matches!(
            Route::of(&Method::GET, "/kv/a/b"),
            Err(ApiError::NoRoute)
        ));
    }

    #[test]
    fn keys_are_checked() {
        assert_eq!(decode_key("h%C3%A9llo").ok().as_deref(), Some("héllo"));
        assert!(decode_key("").is_err());
        assert!(decode_key("%FF").is_err(), "not UTF-8");
        assert!(decode_key("%2").is_err());
        assert!(decode_key("%zz").is_err());
        assert!(decode_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(decode_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}
