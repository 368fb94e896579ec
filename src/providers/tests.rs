//! Unit tests of what [`ProviderKind::normalize`] fills in for every provider: the payloads'
//! exact text, the namespaced id, provider, source, receive time, trace context and identity.

use super::*;
use crate::config::VerificationConfig;
use crate::event::EntityKey;
use crate::verify::Verifier;
use crate::webhook::RawWebhook;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// `body` received on source `src` (a `none` source, so it verifies) and normalized.
fn normalize(kind: ProviderKind, body: &str, headers: &[(&str, &str)]) -> Normalized {
    let verifier = Verifier::from_config(&VerificationConfig::None, None);
    let raw = RawWebhook {
        body: body.as_bytes().to_vec(),
        ..RawWebhook::for_test("/webhooks/src", headers)
    };
    let webhook = raw.verify(&verifier).expect("a `none` source verifies");
    kind.normalize("src", &webhook).expect("a valid body")
}

#[test]
fn payloads_are_kept_as_sent_and_null_is_none() {
    // The exact text: a double would round the integer, and the spacing is the sender's.
    let gigs = r#"{"id":"evt_1","type":"com.gigs.sim.updated",
        "data":{"object":"sim","id":"sim_1","n":9007199254740993},"previousData":{ "n": 1 }}"#;
    let event = normalize(ProviderKind::Gigs, gigs, &[]).event;
    assert_eq!(
        event.data_json,
        r#"{"object":"sim","id":"sim_1","n":9007199254740993}"#
    );
    assert_eq!(event.previous_data_json, r#"{ "n": 1 }"#);
    let abowire = r#"{"event":"customer.created","payload":null,"previousPayload":null}"#;
    let event = normalize(ProviderKind::Abowire, abowire, &[]).event;
    assert_eq!(
        (event.data_json.as_str(), event.previous_data_json.as_str()),
        ("", "")
    );
    // Mobile Manager's payload is the whole body, without the whitespace around it.
    let order = r#"{"OrderId":"o1","State":1}"#;
    let event = normalize(ProviderKind::MobileManager, &format!(" {order}\n"), &[]).event;
    assert_eq!(event.data_json, order);
    assert_eq!(event.previous_data_json, "");
}

#[test]
fn the_envelope_says_where_and_when_it_came_from() {
    let order = r#"{"OrderId":"O1","State":1}"#;
    let Normalized { event, identity } = normalize(
        ProviderKind::MobileManager,
        order,
        &[("traceparent", TRACEPARENT)],
    );
    assert!(event.id.starts_with("src:mmo_"), "{}", event.id);
    assert_eq!(event.provider, Provider::MobileManager as i32);
    assert_eq!(event.source, "src");
    assert!(event.received_at.is_some());
    assert_eq!(event.traceparent, TRACEPARENT);
    // The entity is the order within this source: sources never share entities.
    let order_key = EntityKey::new("order").part_lowercase("O1").within("src");
    assert_eq!(identity, Identity::LatestState(order_key));
    // An id of its own is namespaced too, and a provider id stays a provider id.
    let gigs =
        r#"{"id":"evt_1","type":"com.gigs.sim.updated","data":{"object":"sim","id":"sim_1"}}"#;
    let Normalized { event, identity } = normalize(ProviderKind::Gigs, gigs, &[]);
    assert_eq!(event.id, "src:evt_1");
    assert_eq!(event.provider, Provider::Gigs as i32);
    assert_eq!(event.traceparent, "");
    assert_eq!(identity, Identity::ProviderId);
}

#[test]
fn providers_by_name_by_proto_and_their_default_schemes() {
    for kind in ProviderKind::ALL {
        assert_eq!(ProviderKind::from_name(kind.name()), Some(kind));
        assert_eq!(ProviderKind::from_proto(kind.proto() as i32), Some(kind));
    }
    assert_eq!(
        ProviderKind::from_name("mobile-manager"),
        Some(ProviderKind::MobileManager)
    );
    assert_eq!(ProviderKind::from_name("stripe"), None);
    assert_eq!(ProviderKind::from_proto(Provider::Unspecified as i32), None);
    assert_eq!(ProviderKind::from_proto(999), None);
    assert_eq!(ProviderKind::Gigs.default_scheme(), "standard_webhooks");
    assert_eq!(ProviderKind::Abowire.default_scheme(), "query_token");
    assert_eq!(ProviderKind::MobileManager.default_scheme(), "query_token");
}
