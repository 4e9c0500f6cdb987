//! The `meridian` command line: run | check | explain | status | demo.

use std::path::PathBuf;
use std::process::ExitCode;

/// The data path allocates on every request (heads, header maps, the request's
/// future: 13 allocations per proxied request, loadtest/RESULTS.md). Under glibc's
/// malloc, malloc and free were ~11 % of the proxy's CPU samples when mimalloc was
/// chosen; its v2 line stays cheaper than v3 with many connections (RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Edge L7 gateway for active-active multi-region traffic"
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = "MERIDIAN_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
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
        /// Once ready, write the bound listener and admin addresses and the pid here
        /// as JSON (atomically: a temporary file renamed). For port 0 in the config.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Parse and validate a config file; print a summary or every error.
    Check {
        #[arg(short, long, env = "MERIDIAN_CONFIG")]
        config: PathBuf,
    },
    /// Print the routing decision for one request, step by step, without proxying.
    Explain {
        #[arg(short, long, env = "MERIDIAN_CONFIG")]
        config: PathBuf,
        /// The client's address as the gateway would see it (the TCP peer).
        #[arg(long)]
        client_ip: std::net::IpAddr,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long, default_value = "")]
        host: String,
        #[arg(long, default_value = "/")]
        path: String,
        /// A request header, `Name: value`; repeatable (e.g. X-Forwarded-For).
        #[arg(long = "header", value_parser = meridian::cli::explain::parse_header)]
        headers: Vec<(String, String)>,
        /// A cookie, `name=value`; repeatable.
        #[arg(long = "cookie")]
        cookies: Vec<String>,
        /// Regions to treat as unhealthy, comma-separated.
        #[arg(long, value_delimiter = ',')]
        unhealthy: Vec<String>,
        /// Regions to treat as drained, comma-separated.
        #[arg(long, value_delimiter = ',')]
        drained: Vec<String>,
        /// Regions to treat as at capacity (every origin at its limit), comma-separated.
        #[arg(long, value_delimiter = ',')]
        full: Vec<String>,
    },
    /// The live view of a running gateway: regions, origins, shifts, DNS, last events.
    Status {
        /// The admin listener, `http://HOST:PORT` (default: the config's admin address).
        #[arg(long)]
        admin: Option<String>,
        /// Config file whose admin address to ask.
        #[arg(short, long, env = "MERIDIAN_CONFIG")]
        config: Option<PathBuf>,
        /// Redraw every second.
        #[arg(long)]
        watch: bool,
        /// Print the raw `/admin/state` JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 when the gateway is not ready or a region is unhealthy (2: unreachable).
        #[arg(long)]
        check: bool,
    },
    /// Simulated regional origins on loopback with the gateway in front of them.
    Demo {
        #[arg(short, long, default_value = "config/demo.yaml")]
        config: PathBuf,
    },
}

/// mimalloc asks for transparent huge pages, and khugepaged collapses them over the
/// hours: RSS steps up by MiBs with no leak (the soak showed +8 MiB in 30 minutes).
/// A server wants a flat RSS more than the TLB hits, so the process opts out, as
/// `MIMALLOC_ALLOW_THP=0` would; setting `MIMALLOC_ALLOW_THP` at all leaves the choice to it.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // The variadic arguments are unsigned longs: the kernel refuses nonzero arg3-5.
        let (on, unused): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, on, unused, unused, unused) };
    }
}

/// Loads a config, printing every error (one per line) when it does not load.
fn load_or_report(path: &std::path::Path) -> Option<meridian::core::config::Loaded> {
    meridian::core::config::load(path)
        .map_err(|errors| {
            for e in &errors {
                eprintln!("{e}");
            }
        })
        .ok()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => {
            let Some(loaded) = load_or_report(&config) else {
                return ExitCode::FAILURE;
            };
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            // Names are looked up as the gateway would, from here, briefly.
            let names = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| {
                    rt.block_on(meridian::services::resolver::unresolved_names(
                        &loaded,
                        std::time::Duration::from_secs(2),
                    ))
                });
            for w in names.into_iter().flatten() {
                eprintln!("warning: {w}");
            }
            print!("{}", meridian::core::config::summary(&loaded));
            return ExitCode::SUCCESS;
        }
        Command::Explain {
            config,
            client_ip,
            method,
            host,
            path,
            headers,
            cookies,
            unhealthy,
            drained,
            full,
        } => {
            let Some(loaded) = load_or_report(&config) else {
                return ExitCode::FAILURE;
            };
            let req = meridian::cli::explain::Request {
                client_ip,
                method: method.to_ascii_uppercase(),
                host,
                path,
                headers,
                cookies,
                unhealthy,
                drained,
                full,
                now_ms: meridian::util::clock::now_ms(),
            };
            return match meridian::cli::explain::explain(&loaded, &req) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("meridian explain: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Status {
            admin,
            config,
            watch,
            json,
            check,
        } => {
            let admin = match meridian::cli::status::admin_url(admin.as_deref(), config.as_deref())
            {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("meridian status: {e}");
                    return ExitCode::from(meridian::cli::status::UNREACHABLE);
                }
            };
            let color = std::io::IsTerminal::is_terminal(&std::io::stdout())
                && std::env::var_os("NO_COLOR").is_none();
            let opts = meridian::cli::status::Options {
                admin,
                watch,
                json,
                check,
                color,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            return match rt {
                Ok(rt) => ExitCode::from(rt.block_on(meridian::cli::status::run(&opts))),
                Err(e) => {
                    eprintln!("meridian status: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Run { config, ready_file } => {
            no_transparent_huge_pages();
            meridian::telemetry::logging::init(&cli.log_format);
            ready_file
                .map(meridian::services::server::ready_file)
                .transpose()
                .and_then(|on_ready| meridian::services::server::run(config, on_ready))
        }
        Command::Demo { config } => {
            no_transparent_huge_pages();
            meridian::telemetry::logging::init(&cli.log_format);
            meridian::cli::demo::run(config)
        }
    };
    // Lines still queued for the writer thread go out before the process ends.
    meridian::telemetry::logging::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meridian: {e:#}");
            ExitCode::FAILURE
        }
    }
}
