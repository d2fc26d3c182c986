//! A small HTTP/1.1 client (hyper's connection API, no pool): what the command-line client, the
//! demo, the tests and a follower proxying a membership request to the leader use.
//!
//! ```text
//!  Endpoints::call(method, path, body) ──► first endpoint ──► connect ──► request ──► Reply
//!                                            │ connection refused / timed out
//!                                            └──► next endpoint ...
//! ```
//!
//! [`HttpConnection`] keeps one connection open for many requests (the benchmark's clients);
//! [`request`] opens one per call.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

/// The header a node sets on a request it proxies to the leader, so the leader never proxies it
/// again (no loops while leadership moves).
pub const FORWARDED_HEADER: &str = "x-raftor-forwarded";

/// Why a request got no HTTP answer.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The endpoint is not a `http://host:port` URL.
    #[error("invalid endpoint {0:?}: expected http://HOST:PORT")]
    Endpoint(String),
    /// Connecting failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The request failed after connecting.
    #[error("request to {endpoint} failed: {source}")]
    Http {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        source: hyper::Error,
    },
    /// The request could not be built (a path with characters a URL cannot hold).
    #[error("invalid request: {0}")]
    Request(String),
    /// No answer in time.
    #[error("no answer from {0} in time")]
    Timeout(String),
    /// No endpoint answered.
    #[error("no endpoint answered; last error: {0}")]
    AllFailed(Box<ClientError>),
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The `host:port` of an `http://host:port` endpoint (a trailing `/` is allowed).
pub fn authority(endpoint: &str) -> Result<&str, ClientError> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::Endpoint(endpoint.to_string()))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || !host.contains(':') {
        return Err(ClientError::Endpoint(endpoint.to_string()));
    }
    Ok(host)
}

/// One open HTTP/1.1 connection, for many requests in turn.
pub struct HttpConnection {
    authority: String,
    sender: SendRequest<Full<Bytes>>,
}

impl HttpConnection {
    /// Connects to `authority` (`host:port`) within `timeout`.
    pub async fn connect(authority: &str, timeout: Duration) -> Result<Self, ClientError> {
        let connect = async {
            let stream =
                TcpStream::connect(authority)
                    .await
                    .map_err(|source| ClientError::Connect {
                        endpoint: authority.to_string(),
                        source,
                    })?;
            let _ = stream.set_nodelay(true);
            http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|source| ClientError::Http {
                    endpoint: authority.to_string(),
                    source,
                })
        };
        let (sender, connection) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout(authority.to_string()))??;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "client connection closed");
            }
        });
        Ok(HttpConnection {
            authority: authority.to_string(),
            sender,
        })
    }

    /// Sends one request and reads the whole answer, within `timeout`.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|error| ClientError::Request(error.to_string()))?;
        let http_error = |source| ClientError::Http {
            endpoint: self.authority.clone(),
            source,
        };
        let exchange = async {
            self.sender.ready().await.map_err(http_error)?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(http_error)?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(http_error)?;
            Ok(Reply {
                status,
                body: body.to_bytes(),
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.authority.clone()))?
    }
}

/// One request on a connection of its own.
pub async fn request(
    authority: &str,
    method: Method,
    path: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let mut connection = HttpConnection::connect(authority, timeout).await?;
    connection.send(method, path, body, &[], timeout).await
}

/// A list of nodes' HTTP endpoints, tried in order.
#[derive(Debug, Clone)]
pub struct Endpoints {
    authorities: Vec<String>,
    timeout: Duration,
}

impl Endpoints {
    /// Parses a comma-separated list of `http://host:port` endpoints.
    pub fn parse(list: &str, timeout: Duration) -> Result<Endpoints, ClientError> {
        let authorities = list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| authority(item).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        if authorities.is_empty() {
            return Err(ClientError::Endpoint(list.to_string()));
        }
        Ok(Endpoints {
            authorities,
            timeout,
        })
    }

    /// The endpoints' `host:port`s.
    pub fn authorities(&self) -> &[String] {
        &self.authorities
    }

    /// Sends the request to the first endpoint that answers at all (any status).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let mut last = None;
        for authority in &self.authorities {
            let sent = request(authority, method.clone(), path, body.clone(), self.timeout).await;
            match sent {
                Ok(reply) => return Ok(reply),
                Err(error) => last = Some(error),
            }
        }
        let last = last.unwrap_or_else(|| ClientError::Endpoint(String::new()));
        Err(ClientError::AllFailed(Box::new(last)))
    }
}

/// Percent-encodes `key` as one URL path segment.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_refuse() {
        let endpoints =
            Endpoints::parse("http://127.0.0.1:1/, http://[::1]:2", Duration::ZERO).expect("valid");
        assert_eq!(endpoints.authorities(), ["127.0.0.1:1", "[::1]:2"]);
        assert!(Endpoints::parse("127.0.0.1:1", Duration::ZERO).is_err());
        assert!(Endpoints::parse("", Duration::ZERO).is_err());
        assert!(Endpoints::parse("http://host/path", Duration::ZERO).is_err());
    }

    #[test]
    fn keys_are_encoded_as_one_segment() {
        assert_eq!(encode_key("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_key("é"), "%C3%A9");
    }
}
