//! The `meridian` command line: run | check | explain | demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Edge L7 gateway for active-active multi-region traffic"
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: proxy listeners, admin listener, probers, reload watcher.
    Run {
        #[arg(short, long, env = "MERIDIAN_CONFIG")]
        config: PathBuf,
    },
    /// Parse and validate a config file; print a summary or every error.
    Check {
        #[arg(short, long, env = "MERIDIAN_CONFIG")]
        config: PathBuf,
    },
    /// Simulated regional origins on loopback with the gateway in front of them.
    Demo {
        #[arg(short, long, default_value = "config/demo.yaml")]
        config: PathBuf,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => {
            return match meridian::config::load(&config) {
                Ok(loaded) => {
                    print!("{}", meridian::config::summary(&loaded));
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config } => {
            init_logging(&cli.log_format);
            meridian::server::run(config)
        }
        Command::Demo { config } => {
            init_logging(&cli.log_format);
            meridian::demo::run(config)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian: {e:#}");
            ExitCode::FAILURE
        }
    }
}
