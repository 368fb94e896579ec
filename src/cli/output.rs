//! What the client commands print: protobuf messages rendered as canonical proto3 JSON, for
//! people and `jq`, written to a stdout whose reader may leave early.

use std::io::{self, Write};
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

/// A writer that remembers whether its reader went away (`hooknorm samples | head -1` closes
/// the pipe after one line): see [`with_stdout`].
#[derive(Debug)]
pub struct Output<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Output<W> {
    fn note<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(error) = &result
            && error.kind() == io::ErrorKind::BrokenPipe
        {
            self.closed = true;
        }
        result
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.note(result)
    }

    // Passed through whole so a line is written under one lock of stdout.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let result = self.inner.write_all(buf);
        self.note(result)
    }

    fn write_fmt(&mut self, args: std::fmt::Arguments<'_>) -> io::Result<()> {
        let result = self.inner.write_fmt(args);
        self.note(result)
    }
}

/// Runs a command that prints to stdout, through [`Output`]. Once the reader has closed the
/// pipe, whatever the command returns (the write error, perhaps wrapped) means only that no one
/// reads on, so the command ends successfully and quietly, as Unix tools do in a pipeline.
pub fn with_stdout<E: From<io::Error>>(
    command: impl FnOnce(&mut Output<io::Stdout>) -> Result<(), E>,
) -> Result<(), E> {
    with_output(io::stdout(), command)
}

fn with_output<W: Write, E: From<io::Error>>(
    writer: W,
    command: impl FnOnce(&mut Output<W>) -> Result<(), E>,
) -> Result<(), E> {
    let mut out = Output {
        inner: writer,
        closed: false,
    };
    let result = command(&mut out).and_then(|()| out.flush().map_err(E::from));
    if out.closed { Ok(()) } else { result }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then answers as a closed pipe (or `error`) does.
    struct Pipe {
        room: usize,
        error: io::ErrorKind,
    }

    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(self.error.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn print_lines(out: &mut impl Write) -> io::Result<()> {
        for n in 0..100 {
            writeln!(out, "line {n}")?;
        }
        Ok(())
    }

    #[test]
    fn a_closed_pipe_ends_the_command_successfully() {
        let pipe = Pipe {
            room: 10,
            error: io::ErrorKind::BrokenPipe,
        };
        with_output(pipe, print_lines).unwrap();
    }

    #[test]
    fn other_write_errors_and_command_errors_still_fail() {
        let pipe = Pipe {
            room: 10,
            error: io::ErrorKind::StorageFull,
        };
        let error = with_output(pipe, print_lines).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        let pipe = Pipe {
            room: 1000,
            error: io::ErrorKind::BrokenPipe,
        };
        let error = with_output(pipe, |_| -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        })
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe, "not stdout's pipe");
    }
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
