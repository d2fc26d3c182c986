//! `raftor-kv bench` against a real three-process cluster: every phase it reports carried
//! requests without errors, through its own HTTP client, to every node (followers forward), and
//! the values it wrote are there to read afterwards.

mod common;

use common::{get, Fixture};

/// One line of the bench's table: op, clients, value bytes, ops/s, p50, p99, p99.9, errors.
struct Row {
    op: String,
    clients: usize,
    value_bytes: usize,
    rate: f64,
    errors: u64,
}

fn parse_rows(table: &str) -> Vec<Row> {
    table
        .lines()
        .skip(1) // the header
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 8, "not a table row: {line:?}");
            let number = |at: usize| fields[at].parse::<f64>().expect("a number");
            Row {
                op: fields[0].to_string(),
                clients: number(1) as usize,
                value_bytes: number(2) as usize,
                rate: number(3),
                errors: number(7) as u64,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_drives_every_node_without_errors() -> anyhow::Result<()> {
    let (fixture, leader) = Fixture::start(&[]).await?;
    let endpoints = fixture.endpoints().join(",");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_raftor-kv"))
        .args(["bench", "--endpoints", &endpoints, "--clients", "1,3"])
        .args(["--value-bytes", "0,300", "--duration", "300ms"])
        .output()
        .await?;
    let table = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = parse_rows(&table);
    let shapes: Vec<(&str, usize, usize)> = rows
        .iter()
        .map(|row| (row.op.as_str(), row.clients, row.value_bytes))
        .collect();
    let mut expected = Vec::new();
    for clients in [1, 3] {
        for value_bytes in [0, 300] {
            expected.push(("write", clients, value_bytes));
            expected.push(("read", clients, value_bytes));
        }
    }
    assert_eq!(shapes, expected, "{table}");
    for row in &rows {
        assert_eq!(row.errors, 0, "{table}");
        assert!(row.rate > 0.0, "{table}");
    }
    // Client 2 talked to the third endpoint; its first key holds the last phase's value.
    for id in [leader, fixture.others(leader)[0]] {
        let reply = get(&fixture.endpoint(id), "bench-2-0", "linearizable").await;
        assert_eq!(reply.status, 200);
        assert_eq!(&reply.body[..], &[b'x'; 300][..]);
    }
    Ok(())
}
