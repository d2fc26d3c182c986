//! The clients of a cluster benchmark and the figures they print: shared by raftor's `cluster`
//! binary and the openraft harness in `benches/compare/openraft`, so both measure and report in
//! exactly the same way.
//!
//! ```text
//!  drive(args, write): C tasks, each calling write() back to back, N / B calls in all
//!      └─ each call's latency ─► Histogram;   failures counted, the first kept
//!  report(args, outcome, placement): writes/s, p50 / p99 / p99.9, CPU cores, peak memory, RESULT
//! ```

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::histogram::Histogram;
use crate::process;

/// What one run measured.
pub struct Outcome {
    /// Wall time of the writing phase.
    pub elapsed: Duration,
    /// Process CPU time (user + system) over the writing phase.
    pub cpu: Duration,
    /// Latency of every successful call.
    pub histogram: Arc<Histogram>,
    /// Failed calls.
    pub errors: u64,
    /// The first failure, as text.
    pub first_error: Option<String>,
}

/// Runs `args.clients` tasks, each calling `write` back to back, `args.calls()` calls in all,
/// and waits until every call is answered. `write` makes one call of `args.batch` requests.
pub async fn drive<W, F, T, E>(args: &Args, write: W) -> Outcome
where
    W: Fn() -> F + Clone + Send + 'static,
    F: Future<Output = Result<T, E>> + Send,
    E: Display,
{
    let histogram = Arc::new(Histogram::new());
    let (per_client, extra) = (args.calls() / args.clients, args.calls() % args.clients);
    let cpu_before = process::cpu_time();
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|client| {
            let calls = per_client + u64::from(client < extra);
            let write = write.clone();
            let histogram = Arc::clone(&histogram);
            tokio::spawn(async move {
                let mut failures = (0u64, None);
                for _ in 0..calls {
                    let sent = Instant::now();
                    match write().await {
                        Ok(_) => histogram.record(sent.elapsed()),
                        Err(error) => {
                            failures.0 += 1;
                            failures.1.get_or_insert_with(|| error.to_string());
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let mut errors = 0;
    let mut first_error = None;
    for client in clients {
        let (failed, error) = match client.await {
            Ok(failures) => failures,
            Err(join) => (1, Some(format!("client task failed: {join}"))),
        };
        errors += failed;
        first_error = first_error.or(error);
    }
    Outcome {
        elapsed: started.elapsed(),
        cpu: process::cpu_time().saturating_sub(cpu_before),
        histogram,
        errors,
        first_error,
    }
}

/// Prints the figures of one run, ending with the `RESULT` line scripts parse.
pub fn report(args: &Args, outcome: &Outcome, placement: impl Display) {
    let secs = outcome.elapsed.as_secs_f64();
    let succeeded = outcome.histogram.count() * args.batch;
    let writes_per_second = succeeded as f64 / secs;
    let cores = outcome.cpu.as_secs_f64() / secs;
    let micros = |q: f64| outcome.histogram.percentile(q).as_secs_f64() * 1e6;
    let (p50, p99, p999) = (micros(0.50), micros(0.99), micros(0.999));
    let peak_mib = process::peak_memory_bytes().map_or(f64::NAN, |b| b as f64 / (1 << 20) as f64);
    println!(
        "elapsed: {secs:.2} s for {succeeded} writes ({} failed calls)",
        outcome.errors
    );
    println!("throughput: {writes_per_second:.0} writes/s");
    println!("latency per call: p50 {p50:.1} µs, p99 {p99:.1} µs, p99.9 {p999:.1} µs");
    println!(
        "cpu: {cores:.2} cores ({:.2} s user+sys over {secs:.2} s)",
        outcome.cpu.as_secs_f64()
    );
    println!("peak memory (VmHWM): {peak_mib:.1} MiB");
    println!(
        "RESULT members={} clients={} writes={} batch={} secs={secs:.3} writes_per_s={writes_per_second:.0} \
         p50_us={p50:.1} p99_us={p99:.1} p999_us={p999:.1} cores={cores:.2} peak_mib={peak_mib:.1} errors={} \
         placement={placement}",
        args.members, args.clients, args.writes, args.batch, outcome.errors
    );
}

/// Runs a benchmark's `main` future on a multi-threaded tokio runtime (one worker per core, the
/// clients' runtime) and turns its outcome into the exit code, errors printed after `program`.
pub fn block_on<F>(program: &str, run: F) -> std::process::ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{program}: cannot start the tokio runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
