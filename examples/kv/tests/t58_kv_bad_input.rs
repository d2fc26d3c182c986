//! Bad input never takes the key-value cluster down: garbage and oversized frames on a raft
//! port, raw garbage on an HTTP port, malformed bodies, unknown routes and methods, invalid keys,
//! oversized values and unknown read levels each get a clear error (or a closed connection), no
//! failed request changes any state, and afterwards every node still serves reads and writes.

mod common;

use std::time::Duration;

use common::{call, get, put, Fixture};
use hyper::body::Bytes;
use hyper::Method;
use raftor::NodeId;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` to `addr` and returns what came back before the peer closed the connection.
async fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(bytes).await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
    match read.await {
        Ok(Ok(_)) | Ok(Err(_)) => Ok(answer),
        Err(_) => anyhow::bail!("{addr} kept the connection open after {bytes:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_raft_port_closes_only_that_connection() -> anyhow::Result<()> {
    let (mut fixture, leader) = Fixture::start(&[]).await?;
    for id in [leader, fixture.others(leader)[0]] {
        let addr = fixture.cluster.spec(id)?.raft;
        send_raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
        send_raw(addr, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await?; // a 4 GiB frame
        send_raw(addr, &[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3]).await?;
        send_raw(addr, &[0, 0, 0x10, 0]).await?; // over the handshake's 1 KiB
    }
    assert_still_serving(&fixture).await;
    fixture.cluster.check_alive()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_http_requests_get_clear_errors_and_change_nothing() -> anyhow::Result<()> {
    let (mut fixture, leader) = Fixture::start(&["--max-value-bytes", "1024"]).await?;
    let follower = fixture.endpoint(fixture.others(leader)[0]);
    assert_eq!(put(&follower, "key", "before").await.status, 200);

    let long_key = "k".repeat(1025);
    let cases: Vec<(Method, String, Bytes, u16, &str)> = vec![
        (
            Method::GET,
            "/nope".into(),
            Bytes::new(),
            404,
            "no such route",
        ),
        (
            Method::POST,
            "/kv/key".into(),
            Bytes::new(),
            405,
            "method not allowed",
        ),
        (
            Method::GET,
            "/kv/".into(),
            Bytes::new(),
            400,
            "invalid key: empty",
        ),
        (
            Method::GET,
            "/kv/%FF%FE".into(),
            Bytes::new(),
            400,
            "invalid key: not UTF-8",
        ),
        (
            Method::PUT,
            "/kv/%zz".into(),
            Bytes::from("x"),
            400,
            "invalid key",
        ),
        (
            Method::PUT,
            format!("/kv/{long_key}"),
            Bytes::from("x"),
            400,
            "longer than 1024",
        ),
        (
            Method::GET,
            "/kv/key?consistency=eventual".into(),
            Bytes::new(),
            400,
            "consistency",
        ),
        (
            Method::PUT,
            "/kv/key".into(),
            Bytes::from(vec![b'x'; 1025]),
            413,
            "too large",
        ),
        (
            Method::POST,
            "/kv/key/cas".into(),
            Bytes::from("{\"expected\": "),
            400,
            "bad JSON",
        ),
        (
            Method::POST,
            "/kv/key/cas".into(),
            Bytes::from("[1, 2]"),
            400,
            "bad JSON",
        ),
        (
            Method::POST,
            "/kv/key/cas".into(),
            cas_body(Some("before"), &"y".repeat(1025)),
            413,
            "too large",
        ),
        (
            Method::POST,
            "/kv/key/cas".into(),
            cas_body(Some("wrong"), "after"),
            409,
            "cas mismatch",
        ),
        (
            Method::POST,
            "/cluster/voters".into(),
            Bytes::from("{\"voters\": \"all\"}"),
            400,
            "bad JSON",
        ),
        (
            Method::POST,
            "/cluster/voters".into(),
            Bytes::from("{\"voters\": []}"),
            400,
            "at least one voter",
        ),
        (
            Method::POST,
            "/cluster/learners".into(),
            Bytes::from("{\"id\": 4}"),
            400,
            "bad JSON",
        ),
        (
            Method::POST,
            "/cluster/transfer-leader".into(),
            Bytes::from("{\"to\": 9}"),
            400,
            "not a voter",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let reply = call(&follower, method.clone(), &path, body).await;
        let error = reply
            .json()
            .map(|json| json["error"].clone())
            .unwrap_or(Value::Null);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        let text = error.as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{method} {path}: {text:?} lacks {message:?}"
        );
    }

    let mismatch = call(
        &follower,
        Method::POST,
        "/kv/key/cas",
        cas_body(Some("wrong"), "x"),
    )
    .await;
    assert_eq!(
        mismatch.json().map(|json| json["current"].clone()),
        Some("before".into())
    );
    let absent = get(&follower, "absent", "linearizable").await;
    assert_eq!(
        (absent.status, absent.text()),
        (404, r#"{"error":"not found"}"#.into())
    );
    let http = fixture.cluster.spec(NodeId(1))?.http;
    let garbage = send_raw(http, b"\x00\x01garbage\r\n\r\n").await?;
    assert!(
        garbage.is_empty() || garbage.starts_with(b"HTTP/1.1 400"),
        "{garbage:?}"
    );

    for endpoint in fixture.endpoints() {
        let reply = get(&endpoint, "key", "linearizable").await;
        assert_eq!(reply.text(), "before", "a failed request changed the value");
    }
    let ok = call(
        &follower,
        Method::POST,
        "/kv/key/cas",
        cas_body(Some("before"), "after"),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_still_serving(&fixture).await;
    fixture.cluster.check_alive()?;
    Ok(())
}

fn cas_body(expected: Option<&str>, value: &str) -> Bytes {
    serde_json::json!({ "expected": expected, "value": value })
        .to_string()
        .into()
}

/// Every node takes a write and reads every node's write back.
async fn assert_still_serving(fixture: &Fixture) {
    for (n, endpoint) in fixture.endpoints().iter().enumerate() {
        let reply = put(endpoint, &format!("alive-{n}"), "yes").await;
        assert_eq!(reply.status, 200, "{endpoint}: {}", reply.text());
    }
    for endpoint in fixture.endpoints() {
        for n in 0..fixture.endpoints().len() {
            let reply = get(&endpoint, &format!("alive-{n}"), "linearizable").await;
            assert_eq!(reply.text(), "yes", "{endpoint}");
        }
    }
}

#[test]
fn bad_flags_exit_with_code_2_and_say_why() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "serve",
                "--id",
                "1",
                "--peers",
                "1=nowhere",
                "--data-dir",
                "x",
            ],
            "IP:PORT",
        ),
        (
            &[
                "serve",
                "--id",
                "4",
                "--peers",
                "1=127.0.0.1:1@127.0.0.1:2",
                "--data-dir",
                "x",
            ],
            "not in --peers",
        ),
        (
            &[
                "serve",
                "--id",
                "1",
                "--peers",
                "1=127.0.0.1:1@127.0.0.1:2",
                "--data-dir",
                "x",
                "--election-timeout-ms",
                "5",
            ],
            "timing flags",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, message) in cases {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_raftor-kv"))
            .args(args)
            .output()
            .expect("run raftor-kv");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
