//! The reason table against itself and against README's two tables (HTTP answers, error reasons).

use std::collections::HashSet;

use super::*;

const README: &str = include_str!("../../README.md");

fn by_name(name: &str) -> Option<Reason> {
    Reason::ALL.iter().copied().find(|r| r.as_str() == name)
}

/// README spells gRPC codes as the protocol does.
fn grpc_name(code: GrpcCode) -> &'static str {
    match code {
        GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
        GrpcCode::NotFound => "NOT_FOUND",
        GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
        GrpcCode::Aborted => "ABORTED",
        GrpcCode::PermissionDenied => "PERMISSION_DENIED",
        GrpcCode::OutOfRange => "OUT_OF_RANGE",
        GrpcCode::Unimplemented => "UNIMPLEMENTED",
        GrpcCode::Internal => "INTERNAL",
        GrpcCode::Unavailable => "UNAVAILABLE",
        GrpcCode::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The cells of each row of the first table after `heading`, header row included.
fn table_rows(heading: &str) -> Vec<Vec<String>> {
    let section = README
        .split_once(heading)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .filter(|line| !line.starts_with("| ---"))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

/// Reason names quoted in a cell.
fn quoted_reasons(cell: &str) -> Vec<Reason> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(by_name)
        .collect()
}

#[test]
fn names_are_distinct_and_screaming_snake_case() {
    let names: HashSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), Reason::ALL.len());
    for name in names {
        assert!(
            name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "{name}"
        );
    }
}

#[test]
fn every_reason_has_the_documented_status() {
    let verification = [
        Reason::MissingSignature,
        Reason::MalformedSignature,
        Reason::SignatureMismatch,
        Reason::TimestampOutOfTolerance,
        Reason::MissingToken,
        Reason::TokenMismatch,
        Reason::AddressNotAllowed,
    ];
    for reason in verification {
        let spec = reason.spec();
        assert_eq!((spec.grpc, spec.http), (GrpcCode::Unauthenticated, 401));
    }
    for (reason, http) in [
        (Reason::UnknownSource, 404),
        (Reason::UnknownPath, 404),
        (Reason::EventNotFound, 404),
        (Reason::MalformedPayload, 400),
        (Reason::InvalidRequest, 400),
        (Reason::PayloadTooLarge, 413),
        (Reason::UnsupportedMediaType, 415),
        (Reason::MethodNotAllowed, 405),
        (Reason::RateLimited, 429),
        (Reason::StoreUnavailable, 503),
        (Reason::ShuttingDown, 503),
        (Reason::RequestTimeout, 503),
        (Reason::Internal, 500),
        (Reason::MissingApiKey, 401),
        (Reason::UnknownApiKey, 401),
        (Reason::PermissionDenied, 403),
        (Reason::SourceNotAllowed, 403),
        (Reason::ReceivedAtOutOfRange, 400),
    ] {
        assert_eq!(reason.spec().http, http, "{reason}");
    }
    let retryable: HashSet<Reason> = Reason::ALL
        .iter()
        .copied()
        .filter(|r| r.spec().retryable)
        .collect();
    assert_eq!(
        retryable,
        HashSet::from([
            Reason::RateLimited,
            Reason::StoreUnavailable,
            Reason::ShuttingDown,
            Reason::RequestTimeout,
        ])
    );
    let faults: HashSet<Reason> = Reason::ALL
        .iter()
        .copied()
        .filter(|r| r.is_server_fault())
        .collect();
    assert_eq!(
        faults,
        HashSet::from([
            Reason::StoreUnavailable,
            Reason::ShuttingDown,
            Reason::RequestTimeout,
            Reason::Internal,
        ])
    );
}

#[test]
fn readme_error_reasons_table_matches() {
    let rows = table_rows("### Error reasons");
    let mut seen = HashSet::new();
    for row in rows.iter().skip(1) {
        let [name, grpc, http, ..] = row.as_slice() else {
            panic!("short row {row:?}");
        };
        let reason = by_name(name.trim_matches('`')).unwrap_or_else(|| panic!("{name}"));
        assert!(seen.insert(reason), "{reason} listed twice");
        let spec = reason.spec();
        // `—`: that transport never answers with this reason.
        if grpc != "—" {
            assert_eq!(grpc, grpc_name(spec.grpc), "{reason}");
        }
        if http != "—" {
            assert_eq!(http, &spec.http.to_string(), "{reason}");
        }
    }
    let missing: Vec<_> = Reason::ALL.iter().filter(|r| !seen.contains(r)).collect();
    assert!(missing.is_empty(), "not in README: {missing:?}");
}

#[test]
fn readme_http_answers_table_matches() {
    let rows = table_rows("Answers, chosen so providers do the right thing");
    let mut retry_after = HashSet::new();
    for row in &rows {
        let status = &row[0];
        let Some(Ok(code)) = status.get(..3).map(str::parse::<u16>) else {
            continue;
        };
        let retries = status.contains("Retry-After");
        for reason in quoted_reasons(&row[1]) {
            assert_eq!(reason.spec().http, code, "{reason}");
            assert_eq!(reason.spec().retryable, retries, "{reason}");
            if retries {
                retry_after.insert(reason);
            }
        }
    }
    for reason in Reason::ALL.iter().filter(|r| r.spec().retryable) {
        assert!(retry_after.contains(reason), "{reason}: no Retry-After row");
    }
}

#[test]
fn sender_text_is_bounded_and_escaped() {
    assert_eq!(SenderText("gigs").to_string(), "gigs");
    assert_eq!(SenderText("a\nb\"").to_string(), "a\\nb\\\"");
    assert_eq!(SenderText(&"x".repeat(100)).to_string().len(), 64);
    assert_eq!(Peer(None).to_string(), "unknown");
}
