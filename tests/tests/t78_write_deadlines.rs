//! Write deadlines, kept by the node with one timer for all its waiting writes: each write is
//! answered `Timeout` at its own deadline (not before, not at a neighbour's), and a state machine
//! slower than the deadline has its clients answered on time while the write is still applied.

use std::time::Duration;

use async_trait::async_trait;
use raftor::core::Role;
use raftor::{ClientWriteError, Config, LogIndex, MemStorage, Raft, ReadLevel};
use raftor_tests::{single_node_leader, AppendFault, FaultyStorage};
use tokio::time::Instant;

const SLACK: Duration = Duration::from_millis(50);

/// Runs a write on `raft` in its own task; gives back its answer and how long it took.
fn timed_write<SM>(
    raft: &Raft<SM>,
    command: SM::Command,
) -> actix_rt::task::JoinHandle<(Result<SM::Response, ClientWriteError>, Duration)>
where
    SM: raftor::StateMachine,
{
    let raft = raft.clone();
    actix_rt::spawn(async move {
        let started = Instant::now();
        let result = raft.client_write(command).await;
        (result, started.elapsed())
    })
}

/// The default config with `client_timeout`.
fn timing_out_after(client_timeout: Duration) -> Config {
    Config {
        seed: Some(78),
        client_timeout,
        ..Config::default()
    }
}

/// Two writes a second apart on a leader whose log never becomes durable again: each times out
/// exactly `client_timeout` after it began, so the node's one timer moved on from the first
/// deadline to the second instead of answering both at either.
#[actix_rt::test]
async fn t78_each_write_times_out_at_its_own_deadline() {
    tokio::time::pause();
    let timeout = Duration::from_secs(2);
    // Bootstrap appends one entry, the election's blank entry a second; then the log stalls.
    let storage = FaultyStorage::new(2, AppendFault::Stall);
    let machine = SlowMachine {
        delay: Duration::ZERO,
        total: 0,
    };
    let raft = single_node_leader(timing_out_after(timeout), storage, machine).await;
    let first = timed_write(&raft, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = timed_write(&raft, 2);
    for write in [first, second] {
        let (result, took) = tokio::time::timeout(timeout * 3, write)
            .await
            .expect("answered, not left waiting")
            .expect("write task finished");
        assert_eq!(result, Err(ClientWriteError::Timeout));
        assert!(took >= timeout, "not before its deadline: {took:?}");
        assert!(took <= timeout + SLACK, "at its deadline: {took:?}");
    }
    assert_eq!(raft.metrics().role, Role::Leader, "timed out by the node");
    raft.shutdown().await;
}

/// A state machine that takes `delay` over each batch.
struct SlowMachine {
    delay: Duration,
    total: u64,
}

#[async_trait]
impl raftor::StateMachine for SlowMachine {
    type Command = u64;
    type Response = u64;

    async fn apply(
        &mut self,
        _index: LogIndex,
        command: u64,
    ) -> Result<u64, raftor::StateMachineError> {
        tokio::time::sleep(self.delay).await;
        self.total += command;
        Ok(self.total)
    }
}

/// A committed write whose apply outlasts the deadline: the client hears `Timeout` at the
/// deadline (the outcome is unknown to it), and the write is applied all the same.
#[actix_rt::test]
async fn t79_a_slow_apply_times_out_on_time_and_still_applies() {
    tokio::time::pause();
    let timeout = Duration::from_secs(1);
    let machine = SlowMachine {
        delay: Duration::from_secs(3),
        total: 0,
    };
    let raft = single_node_leader(timing_out_after(timeout), MemStorage::new(), machine).await;
    // The election's blank entry is applied at once (no command): the machine is idle.
    let (result, took) = timed_write(&raft, 5).await.expect("write task finished");
    assert_eq!(result, Err(ClientWriteError::Timeout));
    assert!(took >= timeout && took <= timeout + SLACK, "took {took:?}");
    let last = raft.metrics().last_log_id.index;
    raft.wait(Duration::from_secs(10))
        .applied(last)
        .await
        .expect("the write is applied once the machine is done");
    let total = raft
        .read(ReadLevel::Linearizable, |machine: &SlowMachine| {
            machine.total
        })
        .await;
    assert_eq!(total, Ok(5), "the timed-out write was applied");
    raft.shutdown().await;
}
