//! Criterion benches of the wire codec: encoding and decoding an AppendEntries request of 1, 64
//! and 1024 entries with `raftor::codec` (bincode 2, standard configuration, over serde), as a
//! transport would put it on the wire (`Request::AppendEntries`). Each entry carries a 16-byte
//! command.
//!
//! `cargo bench -p raftor-benches --bench codec`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raftor::codec;
use raftor::message::{AppendEntriesRequest, Request};
use raftor::{Entry, EntryPayload, LogId, LogIndex, NodeId, Term};

/// Bytes of each entry's command.
const COMMAND_BYTES: usize = 16;

/// An AppendEntries request carrying `count` entries after `2@1000`.
fn append_entries(count: u64) -> Request {
    let command: Arc<[u8]> = Arc::from(vec![7u8; COMMAND_BYTES]);
    let entries = (1..=count)
        .map(|i| Entry {
            log_id: LogId::new(Term(2), LogIndex(1000 + i)),
            payload: EntryPayload::Command(Arc::clone(&command)),
        })
        .collect();
    Request::AppendEntries(AppendEntriesRequest {
        term: Term(2),
        leader_id: NodeId(1),
        prev_log_id: LogId::new(Term(2), LogIndex(1000)),
        entries,
        leader_commit: LogIndex(990),
        round: 17,
    })
}

fn encode_decode(c: &mut Criterion) {
    for count in [1u64, 64, 1024] {
        let request = append_entries(count);
        let bytes = codec::encode(&request).expect("encode");
        let mut group = c.benchmark_group(format!("append_entries_{count}"));
        group.throughput(Throughput::Elements(count));
        group.bench_function("encode", |b| {
            b.iter(|| codec::encode(black_box(&request)).expect("encode"))
        });
        group.bench_function("decode", |b| {
            b.iter(|| codec::decode::<Request>(black_box(&bytes)).expect("decode"))
        });
        group.finish();
        println!("append_entries_{count}: {} bytes encoded", bytes.len());
    }
}

criterion_group!(benches, encode_decode);
criterion_main!(benches);
