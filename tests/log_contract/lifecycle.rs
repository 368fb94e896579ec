//! Closing: appends in flight finish, later work is refused with `Closed`, and what was
//! acknowledged is there when the store is opened again.

use std::sync::Arc;

use hooknorm::log::{EventFilter, LogError};

use super::*;

pub async fn close_lets_in_flight_appends_finish_then_refuses_work<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    store(&log, event("before", "t.x")).await;
    // `join!` polls the append first, so it is in flight when the close begins.
    let (in_flight, ()) = tokio::join!(log.append(request(event("in_flight", "t.x"))), log.close());
    let in_flight = in_flight.expect("an append in flight when the close began finishes");
    // Racing the close's end: each either stored or refused, never half.
    let racing: Vec<_> = (0..20)
        .map(|index| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.append(request(event(&format!("r{index}"), "t.x")))
                    .await
            })
        })
        .collect();
    let mut acknowledged = vec![in_flight.event.id.clone()];
    for append in racing {
        match append.await.expect("append task") {
            Ok(appended) => acknowledged.push(appended.event.id),
            Err(LogError::Closed) => {}
            Err(error) => panic!("an append on a closed log: {error}"),
        }
    }

    assert!(matches!(
        log.append(request(event("late", "t.x"))).await,
        Err(LogError::Closed)
    ));
    assert!(matches!(log.check_writable().await, Err(LogError::Closed)));
    assert!(matches!(
        log.enforce_retention().await,
        Err(LogError::Closed)
    ));
    assert!(matches!(log.subscribe().await, Err(LogError::Closed)));
    // Reads may go on or say the log is closed.
    match log.read_after(0, &EventFilter::default(), 100).await {
        Ok(events) => assert!(events.len() > acknowledged.len()),
        Err(LogError::Closed) => {}
        Err(error) => panic!("a read on a closed log: {error}"),
    }
    // Closing again is harmless.
    log.close().await;

    let log = harness.reopen().await;
    for id in &acknowledged {
        assert!(
            log.get(id, View::Basic).await.expect("get").is_some(),
            "{id} was acknowledged"
        );
    }
    assert!(log.get("late", View::Basic).await.expect("get").is_none());
    log.close().await;
}
