//! The `egressor` binary.

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use egressor::{
    cli::{Cli, Command},
    commands,
    error::{EXIT_FAILURE, EXIT_USAGE},
    reader::error_chain,
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent(args) => {
            let filter = match EnvFilter::try_new(&args.log_level) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("egressor: --log.level {:?}: {e}", args.log_level);
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("egressor: starting the async runtime: {e}");
                    return ExitCode::from(EXIT_FAILURE);
                }
            };
            match runtime.block_on(egressor::agent::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("egressor: {}", error_chain(&e));
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Classify(args) => {
            init_warnings();
            one_shot(commands::classify::run(&args, &mut std::io::stdout().lock()))
        }
        Command::Prices(args) => {
            init_warnings();
            one_shot(commands::prices::run(&args, &mut std::io::stdout().lock()))
        }
        Command::Top(args) => one_shot(commands::top::run(&args, &mut std::io::stdout().lock())),
        Command::Rules(args) => {
            one_shot(commands::rules::run(&args, &mut std::io::stdout().lock()))
        }
        Command::Dashboards(args) => one_shot(commands::dashboards::run(&args)),
        Command::Flowlogs(args) => {
            init_warnings();
            match egressor::flowlogs::run(&args, &mut std::io::stdout().lock()) {
                Ok(egressor::flowlogs::Outcome::Complete) => ExitCode::SUCCESS,
                Ok(egressor::flowlogs::Outcome::InputErrors) => ExitCode::from(EXIT_FAILURE),
                Err(e) => one_shot(Err(e)),
            }
        }
        Command::Unpin(args) => match commands::unpin::run(&args) {
            Ok(removed) => {
                if removed {
                    eprintln!("egressor: removed the pins under {}", args.pin_path.display());
                } else {
                    eprintln!("egressor: nothing pinned under {}", args.pin_path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("egressor: {}", error_chain(&e));
                ExitCode::from(EXIT_FAILURE)
            }
        },
        Command::Manifests(args) => {
            let values = match egressor::manifests::Values::load(&args.values) {
                Ok(values) => values,
                Err(e) => return one_shot(Err(e)),
            };
            let release =
                egressor::manifests::Release { name: args.name, namespace: args.namespace };
            match egressor::manifests::render(&values, &release, args.part) {
                Ok(yaml) => {
                    // A closed pipe (`| head`) is not an error worth a panic.
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), yaml.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("egressor: rendering the manifests: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Ask(args) => {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    let mut out = std::io::stdout().lock();
                    match runtime.block_on(commands::ask::run(&args, &mut out)) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(commands::ask::AskError::Config(e)) => one_shot(Err(e)),
                        Err(e) => {
                            eprintln!("egressor: {e}");
                            ExitCode::from(EXIT_FAILURE)
                        }
                    }
                }
                Err(e) => {
                    eprintln!("egressor: starting the async runtime: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Explainer(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
            {
                Ok(runtime) => one_shot(runtime.block_on(egressor::explainer::run(*args))),
                Err(e) => {
                    eprintln!("egressor: starting the async runtime: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}

/// Warnings (an unreachable range source, say) go to stderr for the one-shot commands. The
/// AWS SDK's own (each credential provider of the chain that found nothing) are left out:
/// the error that ends a run names the chain.
fn init_warnings() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("warn,aws_config=error,aws_smithy_runtime=error"))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn one_shot(result: Result<(), egressor::error::ConfigError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("egressor: {}", error_chain(&e));
            ExitCode::from(EXIT_USAGE)
        }
    }
}
