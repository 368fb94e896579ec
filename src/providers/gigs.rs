//! PLACEHOLDER: replaced by the normalization work.
use std::collections::BTreeMap;
use prost_types::Value;
use crate::proto::v1::Event;
use super::{Context, NormalizeError};
pub fn normalize(_fields: BTreeMap<String, Value>, _context: &Context) -> Result<Event, NormalizeError> {
    Err(NormalizeError::field("", "not implemented"))
}
