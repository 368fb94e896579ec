//! How a provider's events are recognized again: each provider declares it next to its
//! normalizer, and the event log applies it. A provider that does not decide cannot return an
//! event (see [`crate::providers::Normalized`]).

/// What makes two deliveries the same event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The event id is the provider's own, unique across all its events (Gigs `evt_…`): the
    /// same id again is a redelivery for as long as the first event is retained, whatever its
    /// age.
    ProviderId,
    /// The event id is a fingerprint of content that includes the provider's own timestamp
    /// (Abowire v1): two deliveries with the same fingerprint are one event, for as long as the
    /// first is retained.
    Fingerprint,
    /// The provider re-sends *state* with no id and no time (Mobile Manager; Abowire's current
    /// format): the event id is a fingerprint of that state, and a delivery is a redelivery only
    /// when it repeats the entity's latest state within the dedup window. The same state after
    /// a different one (an alert on, off, on) is a new event.
    LatestState(EntityKey),
}

impl Identity {
    /// The rule's name, as metrics label duplicates with it.
    pub fn rule(&self) -> &'static str {
        match self {
            Identity::ProviderId => "provider_id",
            Identity::Fingerprint => "fingerprint",
            Identity::LatestState(_) => "latest_state",
        }
    }
}

/// The entity a state belongs to, built from parts so that no two different entities share a
/// key: every part is length-prefixed, so free text holding the separator cannot collide
/// (`("a:b", "c")` and `("a", "b:c")` are different keys).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EntityKey(String);

impl EntityKey {
    /// A key of this `kind` of entity (for example `order`), with no parts yet.
    pub fn new(kind: &str) -> EntityKey {
        let mut key = EntityKey(String::with_capacity(kind.len() + 48));
        key.push(kind);
        key
    }

    /// Adds one identifying part.
    pub fn part(mut self, part: &str) -> EntityKey {
        self.push(part);
        self
    }

    /// Adds one identifying part, ASCII-lowercased (identifiers whose case carries no meaning,
    /// such as GUIDs).
    pub fn part_lowercase(mut self, part: &str) -> EntityKey {
        let start = self.push_length(part);
        self.0.push_str(part);
        self.0[start..].make_ascii_lowercase();
        self.0.push(';');
        self
    }

    /// The same entity within `source`: sources never share entities.
    pub fn within(self, source: &str) -> EntityKey {
        let mut scoped = EntityKey(String::with_capacity(source.len() + self.0.len() + 8));
        scoped.push(source);
        scoped.0.push_str(&self.0);
        scoped
    }

    /// The key as text (opaque; stable across releases, as stored dedup keys use it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A key as [`EntityKey::as_str`] gave it, read back (from a replicated log's record).
    pub fn from_stored(key: String) -> EntityKey {
        EntityKey(key)
    }

    fn push(&mut self, part: &str) {
        self.push_length(part);
        self.0.push_str(part);
        self.0.push(';');
    }

    /// Writes `<byte length>:` and returns where the part itself starts. Digits by hand: the
    /// formatting machinery cost more than the rest of building a key.
    fn push_length(&mut self, part: &str) -> usize {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = part.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.0
            .extend(digits[at..].iter().map(|&digit| char::from(digit)));
        self.0.push(':');
        self.0.len()
    }
}

impl std::fmt::Debug for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EntityKey").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A key from a kind and parts, each part lowercased or not.
    fn key(kind: &str, parts: &[(String, bool)], source: Option<&str>) -> EntityKey {
        let key = parts
            .iter()
            .fold(EntityKey::new(kind), |key, (part, lowercase)| {
                if *lowercase {
                    key.part_lowercase(part)
                } else {
                    key.part(part)
                }
            });
        match source {
            Some(source) => key.within(source),
            None => key,
        }
    }

    /// What a key identifies: the parts as compared (lowercased where asked).
    fn entity(kind: &str, parts: &[(String, bool)], source: Option<&str>) -> Vec<String> {
        let mut entity: Vec<String> = source.into_iter().map(str::to_owned).collect();
        entity.push(kind.to_owned());
        entity.extend(parts.iter().map(|(part, lowercase)| {
            if *lowercase {
                part.to_ascii_lowercase()
            } else {
                part.clone()
            }
        }));
        entity
    }

    fn parts() -> impl Strategy<Value = Vec<(String, bool)>> {
        // Separators and digits, which a length-prefixed key must not confuse with its own.
        let part = prop_oneof!["[0-9:;aA]{0,6}", any::<String>()];
        prop::collection::vec((part, any::<bool>()), 0..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn keys_are_deterministic_and_distinct_for_distinct_entities(
            kind in "[a-z;:0-9]{0,6}",
            a in parts(),
            b in parts(),
            source_a in prop::option::of("[a-z:;1]{0,4}"),
            source_b in prop::option::of("[a-z:;1]{0,4}"),
        ) {
            let (key_a, key_b) = (key(&kind, &a, source_a.as_deref()), key(&kind, &b, source_b.as_deref()));
            prop_assert_eq!(&key_a, &key(&kind, &a, source_a.as_deref()));
            // A key within a source and one without are never compared (every stored key is
            // within its source), so only keys of the same shape must differ.
            if source_a.is_some() == source_b.is_some() {
                let same_entity =
                    entity(&kind, &a, source_a.as_deref()) == entity(&kind, &b, source_b.as_deref());
                prop_assert_eq!(key_a == key_b, same_entity, "{:?} {:?}", key_a, key_b);
            }
        }
    }

    #[test]
    fn separators_in_parts_cannot_make_two_entities_one() {
        let a = EntityKey::new("alert").part("a:b").part("c");
        let b = EntityKey::new("alert").part("a").part("b:c");
        assert_ne!(a, b);
        assert_ne!(
            EntityKey::new("alert").part("1;").part("2"),
            EntityKey::new("alert").part("1").part(";2")
        );
        assert_ne!(
            EntityKey::new("order").part("x").within("s:1"),
            EntityKey::new("order").part("x").within("s")
        );
        assert_ne!(
            EntityKey::new("order").part("x"),
            EntityKey::new("alert").part("x")
        );
    }

    #[test]
    fn keys_are_deterministic() {
        let make = || EntityKey::new("order").part_lowercase("ABC").within("mm");
        assert_eq!(make(), make());
        assert_eq!(make().as_str(), "2:mm;5:order;3:abc;");
        // Multi-digit lengths, and lowercasing that leaves non-ASCII bytes alone.
        let long = "Ab".repeat(60);
        assert_eq!(
            EntityKey::new("alert")
                .part_lowercase(&long)
                .part("É")
                .as_str(),
            format!("5:alert;120:{};2:É;", "ab".repeat(60))
        );
        assert_eq!(
            EntityKey::new("").part("0123456789").as_str(),
            "0:;10:0123456789;"
        );
    }
}
