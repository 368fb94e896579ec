//! The console's pages as maud templates: the layout every page shares, the events list (its
//! rows are also what the live tail sends), the login form and the error page. maud escapes
//! every splice, so a provider's text is always shown as text.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::State;
use axum::http::Uri;
use chrono::SecondsFormat;
use maud::{DOCTYPE, Markup, html};

use super::query::{ListQuery, resource_href, resource_text};
use super::session::Viewer;
use super::{BASE_PATH, Console, ConsoleError};
use crate::error::Reason;
use crate::event::from_timestamp;
use crate::log::page;
use crate::proto::v1::{Event, ResourceRef};
use crate::providers::ProviderKind;

/// `GET /console`: the newest matching events a page at a time, through ListEvents' paging.
pub async fn list(
    State(console): State<Console>,
    Extension(Viewer(viewer)): Extension<Viewer>,
    uri: Uri,
) -> Result<Markup, ConsoleError> {
    let query = ListQuery::parse(uri.query())?;
    let mut filter = query.filter()?;
    viewer.restrict(&mut filter)?;
    // Asked before the page is read, so the live tail misses nothing stored in between; the
    // page may show some of what it then sends, which the script skips by sequence.
    let head = console.log.head().await?;
    let page = page::list_page(
        console.log.as_ref(),
        &filter,
        0,
        &query.page,
        console.max_event_bytes,
    )
    .await?;
    let sequences: Vec<u64> = page.events.iter().map(|event| event.sequence).collect();
    let duplicates = console.log.duplicate_counts(&sequences).await?;
    let sources: Vec<&(String, ProviderKind)> = console
        .sources
        .iter()
        .filter(|(name, _)| viewer.may_use(name))
        .collect();
    let title = match &query.resource {
        Some(resource) => format!("activity of {}", resource_text(resource)),
        None => "events".to_owned(),
    };
    let live_href = query.href(
        &format!("{BASE_PATH}/live"),
        &[("after", &head.to_string())],
    );
    let body = html! {
        (filter_form(&query, &sources))
        @if let Some(resource) = &query.resource {
            p.resource-heading {
                "Every event whose subject or related refs name "
                code { (resource.kind) " " (resource.id) } ". "
                a href=(query_without_resource(&query)) { "Clear" }
            }
        }
        @if query.page.is_empty() {
            div.live {
                label {
                    input #live-toggle type="checkbox" data-href=(live_href);
                    " Live tail"
                }
                span #live-status role="status" aria-live="polite" {}
            }
        }
        table #events {
            caption.visually-hidden { "Events, newest first" }
            thead {
                tr {
                    th scope="col" { "Seq" }
                    th scope="col" { "Received" }
                    th.wide scope="col" { "Occurred" }
                    th scope="col" { "Provider" }
                    th.wide scope="col" { "Source" }
                    th scope="col" { "Type" }
                    th scope="col" { "Subject" }
                    th.wide scope="col" title="deliveries recognized as redeliveries of the event" {
                        "Redelivered"
                    }
                }
            }
            tbody {
                @for event in &page.events {
                    (row(event, redeliveries(duplicates.as_ref(), event.sequence)))
                }
            }
        }
        @if page.events.is_empty() {
            p #empty { "No events match." }
        }
        nav.pager aria-label="pages" {
            @if !query.page.is_empty() {
                a href=(query.href(BASE_PATH, &[])) { "← Newest" }
            }
            @if !page.next_page_token.is_empty() {
                a #older href=(query.href(BASE_PATH, &[("page", &page.next_page_token)])) {
                    "Older →"
                }
            }
        }
    };
    Ok(layout(&title, console.key_name(&viewer), body))
}

/// How many redeliveries of the event at `sequence` the log counted; `None` where it does not
/// count them.
pub fn redeliveries(counts: Option<&HashMap<u64, u64>>, sequence: u64) -> Option<u64> {
    counts.map(|counts| counts.get(&sequence).copied().unwrap_or(0))
}

/// A redelivery count, or a dash where the log does not count them.
pub fn redelivered(count: Option<u64>) -> Markup {
    match count {
        Some(0) => html! { span.none { "0" } },
        Some(count) => html! { strong { (count) } },
        None => html! { span.none title="this event log does not count redeliveries" { "—" } },
    }
}

/// One event as a row of the list (`duplicates`: its redeliveries, where counted); the live
/// tail sends exactly this.
pub fn row(event: &Event, duplicates: Option<u64>) -> Markup {
    let href = event_href(&event.id);
    html! {
        tr data-sequence=(event.sequence) {
            td { a href=(href) aria-label={ "event " (event.sequence) } { (event.sequence) } }
            td { (time(event.received_at.as_ref())) }
            td.wide { (time(event.occurred_at.as_ref())) }
            td { (provider_name(event.provider)) }
            td.wide { (event.source) }
            td { a href=(href) { code { (event.r#type) } } }
            td {
                @if let Some(subject) = &event.subject {
                    (resource_link(subject))
                }
            }
            td.wide { (redelivered(duplicates)) }
        }
    }
}

/// A link to every event about `resource`.
pub fn resource_link(resource: &ResourceRef) -> Markup {
    html! {
        a.resource href=(resource_href(resource)) title="every event about this resource" {
            span.kind { (resource.kind) } " " code { (resource.id) }
        }
    }
}

/// The detail page of the event with this id.
pub fn event_href(id: &str) -> String {
    let mut href = format!("{BASE_PATH}/events/");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            href.push(char::from(byte));
        } else {
            href.push_str(&format!("%{byte:02X}"));
        }
    }
    href
}

/// A timestamp as UTC to the millisecond, or a dash.
pub fn time(timestamp: Option<&prost_types::Timestamp>) -> Markup {
    match timestamp.and_then(from_timestamp) {
        Some(time) => {
            let text = time.to_rfc3339_opts(SecondsFormat::Millis, true);
            html! { time datetime=(text) { (text.replacen('T', " ", 1)) } }
        }
        None => html! { "—" },
    }
}

pub fn provider_name(provider: i32) -> &'static str {
    ProviderKind::from_proto(provider).map_or("unknown", ProviderKind::name)
}

fn query_without_resource(query: &ListQuery) -> String {
    ListQuery {
        resource: None,
        page: String::new(),
        ..query.clone()
    }
    .href(BASE_PATH, &[])
}

fn filter_form(query: &ListQuery, sources: &[&(String, ProviderKind)]) -> Markup {
    let provider = query.providers.first().copied();
    let source = query.sources.first().map(String::as_str);
    html! {
        form.filters method="get" action=(BASE_PATH) role="search" {
            label {
                "Provider "
                select name="provider" {
                    option value="" { "any" }
                    @for kind in ProviderKind::ALL {
                        option value=(kind.name()) selected[provider == Some(kind)] {
                            (kind.name())
                        }
                    }
                }
            }
            label {
                "Source "
                select name="source" {
                    option value="" { "any" }
                    @for (name, _) in sources {
                        option value=(name) selected[source == Some(name.as_str())] { (name) }
                    }
                }
            }
            label {
                "Type "
                input #type-filter name="type" type="text" placeholder="sim.* or sim.retired"
                    value=(query.types.first().map(String::as_str).unwrap_or_default())
                    autocomplete="off" spellcheck="false";
            }
            label {
                "Resource "
                input name="resource" type="text" placeholder="kind:id"
                    value=(query.resource.as_ref().map(resource_text).unwrap_or_default())
                    autocomplete="off" spellcheck="false";
            }
            button type="submit" { "Filter" }
            @if query.is_filtered() {
                a.clear href=(BASE_PATH) { "Clear" }
            }
        }
    }
}

/// The frame of every page: header with the key's name and logout, then `body`.
pub fn layout(title: &str, key_name: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · hooknorm" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href=(BASE_PATH) { "hooknorm" }
                    span.title { (title) }
                    @if let Some(name) = key_name {
                        form.logout method="post" action="/console/logout" {
                            span.key title="the api key this page is read with" { "key " code { (name) } }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// The login form; `next` is where to go once the key is accepted.
pub fn login_page(next: &str, message: Option<&str>) -> Markup {
    let body = html! {
        form.login method="post" action="/console/login" {
            h1 { "Events console" }
            p { "Enter an API key with the " code { "read" } " scope. It is kept in a cookie \
                 only this console reads, for 12 hours or until you log out." }
            @if let Some(message) = message {
                p.error role="alert" { (message) }
            }
            input type="hidden" name="next" value=(next);
            label {
                "API key "
                input #key name="key" type="password" autocomplete="current-password"
                    required autofocus;
            }
            button type="submit" { "Open the console" }
        }
    };
    layout("log in", None, body)
}

/// A refusal or failure, with its reason code as gRPC and HTTP clients see it.
pub fn error_page(reason: Reason, message: &str) -> Markup {
    let body = html! {
        div.refusal role="alert" {
            h1 { (reason.spec().http) " " code { (reason.as_str()) } }
            p { (message) }
            p { a href=(BASE_PATH) { "Back to the events" } }
        }
    };
    layout(&reason.as_str().to_lowercase(), None, body)
}
