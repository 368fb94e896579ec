//! Connecting to NATS and finding (or creating) the stream: the client's options from
//! `[store.nats]`, and the check that an existing stream has the settings the configuration
//! asks for. An existing stream is never altered; one that differs is a start-up error that
//! says what differs.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::sync::Notify;

use super::NatsOpenError;
use super::record::Subjects;
use crate::config::{NatsAuth, NatsConfig};

/// Reconnect attempts back off to this, so a replica notices a returning server within it.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Connects with the configured credentials and TLS; retries forever once connected. Every
/// reconnection wakes `reconnected`'s waiters (the applier starts its consumer over at once
/// rather than waiting to miss its heartbeats).
pub(super) async fn connect(
    config: &NatsConfig,
    reconnected: Arc<Notify>,
) -> Result<async_nats::Client, NatsOpenError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(&config.client_name)
        .connection_timeout(Duration::from_secs(config.connect_timeout_seconds))
        .request_timeout(Some(Duration::from_secs(config.append_timeout_seconds)))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            let exponent = u32::try_from(attempts.min(6)).unwrap_or(6);
            (Duration::from_millis(25) * 2u32.pow(exponent)).min(MAX_RECONNECT_DELAY)
        })
        .event_callback(move |event| {
            let reconnected = Arc::clone(&reconnected);
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("nats connected");
                        reconnected.notify_waiters();
                    }
                    async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                    other => tracing::info!(event = %other, "nats event"),
                }
            }
        });
    options =
        match &config.auth {
            NatsAuth::None => options,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.expose().to_owned())
            }
            NatsAuth::Token(token) => options.token(token.expose().to_owned()),
            NatsAuth::NKey(seed) => options.nkey(seed.expose().to_owned()),
            NatsAuth::Credentials(credentials) => options
                .credentials(credentials.expose())
                .map_err(|error| NatsOpenError::Config {
                    key: "store.nats.credentials",
                    reason: error.to_string(),
                })?,
        };
    let tls = &config.tls;
    if tls.enabled() {
        options = options.require_tls(true);
    }
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let servers: Vec<async_nats::ServerAddr> = config
        .servers
        .iter()
        .filter_map(|server| server.parse().ok())
        .collect();
    options
        .connect(servers)
        .await
        .map_err(|error| NatsOpenError::Connect {
            servers: config.servers.join(","),
            reason: error.to_string(),
        })
}

/// The stream configuration `[store.nats]` asks for.
pub(super) fn wanted_stream(config: &NatsConfig, subjects: &Subjects) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        description: Some("hooknorm: accepted webhook deliveries, in order".to_owned()),
        subjects: subjects.stream_subjects(),
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_age: Duration::from_secs(config.max_age_seconds),
        max_bytes: limit(config.max_bytes),
        max_messages: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        max_message_size: -1,
        discard: stream::DiscardPolicy::Old,
        allow_direct: true,
        ..stream::Config::default()
    }
}

/// JetStream writes "no limit" as -1.
fn limit(value: u64) -> i64 {
    match value {
        0 => -1,
        value => i64::try_from(value).unwrap_or(i64::MAX),
    }
}

/// Finds the stream, creating it when allowed; refuses one whose settings differ.
pub(super) async fn ensure_stream(
    context: &jetstream::Context,
    config: &NatsConfig,
    subjects: &Subjects,
) -> Result<stream::Stream, NatsOpenError> {
    let wanted = wanted_stream(config, subjects);
    let unavailable = |error: &dyn std::fmt::Display| NatsOpenError::Stream {
        stream: config.stream.clone(),
        reason: error.to_string(),
    };
    match context.get_stream(&config.stream).await {
        Ok(stream) => {
            check_compatible(&stream.cached_info().config, &wanted)?;
            Ok(stream)
        }
        Err(error) if is_not_found(&error) => {
            if !config.create_stream {
                return Err(NatsOpenError::Stream {
                    stream: config.stream.clone(),
                    reason: "does not exist, and store.nats.create_stream is false".to_owned(),
                });
            }
            match context.create_stream(wanted.clone()).await {
                Ok(stream) => {
                    tracing::info!(stream = %config.stream, replicas = config.replicas, "stream created");
                    Ok(stream)
                }
                // Another replica created it meanwhile: use it if it is the same.
                Err(_) => {
                    let stream = context
                        .get_stream(&config.stream)
                        .await
                        .map_err(|error| unavailable(&error))?;
                    check_compatible(&stream.cached_info().config, &wanted)?;
                    Ok(stream)
                }
            }
        }
        Err(error) => Err(unavailable(&error)),
    }
}

fn is_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(error)
            if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Every setting hooknorm depends on, compared; all differences in one error.
fn check_compatible(found: &stream::Config, wanted: &stream::Config) -> Result<(), NatsOpenError> {
    let mut differences = Vec::new();
    for subject in &wanted.subjects {
        if !found
            .subjects
            .iter()
            .any(|pattern| subject_covers(pattern, subject))
        {
            differences.push(format!(
                "subjects {:?} do not capture {subject}",
                found.subjects
            ));
        }
    }
    if found.retention != stream::RetentionPolicy::Limits {
        differences.push(format!(
            "retention is {:?}, hooknorm needs limits (messages must outlive their consumers)",
            found.retention
        ));
    }
    if found.storage != stream::StorageType::File {
        differences.push(format!(
            "storage is {:?}, hooknorm needs file",
            found.storage
        ));
    }
    if found.num_replicas.max(1) != wanted.num_replicas {
        differences.push(format!(
            "replicas is {}, store.nats.replicas is {}",
            found.num_replicas, wanted.num_replicas
        ));
    }
    if found.max_age != wanted.max_age {
        differences.push(format!(
            "max_age is {} s, store.nats.max_age_seconds is {}",
            found.max_age.as_secs(),
            wanted.max_age.as_secs()
        ));
    }
    if found.max_bytes.max(-1) != wanted.max_bytes {
        differences.push(format!(
            "max_bytes is {}, store.nats.max_bytes asks for {}",
            found.max_bytes, wanted.max_bytes
        ));
    }
    if found.max_messages > 0 {
        differences.push(format!(
            "max_msgs is {}: hooknorm's retention is store.retention_max_count",
            found.max_messages
        ));
    }
    if found.discard != stream::DiscardPolicy::Old {
        differences.push("discard is new: a full stream would refuse webhooks".to_owned());
    }
    if found.sealed || found.mirror.is_some() {
        differences.push("stream is sealed or a mirror: it takes no writes".to_owned());
    }
    if found.deny_purge || found.deny_delete {
        // Harmless to hooknorm, which neither purges nor deletes; kept as configured.
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(NatsOpenError::Incompatible {
            stream: wanted.name.clone(),
            differences: differences.join("; "),
        })
    }
}

/// Whether the subject pattern `pattern` (with `*` and `>` wildcards) matches every subject
/// `subject` (itself possibly ending in `>`) stands for.
fn subject_covers(pattern: &str, subject: &str) -> bool {
    let mut patterns = pattern.split('.');
    let mut tokens = subject.split('.');
    loop {
        match (patterns.next(), tokens.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(token)) if token != ">" => {}
            (Some(p), Some(t)) if p == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_coverage() {
        assert!(subject_covers("hooknorm.events.>", "hooknorm.events.>"));
        assert!(subject_covers("hooknorm.>", "hooknorm.events.>"));
        assert!(subject_covers(">", "hooknorm.retention"));
        assert!(subject_covers("hooknorm.*", "hooknorm.retention"));
        assert!(!subject_covers("hooknorm.*", "hooknorm.events.>"));
        assert!(!subject_covers("hooknorm.events.*", "hooknorm.events.>"));
        assert!(!subject_covers("other.>", "hooknorm.retention"));
    }

    #[test]
    fn a_stream_with_other_settings_is_refused_naming_each() {
        let config = NatsConfig {
            replicas: 3,
            ..NatsConfig::default()
        };
        let wanted = wanted_stream(&config, &Subjects::new("hooknorm"));
        let found = stream::Config {
            num_replicas: 1,
            storage: stream::StorageType::Memory,
            ..wanted.clone()
        };
        let error = check_compatible(&found, &wanted).unwrap_err().to_string();
        assert!(
            error.contains("replicas is 1, store.nats.replicas is 3"),
            "{error}"
        );
        assert!(error.contains("storage is Memory"), "{error}");
        assert!(check_compatible(&wanted, &wanted).is_ok());
    }
}
