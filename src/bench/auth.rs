//! The `auth` scenario: what API keys and TLS cost durable ingest. Three servers (no auth; one
//! API key; the key over TLS) are started together and loaded in turns, a short phase each,
//! round after round, so a neighbour's load or the disk's mood falls on all three alike rather
//! than on whichever ran last; each row adds up its server's phases.

use super::callers::{self, UnaryCaller};
use super::child::{BENCH_API_KEY, Security};
use super::drive::{self, Bound, RunResult};
use super::report::ScenarioReport;
use super::{Bench, BenchError, Server};
use crate::config::Secret;

/// Phases per server.
const ROUNDS: u32 = 6;

/// The three rows: `auth off`, `auth key`, `auth key+tls`.
pub(super) async fn interleaved(bench: &Bench) -> Result<Vec<ScenarioReport>, BenchError> {
    let setups = [
        ("auth off", Security::Open),
        ("auth key", Security::ApiKey),
        ("auth key+tls", Security::ApiKeyTls),
    ];
    let key = Secret::new(BENCH_API_KEY);
    let mut servers = Vec::new();
    for (name, security) in setups {
        let server = Server::start_secured(&bench.exe, name, security).await?;
        let tls = security == Security::ApiKeyTls;
        let channel = callers::secure_channel(&server.child.grpc_addr, tls)
            .await
            .map_err(BenchError::Client)?;
        servers.push((name, security, server, channel, RunResult::default()));
    }
    for round in 0..ROUNDS {
        // The rounds share the bound out: a duration evenly, requests with the remainder first.
        let phase = match bench.bound() {
            Bound::Duration(total) => Bound::Duration(total / ROUNDS),
            Bound::Requests(total) => {
                let rounds = u64::from(ROUNDS);
                let extra = u64::from(u64::from(round) < total % rounds);
                Bound::Requests(total / rounds + extra)
            }
        };
        for (_, security, _, channel, total) in &mut servers {
            // Each phase's ids start past the last one's, so no event is a duplicate.
            let first = u64::from(round) << 32;
            let callers = (0..bench.concurrency())
                .map(|_| {
                    let caller =
                        UnaryCaller::new(channel.clone(), bench.payloads.clone(), false, first);
                    match security {
                        Security::Open => Ok(caller),
                        Security::ApiKey | Security::ApiKeyTls => caller.presenting(&key),
                    }
                })
                .collect::<Result<_, _>>()
                .map_err(BenchError::Client)?;
            let result = drive::closed_loop(callers, phase).await;
            total.elapsed += result.elapsed;
            total.absorb(result);
        }
    }
    let mut rows = Vec::new();
    for (name, _, server, _, total) in servers {
        let note = format!("{}, {ROUNDS} phases in turn", bench.load_note());
        rows.push(server.finish(name, total, note).await);
    }
    Ok(rows)
}
