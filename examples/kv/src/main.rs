//! The `raftor-kv` binary: parses the command line and runs a subcommand. See the crate docs
//! (`src/lib.rs`) for how the server works.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use raftor_kv::cli::{Cli, Cmd};
use raftor_kv::{commands, demo, launcher, node};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Cmd::Serve(_) | Cmd::Cluster(_));
    init_logging(if serving { "info" } else { "warn" });
    let threads = match &cli.command {
        Cmd::Serve(args) => args.threads,
        _ => 0,
    };
    if threads == 1 {
        // One thread for everything: an actix system, so the node's actor starts on it too.
        return exit_code(actix_rt::System::new().block_on(run(cli.command)));
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 1 {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    exit_code(runtime.block_on(run(cli.command)))
}

fn exit_code(outcome: anyhow::Result<u8>) -> ExitCode {
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Cmd) -> anyhow::Result<u8> {
    match command {
        Cmd::Serve(args) => {
            let options = match args.into_options() {
                Ok(options) => options,
                Err(message) => usage_error(&message),
            };
            node::serve(options).await?;
        }
        Cmd::Cluster(args) => launcher::run(args).await?,
        Cmd::Demo(args) => demo::run(args).await?,
        client => return Ok(u8::try_from(commands::run(client).await?).unwrap_or(1)),
    }
    Ok(0)
}

/// Prints `message` as clap prints a bad flag, with the usage line, and exits with code 2.
fn usage_error(message: &str) -> ! {
    let mut command = Cli::command();
    let serve = command.find_subcommand_mut("serve").cloned();
    let mut target = serve.unwrap_or(command).bin_name("raftor-kv serve");
    target
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

/// Logs to stderr; `RUST_LOG` overrides `default`.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
