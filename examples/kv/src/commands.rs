//! The client subcommands (`put`, `get`, `delete`, `cas`, `status`, `members`, `add-learner`,
//! `set-voters`, `transfer-leader`; and `bench`, see `bench.rs`): each is one HTTP request to the first endpoint that
//! answers, whose body is printed. The exit code is 0 for a 2xx answer, 1 otherwise.

use std::time::Duration;

use hyper::body::Bytes;
use hyper::Method;
use serde_json::json;

use crate::bench::BenchPlan;
use crate::cli::{Cmd, EndpointArgs};
use crate::client::{encode_key, Endpoints, Reply};
use crate::local::cluster_view;

/// Runs a client subcommand; returns the process's exit code.
pub async fn run(command: Cmd) -> anyhow::Result<i32> {
    let (endpoints, method, path, body) = match command {
        Cmd::Put {
            endpoints,
            key,
            value,
        } => (endpoints, Method::PUT, kv_path(&key), Bytes::from(value)),
        Cmd::Get {
            endpoints,
            key,
            consistency,
        } => {
            let path = format!("{}?consistency={consistency}", kv_path(&key));
            (endpoints, Method::GET, path, Bytes::new())
        }
        Cmd::Delete { endpoints, key } => (endpoints, Method::DELETE, kv_path(&key), Bytes::new()),
        Cmd::Cas {
            endpoints,
            key,
            expected,
            value,
        } => {
            let body = json!({ "expected": expected, "value": value }).to_string();
            (
                endpoints,
                Method::POST,
                format!("{}/cas", kv_path(&key)),
                body.into(),
            )
        }
        Cmd::Status { endpoints } => return status(&endpoints).await,
        Cmd::Bench {
            endpoints,
            clients,
            value_bytes,
            duration,
            api,
            phases,
        } => {
            let endpoints = parse(&endpoints)?;
            let plan = BenchPlan {
                endpoints,
                api,
                phases,
                clients,
                value_bytes,
                duration,
            };
            crate::bench::run(plan).await?;
            return Ok(0);
        }
        Cmd::Members { endpoints } => (endpoints, Method::GET, "/cluster".into(), Bytes::new()),
        Cmd::AddLearner {
            endpoints,
            id,
            raft_addr,
            http_addr,
        } => {
            let body = json!({ "id": id, "raft_addr": raft_addr, "http_addr": http_addr });
            (
                endpoints,
                Method::POST,
                "/cluster/learners".into(),
                body.to_string().into(),
            )
        }
        Cmd::SetVoters { endpoints, voters } => {
            let body = json!({ "voters": voters }).to_string();
            (
                endpoints,
                Method::POST,
                "/cluster/voters".into(),
                body.into(),
            )
        }
        Cmd::TransferLeader { endpoints, to } => {
            let body = json!({ "to": to }).to_string();
            (
                endpoints,
                Method::POST,
                "/cluster/transfer-leader".into(),
                body.into(),
            )
        }
        Cmd::Serve(_) | Cmd::Cluster(_) | Cmd::Demo(_) => anyhow::bail!("not a client command"),
    };
    let reply = parse(&endpoints)?.call(method, &path, body).await?;
    print_reply(&reply, path == "/cluster");
    Ok(if reply.is_success() { 0 } else { 1 })
}

fn kv_path(key: &str) -> String {
    format!("/kv/{}", encode_key(key))
}

fn parse(args: &EndpointArgs) -> anyhow::Result<Endpoints> {
    Ok(Endpoints::parse(
        &args.endpoints,
        Duration::from_millis(args.timeout_ms),
    )?)
}

fn print_reply(reply: &Reply, members_only: bool) {
    let text = match reply.json() {
        Some(json) if members_only => {
            let members = json!({ "voters": json["voters"], "learners": json["learners"] });
            serde_json::to_string_pretty(&members).unwrap_or_default()
        }
        Some(json) => json.to_string(),
        None => reply.text(),
    };
    if reply.is_success() {
        println!("{text}");
    } else {
        eprintln!("{} {text}", reply.status);
    }
}

/// `status`: one line per endpoint.
async fn status(args: &EndpointArgs) -> anyhow::Result<i32> {
    let endpoints = parse(args)?;
    let mut answered = 0;
    println!(
        "{:<28} {:>4} {:<13} {:>6} {:>7} {:>8} {:>8}",
        "endpoint", "id", "role", "term", "leader", "commit", "applied"
    );
    for authority in endpoints.authorities() {
        let endpoint = format!("http://{authority}");
        let Some(view) = cluster_view(&endpoint).await else {
            println!("{endpoint:<28} unreachable");
            continue;
        };
        answered += 1;
        let field = |name: &str| view[name].to_string().trim_matches('"').to_string();
        println!(
            "{endpoint:<28} {:>4} {:<13} {:>6} {:>7} {:>8} {:>8}",
            field("id"),
            field("role"),
            field("term"),
            field("leader"),
            field("commit_index"),
            field("applied_index")
        );
    }
    Ok(if answered > 0 { 0 } else { 1 })
}
