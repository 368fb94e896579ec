//! Which events a subscriber or a listing wants.

use crate::proto::v1::{Event, ResourceRef};

/// A canonical type pattern: an exact name or `prefix.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    Exact(String),
    /// Matches types starting with this prefix, which includes the trailing `.`.
    Prefix(String),
}

impl TypePattern {
    /// Parses `order.completed`, `order.*` or `*`.
    pub fn parse(pattern: &str) -> Result<TypePattern, String> {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err("type pattern is empty".to_owned());
        }
        if pattern == "*" {
            return Ok(TypePattern::Prefix(String::new()));
        }
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('.') && !prefix.contains('*') => {
                Ok(TypePattern::Prefix(prefix.to_owned()))
            }
            Some(_) => Err(format!(
                "type pattern `{pattern}`: `*` is only allowed as a whole last segment (`prefix.*`)"
            )),
            None if pattern.contains('*') => Err(format!(
                "type pattern `{pattern}`: `*` is only allowed as a whole last segment (`prefix.*`)"
            )),
            None => Ok(TypePattern::Exact(pattern.to_owned())),
        }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            TypePattern::Exact(name) => name == event_type,
            TypePattern::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
        }
    }
}

/// Empty lists match everything; all given parts must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// `Provider` enum values.
    pub providers: Vec<i32>,
    pub sources: Vec<String>,
    pub types: Vec<TypePattern>,
    /// Matches the subject or any related ref (kind and id both equal).
    pub resource: Option<ResourceRef>,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        (self.providers.is_empty() || self.providers.contains(&event.provider))
            && (self.sources.is_empty() || self.sources.contains(&event.source))
            && (self.types.is_empty() || self.types.iter().any(|t| t.matches(&event.r#type)))
            && self.resource.as_ref().is_none_or(|wanted| {
                event.subject.as_ref() == Some(wanted) || event.related.contains(wanted)
            })
    }

    /// A filter from the parts a request names: type patterns as text (see
    /// [`TypePattern::parse`]), and a resource, which must name both its kind and its id.
    pub fn new(
        providers: Vec<i32>,
        sources: Vec<String>,
        types: &[String],
        resource: Option<ResourceRef>,
    ) -> Result<EventFilter, FilterError> {
        let types = types
            .iter()
            .map(|pattern| TypePattern::parse(pattern).map_err(FilterError::TypePattern))
            .collect::<Result<Vec<_>, _>>()?;
        if resource
            .as_ref()
            .is_some_and(|resource| resource.kind.is_empty() || resource.id.is_empty())
        {
            return Err(FilterError::Resource);
        }
        Ok(EventFilter {
            providers,
            sources,
            types,
            resource,
        })
    }
}

/// Why a filter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    TypePattern(String),
    #[error("kind and id are both required")]
    Resource,
}

impl FilterError {
    /// The part of the filter at fault, as a request names it.
    pub fn field(&self) -> &'static str {
        match self {
            FilterError::TypePattern(_) => "types",
            FilterError::Resource => "resource",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(kind: &str, id: &str) -> ResourceRef {
        ResourceRef {
            kind: kind.into(),
            id: id.into(),
        }
    }

    #[test]
    fn type_patterns() {
        assert_eq!(
            TypePattern::parse("order.*").unwrap(),
            TypePattern::Prefix("order.".into())
        );
        assert!(
            TypePattern::parse("order.*")
                .unwrap()
                .matches("order.completed")
        );
        assert!(!TypePattern::parse("order.*").unwrap().matches("orders.x"));
        assert!(TypePattern::parse("*").unwrap().matches("anything.at_all"));
        assert!(TypePattern::parse("ord*").is_err());
        assert!(TypePattern::parse("a.*.b").is_err());
        assert!(TypePattern::parse("").is_err());
        assert!(
            TypePattern::parse("sim.retired")
                .unwrap()
                .matches("sim.retired")
        );
    }

    #[test]
    fn filters_are_validated() {
        let types = |patterns: &[&str]| -> Vec<String> {
            patterns.iter().map(|p| (*p).to_owned()).collect()
        };
        let filter = EventFilter::new(vec![], vec![], &types(&["order.*"]), None).unwrap();
        assert_eq!(filter.types, [TypePattern::Prefix("order.".into())]);
        let error = EventFilter::new(vec![], vec![], &types(&["ord*"]), None).unwrap_err();
        assert_eq!(error.field(), "types");
        let error = EventFilter::new(vec![], vec![], &[], Some(rr("sim", ""))).unwrap_err();
        assert_eq!(error, FilterError::Resource);
        assert!(EventFilter::new(vec![], vec![], &[], Some(rr("sim", "s1"))).is_ok());
    }

    #[test]
    fn filter_matches_subject_or_related() {
        let event = Event {
            provider: 1,
            source: "gigs".into(),
            r#type: "subscription.renewed".into(),
            subject: Some(rr("subscription", "sub_1")),
            related: vec![rr("plan", "pln_1")],
            ..Event::default()
        };
        let mut filter = EventFilter {
            resource: Some(rr("plan", "pln_1")),
            ..EventFilter::default()
        };
        assert!(filter.matches(&event));
        filter.resource = Some(rr("subscription", "sub_1"));
        assert!(filter.matches(&event));
        filter.resource = Some(rr("plan", "pln_2"));
        assert!(!filter.matches(&event));
        let filter = EventFilter {
            providers: vec![2],
            ..EventFilter::default()
        };
        assert!(!filter.matches(&event));
        let filter = EventFilter {
            sources: vec!["gigs".into()],
            types: vec![TypePattern::parse("subscription.*").unwrap()],
            ..EventFilter::default()
        };
        assert!(filter.matches(&event));
    }
}
