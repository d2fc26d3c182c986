//! The cluster handlers: `GET /cluster` and `GET /health` answer from this node's metrics;
//! membership changes run on the leader.
//!
//! ```text
//!  POST /cluster/learners on a follower ──► proxy to the leader's HTTP address (header
//!      x-raftor-forwarded: 1) ──► leader: write SetNode { id, addrs } (every node learns the
//!      addresses by applying it) ──► raft.add_learner(id) ──► 200 { voters, learners }
//! ```
//!
//! A proxied request that reaches a node which no longer leads is answered `503 not the leader`
//! rather than proxied again: leadership moving twice during one request is rare, and a client
//! retry is cheaper than a loop.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use raftor::{Membership, NodeId};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::api::{parse_json, Route};
use super::kv::{wait_for_leader, write};
use super::reply::{self, ApiError};
use super::App;
use crate::client::{self, HttpConnection, FORWARDED_HEADER};
use crate::metrics::role_name;
use crate::store::{Command, NodeAddrs};

/// `/health` is 503 while the state machine is more than this many entries behind the commit
/// index.
const HEALTH_MAX_LAG: u64 = 100;

/// The body of `POST /cluster/learners`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnerBody {
    id: u64,
    raft_addr: SocketAddr,
    http_addr: SocketAddr,
}

/// The body of `POST /cluster/voters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VotersBody {
    voters: Vec<u64>,
}

/// The body of `POST /cluster/transfer-leader`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: u64,
}

/// `GET /cluster`: this node's view of the cluster.
pub fn describe(app: &App) -> Value {
    let metrics = app.raft.metrics();
    let membership = &metrics.membership;
    json!({
        "id": metrics.id.0,
        "role": role_name(metrics.role),
        "term": metrics.term.0,
        "leader": metrics.leader.map(|id| id.0),
        "commit_index": metrics.commit_index.0,
        "applied_index": metrics.last_applied.0,
        "last_log_index": metrics.last_log_id.index.0,
        "snapshot_index": metrics.snapshot.map(|id| id.index.0),
        "voters": raft_addrs(app, &membership.voters()),
        "learners": raft_addrs(app, membership.learners()),
        "joint": membership.is_joint(),
        "http": http_addrs(app, &membership.nodes()),
    })
}

/// `{"1": "IP:PORT", ..}`: the raft address of each of `ids` (null if unknown).
fn raft_addrs(app: &App, ids: &BTreeSet<NodeId>) -> Value {
    let map: Map<String, Value> = ids
        .iter()
        .map(|id| {
            let addr = app.directory.get(*id).map(|a| a.raft.to_string());
            (id.0.to_string(), json!(addr))
        })
        .collect();
    Value::Object(map)
}

/// `{"1": "http://IP:PORT", ..}`: the HTTP endpoint of each of `ids` (null if unknown).
fn http_addrs(app: &App, ids: &BTreeSet<NodeId>) -> Value {
    let map: Map<String, Value> = ids
        .iter()
        .map(|id| {
            let http = app.directory.get(*id).and_then(|a| a.http);
            (id.0.to_string(), json!(http.map(|a| format!("http://{a}"))))
        })
        .collect();
    Value::Object(map)
}

/// `GET /health`: 200 when a leader is known and this node has applied (nearly) all it knows to
/// be committed, else 503.
pub fn health(app: &App) -> Response<Full<Bytes>> {
    let metrics = app.raft.metrics();
    let lag = metrics
        .commit_index
        .0
        .saturating_sub(metrics.last_applied.0);
    let healthy = metrics.running && metrics.leader.is_some() && lag <= HEALTH_MAX_LAG;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "healthy": healthy,
        "leader": metrics.leader.map(|id| id.0),
        "apply_lag": lag,
    });
    reply::json_response(status, &body)
}

/// A membership change: run here if this node leads, else proxy it to the leader.
pub async fn change(
    app: &App,
    route: Route,
    body: Bytes,
    forwarded: bool,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let deadline = Instant::now() + app.limits.request_timeout;
    let leader = wait_for_leader(app, deadline).await?;
    let result = if leader == app.raft.id() {
        run_change(app, &route, &body).await
    } else {
        Err(ApiError::NotLeader {
            leader: Some(leader),
        })
    };
    match result {
        Err(ApiError::NotLeader {
            leader: Some(leader),
        }) if !forwarded && leader != app.raft.id() => proxy(app, leader, &route, body).await,
        other => other,
    }
}

async fn run_change(
    app: &App,
    route: &Route,
    body: &[u8],
) -> Result<Response<Full<Bytes>>, ApiError> {
    let membership = match route {
        Route::AddLearner => add_learner(app, parse_json(body)?).await?,
        Route::SetVoters => {
            let voters: VotersBody = parse_json(body)?;
            let voters = voters.voters.into_iter().map(NodeId);
            app.raft
                .change_membership(voters)
                .await
                .map_err(ApiError::from_change)?
        }
        Route::TransferLeader => {
            let to: TransferBody = parse_json(body)?;
            app.raft
                .transfer_leader(NodeId(to.to))
                .await
                .map_err(ApiError::from_change)?;
            return Ok(reply::ok_json(&json!({ "leader": to.to })));
        }
        _ => return Err(ApiError::NoRoute),
    };
    Ok(reply::ok_json(&describe_membership(app, &membership)))
}

/// Records the new node's addresses in the log (so every node can reach it), then adds it.
async fn add_learner(app: &App, body: LearnerBody) -> Result<Membership, ApiError> {
    let id = NodeId(body.id);
    if id.0 == 0 {
        return Err(ApiError::BadRequest("node ids start at 1".into()));
    }
    let addrs = NodeAddrs {
        raft: body.raft_addr,
        http: body.http_addr,
    };
    write(app, Command::SetNode { id, addrs }).await?;
    app.raft
        .add_learner(id)
        .await
        .map_err(ApiError::from_change)
}

fn describe_membership(app: &App, membership: &Membership) -> Value {
    json!({
        "voters": raft_addrs(app, &membership.voters()),
        "learners": raft_addrs(app, membership.learners()),
    })
}

/// Sends the request to `leader`'s HTTP address and relays its answer.
async fn proxy(
    app: &App,
    leader: NodeId,
    route: &Route,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let Some(http) = app.directory.get(leader).and_then(|addrs| addrs.http) else {
        return Err(ApiError::Unavailable(format!(
            "the leader is node {leader}, whose HTTP address this node does not know; ask it"
        )));
    };
    let path = match route {
        Route::AddLearner => "/cluster/learners",
        Route::SetVoters => "/cluster/voters",
        Route::TransferLeader => "/cluster/transfer-leader",
        _ => return Err(ApiError::NoRoute),
    };
    let timeout = app.limits.request_timeout + std::time::Duration::from_secs(1);
    let authority = http.to_string();
    let send = async {
        let mut connection = HttpConnection::connect(&authority, timeout).await?;
        let headers = [
            (FORWARDED_HEADER, "1"),
            ("content-type", "application/json"),
        ];
        connection
            .send(Method::POST, path, body, &headers, timeout)
            .await
    };
    let answer: Result<client::Reply, client::ClientError> = send.await;
    let answer = answer.map_err(|error| ApiError::BadGateway(error.to_string()))?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok(reply::raw(status, "application/json", answer.body))
}
