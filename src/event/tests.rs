//! Unit tests of the canonical event rules.

use super::*;
use prost_types::{ListValue, Struct};

fn utc(text: &str) -> DateTime<Utc> {
    parse_rfc3339(text).unwrap()
}

#[test]
fn snake_case_handles_camel_pascal_acronyms_and_separators() {
    for (input, expected) in [
        ("subscriptionChange", "subscription_change"),
        ("usageThreshold", "usage_threshold"),
        ("disputeLost", "dispute_lost"),
        ("thresholdReached", "threshold_reached"),
        ("eSimProfile", "e_sim_profile"),
        ("portOutCredentials", "port_out_credentials"),
        ("PoolRegrade", "pool_regrade"),
        ("APNChangeRequest", "apn_change_request"),
        ("APNId", "apn_id"),
        ("CPE", "cpe"),
        ("SIM", "sim"),
        ("UnBar", "un_bar"),
        ("bulk-enable", "bulk_enable"),
        ("api-key", "api_key"),
        ("SIM.%USED", "sim_used"),
        ("Greater Than", "greater_than"),
        ("already_snake", "already_snake"),
        ("__x__y__", "x_y"),
        ("e164Number", "e164_number"),
        ("", ""),
        ("--", ""),
    ] {
        assert_eq!(snake_case(input), expected, "{input}");
    }
}

/// Found by the property tests (providers/properties.rs): a non-ASCII letter in a provider's type
/// name (`com.gigs.sim.réactivated`) made a canonical type outside `[a-z0-9_]`, which no
/// subscriber's filter is written in. Such letters now separate words, as punctuation does.
#[test]
fn snake_case_keeps_only_ascii_letters_and_digits() {
    for (input, expected) in [
        ("réactivated", "r_activated"),
        ("Ärger", "rger"),
        ("SIMé", "sim"),
        ("ÉTAT", "tat"),
        ("数据", ""),
        ("a\u{200b}b", "a_b"),
        ("x٣y", "x_y"),
        ("ǅx", "x"),
    ] {
        assert_eq!(snake_case(input), expected, "{input}");
        assert!(
            expected.is_empty() || is_canonical_type(&format!("{expected}.x")),
            "{input}"
        );
    }
    assert_eq!(
        dotted_type("sim.réactivated").as_deref(),
        Some("sim.r_activated")
    );
    assert_eq!(dotted_type("数据.created"), None);
}

#[test]
fn canonical_types_are_two_ascii_words() {
    for valid in [
        "sim.retired",
        "api_key.revoked",
        "order.state_7",
        "a.b",
        "_._",
    ] {
        assert!(is_canonical_type(valid), "{valid}");
    }
    for invalid in [
        "",
        "sim",
        "sim.",
        ".retired",
        "a.b.c",
        "Sim.retired",
        "sim.ré",
        "a b.c",
    ] {
        assert!(!is_canonical_type(invalid), "{invalid}");
    }
}

#[test]
fn dotted_type_joins_resource_segments() {
    assert_eq!(
        dotted_type("user.address.created").as_deref(),
        Some("user_address.created")
    );
    assert_eq!(
        dotted_type("customer.created").as_deref(),
        Some("customer.created")
    );
    assert_eq!(
        dotted_type("usageBalance.thresholdReached").as_deref(),
        Some("usage_balance.threshold_reached")
    );
    assert_eq!(dotted_type("created"), None);
    assert_eq!(dotted_type("customer."), None);
    assert_eq!(dotted_type(".created"), None);
    assert_eq!(dotted_type("a..b"), None);
}

#[test]
fn past_tense_maps_known_verbs_and_passes_others_through() {
    for (verb, past) in [
        ("create", "created"),
        ("update", "updated"),
        ("revoke", "revoked"),
        ("enable", "enabled"),
        ("disable", "disabled"),
        ("bulk-enable", "bulk_enabled"),
        ("bulk-disable", "bulk_disabled"),
        ("accepted", "accepted"),
        ("declined", "declined"),
        ("Create", "created"),
        ("archive", "archive"),
        ("re-send", "re_send"),
    ] {
        assert_eq!(past_tense(verb), past, "{verb}");
    }
}

fn object(pairs: &[(&str, Kind)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(key, kind)| {
            (
                (*key).to_owned(),
                Value {
                    kind: Some(kind.clone()),
                },
            )
        })
        .collect()
}

#[test]
fn fingerprint_is_stable_and_content_sensitive() {
    let a = object(&[
        ("b", Kind::NumberValue(7.0)),
        ("a", Kind::StringValue("x\"\n".into())),
        (
            "c",
            Kind::ListValue(ListValue {
                values: vec![Value {
                    kind: Some(Kind::BoolValue(true)),
                }],
            }),
        ),
        ("d", Kind::StructValue(Struct::default())),
        ("e", Kind::NullValue(0)),
    ]);
    let first = Fingerprint::new().object(&a).finish("abw_");
    assert_eq!(first, Fingerprint::new().object(&a.clone()).finish("abw_"));
    assert!(first.starts_with("abw_"));
    assert_eq!(first.len(), 4 + 32);
    assert!(first[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    let mut b = a.clone();
    b.insert(
        "b".into(),
        Value {
            kind: Some(Kind::NumberValue(8.0)),
        },
    );
    assert_ne!(first, Fingerprint::new().object(&b).finish("abw_"));
    assert_ne!(
        Fingerprint::new().text("ab").text("c").finish(""),
        Fingerprint::new().text("a").text("bc").finish("")
    );
    assert_eq!(
        Fingerprint::new()
            .text_lowercase(&"AbC-".repeat(500))
            .finish(""),
        Fingerprint::new().text(&"abc-".repeat(500)).finish("")
    );
    assert_eq!(
        Fingerprint::new().number(7.0).number(-0.0).finish(""),
        Fingerprint::new().number(7.0).number(0.0).finish("")
    );
    // A number and a string of its digits are different content.
    assert_ne!(
        Fingerprint::new().number(7.0).finish(""),
        Fingerprint::new().text("7").finish("")
    );
}

#[test]
fn numbers_are_written_as_in_json() {
    for (number, text) in [(7.0, "7"), (-2.5, "-2.5"), (0.1, "0.1"), (1e300, "1e300")] {
        let mut out = String::new();
        write_number(&mut out, number);
        // Rust prints large floats in full; accept either form for 1e300.
        if number == 1e300 {
            assert_eq!(out.parse::<f64>().unwrap(), number);
        } else {
            assert_eq!(out, text);
        }
    }
}

#[test]
fn rfc3339_with_and_without_fraction_and_offsets() {
    let whole = utc("2022-03-16T14:12:42Z");
    assert_eq!(whole.timestamp(), 1_647_439_962);
    assert_eq!(parse_rfc3339("2022-03-16T14:12:42.0Z"), Some(whole));
    assert_eq!(parse_rfc3339("2022-03-16T15:12:42+01:00"), Some(whole));
    assert_eq!(
        parse_rfc3339("2022-03-16T14:12:42.250Z").map(|t| t.timestamp_subsec_millis()),
        Some(250)
    );
    assert_eq!(parse_rfc3339("2022-03-16"), None);
    assert_eq!(parse_rfc3339("yesterday"), None);
}

#[test]
fn epoch_seconds_and_millis_are_told_apart_by_magnitude() {
    let whole = utc("2023-11-14T22:13:20Z");
    assert_eq!(from_epoch(1_700_000_000.0), Some(whole));
    assert_eq!(from_epoch(1_700_000_000_000.0), Some(whole));
    assert_eq!(
        from_epoch(1_700_000_000_250.0).map(|t| t.timestamp_subsec_millis()),
        Some(250)
    );
    assert_eq!(
        from_epoch(1_700_000_000.5).map(|t| t.timestamp_subsec_millis()),
        Some(500)
    );
    // Whole milliseconds stay whole: no stray nanoseconds from an inexact division.
    assert_eq!(
        from_epoch(1_741_083_330_512.0).map(|t| t.timestamp_subsec_nanos()),
        Some(512_000_000)
    );
    assert_eq!(
        from_epoch(-1_500.0 * 1e9).map(|t| (t.timestamp(), t.timestamp_subsec_nanos())),
        Some((-1_500_000_000, 0))
    );
    assert_eq!(from_epoch(f64::NAN), None);
    assert_eq!(from_epoch(1e300), None);
    assert_eq!(from_epoch(-1e300), None);
    assert_eq!(parse_time_text("1700000000"), Some(whole));
    assert_eq!(parse_time_text(" 1700000000000 "), Some(whole));
    assert_eq!(parse_time_text("2023-11-14T22:13:20.000Z"), Some(whole));
    assert_eq!(parse_time_text("1e9"), None);
    assert_eq!(parse_time_text(""), None);
}

#[test]
fn timestamps_round_trip() {
    let time = utc("2022-03-16T14:12:42.123456789Z");
    assert_eq!(from_timestamp(&timestamp(time)), Some(time));
}
