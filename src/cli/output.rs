//! Renders protobuf messages as canonical proto3 JSON, for people and `jq`.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// Why a message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("descriptor set is unusable: {0}")]
    Descriptor(#[from] prost_reflect::DescriptorError),
    #[error("message `{0}` is not in the descriptor set")]
    UnknownMessage(String),
    #[error("cannot decode `{name}`: {source}")]
    Decode {
        name: String,
        source: prost::DecodeError,
    },
    #[error("cannot render json: {0}")]
    Json(#[from] serde_json::Error),
}

/// The descriptors, decoded once: `tail` renders every event it receives.
fn pool() -> Result<&'static DescriptorPool, OutputError> {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    if let Some(pool) = POOL.get() {
        return Ok(pool);
    }
    let pool = DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)?;
    Ok(POOL.get_or_init(|| pool))
}

/// Renders `message` (of the fully-qualified proto type `name`) as proto3 JSON.
pub fn to_json<M: Message>(name: &str, message: &M, pretty: bool) -> Result<String, OutputError> {
    let pool = pool()?;
    let descriptor = pool
        .get_message_by_name(name)
        .ok_or_else(|| OutputError::UnknownMessage(name.to_owned()))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice()).map_err(
        |source| OutputError::Decode {
            name: name.to_owned(),
            source,
        },
    )?;
    let options = SerializeOptions::new().stringify_64_bit_integers(false);
    let mut out = Vec::new();
    if pretty {
        let mut serializer = serde_json::Serializer::pretty(&mut out);
        dynamic.serialize_with_options(&mut serializer, &options)?;
    } else {
        let mut serializer = serde_json::Serializer::new(&mut out);
        dynamic.serialize_with_options(&mut serializer, &options)?;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{Event, Provider, ResourceRef};

    #[test]
    fn renders_proto3_json_names() {
        let event = Event {
            id: "gigs:evt_1".into(),
            provider: Provider::Gigs as i32,
            r#type: "sim.retired".into(),
            subject: Some(ResourceRef {
                kind: "sim".into(),
                id: "sim_1".into(),
            }),
            sequence: 7,
            ..Event::default()
        };
        let json: serde_json::Value =
            serde_json::from_str(&to_json("hooknorm.v1.Event", &event, false).unwrap()).unwrap();
        assert_eq!(json["provider"], "PROVIDER_GIGS");
        assert_eq!(json["subject"]["kind"], "sim");
        assert_eq!(json["sequence"], 7);
    }
}
