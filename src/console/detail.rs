//! One event's page (`/console/events/{id}`, GetEvent with the full view): the canonical
//! fields, `data` pretty-printed from the exact payload text, what an update changed
//! (`previous_data` against `data`), the provider's envelope detail, the webhook as received
//! (its body and the headers the log kept, which never include a secret or the query), the
//! CloudEvent, and a command that re-sends the body to a development server.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, State};
use maud::{Markup, html};
use serde_json::value::RawValue;

use super::pages::{layout, provider_name, redelivered, redeliveries, resource_link, time};
use super::session::Viewer;
use super::{BASE_PATH, Console, ConsoleError};
use crate::cli::output::to_json;
use crate::json::text::{compact, pretty};
use crate::log::View;
use crate::proto::v1::event::Detail;
use crate::proto::v1::{Event, WebhookDelivery};

/// `GET /console/events/{id}`. Another source's event is answered as missing, as GetEvent
/// answers it: its existence is not the viewer's to know.
pub async fn detail(
    State(console): State<Console>,
    Extension(Viewer(viewer)): Extension<Viewer>,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let event = console
        .log
        .get(&id, View::Full)
        .await?
        .filter(|event| viewer.may_use(&event.source))
        .ok_or_else(|| ConsoleError::NotFound {
            id: id.chars().take(200).collect(),
        })?;
    let counts = console.log.duplicate_counts(&[event.sequence]).await?;
    let duplicates = redeliveries(counts.as_ref(), event.sequence);
    Ok(layout(
        &event.r#type,
        console.key_name(&viewer),
        page(&event, duplicates),
    ))
}

fn page(event: &Event, duplicates: Option<u64>) -> Markup {
    let changes = (!event.previous_data_json.is_empty())
        .then(|| changes(&event.previous_data_json, &event.data_json));
    html! {
        nav.back { a href=(BASE_PATH) { "← All events" } }
        h1 { code { (event.r#type) } }
        section aria-labelledby="fields" {
            h2 #fields { "Event" }
            dl.fields {
                dt { "ID" } dd { code { (event.id) } }
                dt { "Sequence" } dd { (event.sequence) }
                dt { "Provider" } dd { (provider_name(event.provider)) }
                dt { "Source" } dd { (event.source) }
                dt { "Provider type" } dd { code { (event.provider_event_type) } }
                @if !event.provider_event_id.is_empty() {
                    dt { "Provider ID" } dd { code { (event.provider_event_id) } }
                }
                dt { "Subject" }
                dd {
                    @match &event.subject {
                        Some(subject) => { (resource_link(subject)) }
                        None => { "—" }
                    }
                }
                @if !event.related.is_empty() {
                    dt { "Related" }
                    dd {
                        ul.related {
                            @for related in &event.related { li { (resource_link(related)) } }
                        }
                    }
                }
                dt { "Occurred" } dd { (time(event.occurred_at.as_ref())) }
                dt { "Received" } dd { (time(event.received_at.as_ref())) }
                dt { "Redelivered" } dd { (redelivered(duplicates)) }
                @if !event.traceparent.is_empty() {
                    dt { "Trace" } dd { code { (event.traceparent) } }
                }
            }
        }
        @if let Some(changes) = changes {
            section aria-labelledby="changes" {
                h2 #changes { "Changes" }
                p.hint { "What the provider says changed: each field of " code { "previous_data" }
                    " beside its value in " code { "data" } "." }
                (changes_table(&changes))
            }
        }
        section aria-labelledby="data" {
            h2 #data { "Data" }
            pre.json #data-json { (data_text(event)) }
        }
        @if let Some(detail) = provider_detail(event) {
            section aria-labelledby="detail" {
                h2 #detail { "Provider detail" }
                pre.json { (detail) }
            }
        }
        @match &event.delivery {
            Some(delivery) => { (delivery_section(event, delivery)) }
            None => {
                section aria-labelledby="delivery" {
                    h2 #delivery { "Delivery" }
                    p.hint { "The webhook as received was not kept for this event." }
                }
            }
        }
        section aria-labelledby="cloudevent" {
            h2 #cloudevent { "CloudEvent" }
            @match crate::cloudevents::to_json(event) {
                Ok(json) => { pre.json { (pretty(&json)) } }
                Err(error) => { p.error { (error) } }
            }
        }
    }
}

/// `data` from its exact text; from the `Struct` for events stored before it existed.
fn data_text(event: &Event) -> String {
    if !event.data_json.is_empty() {
        return pretty(&event.data_json);
    }
    match &event.data {
        Some(data) => {
            let value = crate::cloudevents::struct_to_json(data);
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        None => "null".to_owned(),
    }
}

/// The provider's envelope detail as proto3 JSON, as `hooknorm events` prints it.
fn provider_detail(event: &Event) -> Option<String> {
    let rendered = match event.detail.as_ref()? {
        Detail::Gigs(detail) => to_json("hooknorm.v1.GigsDetail", detail, true),
        Detail::Abowire(detail) => to_json("hooknorm.v1.AbowireDetail", detail, true),
        Detail::MobileManagerOrder(detail) => {
            to_json("hooknorm.v1.MobileManagerOrderDetail", detail, true)
        }
        Detail::MobileManagerAlert(detail) => {
            to_json("hooknorm.v1.MobileManagerAlertDetail", detail, true)
        }
    };
    Some(rendered.unwrap_or_else(|error| error.to_string()))
}

fn delivery_section(event: &Event, delivery: &WebhookDelivery) -> Markup {
    let command = resend_command(&event.source, &delivery.body);
    html! {
        section aria-labelledby="delivery" {
            h2 #delivery { "Delivery" }
            p.hint {
                "As received on " code { "POST " (delivery.request_path) }
                @if !delivery.remote_addr.is_empty() { " from " code { (delivery.remote_addr) } }
                ". The log keeps no secret, token or query string."
            }
            h3 { "Headers" }
            table.headers {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
                tbody {
                    @for header in &delivery.headers {
                        tr { td { code { (header.name) } } td { code { (header.value) } } }
                    }
                }
            }
            h3 { "Body" }
            pre.json #raw-body { (String::from_utf8_lossy(&delivery.body)) }
            h3 #resend-title { "Re-send to a development server" }
            p.hint { "Signs the body with the secrets of source " code { (event.source) }
                " in ./hooknorm.toml (or $HOOKNORM_CONFIG) and posts it to that server's ingress." }
            div.copy {
                pre #resend aria-labelledby="resend-title" { (command) }
                button type="button" data-copy="resend" { "Copy" }
            }
        }
    }
}

/// One changed field: its path in the payload, its previous and current JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub before: String,
    /// `None` where `data` no longer has the field.
    pub after: Option<String>,
}

/// Every leaf of `previous` (the provider's previous values of what changed) beside the value at
/// the same path in `data`. Objects on both sides are walked into, anything else is compared
/// as a whole; values are the exact text as sent, compacted.
pub fn changes(previous: &str, data: &str) -> Vec<Change> {
    let mut out = Vec::new();
    walk(previous, Some(data), "", &mut out);
    out
}

fn walk(previous: &str, data: Option<&str>, path: &str, out: &mut Vec<Change>) {
    let previous_fields = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(previous);
    let data_fields = data.map(serde_json::from_str::<BTreeMap<String, Box<RawValue>>>);
    match (previous_fields, data_fields) {
        (Ok(previous_fields), Some(Ok(data_fields))) if !previous_fields.is_empty() => {
            for (name, value) in &previous_fields {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                walk(
                    value.get(),
                    data_fields.get(name).map(|value| value.get()),
                    &child,
                    out,
                );
            }
        }
        _ => out.push(Change {
            path: if path.is_empty() {
                "(whole)".to_owned()
            } else {
                path.to_owned()
            },
            before: compact(previous),
            after: data.map(compact),
        }),
    }
}

fn changes_table(changes: &[Change]) -> Markup {
    html! {
        table.diff {
            thead {
                tr { th scope="col" { "Field" } th scope="col" { "Before" } th scope="col" { "After" } }
            }
            tbody {
                @for change in changes {
                    @let same = change.after.as_deref() == Some(change.before.as_str());
                    tr.unchanged[same] {
                        th scope="row" { code { (change.path) } }
                        td.before { del { code { (change.before) } } }
                        td.after {
                            @match &change.after {
                                Some(after) => { ins { code { (after) } } }
                                None => { em { "(absent)" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A shell command that posts `body` to a development server's ingress as `source`'s provider
/// would (`hooknorm send --http` signs it with that config's secrets). The body is quoted for
/// POSIX shells byte for byte; one that is not UTF-8 text travels as base64.
pub fn resend_command(source: &str, body: &[u8]) -> String {
    let send = format!(
        "hooknorm send --source {} --http --file /dev/stdin",
        shell_quote(source)
    );
    match std::str::from_utf8(body) {
        Ok(text) if !text.contains('\0') => format!("printf '%s' {} | {send}", shell_quote(text)),
        _ => {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(body);
            format!("printf '%s' '{encoded}' | base64 -d | {send}")
        }
    }
}

/// `text` in single quotes, each `'` written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_pair_each_previous_leaf_with_its_current_value() {
        let previous =
            r#"{"name": "iPhone", "address": {"city": "Bonn", "zip": "53111"}, "gone": 1}"#;
        let data = r#"{"name":"Anna's iPhone","address":{"city":"Berlin","zip":"53111"},"n":9007199254740993}"#;
        assert_eq!(
            changes(previous, data),
            [
                Change {
                    path: "address.city".into(),
                    before: r#""Bonn""#.into(),
                    after: Some(r#""Berlin""#.into())
                },
                Change {
                    path: "address.zip".into(),
                    before: r#""53111""#.into(),
                    after: Some(r#""53111""#.into())
                },
                Change {
                    path: "gone".into(),
                    before: "1".into(),
                    after: None
                },
                Change {
                    path: "name".into(),
                    before: r#""iPhone""#.into(),
                    after: Some(r#""Anna's iPhone""#.into())
                },
            ]
        );
    }

    #[test]
    fn a_previous_value_that_is_not_an_object_is_compared_whole() {
        let found = changes("[1, 2]", "[1,3]");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "(whole)");
        assert_eq!(found[0].before, "[1,2]");
        assert_eq!(found[0].after.as_deref(), Some("[1,3]"));
    }

    #[test]
    fn the_resend_command_quotes_the_body_exactly() {
        let command = resend_command("gigs", br#"{"name":"Anna's"}"#);
        assert_eq!(
            command,
            r#"printf '%s' '{"name":"Anna'\''s"}' | hooknorm send --source 'gigs' --http --file /dev/stdin"#
        );
        let binary = resend_command("mm", &[0xff, 0x00]);
        assert!(binary.starts_with("printf '%s' '/wA=' | base64 -d | hooknorm send"));
    }

    #[test]
    fn the_resend_command_round_trips_through_a_shell() {
        let body = "{\"a\":\"it's $HOME `x` \\\\ \\n\"}\n";
        let command = resend_command("gigs", body.as_bytes());
        let (printf, _) = command.split_once(" | hooknorm").unwrap();
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(printf)
            .output();
        if let Ok(output) = output {
            assert_eq!(String::from_utf8_lossy(&output.stdout), body);
        }
    }
}
