//! The outbox part of the store contract, on each backend: every change adds its event in the
//! same write, and events are leased, settled and pruned as deliverers need.

use crate::support::backend::{caller, conformance, new_token, start_time, trigger, Backend, Kind};
use chrono::Duration;
use std::time::Duration as StdDuration;
use tessera::lifecycle::{default_thresholds, Expiry, LifecycleError, NewToken, TokenUpdate};
use tessera::outbox::{Delivery, OutboxEvent};
use tessera::store::TokenStore;

conformance!(
    every_change_adds_its_event_and_a_refused_one_none,
    events_are_leased_to_one_deliverer_at_a_time_and_settled,
    old_events_are_pruned_delivered_or_not,
    expiry_notices_go_out_once_per_token_version_and_threshold,
);

const LEASE: StdDuration = StdDuration::from_secs(60);

async fn every_change_adds_its_event_and_a_refused_one_none(b: Backend) {
    let service = b.service();
    let minted = service
        .create(&caller(), new_token("evented"))
        .await
        .unwrap();
    let id = minted.record.id;
    let update = TokenUpdate {
        description: None,
        permissions: Some(trigger("x")),
        allowed_cidrs: None,
    };
    service.update(&caller(), id, update, None).await.unwrap();
    let regenerated = service
        .regenerate(&caller(), id, Expiry::Days(7), None)
        .await
        .unwrap();
    // Refused: the name is taken. No event.
    assert!(matches!(
        service.create(&caller(), new_token("evented")).await,
        Err(LifecycleError::NameTaken(_))
    ));
    service.delete(&caller(), id, None).await.unwrap();

    let mut events = b.store.events(100).await.unwrap();
    events.reverse();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "token.created",
            "token.updated",
            "token.regenerated",
            "token.deleted"
        ]
    );
    let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "each event has an id of its own");
    for event in &events {
        assert!(event.id.starts_with("msg_"), "{}", event.id);
        assert_eq!(event.delivery, Delivery::Pending);
        assert_eq!(event.created_at, start_time());
        assert_eq!(event.body["type"], event.kind.as_str());
        assert_eq!(event.body["timestamp"], "2026-11-28T12:00:00Z");
        assert_eq!(event.body["data"]["actor"], "local:tester");
        assert_eq!(event.body["data"]["record"]["id"], id.to_string());
        assert_eq!(event.body["data"]["record"]["name"], "evented");
    }
    // The record after each change; the deleted record itself for a deletion.
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e.body["data"]["record"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 1, 2, 2]);
    assert!(events[1].body["data"]["record"]["permissions"]["grants"].is_array());
    // No token string, no signature, in any event.
    let all = serde_json::to_string(&events).unwrap();
    for token in [minted.token.expose(), regenerated.token.expose()] {
        assert!(!all.contains(&token[token.len() - 40..]));
    }
}

async fn events_are_leased_to_one_deliverer_at_a_time_and_settled(b: Backend) {
    let service = b.service();
    for name in ["first", "second", "third"] {
        service.create(&caller(), new_token(name)).await.unwrap();
    }
    let store = &b.store;
    let now = start_time() + Duration::seconds(1);
    // Not yet due before the change.
    assert!(store
        .claim_events(start_time() - Duration::seconds(1), LEASE, 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = store.claim_events(now, LEASE, 2).await.unwrap();
    assert_eq!(claimed.len(), 2, "at most the limit");
    let rest = store.claim_events(now, LEASE, 10).await.unwrap();
    assert_eq!(
        rest.len(),
        1,
        "another deliverer gets only what is not leased"
    );
    assert!(store.claim_events(now, LEASE, 10).await.unwrap().is_empty());

    // The first is delivered, the second fails and is due in 5 s; the third's deliverer dies.
    let mut delivered = claimed[0].clone();
    delivered.delivery = Delivery::Delivered;
    delivered.attempts = 1;
    delivered.delivered_to = vec!["http://127.0.0.1:9/hook".into()];
    store.settle_event(delivered.clone()).await.unwrap();
    let mut retried = claimed[1].clone();
    retried.attempts = 1;
    retried.last_error = Some("503".into());
    retried.next_attempt_at = Some(now + Duration::seconds(5));
    store.settle_event(retried.clone()).await.unwrap();

    let names = |events: &[OutboxEvent]| -> Vec<String> {
        let mut names: Vec<String> = events
            .iter()
            .map(|e| {
                e.body["data"]["record"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        names.sort();
        names
    };
    let at = |secs| now + Duration::seconds(secs);
    assert_eq!(
        names(&store.claim_events(at(5), LEASE, 10).await.unwrap()),
        [retried.body["data"]["record"]["name"].as_str().unwrap()]
    );
    // The dead deliverer's lease ends: the third is handed out again, with its id.
    let again = store.claim_events(at(61), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, rest[0].id);
    // The delivered one never comes back; the listing shows where each stands.
    assert!(store
        .claim_events(at(3600), LEASE, 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.id != delivered.id));
    let listed = store.events(10).await.unwrap();
    let shown = listed.iter().find(|e| e.id == delivered.id).unwrap();
    assert_eq!(shown, &delivered);
    let shown = listed.iter().find(|e| e.id == retried.id).unwrap();
    assert_eq!(shown.last_error.as_deref(), Some("503"));
    assert_eq!(store.events(1).await.unwrap().len(), 1);
}

async fn old_events_are_pruned_delivered_or_not(b: Backend) {
    let service = b.service();
    service.create(&caller(), new_token("old")).await.unwrap();
    b.clock.advance(Duration::hours(2));
    service.create(&caller(), new_token("new")).await.unwrap();
    let store = &b.store;
    assert_eq!(
        store
            .prune_events(start_time() + Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    let left = store.events(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body["data"]["record"]["name"], "new");
    // A pruned event is neither claimed nor brought back by a late settle.
    let claimed = store
        .claim_events(start_time() + Duration::hours(3), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        store
            .prune_events(start_time() + Duration::hours(3))
            .await
            .unwrap(),
        1
    );
    let mut late = claimed[0].clone();
    late.delivery = Delivery::Delivered;
    store.settle_event(late).await.unwrap();
    assert!(store.events(10).await.unwrap().is_empty());
    // The lifecycle's prune drops what is past the retention.
    service.create(&caller(), new_token("kept")).await.unwrap();
    b.clock
        .advance(tessera::outbox::RETENTION + Duration::seconds(1));
    service.prune().await.unwrap();
    assert!(store.events(10).await.unwrap().is_empty());
}

async fn expiry_notices_go_out_once_per_token_version_and_threshold(b: Backend) {
    let service = b.service();
    let with_expiry = |name: &str, expires: Expiry| NewToken {
        expires,
        ..new_token(name)
    };
    let month = service
        .create(&caller(), with_expiry("month", Expiry::Days(30)))
        .await
        .unwrap()
        .record;
    service
        .create(&caller(), with_expiry("week", Expiry::Days(7)))
        .await
        .unwrap();
    service
        .create(&caller(), with_expiry("forever", Expiry::Never))
        .await
        .unwrap();
    let gone = service
        .create(&caller(), with_expiry("gone", Expiry::Days(7)))
        .await
        .unwrap()
        .record;
    service.delete(&caller(), gone.id, None).await.unwrap();
    let thresholds = default_thresholds();
    // A second issuer on the same store, looking at the same moments.
    let other = b.service();
    let notices = || async {
        let events = b.store.events(1000).await.unwrap();
        let mut seen: Vec<(String, String, String)> = events
            .iter()
            .filter(|e| e.kind.starts_with("token.expir"))
            .map(|e| {
                (
                    e.body["data"]["record"]["name"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    e.kind.clone(),
                    e.body["data"]["within"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        seen.sort();
        seen
    };
    let step = |days: i64| {
        b.clock.advance(Duration::days(days));
    };
    let notice = |name: &str, kind: &str, within: &str| {
        (name.to_owned(), kind.to_owned(), within.to_owned())
    };

    // Now: "week" expires in exactly 7 days.
    let (a, c) = tokio::join!(
        service.send_expiry_notices(&thresholds),
        other.send_expiry_notices(&thresholds)
    );
    assert_eq!(
        a.unwrap() + c.unwrap(),
        1,
        "one of the two issuers sends it"
    );
    assert_eq!(service.send_expiry_notices(&thresholds).await.unwrap(), 0);
    assert_eq!(notices().await, [notice("week", "token.expiring", "7d")]);
    step(6);
    assert_eq!(service.send_expiry_notices(&thresholds).await.unwrap(), 1);
    step(1);
    assert_eq!(service.send_expiry_notices(&thresholds).await.unwrap(), 1);
    step(2);
    assert_eq!(service.send_expiry_notices(&thresholds).await.unwrap(), 0);
    assert_eq!(
        notices().await,
        [
            notice("week", "token.expired", ""),
            notice("week", "token.expiring", "1d"),
            notice("week", "token.expiring", "7d"),
        ]
    );
    // Day 23: "month" is 7 days from expiry. Regenerated, its new version is noticed anew.
    step(14);
    assert_eq!(other.send_expiry_notices(&thresholds).await.unwrap(), 1);
    service
        .regenerate(&caller(), month.id, Expiry::Days(1), None)
        .await
        .unwrap();
    assert_eq!(service.send_expiry_notices(&thresholds).await.unwrap(), 2);
    assert_eq!(service.send_expiry_notices(&thresholds).await.unwrap(), 0);
    let events = b.store.events(1000).await.unwrap();
    let latest = events
        .iter()
        .find(|e| {
            e.kind == "token.expiring"
                && e.body["data"]["within"] == "1d"
                && e.body["data"]["record"]["name"] == "month"
        })
        .unwrap();
    assert_eq!(latest.body["data"]["record"]["version"], 2);
    assert_eq!(latest.body["data"]["actor"], "tessera");
    assert_eq!(latest.body["timestamp"], "2026-12-21T12:00:00Z");
    assert_eq!(latest.delivery, Delivery::Pending);
    // Never: no notice for "forever", nor for the deleted "gone".
    step(400);
    service.send_expiry_notices(&thresholds).await.unwrap();
    assert!(notices()
        .await
        .iter()
        .all(|(name, _, _)| name == "week" || name == "month"));
    // No thresholds: only expiries.
    assert_eq!(service.send_expiry_notices(&[]).await.unwrap(), 0);
}
