//! Canonical event rules shared by every provider: type naming and time conversion.
//!
//! The event itself is the generated `hooknorm.v1.Event` (plain prost data, no transport code),
//! so a normalized event goes to storage and onto the wire without another copy.

use chrono::{DateTime, Utc};

pub use crate::proto::v1::{Event, ResourceRef};

/// Converts a UTC time to a protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a protobuf timestamp to UTC, or `None` when out of range.
pub fn from_timestamp(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(timestamp.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos))
}
