//! `windlass`: a curl-shaped HTTP/1.1 client, load tester and batch
//! downloader. A thin user of the windlass library's public API.

#![forbid(unsafe_code)]

mod args;
mod bench;
mod client;
mod exit;
mod fetch;
mod heads;
mod payload;
mod progress;
mod proxy;
mod soak;
mod trace;
mod transfer;
mod urls;
mod writeout;

use std::process::ExitCode;

use windlass::CancelToken;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_ordered();
    init_logging(cli.command.is_some() && cli.verbose());
    let token = CancelToken::new();
    install_ctrl_c(&token);
    let result = match &cli.command {
        Some(Command::Bench(args)) => bench::run(args, &token),
        Some(Command::Fetch(args)) => fetch::run(args, &token),
        Some(Command::Soak(args)) => soak::run(args, &token),
        None => transfer::run(&cli.transfer, &token),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.code)
        }
    }
}

/// `-v` turns on debug logs for the subcommands (a transfer's `-v` shows
/// curl's head trace instead); `RUST_LOG` overrides either way.
fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

/// The first Ctrl-C cancels every transfer through the token (the library
/// then unblocks them within milliseconds); a second one exits at once.
fn install_ctrl_c(token: &CancelToken) {
    let token = token.clone();
    let installed = ctrlc::set_handler(move || {
        if token.is_cancelled() {
            std::process::exit(exit::CANCELLED.into());
        }
        token.cancel();
    });
    if let Err(e) = installed {
        log::debug!("no Ctrl-C handler: {e}");
    }
}
