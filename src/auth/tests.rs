//! Principals: scopes, source narrowing, forwarded fields; key lookup.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::TimeZone;

use super::*;

fn principal(sources: Option<&[&str]>, forwarder: bool) -> Principal {
    Principal {
        name: "billing".to_owned(),
        scopes: BTreeSet::from([Scope::Read]),
        sources: sources.map(|list| list.iter().map(|s| (*s).to_owned()).collect()),
        forwarder,
        received_at_skew: Some(Duration::from_secs(300)),
    }
}

#[test]
fn scopes_are_required() {
    let key = principal(None, false);
    assert_eq!(key.require(Scope::Read), Ok(()));
    let error = key.require(Scope::Ingest).unwrap_err();
    assert_eq!(error.reason(), Reason::PermissionDenied);
    assert_eq!(error.to_string(), "key `billing` lacks the `ingest` scope");
}

#[test]
fn filters_are_narrowed_to_the_keys_sources() {
    let key = principal(Some(&["a", "b"]), false);
    let mut filter = EventFilter::default();
    key.restrict(&mut filter).unwrap();
    assert_eq!(filter.sources, ["a", "b"]);
    let mut filter = EventFilter {
        sources: vec!["b".to_owned()],
        ..EventFilter::default()
    };
    key.restrict(&mut filter).unwrap();
    assert_eq!(filter.sources, ["b"]);
    let mut filter = EventFilter {
        sources: vec!["a".to_owned(), "c".to_owned()],
        ..EventFilter::default()
    };
    let error = key.restrict(&mut filter).unwrap_err();
    assert_eq!(error.reason(), Reason::SourceNotAllowed);
    assert!(key.check_source("c").is_err());
    assert!(key.check_source("a").is_ok());
    let mut filter = EventFilter::default();
    principal(None, false).restrict(&mut filter).unwrap();
    assert!(filter.sources.is_empty());
}

#[test]
fn only_forwarders_are_believed_and_only_within_the_skew() {
    let now = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let peer: IpAddr = [127, 0, 0, 1].into();
    let claimed = ClaimedOrigin {
        remote_addr: Some([192, 0, 2, 7].into()),
        received_at: Some(now - chrono::Duration::days(7)),
    };
    let plain = principal(None, false).origin(claimed, Some(peer), now, false);
    assert_eq!(
        plain,
        Ok(Origin {
            remote_addr: Some(peer),
            received_at: now
        })
    );
    let forwarder = principal(None, true);
    let error = forwarder
        .origin(claimed, Some(peer), now, false)
        .unwrap_err();
    assert_eq!(error.reason(), Reason::ReceivedAtOutOfRange);
    // dry_run stores nothing: re-verifying an old delivery is fine.
    assert!(forwarder.origin(claimed, Some(peer), now, true).is_ok());
    for off in [-300, 300] {
        let claimed = ClaimedOrigin {
            received_at: Some(now + chrono::Duration::seconds(off)),
            ..claimed
        };
        let origin = forwarder.origin(claimed, Some(peer), now, false).unwrap();
        assert_eq!(origin.remote_addr, claimed.remote_addr);
        assert_eq!(Some(origin.received_at), claimed.received_at);
    }
    let future = ClaimedOrigin {
        received_at: Some(now + chrono::Duration::seconds(301)),
        ..claimed
    };
    assert!(forwarder.origin(future, Some(peer), now, false).is_err());
    // auth = "none": trusted as before keys existed.
    assert!(
        Principal::anonymous()
            .origin(claimed, None, now, false)
            .is_ok()
    );
}

#[test]
fn keys_are_found_by_digest_and_certificates_by_name() {
    let billing = Arc::new(principal(None, false));
    let ops = Arc::new(Principal {
        name: "ops".to_owned(),
        ..principal(None, true)
    });
    let auth = Authenticator::with_keys(
        vec![
            (KeyDigest::of("billing-key-0123456789"), billing.clone()),
            (
                KeyDigest::from_hex(&hex::encode(KeyDigest::of("ops-key-0123456789").0)).unwrap(),
                ops.clone(),
            ),
        ],
        HashMap::from([("ops.internal".to_owned(), ops.clone())]),
    );
    let found = |key, names: &[&str]| auth.authenticate(key, names.iter().copied());
    assert_eq!(found(Some("billing-key-0123456789"), &[]), Ok(billing));
    assert_eq!(found(Some("ops-key-0123456789"), &[]), Ok(ops.clone()));
    assert_eq!(
        found(Some("nope"), &["ops.internal"]),
        Err(AuthError::UnknownKey)
    );
    assert_eq!(found(None, &["other", "ops.internal"]), Ok(ops));
    assert_eq!(found(None, &["other"]), Err(AuthError::MissingKey));
    assert_eq!(found(None, &[]), Err(AuthError::MissingKey));
    assert!(Authenticator::open().authenticate(None, []).is_ok());
    assert_eq!(format!("{:?}", KeyDigest::of("x")), "KeyDigest(<redacted>)");
}

#[test]
fn bearer_forms() {
    assert_eq!(bearer("Bearer abc"), Some("abc"));
    assert_eq!(bearer("bearer  abc "), Some("abc"));
    assert_eq!(bearer("Basic abc"), None);
    assert_eq!(bearer("Bearer "), None);
    assert_eq!(bearer("abc"), None);
}
