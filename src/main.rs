//! The `meridian` command line: run | check | explain | demo.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "meridian", version, about = "Edge L7 gateway for active-active multi-region traffic")]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config: _ } => ExitCode::FAILURE,
        Command::Check { config } => match meridian::config::load(&config) {
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
        },
    }
}
