//! Test support: records the log lines written on the current thread, so a test can check what
//! a refusal logged.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One log line: its level and its fields (the message under `message`).
#[derive(Debug, Clone)]
pub struct Line {
    pub level: Level,
    pub fields: BTreeMap<String, String>,
}

impl Line {
    pub fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }

    /// The field names other than the message.
    pub fn field_names(&self) -> Vec<&str> {
        let names = self.fields.keys().map(String::as_str);
        names.filter(|name| *name != "message").collect()
    }
}

/// Lines logged on this thread while the guard lives.
pub struct Captured {
    lines: Arc<Mutex<Vec<Line>>>,
    _guard: DefaultGuard,
}

impl Captured {
    pub fn lines(&self) -> Vec<Line> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The lines with this message.
    pub fn with_message(&self, message: &str) -> Vec<Line> {
        let lines = self.lines().into_iter();
        lines.filter(|line| line.message() == message).collect()
    }
}

/// Starts capturing on the current thread (a `#[tokio::test]` runs its tasks on it).
pub fn capture() -> Captured {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let layer = Recorder {
        lines: Arc::clone(&lines),
    };
    let subscriber = tracing_subscriber::registry().with(layer);
    Captured {
        lines,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

struct Recorder {
    lines: Arc<Mutex<Vec<Line>>>,
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        let line = Line {
            level: *event.metadata().level(),
            fields: fields.0,
        };
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}
