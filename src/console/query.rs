//! The events list's filters as they live in the URL (`/console?provider=gigs&type=sim.*`), so
//! a view can be bookmarked and shared: parsed into the log's [`EventFilter`] with its own
//! rules ([`EventFilter::new`], [`TypePattern`](crate::log::TypePattern)), and written back
//! into links (the next page, a resource's activity, the live tail).
//!
//! Parameters, each repeatable and empty ones ignored (as an unfilled form field sends them):
//! `provider` (`gigs`, `abowire`, `mobile_manager`), `source`, `type` (exact or `prefix.*`),
//! `resource` (`kind:id`, matching the subject or a related ref), `page` (a ListEvents page
//! token) and, for the live tail, `after` (the last sequence shown).

use crate::log::EventFilter;
use crate::log::filter::FilterError;
use crate::proto::v1::ResourceRef;
use crate::providers::ProviderKind;

/// Why the URL's filters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown provider `{0}` (expected gigs, abowire or mobile_manager)")]
    Provider(String),
    #[error("resource must be `kind:id`, got `{0}`")]
    Resource(String),
    #[error("after must be a sequence number, got `{0}`")]
    After(String),
    #[error("filter `{}`: {}", .0.field(), .0)]
    Filter(#[from] FilterError),
}

/// The list's filters and position, as the URL says them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub providers: Vec<ProviderKind>,
    pub sources: Vec<String>,
    pub types: Vec<String>,
    pub resource: Option<ResourceRef>,
    /// The ListEvents page token; empty for the newest page.
    pub page: String,
    /// The live tail's cursor.
    pub after: Option<u64>,
}

/// Longest text kept of a value echoed in an error.
const ECHO_CHARS: usize = 64;

impl ListQuery {
    /// Parses a URL's query string (without the `?`).
    pub fn parse(query: Option<&str>) -> Result<ListQuery, QueryError> {
        let mut parsed = ListQuery::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let echo = || value.chars().take(ECHO_CHARS).collect::<String>();
            match name.as_ref() {
                "provider" => parsed.providers.push(
                    ProviderKind::from_name(value).ok_or_else(|| QueryError::Provider(echo()))?,
                ),
                "source" => parsed.sources.push(value.to_owned()),
                "type" => parsed.types.push(value.to_owned()),
                "resource" => {
                    parsed.resource =
                        Some(parse_resource(value).ok_or_else(|| QueryError::Resource(echo()))?);
                }
                "page" => parsed.page = value.to_owned(),
                "after" => {
                    parsed.after = Some(value.parse().map_err(|_| QueryError::After(echo()))?);
                }
                _ => {}
            }
        }
        // Checked now, so a bad pattern is a 400 on the page that carries it.
        parsed.filter()?;
        Ok(parsed)
    }

    /// The log's filter for these parameters (not yet narrowed to a key's sources).
    pub fn filter(&self) -> Result<EventFilter, QueryError> {
        let filter = EventFilter::new(
            self.providers
                .iter()
                .map(|kind| kind.proto() as i32)
                .collect(),
            self.sources.clone(),
            &self.types,
            self.resource.clone(),
        )?;
        Ok(filter)
    }

    /// The query string for these filters (no page, no cursor), `&`-joined and encoded.
    pub fn filters_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for kind in &self.providers {
            query.append_pair("provider", kind.name());
        }
        for source in &self.sources {
            query.append_pair("source", source);
        }
        for pattern in &self.types {
            query.append_pair("type", pattern);
        }
        if let Some(resource) = &self.resource {
            query.append_pair("resource", &resource_text(resource));
        }
        query.finish()
    }

    /// `base` with these filters and the extra pairs.
    pub fn href(&self, base: &str, extra: &[(&str, &str)]) -> String {
        let mut query = self.filters_query();
        let mut serializer = form_urlencoded::Serializer::for_suffix(&mut query, 0);
        for (name, value) in extra {
            serializer.append_pair(name, value);
        }
        serializer.finish();
        if query.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{query}")
        }
    }

    /// Whether any filter is set.
    pub fn is_filtered(&self) -> bool {
        !self.providers.is_empty()
            || !self.sources.is_empty()
            || !self.types.is_empty()
            || self.resource.is_some()
    }
}

/// `kind:id`; the kind has no colon, the id may.
pub fn parse_resource(text: &str) -> Option<ResourceRef> {
    let (kind, id) = text.split_once(':')?;
    (!kind.is_empty() && !id.is_empty()).then(|| ResourceRef {
        kind: kind.to_owned(),
        id: id.to_owned(),
    })
}

/// A resource as the `resource` parameter writes it.
pub fn resource_text(resource: &ResourceRef) -> String {
    format!("{}:{}", resource.kind, resource.id)
}

/// The list of every event about `resource` (subject or related).
pub fn resource_href(resource: &ResourceRef) -> String {
    ListQuery {
        resource: Some(resource.clone()),
        ..ListQuery::default()
    }
    .href(super::BASE_PATH, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::TypePattern;

    #[test]
    fn filters_parse_from_the_url() {
        let query = ListQuery::parse(Some(
            "provider=gigs&provider=mobile-manager&source=gigs&type=subscription.*&type=&\
             resource=sim%3Asim_1%3Ax&page=abc&after=7&other=1",
        ))
        .unwrap();
        assert_eq!(
            query.providers,
            [ProviderKind::Gigs, ProviderKind::MobileManager]
        );
        assert_eq!(query.sources, ["gigs"]);
        assert_eq!(query.types, ["subscription.*"]);
        assert_eq!(query.page, "abc");
        assert_eq!(query.after, Some(7));
        let filter = query.filter().unwrap();
        assert_eq!(filter.providers, [1, 3]);
        assert_eq!(
            filter.types,
            [TypePattern::Prefix("subscription.".to_owned())]
        );
        let resource = filter.resource.unwrap();
        assert_eq!(
            (resource.kind.as_str(), resource.id.as_str()),
            ("sim", "sim_1:x")
        );
    }

    #[test]
    fn an_empty_query_is_every_event() {
        let query = ListQuery::parse(None).unwrap();
        assert_eq!(query, ListQuery::default());
        assert!(!query.is_filtered());
        assert_eq!(query.filter().unwrap(), EventFilter::default());
        assert_eq!(query.href("/console", &[]), "/console");
    }

    #[test]
    fn bad_filters_are_refused_with_what_was_wrong() {
        let error = |query: &str| ListQuery::parse(Some(query)).unwrap_err().to_string();
        assert_eq!(
            error("provider=svix"),
            "unknown provider `svix` (expected gigs, abowire or mobile_manager)"
        );
        assert_eq!(
            error("resource=sim"),
            "resource must be `kind:id`, got `sim`"
        );
        assert_eq!(
            error("resource=%3Asim"),
            "resource must be `kind:id`, got `:sim`"
        );
        assert!(error("type=ord*").starts_with("filter `types`: "));
        assert_eq!(error("after=x"), "after must be a sequence number, got `x`");
    }

    #[test]
    fn links_carry_the_filters_back() {
        let query = ListQuery::parse(Some(
            "provider=abowire&type=customer.*&resource=customer%3Acus%201&page=p",
        ))
        .unwrap();
        let href = query.href("/console", &[("page", "n&x")]);
        assert_eq!(
            href,
            "/console?provider=abowire&type=customer.*&resource=customer%3Acus+1&page=n%26x"
        );
        let again = ListQuery::parse(href.split_once('?').map(|(_, q)| q)).unwrap();
        assert_eq!(again.filter().unwrap(), query.filter().unwrap());
        assert_eq!(again.page, "n&x");
    }
}
