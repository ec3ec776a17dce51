//! Webhook delivery from the outbox, against a real HTTP receiver: retries with backoff under
//! the manual clock, the same `webhook-id` on every attempt, a signature the receiver can
//! check, a deliverer that dies mid-delivery, the end of the window, and two deliverers on one
//! Redis delivering each event once.

#![cfg(feature = "server")]

use crate::support::backend::{caller, new_token, start_time, Backend, Kind};
use crate::support::receiver::{Receiver, SECRET};
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use tessera::delivery::{backoff, Deliverer, DeliveryOptions};
use tessera::outbox::{Delivery, DELIVERY_WINDOW};
use tessera::store::{AnyStore, TokenStore};
use tessera::webhook::WebhookSecret;
use tessera::{Clock, SystemClock};

fn deliverer(store: Arc<AnyStore>, url: &str, clock: Arc<dyn Clock>) -> Deliverer<AnyStore> {
    Deliverer::new(
        store,
        &[url.to_owned()],
        Arc::new(SECRET.parse::<WebhookSecret>().unwrap()),
        clock,
        DeliveryOptions {
            poll: StdDuration::from_millis(20),
            ..DeliveryOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn the_backoff_starts_near_a_second_and_the_third_attempt_comes_within_a_minute() {
    assert_eq!(backoff(1, 0.5), Duration::seconds(1));
    assert_eq!(backoff(2, 0.5), Duration::seconds(4));
    assert_eq!(backoff(1, 0.0), Duration::milliseconds(750));
    assert_eq!(backoff(1, 0.999_999), Duration::milliseconds(1249));
    assert!(backoff(1, 1.0) + backoff(2, 1.0) < Duration::minutes(1));
    assert_eq!(backoff(30, 0.5), Duration::hours(1), "at most an hour");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_event_later_with_the_same_id_and_signature() {
    let b = Backend::new(Kind::Embedded).await.unwrap();
    let receiver = Receiver::start(2).await;
    b.service()
        .create(&caller(), new_token("hooked"))
        .await
        .unwrap();
    let clock = b.clock.clone();
    let deliver = deliverer(b.store.clone(), &receiver.url, clock.clone());

    assert_eq!(deliver.run_once().await.unwrap(), 1);
    let event = b.store.events(1).await.unwrap().remove(0);
    assert_eq!((event.delivery, event.attempts), (Delivery::Pending, 1));
    let wait = event.next_attempt_at.unwrap() - start_time();
    assert!(
        (Duration::milliseconds(750)..=Duration::milliseconds(1250)).contains(&wait),
        "{wait}"
    );
    assert_eq!(
        event.last_error.as_deref(),
        Some(&*format!("{}: 503 Service Unavailable", receiver.url))
    );
    // Not due yet: nothing is sent.
    assert_eq!(deliver.run_once().await.unwrap(), 0);
    clock.advance(Duration::seconds(2));
    assert_eq!(deliver.run_once().await.unwrap(), 1);
    clock.advance(Duration::seconds(6));
    assert_eq!(deliver.run_once().await.unwrap(), 1);
    let event = b.store.events(1).await.unwrap().remove(0);
    assert_eq!((event.delivery, event.attempts), (Delivery::Delivered, 3));
    assert_eq!(event.delivered_to, std::slice::from_ref(&receiver.url));
    assert_eq!(event.last_error, None);
    // Delivered: never sent again.
    clock.advance(Duration::hours(1));
    assert_eq!(deliver.run_once().await.unwrap(), 0);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    let secret: WebhookSecret = SECRET.parse().unwrap();
    for (attempt, request) in seen.iter().enumerate() {
        assert_eq!(request.id, event.id, "attempt {attempt}");
        assert_eq!(
            request.signature,
            secret.sign(&request.id, request.timestamp, &request.body)
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, event.body);
        assert_eq!(body["type"], "token.created");
    }
    // The timestamp is the attempt's, on the injected clock.
    assert_eq!(seen[0].timestamp, start_time().timestamp());
    assert_eq!(
        seen[2].timestamp,
        (start_time() + Duration::seconds(8)).timestamp()
    );
    assert_eq!(deliver.stats().delivered(), 1);
    assert_eq!(deliver.stats().retried(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_leased_by_a_deliverer_that_died_is_delivered_by_another() {
    let b = Backend::new(Kind::Embedded).await.unwrap();
    let receiver = Receiver::start(0).await;
    b.service()
        .create(&caller(), new_token("orphaned"))
        .await
        .unwrap();
    // The first deliverer leases the event and dies before it settles it.
    let leased = b
        .store
        .claim_events(start_time(), StdDuration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    let clock = b.clock.clone();
    let other = deliverer(b.store.clone(), &receiver.url, clock.clone());
    assert_eq!(other.run_once().await.unwrap(), 0, "leased to the first");
    clock.advance(Duration::seconds(61));
    assert_eq!(other.run_once().await.unwrap(), 1);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, leased[0].id);
    assert_eq!(
        b.store.events(1).await.unwrap()[0].delivery,
        Delivery::Delivered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_no_receiver_takes_is_given_up_at_the_end_of_the_window() {
    let b = Backend::new(Kind::Embedded).await.unwrap();
    let receiver = Receiver::start(usize::MAX).await;
    b.service()
        .create(&caller(), new_token("unheard"))
        .await
        .unwrap();
    let clock = b.clock.clone();
    let deliver = deliverer(b.store.clone(), &receiver.url, clock.clone());
    let mut attempts = 0;
    while clock.now() < start_time() + DELIVERY_WINDOW + Duration::hours(2) {
        attempts += deliver.run_once().await.unwrap();
        clock.advance(Duration::minutes(1));
    }
    let event = b.store.events(1).await.unwrap().remove(0);
    assert_eq!(event.delivery, Delivery::Failed);
    assert_eq!(event.attempts as usize, attempts);
    // Fourfold up to an hour: 1 s, 4 s, … then hourly, within 24 h: about 30 attempts.
    assert!((20..=40).contains(&attempts), "{attempts}");
    assert!(event.last_attempt_at.unwrap() <= start_time() + DELIVERY_WINDOW);
    assert_eq!(deliver.stats().failed(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliverers_on_one_redis_deliver_each_event_once() {
    let Some(b) = Backend::new(Kind::Redis).await else {
        return;
    };
    let receiver = Receiver::start(0).await;
    let service = b.service();
    for i in 0..40 {
        service
            .create(&caller(), new_token(&format!("shared-{i}")))
            .await
            .unwrap();
    }
    // Two issuers: each a store connection of its own on the same Redis.
    let url = b.redis.as_ref().unwrap().url();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let store = Arc::new(AnyStore::open(&url).await.unwrap());
        let deliver = deliverer(store, &receiver.url, Arc::new(SystemClock));
        tasks.push(tokio::spawn(deliver.run()));
    }
    let started = std::time::Instant::now();
    while receiver.seen().len() < 40 {
        assert!(
            started.elapsed() < StdDuration::from_secs(20),
            "{}",
            receiver.seen().len()
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    // A moment more, for any second delivery to show up.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    for task in tasks {
        task.abort();
    }
    let mut count: HashMap<String, usize> = HashMap::new();
    for seen in receiver.seen() {
        *count.entry(seen.id).or_default() += 1;
    }
    assert_eq!(count.len(), 40);
    assert!(count.values().all(|&n| n == 1), "{count:?}");
    let events = b.store.events(100).await.unwrap();
    assert!(events.iter().all(|e| e.delivery == Delivery::Delivered));
}
