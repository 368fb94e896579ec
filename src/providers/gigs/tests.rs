//! Unit tests of the gigs normalizer, including its fixtures under `tests/fixtures/gigs/`.

use super::*;
use crate::providers::fields::testing::{
    assert_fixtures, context, event_types, parse, reference, reference_of,
};

fn run(body: &str) -> Result<Event, NormalizeError> {
    normalize(parse(body), &context()).map(|normalized| normalized.event)
}

fn with_data(provider_type: &str, data: &str) -> Result<Event, NormalizeError> {
    run(&format!(
        r#"{{"id":"evt_1","type":"{provider_type}","time":"2022-03-16T14:12:42Z","data":{data}}}"#
    ))
}

fn error(body: &str) -> String {
    run(body).unwrap_err().to_string()
}

const FIXTURES: &[(&str, &str)] = &[
    (
        "gigs/project.updated.json",
        include_str!("../../../tests/fixtures/gigs/project.updated.json"),
    ),
    (
        "gigs/sim.retired.json",
        include_str!("../../../tests/fixtures/gigs/sim.retired.json"),
    ),
    (
        "gigs/portOutCredentials.issued.json",
        include_str!("../../../tests/fixtures/gigs/portOutCredentials.issued.json"),
    ),
    (
        "gigs/subscription.activated.json",
        include_str!("../../../tests/fixtures/gigs/subscription.activated.json"),
    ),
    (
        "gigs/subscriptionChange.applied.json",
        include_str!("../../../tests/fixtures/gigs/subscriptionChange.applied.json"),
    ),
    (
        "gigs/usageThreshold.exceeded.json",
        include_str!("../../../tests/fixtures/gigs/usageThreshold.exceeded.json"),
    ),
    (
        "gigs/device.updated.json",
        include_str!("../../../tests/fixtures/gigs/device.updated.json"),
    ),
    (
        "gigs/porting.requested.json",
        include_str!("../../../tests/fixtures/gigs/porting.requested.json"),
    ),
    (
        "gigs/eSimProfile.disabled.json",
        include_str!("../../../tests/fixtures/gigs/eSimProfile.disabled.json"),
    ),
];

#[test]
fn every_fixture_matches_expected_json() {
    assert_fixtures("gigs", FIXTURES, run);
}

#[test]
fn every_documented_type_maps_to_its_canonical_type() {
    let table = event_types();
    let rows = table["gigs"].as_array().unwrap();
    assert_eq!(rows.len(), 42);
    for row in rows {
        let provider_type = row["event"].as_str().unwrap();
        let event = with_data(provider_type, &row["data"].to_string())
            .unwrap_or_else(|error| panic!("{provider_type}: {error}"));
        assert_eq!(
            event.r#type,
            row["type"].as_str().unwrap(),
            "{provider_type}"
        );
        assert_eq!(event.provider_event_type, provider_type);
        assert_eq!(
            event.subject,
            Some(reference_of(&row["subject"])),
            "{provider_type}"
        );
        let related: Vec<_> = row["related"]
            .as_array()
            .unwrap()
            .iter()
            .map(reference_of)
            .collect();
        assert_eq!(event.related, related, "{provider_type}");
    }
    // Not documented yet: a new, well-formed type still normalizes by the same rule.
    let event = with_data(
        "com.gigs.widgetGroup.member.reassignedTwice",
        r#"{"object":"thing","id":"thg_1"}"#,
    )
    .unwrap();
    assert_eq!(event.r#type, "widget_group_member.reassigned_twice");
}

#[test]
fn envelope_fields_fill_ids_times_and_detail() {
    let event = run(FIXTURES[1].1).unwrap();
    assert_eq!(event.id, "evt_0SNlurA049MEWV5gNTcQ5A07h3Ol");
    assert_eq!(event.provider_event_id, "evt_0SNlurA049MEWV5gNTcQ5A07h3Ol");
    assert_eq!(event.occurred_at.unwrap().seconds, 1_647_439_962);
    assert_eq!(event.previous_data, None);
    let Some(Detail::Gigs(detail)) = event.detail else {
        panic!("not a gigs detail")
    };
    assert_eq!(detail.event_source, "https://api.gigs.com");
    assert_eq!(detail.spec_version, "1.0");
    assert_eq!(detail.data_content_type, "application/json");
    assert_eq!(detail.project, "gigs");
    assert_eq!(detail.api_version, "2024-10-28");
    assert_eq!(detail.time, "2022-03-16T14:12:42Z");
    assert_eq!(detail.actor, None);
    let data = event.data.unwrap();
    assert_eq!(
        data.fields["iccid"].kind,
        Some(Kind::StringValue("89883070000007537119".into()))
    );

    // Fractional seconds, `actor` and `previousData`.
    let event = run(FIXTURES[4].1).unwrap();
    assert_eq!(
        run(FIXTURES[2].1).unwrap().occurred_at.unwrap().seconds,
        1_647_439_962
    );
    let Some(Detail::Gigs(detail)) = event.detail else {
        panic!("not a gigs detail")
    };
    assert!(detail.actor.unwrap().fields.contains_key("user"));
    let previous = run(FIXTURES[0].1).unwrap().previous_data.unwrap();
    assert_eq!(
        previous.fields["name"].kind,
        Some(Kind::StringValue("Gigs".into()))
    );
}

#[test]
fn bare_ids_and_id_lists_are_references_but_plain_values_are_not() {
    let event = with_data(
        "com.gigs.usageNotification.created",
        r#"{"object":"usageNotification","subscription":"sub_A1","subscriptionAddons":["sad_A","sad_B"],
           "status":"active","iccid":"89883070000007537119","provider":"p9","type":"thresholdExceeded",
           "owner":"usr_Q1","userAddress":"adr_Z9","project":"gigs","locales":["en-US"],
           "parent":{"object":"subscription","id":"sub_A1"},"note":"sub_ with space",
           "thresholdExceeded":{"subscriptionAddons":["sad_NESTED"]}}"#,
    )
    .unwrap();
    assert_eq!(event.subject, Some(reference("subscription", "sub_A1")));
    assert_eq!(
        event.related,
        vec![
            reference("user", "usr_Q1"),
            reference("project", "gigs"),
            reference("subscription_addon", "sad_A"),
            reference("subscription_addon", "sad_B"),
            reference("user_address", "adr_Z9"),
        ]
    );
}

#[test]
fn subjects_of_data_without_an_id() {
    let subject =
        |provider_type: &str, data: &str| with_data(provider_type, data).unwrap().subject.unwrap();
    assert_eq!(
        subject(
            "com.gigs.eSimProfile.enabled",
            r#"{"object":"eSimProfile","subscription":"sub_1","sim":{"object":"sim","id":"sim_1"}}"#
        ),
        reference("sim", "sim_1")
    );
    assert_eq!(
        subject(
            "com.gigs.usageThreshold.exceeded",
            r#"{"object":"usageThresholdExceeded","sim":"sim_1","subscription":"sub_1"}"#
        ),
        reference("subscription", "sub_1")
    );
    assert_eq!(
        subject(
            "com.gigs.installation.created",
            r#"{"object":"installation","application":"gigs-connect","settings":{}}"#
        ),
        reference("installation", "gigs-connect")
    );
    assert_eq!(
        subject(
            "com.gigs.widget.created",
            r#"{"object":"widgetThing","size":3}"#
        ),
        reference("widget", "")
    );
    // No `object`: the type's resource names the kind.
    assert_eq!(
        subject("com.gigs.sim.updated", r#"{"id":"sim_1"}"#),
        reference("sim", "sim_1")
    );
}

#[test]
fn unknown_fields_are_kept() {
    let event = run(
        r#"{"object":"event","id":"evt_1","type":"com.gigs.sim.updated","brandNew":{"x":1},
            "data":{"object":"sim","id":"sim_1","futureField":[1,2]}}"#,
    )
    .unwrap();
    assert!(event.data.unwrap().fields.contains_key("futureField"));
    // Unknown envelope fields are kept beside the known ones, `object` is not among them.
    let Some(Detail::Gigs(detail)) = event.detail else {
        panic!("not a gigs detail");
    };
    let extensions = detail.extensions.unwrap().fields;
    assert_eq!(extensions.keys().collect::<Vec<_>>(), ["brandNew"]);
    // No time: the receive time stands in.
    assert_eq!(
        event.occurred_at,
        Some(event::timestamp(context().received_at))
    );
}

#[test]
fn malformed_envelopes_name_the_field_and_the_reason() {
    let data = r#""data":{"object":"sim","id":"sim_1"}"#;
    for (body, message) in [
        (
            format!(r#"{{"type":"com.gigs.sim.updated",{data}}}"#),
            "field `id`: required",
        ),
        (
            format!(r#"{{"id":7,"type":"com.gigs.sim.updated",{data}}}"#),
            "field `id`: expected a string, found a number",
        ),
        (
            format!(r#"{{"id":"evt_1",{data}}}"#),
            "field `type`: required",
        ),
        (
            format!(r#"{{"id":"evt_1","type":"sim.updated",{data}}}"#),
            r#"field `type`: expected a type starting with "com.gigs.", found "sim.updated""#,
        ),
        (
            format!(r#"{{"id":"evt_1","type":"com.gigs.sim",{data}}}"#),
            r#"field `type`: expected "com.gigs.<resource>.<action>", found "com.gigs.sim""#,
        ),
        (
            r#"{"id":"evt_1","type":"com.gigs.sim.updated"}"#.to_owned(),
            "field `data`: required",
        ),
        (
            r#"{"id":"evt_1","type":"com.gigs.sim.updated","data":"sim_1"}"#.to_owned(),
            "field `data`: expected an object, found a string",
        ),
        (
            r#"{"id":"evt_1","type":"com.gigs.sim.updated","data":{"object":"sim","id":1}}"#
                .to_owned(),
            "field `data.id`: expected a string, found a number",
        ),
        (
            format!(r#"{{"id":"evt_1","type":"com.gigs.sim.updated","time":"soon",{data}}}"#),
            r#"field `time`: expected an rfc 3339 time, found "soon""#,
        ),
        (
            format!(r#"{{"id":"evt_1","type":"com.gigs.sim.updated","previousData":[],{data}}}"#),
            "field `previousData`: expected an object, found an array",
        ),
    ] {
        assert_eq!(error(&body), message, "{body}");
    }
}

#[test]
fn gigs_events_are_identified_by_their_provider_id() {
    let body = include_str!("../../../tests/fixtures/gigs/subscription.activated.json");
    let normalized = normalize(parse(body), &context()).unwrap();
    assert_eq!(normalized.identity, Identity::ProviderId);
    assert!(normalized.event.id.starts_with("evt_"));
}

#[test]
fn a_resource_referenced_twice_is_related_once() {
    let event = with_data(
        "com.gigs.thing.updated",
        r#"{"object":"thing","id":"thg_1","plan":"pln_1","planAgain":{"object":"plan","id":"pln_1"},
           "sim":"sim_1","sims":["sim_1","sim_2"]}"#,
    )
    .unwrap();
    assert_eq!(
        event.related,
        vec![
            reference("plan", "pln_1"),
            reference("sim", "sim_1"),
            reference("sim", "sim_2"),
        ]
    );
}

#[test]
fn the_data_s_own_id_is_its_subject_and_not_a_reference() {
    // `prt_` names a porting, the object says more: the subject is the object, and its own id
    // is not also a related porting.
    let event = with_data(
        "com.gigs.portingRequest.created",
        r#"{"object":"portingRequest","id":"prt_1","subscription":"sub_1"}"#,
    )
    .unwrap();
    assert_eq!(event.subject, Some(reference("porting_request", "prt_1")));
    assert_eq!(event.related, vec![reference("subscription", "sub_1")]);
}

#[test]
fn every_id_prefix_and_field_name_names_its_kind() {
    for (prefix, kind) in [
        ("sub", "subscription"),
        ("pln", "plan"),
        ("sim", "sim"),
        ("dev", "device"),
        ("usr", "user"),
        ("adr", "user_address"),
        ("prt", "porting"),
        ("sch", "subscription_change"),
        ("sad", "subscription_addon"),
        ("add", "addon"),
        ("ord", "order"),
        ("pay", "payment"),
        ("pm", "payment_method"),
        ("inv", "invoice"),
        ("crn", "credit_note"),
        ("vou", "voucher"),
        ("csn", "connect_session"),
        ("ubl", "usage_balance"),
        ("apk", "api_key"),
        ("mbr", "member"),
        ("svp", "service_provider"),
        ("org", "organization"),
    ] {
        let id = format!("{prefix}_0SNlurA049");
        assert_eq!(kind_of_id(&id), Some(kind), "{id}");
    }
    // Not ids: no `_` within the first four characters, nothing or more than base62 after it,
    // a prefix no kind has.
    for id in ["subscription_1", "sub_", "sub_a-b", "abc_123", "sub"] {
        assert_eq!(kind_of_id(id), None, "{id}");
    }
    for (key, kind) in [
        ("subscription", "subscription"),
        ("plan", "plan"),
        ("sim", "sim"),
        ("device", "device"),
        ("user", "user"),
        ("userAddress", "user_address"),
        ("user_address", "user_address"),
        ("porting", "porting"),
        ("subscriptionChange", "subscription_change"),
        ("subscription_change", "subscription_change"),
        ("subscriptionAddon", "subscription_addon"),
        ("subscription_addon", "subscription_addon"),
        ("addon", "addon"),
        ("order", "order"),
        ("payment", "payment"),
        ("paymentMethod", "payment_method"),
        ("payment_method", "payment_method"),
        ("invoice", "invoice"),
        ("creditNote", "credit_note"),
        ("credit_note", "credit_note"),
        ("voucher", "voucher"),
        ("connectSession", "connect_session"),
        ("connect_session", "connect_session"),
        ("usageBalance", "usage_balance"),
        ("usage_balance", "usage_balance"),
        ("apiKey", "api_key"),
        ("api_key", "api_key"),
        ("member", "member"),
        ("serviceProvider", "service_provider"),
        ("service_provider", "service_provider"),
        ("organization", "organization"),
        ("project", "project"),
        ("coverage", "coverage"),
    ] {
        assert_eq!(kind_of_field(key), Some(kind), "{key}");
    }
    assert_eq!(kind_of_field("status"), None);
}

#[test]
fn unprefixed_ids_are_references_only_under_a_kind_s_name() {
    let event = with_data(
        "com.gigs.thing.updated",
        r#"{"object":"thing","id":"thg_1","devices":["d1","d2"],"userAddresses":["a1"],
           "plans":"basic","user":"","plan":"Basic plan","sim":{"object":"","id":"sim_9"}}"#,
    )
    .unwrap();
    // A list names its kind in the plural (`-s` or `-es`); a single value in the singular. An
    // empty id or one with spaces is a plain value; an empty `object` says nothing.
    assert_eq!(
        event.related,
        vec![
            reference("device", "d1"),
            reference("device", "d2"),
            reference("sim", "sim_9"),
            reference("user_address", "a1"),
        ]
    );
}
