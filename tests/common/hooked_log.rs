//! A real event log with a test's hooks around some of its calls: how the fault-injection tests
//! make it fail, stall or race at one chosen point without restating every call they leave
//! alone. Each hook is handed the real log and, unless overridden, just calls it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hooknorm::log::{
    AppendRequest, Appended, EncodedBatch, EventFilter, EventLog, LiveSubscription, LogError,
    RetentionReport, View,
};
use hooknorm::proto::v1::Event;
use tokio::sync::watch;

/// What a test does around the calls it cares about; the default of each is the real call.
#[async_trait]
pub trait LogHooks: Send + Sync + 'static {
    async fn append(
        &self,
        log: &dyn EventLog,
        request: AppendRequest,
    ) -> Result<Appended, LogError> {
        log.append(request).await
    }

    async fn read_encoded_after(
        &self,
        log: &dyn EventLog,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        log.read_encoded_after(after, filter, limit).await
    }

    async fn head(&self, log: &dyn EventLog) -> Result<u64, LogError> {
        log.head().await
    }

    async fn subscribe(&self, log: &dyn EventLog) -> Result<LiveSubscription, LogError> {
        log.subscribe().await
    }

    async fn check_writable(&self, log: &dyn EventLog) -> Result<(), LogError> {
        log.check_writable().await
    }
}

/// The test keeps an `Arc` of its hooks to steer them while the server holds the log.
#[async_trait]
impl<H: LogHooks> LogHooks for Arc<H> {
    async fn append(
        &self,
        log: &dyn EventLog,
        request: AppendRequest,
    ) -> Result<Appended, LogError> {
        (**self).append(log, request).await
    }

    async fn read_encoded_after(
        &self,
        log: &dyn EventLog,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        (**self).read_encoded_after(log, after, filter, limit).await
    }

    async fn head(&self, log: &dyn EventLog) -> Result<u64, LogError> {
        (**self).head(log).await
    }

    async fn subscribe(&self, log: &dyn EventLog) -> Result<LiveSubscription, LogError> {
        (**self).subscribe(log).await
    }

    async fn check_writable(&self, log: &dyn EventLog) -> Result<(), LogError> {
        (**self).check_writable(log).await
    }
}

/// `log` with `hooks` around it.
pub fn hooked(log: Arc<dyn EventLog>, hooks: impl LogHooks) -> Arc<dyn EventLog> {
    Arc::new(HookedLog { log, hooks })
}

struct HookedLog<H> {
    log: Arc<dyn EventLog>,
    hooks: H,
}

#[async_trait]
impl<H: LogHooks> EventLog for HookedLog<H> {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        self.hooks.append(&*self.log, request).await
    }

    async fn read_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.log.read_after(after, filter, limit).await
    }

    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        self.hooks
            .read_encoded_after(&*self.log, after, filter, limit)
            .await
    }

    async fn list(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.log.list(filter, before, limit).await
    }

    async fn get(&self, id: &str, view: View) -> Result<Option<Event>, LogError> {
        self.log.get(id, view).await
    }

    async fn duplicate_counts(
        &self,
        sequences: &[u64],
    ) -> Result<Option<HashMap<u64, u64>>, LogError> {
        self.log.duplicate_counts(sequences).await
    }

    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError> {
        self.log.cursor_at(time).await
    }

    async fn head(&self) -> Result<u64, LogError> {
        self.hooks.head(&*self.log).await
    }

    async fn subscribe(&self) -> Result<LiveSubscription, LogError> {
        self.hooks.subscribe(&*self.log).await
    }

    fn live_pressure(&self) -> Option<watch::Receiver<bool>> {
        self.log.live_pressure()
    }

    async fn enforce_retention(&self) -> Result<RetentionReport, LogError> {
        self.log.enforce_retention().await
    }

    async fn check_writable(&self) -> Result<(), LogError> {
        self.hooks.check_writable(&*self.log).await
    }

    async fn close(&self) {
        self.log.close().await;
    }
}
