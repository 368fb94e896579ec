//! The `hooknorm` command: parse the command line, load the config, run.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hooknorm::auth::Scope;
use hooknorm::bench::BenchArgs;
use hooknorm::cli::connect::{self, ClientOptions};
use hooknorm::cli::events::{self, FilterArgs, TailFormat, TailStart};
use hooknorm::cli::output;
use hooknorm::cli::send::{self, SendArgs};
use hooknorm::config::{Config, DEFAULT_CONFIG_PATH, Secret};
use hooknorm::server::{Server, shutdown_signal};

/// Verifies, normalizes and serves webhooks from Gigs, Abowire and Mobile Manager.
#[derive(Debug, Parser)]
#[command(name = "hooknorm", version)]
struct Cli {
    /// Config file [default: ./hooknorm.toml]
    #[arg(long, global = true, env = "HOOKNORM_CONFIG")]
    config: Option<PathBuf>,
    /// API key for send, tail and events [default: the config's first key with the scope]
    #[arg(long, global = true, env = "HOOKNORM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM CA certificates to trust for an https:// server URL
    #[arg(long, global = true, env = "HOOKNORM_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service.
    Serve,
    /// Authenticate a sample or file as the source's provider would and call VerifyAndNormalize
    /// (or, with --http, post it to the HTTP ingress).
    Send(SendArgs),
    /// Stream events (stored, then live) as JSON lines.
    Tail {
        #[command(flatten)]
        filter: FilterFlags,
        /// Start from the oldest stored event (default: only new events).
        #[arg(long, conflicts_with_all = ["after", "since"])]
        earliest: bool,
        /// Resume after this sequence.
        #[arg(long, conflicts_with = "since")]
        after: Option<u64>,
        /// Start from events received at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Also print heartbeats (json format only).
        #[arg(long)]
        heartbeats: bool,
        /// How each event is printed: `json` (the Event) or `cloudevents` (CloudEvents 1.0
        /// structured mode).
        #[arg(long, value_enum, default_value_t = TailFormat::Json)]
        format: TailFormat,
        /// Server URL [default: the config's grpc_listen].
        #[arg(long)]
        server: Option<String>,
    },
    /// List stored events newest first, or show one with --id.
    Events {
        #[command(flatten)]
        filter: FilterFlags,
        /// Show the event with this id.
        #[arg(long)]
        id: Option<String>,
        /// With --id: also the webhook as received (body, signed headers, path, peer).
        #[arg(long, requires = "id")]
        full: bool,
        /// Most events to print.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Server URL [default: the config's grpc_listen].
        #[arg(long)]
        server: Option<String>,
    },
    /// List the built-in samples.
    Samples,
    /// Load and validate the config, then exit.
    CheckConfig,
    /// Load-test a `hooknorm serve` child process (and a bare echo server) and report
    /// throughput, latency and memory; ignores --config.
    Bench(BenchArgs),
    /// The bare gRPC echo server `bench` compares against.
    #[command(hide = true)]
    BenchEchoServer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

/// Event filter flags shared by `tail` and `events`.
#[derive(Debug, clap::Args)]
struct FilterFlags {
    /// Only this provider (gigs, abowire, mobile_manager); repeatable.
    #[arg(long = "provider")]
    providers: Vec<String>,
    /// Only this source; repeatable.
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Only this type or `prefix.*`; repeatable.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only events whose subject or related refs name this `kind:id`.
    #[arg(long)]
    resource: Option<String>,
}

impl From<FilterFlags> for FilterArgs {
    fn from(flags: FilterFlags) -> Self {
        FilterArgs {
            providers: flags.providers,
            sources: flags.sources,
            types: flags.types,
            resource: flags.resource,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match output::with_stdout(|out| run(cli, out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; everything it prints goes to `out`.
fn run(cli: Cli, out: &mut impl Write) -> anyhow::Result<()> {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let options = ClientOptions {
        // An empty HOOKNORM_API_KEY is no key, not an empty one.
        api_key: cli.api_key.filter(|key| !key.is_empty()).map(Secret::new),
        ca_cert: cli.ca_cert,
    };
    // Clients given `--server` need no config file: they may run anywhere. Then only a config
    // named explicitly lends its key: the local one's is not for another server.
    let explicit_config = cli.config.is_some();
    let load = || Config::load(&path);
    let target = |server: Option<String>, scope| -> anyhow::Result<(String, Option<Secret>)> {
        match server {
            Some(url) => {
                let config = (explicit_config && options.api_key.is_none())
                    .then(|| load().ok())
                    .flatten();
                Ok((url, options.key_for(config.as_ref(), scope)))
            }
            None => {
                let config = load()?;
                let key = options.key_for(Some(&config), scope);
                Ok((connect::default_url(&config), key))
            }
        }
    };
    match cli.command {
        Command::Serve => {
            let config = load()?;
            let runtime = runtime()?;
            // Inside the runtime: span export runs on it.
            let telemetry = runtime.block_on(async { hooknorm::telemetry::init(&config) })?;
            let served = runtime.block_on(async {
                // Before binding: a SIGTERM from here on is a graceful stop.
                let shutdown = shutdown_signal();
                // This thread accepts for every listener; the runtime's workers serve.
                let server = Server::bind(&config)
                    .await?
                    .lower_accept_priority(hooknorm::listen::priority::ACCEPT_NICENESS);
                server.serve(shutdown).await?;
                anyhow::Ok(())
            });
            // The runtime's workers still run the exporter's channel while this blocks.
            telemetry.shutdown();
            served
        }
        Command::Send(args) => {
            let config = load()?;
            let json = runtime()?.block_on(send::run(&config, &args, &options))?;
            writeln!(out, "{json}")?;
            Ok(())
        }
        Command::Tail {
            filter,
            earliest,
            after,
            since,
            heartbeats,
            format,
            server,
        } => {
            let (url, key) = target(server, Scope::Read)?;
            let start = TailStart {
                earliest,
                after,
                since,
            };
            let filter = FilterArgs::from(filter);
            let mut notices = std::io::stderr().lock();
            runtime()?.block_on(async {
                let client = connect::connect(&url, key.as_ref(), &options).await?;
                events::tail(
                    client,
                    &filter,
                    &start,
                    format,
                    heartbeats,
                    out,
                    &mut notices,
                )
                .await
            })?;
            Ok(())
        }
        Command::Events {
            filter,
            id,
            full,
            limit,
            server,
        } => {
            let (url, key) = target(server, Scope::Read)?;
            let filter = FilterArgs::from(filter);
            runtime()?.block_on(async {
                let client = connect::connect(&url, key.as_ref(), &options).await?;
                events::events(client, &filter, id.as_deref(), full, limit, out).await
            })?;
            Ok(())
        }
        Command::Samples => {
            for sample in hooknorm::cli::samples::SAMPLES {
                writeln!(out, "{:<16} {}", sample.provider.name(), sample.name)?;
            }
            Ok(())
        }
        Command::CheckConfig => {
            let config = load()?;
            writeln!(out, "config ok: {} sources", config.sources.len())?;
            Ok(())
        }
        // The bench builds its own configs, one per server it starts.
        Command::Bench(args) => {
            let report = runtime()?.block_on(hooknorm::bench::run(args))?;
            write!(out, "{report}")?;
            Ok(())
        }
        Command::BenchEchoServer { listen } => {
            runtime()?.block_on(hooknorm::bench::echo_server::serve(listen))?;
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
