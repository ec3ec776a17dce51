//! The store conformance suite: every lifecycle rule, run through the token service on each
//! backend (the embedded redb file, and a real `redis-server` each test starts for itself).
//!
//! A plain `cargo test` on a machine without `redis-server` skips the Redis half with a message
//! naming the binary; with `CI=true` it fails instead.

use crate::support::backend::{
    caller, conformance, new_super_admin, new_token, perms, start_time, super_admin, trigger,
    Backend, Kind,
};
use chrono::Duration;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tessera::lifecycle::{Expiry, LifecycleError, Policy, TokenUpdate};
use tessera::mirror::{MirrorOptions, StateMirror};
use tessera::model::{Action, FeedPage, FeedPosition, StateSnapshot};
use tessera::store::TokenStore;
use tessera::store::{AnyStore, StoreError};
use tessera::TokenState as _;
use tessera::{Access, CidrList, DevtronRole};

conformance!(
    create_returns_a_working_token_and_a_record_without_it,
    names_follow_the_rules,
    names_are_unique_among_live_tokens_and_free_again_after_delete,
    descriptions_are_limited,
    expiry_choices_resolve_exactly,
    a_maximum_lifetime_is_enforced,
    invalid_or_oversized_permissions_are_refused,
    update_changes_permissions_without_a_new_token,
    update_of_description_alone_leaves_the_state_map_alone,
    networks_are_signed_stored_and_narrowed_through_the_state_map,
    regenerate_issues_a_new_version_and_the_old_one_stops,
    delete_stops_every_version,
    a_stale_expected_revision_is_a_conflict,
    unknown_ids_are_not_found,
    the_audit_trail_records_actions_and_refusals_with_paging,
    every_state_change_gets_the_next_revision_in_the_feed,
    a_follower_of_another_history_reloads_at_an_equal_revision,
    state_entries_are_dropped_only_when_nothing_they_restrict_can_pass,
    a_new_follower_loads_the_snapshot,
    concurrent_creates_of_one_name_have_one_winner,
    concurrent_regenerates_leave_exactly_one_working_token,
    concurrent_updates_with_expected_revisions_lose_nothing,
    the_last_use_is_kept_apart_and_never_goes_back,
    the_last_live_super_admin_is_never_deleted_or_demoted,
    concurrent_deletes_of_the_last_two_super_admins_leave_one,
    key_use_counts_the_live_tokens_a_key_may_have_signed,
);

async fn key_use_counts_the_live_tokens_a_key_may_have_signed(b: Backend) {
    let service = b.service();
    let old = b.ring.signing().unwrap().public.id().as_str().to_owned();
    let thirty = service
        .create(&caller(), new_token("thirty"))
        .await
        .unwrap();
    let never = tessera::lifecycle::NewToken {
        expires: Expiry::Never,
        ..new_token("never")
    };
    let never = service.create(&caller(), never).await.unwrap();
    assert_eq!(thirty.record.kid.as_deref(), Some(old.as_str()));
    assert_eq!(
        service.get(never.record.id).await.unwrap().kid.as_deref(),
        Some(old.as_str())
    );
    let used = service.key_use(&old).await.unwrap();
    assert_eq!((used.tokens, used.unattributed), (2, 0));
    assert!(used.never_expires);
    assert_eq!(used.latest_expiry, Some(start_time() + Duration::days(30)));

    // Another key signs from now on; a regenerated token names it.
    let dir = b.dir.path().join("keys");
    let new = tessera::keys::rotate_into(&dir, chrono::Utc::now()).unwrap();
    tessera::keys::activate(&dir, new.id.as_str()).unwrap();
    let ring = Arc::new(tessera::keys::KeyRing::load_dir(&dir).unwrap());
    let rotated =
        tessera::lifecycle::TokenService::new(b.store.clone(), tessera::Issuer::new(ring).unwrap())
            .with_clock(b.clock.clone());
    let regenerated = rotated
        .regenerate(&caller(), never.record.id, Expiry::Days(7), None)
        .await
        .unwrap();
    assert_eq!(regenerated.record.kid.as_deref(), Some(new.id.as_str()));
    let used = service.key_use(&old).await.unwrap();
    assert_eq!(
        used.tokens, 1,
        "the old version is superseded: only `thirty` is left"
    );
    assert!(!used.never_expires);
    let on_new = service.key_use(new.id.as_str()).await.unwrap();
    assert_eq!(on_new.tokens, 1);
    assert_eq!(on_new.latest_expiry, Some(start_time() + Duration::days(7)));

    // Deleted and expired tokens no longer count; within the leeway they still do.
    service
        .delete(&caller(), thirty.record.id, None)
        .await
        .unwrap();
    assert_eq!(service.key_use(&old).await.unwrap(), Default::default());
    b.clock
        .set(start_time() + Duration::days(7) + Duration::seconds(10));
    assert_eq!(rotated.key_use(new.id.as_str()).await.unwrap().tokens, 1);
    b.clock.set(start_time() + Duration::days(8));
    assert_eq!(rotated.key_use(new.id.as_str()).await.unwrap().tokens, 0);

    // A record from before records kept a key id may have been signed by any key.
    let legacy = crate::support::writes::record("legacy");
    b.store
        .commit(crate::support::writes::create(&legacy))
        .await
        .unwrap();
    for (kid, tokens) in [(old.as_str(), 1), (new.id.as_str(), 2)] {
        let used = b.store.key_use(kid, start_time()).await.unwrap();
        assert_eq!((used.tokens, used.unattributed), (tokens, 1), "{kid}");
        assert_eq!(used.latest_expiry, legacy.expires_at);
    }
}

fn is_invalid(result: Result<impl std::fmt::Debug, LifecycleError>, field: &str) -> String {
    match result {
        Err(LifecycleError::Invalid { field: f, message }) if f == field => message,
        other => panic!("expected an invalid {field}, got {other:?}"),
    }
}

async fn create_returns_a_working_token_and_a_record_without_it(b: Backend) {
    let service = b.service();
    let minted = service
        .create(&caller(), new_super_admin("ci-bot"))
        .await
        .unwrap();
    let verified = b.offline_verifier().verify(minted.token.expose()).unwrap();
    assert_eq!(verified.id(), minted.record.id);
    assert_eq!(verified.name(), "ci-bot");
    assert_eq!(verified.version(), 1);
    assert!(verified.is_super_admin());

    let record = service.get(minted.record.id).await.unwrap();
    assert_eq!(record, minted.record);
    assert_eq!((record.version, record.revision), (1, 1));
    assert_eq!(record.created_by, "local:tester");
    assert_eq!(record.created_at, start_time());
    assert_eq!(record.expires_at, Some(start_time() + Duration::days(30)));
    assert_eq!(
        service.get_by_name("ci-bot").await.unwrap().as_ref(),
        Some(&record)
    );

    // Nothing the store hands back contains the token string or its signature.
    let token = minted.token.expose();
    let signature_part = &token[token.len() - 40..];
    let listed = serde_json::to_string(&service.list().await.unwrap()).unwrap();
    let audit = serde_json::to_string(&service.audit(0, 100).await.unwrap()).unwrap();
    for text in [&listed, &audit] {
        assert!(!text.contains("v4.public"));
        assert!(!text.contains(signature_part));
    }
}

async fn names_follow_the_rules(b: Backend) {
    let service = b.service();
    let bad = [
        "ab",
        &"a".repeat(51),
        "CI-bot",
        "-bot",
        "bot-",
        "bot_",
        "_bot",
        "ci bot",
        "ci.bot",
        "ci/bot",
        "bøt",
        "",
    ];
    for name in bad {
        let message = is_invalid(service.create(&caller(), new_token(name)).await, "name");
        assert!(message.contains("3 to 50"), "{message}");
    }
    for name in ["abc", &"z".repeat(50), "a-b_c", "0ci9", "a--b"] {
        service.create(&caller(), new_token(name)).await.unwrap();
    }
    assert_eq!(service.list().await.unwrap().len(), 5);
}

async fn names_are_unique_among_live_tokens_and_free_again_after_delete(b: Backend) {
    let service = b.service();
    let follower = b.follower().await;
    let first = service
        .create(&caller(), new_token("deployer"))
        .await
        .unwrap();
    match service.create(&caller(), new_token("deployer")).await {
        Err(LifecycleError::NameTaken(name)) => assert_eq!(name, "deployer"),
        other => panic!("expected name_taken, got {other:?}"),
    }
    service
        .delete(&caller(), first.record.id, None)
        .await
        .unwrap();
    assert_eq!(service.get_by_name("deployer").await.unwrap(), None);

    let second = service
        .create(&caller(), new_token("deployer"))
        .await
        .unwrap();
    assert_ne!(second.record.id, first.record.id);
    // The deleted token does not come back with its name.
    assert_eq!(follower.code(first.token.expose()).await, "revoked");
    assert_eq!(follower.code(second.token.expose()).await, "ok");
    let live = service.get_by_name("deployer").await.unwrap().unwrap();
    assert_eq!(live.id, second.record.id);
}

async fn descriptions_are_limited(b: Backend) {
    let service = b.service();
    let mut token = new_token("described");
    token.description = "é".repeat(350);
    let id = service.create(&caller(), token).await.unwrap().record.id;

    let mut token = new_token("too-long");
    token.description = "x".repeat(351);
    let message = is_invalid(service.create(&caller(), token).await, "description");
    assert!(message.contains("at most 350"), "{message}");

    let mut token = new_token("controlled");
    token.description = "bell\u{7}".into();
    is_invalid(service.create(&caller(), token).await, "description");

    let update = TokenUpdate {
        description: Some("y".repeat(351)),
        permissions: None,
        allowed_cidrs: None,
    };
    is_invalid(
        service.update(&caller(), id, update, None).await,
        "description",
    );
    assert_eq!(service.get(id).await.unwrap().description, "é".repeat(350));
}

async fn expiry_choices_resolve_exactly(b: Backend) {
    let service = b.service();
    let now = start_time();
    for (i, text) in ["7d", "30d", "60d", "90d"].into_iter().enumerate() {
        let mut token = new_token(&format!("preset-{i}"));
        token.expires = text.parse().unwrap();
        let record = service.create(&caller(), token).await.unwrap().record;
        let days: i64 = text.trim_end_matches('d').parse().unwrap();
        assert_eq!(record.expires_at, Some(now + Duration::days(days)));
    }
    let mut token = new_token("custom");
    token.expires = "2027-01-31T08:30:00Z".parse().unwrap();
    let minted = service.create(&caller(), token).await.unwrap();
    assert_eq!(
        minted.record.expires_at.unwrap().to_rfc3339(),
        "2027-01-31T08:30:00+00:00"
    );

    let mut token = new_token("forever");
    token.expires = Expiry::Never;
    let minted = service.create(&caller(), token).await.unwrap();
    assert_eq!(minted.record.expires_at, None);
    assert_eq!(minted.token.claims().exp, None);

    let mut token = new_token("past");
    token.expires = Expiry::At(now - Duration::seconds(1));
    let message = is_invalid(service.create(&caller(), token).await, "expires");
    assert!(message.contains("not in the future"), "{message}");
    for junk in ["15d", "30", "tomorrow", "2027-01-31", "-7d"] {
        let message = is_invalid(junk.parse::<Expiry>(), "expires");
        assert!(message.contains("7d, 30d, 60d, 90d, never"), "{message}");
    }
}

async fn a_maximum_lifetime_is_enforced(b: Backend) {
    let service = b.service().with_policy(Policy {
        max_lifetime: Some(Duration::days(60)),
        ..Policy::default()
    });
    let mut token = new_token("bounded");
    token.expires = Expiry::Never;
    let message = is_invalid(service.create(&caller(), token.clone()).await, "expires");
    assert!(message.contains("60 days"), "{message}");
    token.expires = Expiry::Days(90);
    is_invalid(service.create(&caller(), token.clone()).await, "expires");
    token.expires = Expiry::Days(60);
    let id = service.create(&caller(), token).await.unwrap().record.id;
    is_invalid(
        service.regenerate(&caller(), id, Expiry::Never, None).await,
        "expires",
    );
}

async fn invalid_or_oversized_permissions_are_refused(b: Backend) {
    let service = b.service();
    let mut token = new_token("empty-grants");
    token.permissions = tessera::Permissions::Grants(Vec::new());
    is_invalid(service.create(&caller(), token).await, "permissions");

    // 64 grants with long patterns cannot fit in 4 KiB.
    let grant = format!(
        r#"{{"resource": "devtron-app", "role": "view", "project": "{}", "environments": ["*"], "apps": ["*"]}}"#,
        "p".repeat(200)
    );
    let big = perms(&format!(r#"{{"grants": [{}]}}"#, vec![grant; 64].join(",")));
    let mut token = new_token("too-big");
    token.permissions = big.clone();
    match service.create(&caller(), token).await {
        Err(e @ LifecycleError::TooLarge(_)) => assert_eq!(e.code(), "token_too_large"),
        other => panic!("expected token_too_large, got {other:?}"),
    }
    // The same limit holds for an update, which must still fit the token it re-permissions.
    let id = service
        .create(&caller(), new_token("small"))
        .await
        .unwrap()
        .record
        .id;
    let update = TokenUpdate {
        description: None,
        permissions: Some(big),
        allowed_cidrs: None,
    };
    assert!(matches!(
        service.update(&caller(), id, update, None).await,
        Err(LifecycleError::TooLarge(_))
    ));
    assert!(service.get_by_name("too-big").await.unwrap().is_none());
}

async fn update_changes_permissions_without_a_new_token(b: Backend) {
    let service = b.service();
    let follower = b.follower().await;
    let mut token = new_token("scoped");
    token.permissions = trigger("payments");
    let minted = service.create(&caller(), token).await.unwrap();
    let payments = Access::DevtronApp {
        role: DevtronRole::Trigger,
        project: "payments",
        environment: "prod",
        app: "api",
    };
    let billing = Access::DevtronApp {
        role: DevtronRole::Trigger,
        project: "billing",
        environment: "prod",
        app: "api",
    };
    follower.sync().await;
    let verified = follower.verifier.verify(minted.token.expose()).unwrap();
    assert!(verified.allows(&payments) && !verified.allows(&billing));

    let update = TokenUpdate {
        description: Some("now billing".into()),
        permissions: Some(trigger("billing")),
        allowed_cidrs: None,
    };
    let record = service
        .update(&caller(), minted.record.id, update, Some(1))
        .await
        .unwrap();
    assert_eq!((record.version, record.revision), (1, 2));
    assert_eq!(record.description, "now billing");
    assert_eq!(record.permissions, trigger("billing"));

    assert_eq!(follower.code(minted.token.expose()).await, "ok");
    let verified = follower.verifier.verify(minted.token.expose()).unwrap();
    assert!(verified.permissions_updated());
    assert!(verified.allows(&billing) && !verified.allows(&payments));
    // Offline, the signed permissions still rule: the docs say so.
    let offline = b.offline_verifier().verify(minted.token.expose()).unwrap();
    assert!(offline.allows(&payments));
}

async fn networks_are_signed_stored_and_narrowed_through_the_state_map(b: Backend) {
    let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
    let cidrs = |list: &[&str]| CidrList::parse(list).unwrap();
    let service = b.service();
    let follower = b.follower().await;
    let mut token = new_token("bound");
    token.allowed_cidrs = cidrs(&["10.1.2.3/8"]);
    let minted = service.create(&caller(), token).await.unwrap();
    let id = minted.record.id;
    assert_eq!(minted.token.claims().cidr, Some(cidrs(&["10.0.0.0/8"])));
    let stored = service.get(id).await.unwrap();
    assert_eq!(stored.allowed_cidrs, cidrs(&["10.0.0.0/8"]));
    follower.sync().await;
    let verified = follower.verifier.verify(minted.token.expose()).unwrap();
    assert!(verified.allows_from(ip("10.9.9.9")) && !verified.allows_from(ip("192.0.2.1")));

    let narrow = TokenUpdate {
        allowed_cidrs: Some(cidrs(&["192.0.2.0/24"])),
        ..TokenUpdate::default()
    };
    let record = service.update(&caller(), id, narrow, None).await.unwrap();
    assert_eq!((record.version, record.revision), (1, 2));
    assert_eq!(
        service.get(id).await.unwrap().allowed_cidrs,
        record.allowed_cidrs
    );
    let entry = b.store.snapshot().await.unwrap().entries;
    let entry = &entry.iter().find(|(e, _)| *e == id).unwrap().1;
    assert_eq!(entry.cidr, Some(cidrs(&["192.0.2.0/24"])));
    assert_eq!(follower.code(minted.token.expose()).await, "ok");
    let verified = follower.verifier.verify(minted.token.expose()).unwrap();
    assert!(!verified.allows_from(ip("10.9.9.9")) && verified.allows_from(ip("192.0.2.1")));

    // A change of the permissions alone keeps the narrowed networks, for a new follower too.
    let repermission = TokenUpdate {
        permissions: Some(trigger("billing")),
        ..TokenUpdate::default()
    };
    service
        .update(&caller(), id, repermission, None)
        .await
        .unwrap();
    let late = b.follower().await;
    late.sync().await;
    let verified = late.verifier.verify(minted.token.expose()).unwrap();
    assert!(!verified.allows_from(ip("10.9.9.9")) && verified.allows_from(ip("192.0.2.1")));

    // Regenerating signs the current networks into the new version; the entry carries none.
    let second = service
        .regenerate(&caller(), id, Expiry::Days(7), None)
        .await
        .unwrap();
    assert_eq!(second.token.claims().cidr, Some(cidrs(&["192.0.2.0/24"])));
    assert!(!second.record.cidrs_updated);
    let entry = b.store.snapshot().await.unwrap().entries;
    assert_eq!(entry.iter().find(|(e, _)| *e == id).unwrap().1.cidr, None);
    let third = service
        .regenerate_with(
            &caller(),
            id,
            Expiry::Days(7),
            Some(CidrList::default()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(third.token.claims().cidr, None);
    assert!(service.get(id).await.unwrap().allowed_cidrs.is_empty());
}

async fn update_of_description_alone_leaves_the_state_map_alone(b: Backend) {
    let service = b.service();
    let minted = service
        .create(&caller(), new_super_admin("quiet"))
        .await
        .unwrap();
    let before = b.store.snapshot().await.unwrap();
    let update = TokenUpdate {
        description: Some("renamed purpose".into()),
        permissions: Some(super_admin()),
        allowed_cidrs: None,
    };
    let record = service
        .update(&caller(), minted.record.id, update, None)
        .await
        .unwrap();
    assert_eq!(record.revision, 2);
    assert_eq!(b.store.snapshot().await.unwrap(), before);
}

async fn regenerate_issues_a_new_version_and_the_old_one_stops(b: Backend) {
    let service = b.service();
    let follower = b.follower().await;
    let mut token = new_token("rotating");
    token.permissions = trigger("payments");
    let first = service.create(&caller(), token).await.unwrap();
    let id = first.record.id;
    let update = TokenUpdate {
        description: None,
        permissions: Some(trigger("billing")),
        allowed_cidrs: None,
    };
    service.update(&caller(), id, update, None).await.unwrap();

    b.clock.advance(Duration::hours(1));
    let second = service
        .regenerate(&caller(), id, Expiry::Days(60), Some(2))
        .await
        .unwrap();
    assert_eq!((second.record.version, second.record.revision), (2, 3));
    assert_eq!(
        second.record.expires_at,
        Some(start_time() + Duration::hours(1) + Duration::days(60))
    );
    // The new token carries the updated permissions itself.
    assert_eq!(second.token.claims().perm, trigger("billing"));
    assert_eq!(second.token.claims().ver, 2);

    assert_eq!(follower.code(first.token.expose()).await, "superseded");
    let verified = follower.verifier.verify(second.token.expose()).unwrap();
    assert_eq!(verified.version(), 2);
    assert!(!verified.permissions_updated());
    let snapshot = b.store.snapshot().await.unwrap();
    let (_, entry) = snapshot.entries.iter().find(|(e, _)| *e == id).unwrap();
    assert_eq!((entry.min_ver, entry.perm.is_none()), (2, true));
}

async fn delete_stops_every_version(b: Backend) {
    let service = b.service();
    let follower = b.follower().await;
    let first = service
        .create(&caller(), new_token("doomed"))
        .await
        .unwrap();
    let id = first.record.id;
    let second = service
        .regenerate(&caller(), id, Expiry::Days(7), None)
        .await
        .unwrap();
    let deleted = service.delete(&caller(), id, Some(2)).await.unwrap();
    assert_eq!(deleted.id, id);
    for token in [&first.token, &second.token] {
        assert_eq!(follower.code(token.expose()).await, "revoked");
    }
    assert!(matches!(
        service.get(id).await,
        Err(LifecycleError::NotFound(_))
    ));
    assert!(service.list().await.unwrap().is_empty());
}

async fn a_stale_expected_revision_is_a_conflict(b: Backend) {
    let service = b.service();
    let id = service
        .create(&caller(), new_token("contested"))
        .await
        .unwrap()
        .record
        .id;
    let update = || TokenUpdate {
        description: Some("changed".into()),
        permissions: None,
        allowed_cidrs: None,
    };
    service
        .update(&caller(), id, update(), Some(1))
        .await
        .unwrap();
    for result in [
        service
            .update(&caller(), id, update(), Some(1))
            .await
            .map(|_| ()),
        service
            .regenerate(&caller(), id, Expiry::Days(7), Some(1))
            .await
            .map(|_| ()),
        service.delete(&caller(), id, Some(1)).await.map(|_| ()),
    ] {
        match result {
            Err(e @ LifecycleError::Conflict { .. }) => {
                assert_eq!(e.code(), "conflict");
                assert!(matches!(
                    e,
                    LifecycleError::Conflict {
                        expected: 1,
                        actual: 2,
                        ..
                    }
                ));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    let record = service.get(id).await.unwrap();
    assert_eq!((record.revision, record.version), (2, 1));
}

async fn unknown_ids_are_not_found(b: Backend) {
    let service = b.service();
    let id = uuid::Uuid::new_v4();
    let update = TokenUpdate::default();
    let results = [
        service.get(id).await.map(|_| ()),
        service
            .update(&caller(), id, update, None)
            .await
            .map(|_| ()),
        service
            .regenerate(&caller(), id, Expiry::Days(7), None)
            .await
            .map(|_| ()),
        service.delete(&caller(), id, None).await.map(|_| ()),
    ];
    for result in results {
        assert!(matches!(result, Err(LifecycleError::NotFound(x)) if x == id));
    }
}

async fn the_audit_trail_records_actions_and_refusals_with_paging(b: Backend) {
    let service = b.service();
    let minted = service
        .create(&caller(), new_token("audited"))
        .await
        .unwrap();
    let id = minted.record.id;
    let _ = service.create(&caller(), new_token("audited")).await;
    service
        .update(&caller(), id, TokenUpdate::default(), None)
        .await
        .unwrap();
    service
        .regenerate(&caller(), id, Expiry::Days(7), None)
        .await
        .unwrap();
    service.delete(&caller(), id, None).await.unwrap();

    let all = service.audit(0, 100).await.unwrap();
    let summary: Vec<(Action, &str)> = all
        .iter()
        .map(|r| (r.entry.action, r.entry.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Action::Create, "ok"),
            (Action::Create, "name_taken"),
            (Action::Update, "ok"),
            (Action::Regenerate, "ok"),
            (Action::Delete, "ok"),
        ]
    );
    assert_eq!(
        all.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    for record in &all {
        assert_eq!(record.entry.actor.as_str(), "local:tester");
        assert_eq!(record.entry.target_name.as_deref(), Some("audited"));
        assert_eq!(record.entry.at, start_time());
    }
    assert_eq!(all[0].entry.target, Some(id));
    assert_eq!(all[1].entry.target, None);

    let page = service.audit(2, 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(service.audit(5, 10).await.unwrap().is_empty());
}

async fn every_state_change_gets_the_next_revision_in_the_feed(b: Backend) {
    let service = b.service();
    let store = &b.store;
    assert_eq!(store.snapshot().await.unwrap().revision, 0);
    let a = service
        .create(&caller(), new_token("feed-a"))
        .await
        .unwrap()
        .record
        .id;
    let c = service
        .create(&caller(), new_token("feed-c"))
        .await
        .unwrap()
        .record
        .id;
    // Creating changes no state: the signed claims are the whole truth.
    assert_eq!(store.snapshot().await.unwrap().revision, 0);
    let update = TokenUpdate {
        description: None,
        permissions: Some(trigger("x")),
        allowed_cidrs: None,
    };
    service.update(&caller(), a, update, None).await.unwrap();
    service
        .regenerate(&caller(), a, Expiry::Days(7), None)
        .await
        .unwrap();
    service.delete(&caller(), c, None).await.unwrap();

    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.revision, 3);
    let ids: BTreeSet<_> = snapshot.entries.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, BTreeSet::from([a, c]));

    let page = store
        .changes_since(FeedPosition::default(), std::time::Duration::ZERO)
        .await
        .unwrap();
    let FeedPage::Changes(changes) = page else {
        panic!("expected changes, got {page:?}");
    };
    let seen: Vec<_> = changes
        .iter()
        .map(|c| {
            (
                c.revision,
                c.id,
                c.entry
                    .as_ref()
                    .map(|e| (e.deleted, e.min_ver, e.perm.is_some())),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, a, Some((false, 0, true))),
            (2, a, Some((false, 2, false))),
            (3, c, Some((true, 0, false))),
        ]
    );
    // Every change has a tag of its own, and the snapshot names the newest one's.
    let tags: BTreeSet<u64> = changes.iter().map(|c| c.tag).collect();
    assert_eq!(tags.len(), 3);
    assert!(!tags.contains(&0));
    assert_eq!(snapshot.position(), changes[2].position());
    let page = store
        .changes_since(changes[1].position(), std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(page, FeedPage::Changes(c) if c.len() == 1 && c[0].revision == 3));
    // Nothing new: an empty page after about the wait.
    let started = std::time::Instant::now();
    let page = store
        .changes_since(changes[2].position(), std::time::Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(page, FeedPage::Changes(Vec::new()));
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    // A follower that is ahead of the store (a reset store) must reload.
    let ahead = FeedPosition {
        revision: 9,
        tag: changes[2].tag,
    };
    assert_eq!(
        store
            .changes_since(ahead, std::time::Duration::ZERO)
            .await
            .unwrap(),
        FeedPage::Reload
    );
}

/// A follower that saw revisions of another history (a failover that lost the newest writes,
/// a store restored from a backup, a store replaced by another) reloads, even once this store
/// has reached the same revision with other changes. Revision numbers alone cannot tell.
async fn a_follower_of_another_history_reloads_at_an_equal_revision(b: Backend) {
    let Some(other) = Backend::new(b.kind).await else {
        return;
    };
    let mut seen = Vec::new();
    for backend in [&b, &other] {
        let service = backend.service();
        for name in ["fork-a", "fork-b"] {
            let id = service
                .create(&caller(), new_token(name))
                .await
                .unwrap()
                .record
                .id;
            service.delete(&caller(), id, None).await.unwrap();
        }
        seen.push(backend.store.snapshot().await.unwrap().position());
    }
    let (there, here) = (seen[0], seen[1]);
    assert_eq!((there.revision, here.revision), (2, 2));
    assert_ne!(there.tag, here.tag);
    let store = &other.store;
    for wait in [
        std::time::Duration::ZERO,
        std::time::Duration::from_millis(100),
    ] {
        assert_eq!(
            store.changes_since(there, wait).await.unwrap(),
            FeedPage::Reload
        );
    }
    // Revision 1 of the other history: also not this store's.
    let first_there = match b
        .store
        .changes_since(FeedPosition::default(), std::time::Duration::ZERO)
        .await
        .unwrap()
    {
        FeedPage::Changes(changes) => changes[0].position(),
        page => panic!("{page:?}"),
    };
    assert_eq!(
        store
            .changes_since(first_there, std::time::Duration::ZERO)
            .await
            .unwrap(),
        FeedPage::Reload
    );
    // This store's own follower is served.
    assert_eq!(
        store
            .changes_since(here, std::time::Duration::ZERO)
            .await
            .unwrap(),
        FeedPage::Changes(Vec::new())
    );
    // A mirror that followed the first store, then finds the other in its place (as after a
    // failover), ends on the other's state: the tokens deleted there are refused.
    let source = Arc::new(Switch {
        stores: [b.store.clone(), other.store.clone()],
        to_other: AtomicBool::new(false),
    });
    let mirror = StateMirror::start(
        source.clone(),
        MirrorOptions {
            poll_wait: std::time::Duration::from_millis(20),
            ..MirrorOptions::default()
        },
    )
    .await
    .unwrap();
    let deleted_here: Vec<_> = other
        .store
        .snapshot()
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let state = mirror.state();
    assert!(state.lookup(&deleted_here[0]).unwrap().is_none());
    source.to_other.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    while deleted_here
        .iter()
        .any(|id| state.lookup(id).unwrap().is_none())
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the mirror never learned the other store's deletions"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(mirror.stats().reloads(), 2);
}

/// A state source that is one store, then another: a failover, seen from a follower.
struct Switch {
    stores: [Arc<AnyStore>; 2],
    to_other: AtomicBool,
}

impl Switch {
    fn now(&self) -> &AnyStore {
        &self.stores[usize::from(self.to_other.load(Ordering::SeqCst))]
    }
}

// Named in full: in scope, its methods would clash with `TokenStore`'s on the stores.
impl tessera::mirror::StateSource for Switch {
    async fn snapshot(&self) -> Result<StateSnapshot, StoreError> {
        TokenStore::snapshot(self.now()).await
    }

    async fn changes_since(
        &self,
        after: FeedPosition,
        wait: std::time::Duration,
    ) -> Result<FeedPage, StoreError> {
        TokenStore::changes_since(self.now(), after, wait).await
    }
}

async fn state_entries_are_dropped_only_when_nothing_they_restrict_can_pass(b: Backend) {
    let service = b.service();
    let margin = tessera::lifecycle::Policy::default().retention_margin;
    let now = start_time();

    // A 7-day token regenerated for 90 days: the min_ver entry matters until the 7-day
    // version expires.
    let rotated = service
        .create(&caller(), new_token("rotated"))
        .await
        .unwrap();
    let mut short = new_token("short");
    short.expires = Expiry::Days(7);
    let short = service.create(&caller(), short).await.unwrap();
    let mut forever = new_token("forever");
    forever.expires = Expiry::Never;
    let forever = service.create(&caller(), forever).await.unwrap();

    service
        .regenerate(&caller(), rotated.record.id, Expiry::Days(90), None)
        .await
        .unwrap();
    service
        .delete(&caller(), short.record.id, None)
        .await
        .unwrap();
    service
        .delete(&caller(), forever.record.id, None)
        .await
        .unwrap();
    assert_eq!(b.store.snapshot().await.unwrap().entries.len(), 3);

    assert_eq!(service.prune().await.unwrap(), 0);
    // Just before the short token's last second plus the margin: still kept.
    b.clock
        .set(now + Duration::days(7) + margin - Duration::seconds(1));
    assert_eq!(service.prune().await.unwrap(), 0);
    b.clock
        .set(now + Duration::days(7) + margin + Duration::seconds(1));
    assert_eq!(service.prune().await.unwrap(), 1);
    // The 30-day first version of "rotated" keeps its min_ver entry until it expires.
    b.clock
        .set(now + Duration::days(30) + margin + Duration::seconds(1));
    assert_eq!(service.prune().await.unwrap(), 1);
    let snapshot = b.store.snapshot().await.unwrap();
    // A deleted token that never expired is kept for ever.
    assert_eq!(
        snapshot
            .entries
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        [forever.record.id]
    );
    b.clock.set(now + Duration::days(3650));
    assert_eq!(service.prune().await.unwrap(), 0);
    // Each drop was a change with its own revision.
    assert_eq!(snapshot.revision, 5);
}

async fn a_new_follower_loads_the_snapshot(b: Backend) {
    let service = b.service();
    let minted = service.create(&caller(), new_token("early")).await.unwrap();
    service
        .delete(&caller(), minted.record.id, None)
        .await
        .unwrap();
    let follower = b.follower().await;
    assert_eq!(follower.mirror.state().revision(), 1);
    assert_eq!(follower.code(minted.token.expose()).await, "revoked");
    assert_eq!(follower.mirror.stats().reloads(), 1);
}

async fn concurrent_creates_of_one_name_have_one_winner(b: Backend) {
    let service = Arc::new(b.service());
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.create(&caller(), new_token("contested")).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => winners += 1,
            Err(LifecycleError::NameTaken(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(service.list().await.unwrap().len(), 1);
}

async fn concurrent_regenerates_leave_exactly_one_working_token(b: Backend) {
    let service = Arc::new(b.service());
    let follower = b.follower().await;
    let first = service.create(&caller(), new_token("hot")).await.unwrap();
    let id = first.record.id;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .regenerate(&caller(), id, Expiry::Days(30), None)
                    .await
            })
        })
        .collect();
    let mut minted = vec![first];
    for task in tasks {
        minted.push(task.await.unwrap().unwrap());
    }
    let versions: BTreeSet<u32> = minted.iter().map(|m| m.record.version).collect();
    assert_eq!(versions, (1..=17).collect());
    let record = service.get(id).await.unwrap();
    assert_eq!((record.version, record.revision), (17, 17));
    follower.sync().await;
    let working: Vec<u32> = minted
        .iter()
        .filter(|m| follower.verifier.verify(m.token.expose()).is_ok())
        .map(|m| m.record.version)
        .collect();
    assert_eq!(working, [17]);
}

async fn concurrent_updates_with_expected_revisions_lose_nothing(b: Backend) {
    let service = Arc::new(b.service());
    let id = service
        .create(&caller(), new_token("shared"))
        .await
        .unwrap()
        .record
        .id;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    // Read, modify, write back naming the revision read: the classic lost
                    // update, prevented by the conflict.
                    let record = service.get(id).await.unwrap();
                    let update = TokenUpdate {
                        description: Some(format!("{} [{i}]", record.description)),
                        permissions: None,
                        allowed_cidrs: None,
                    };
                    match service
                        .update(&caller(), id, update, Some(record.revision))
                        .await
                    {
                        Ok(_) => return conflicts,
                        Err(LifecycleError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let record = service.get(id).await.unwrap();
    for i in 0..12 {
        assert!(
            record.description.contains(&format!("[{i}]")),
            "{}",
            record.description
        );
    }
    assert_eq!(record.revision, 13);
    // The audit trail shows every refused attempt.
    let audit = service.audit(0, 1000).await.unwrap();
    let refused = audit
        .iter()
        .filter(|r| r.entry.outcome == "conflict")
        .count();
    assert_eq!(refused, conflicts);
}

/// Without `redis-server` on `PATH`, a Redis case skips with a message naming the binary, unless
/// `CI=true`, where it fails: checked by running one Redis case of this very binary with an
/// empty `PATH`.
#[cfg(feature = "redis")]
#[test]
fn a_missing_redis_server_skips_outside_ci_and_fails_under_ci() {
    let run = |ci: Option<&str>| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                &crate::support::test_name(module_path!(), "redis::names_follow_the_rules"),
                "--nocapture",
            ])
            .env("PATH", "/nonexistent");
        match ci {
            Some(value) => command.env("CI", value),
            None => command.env_remove("CI"),
        };
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        (output.status.success(), text)
    };
    let (passed, text) = run(None);
    assert!(passed, "{text}");
    assert!(
        text.contains("redis-server not found on PATH: skipping Redis tests"),
        "{text}"
    );
    assert!(text.contains("1 passed"), "{text}");
    let (passed, text) = run(Some("true"));
    assert!(!passed, "{text}");
    assert!(text.contains("redis-server not found on PATH"), "{text}");
}

async fn the_last_use_is_kept_apart_and_never_goes_back(b: Backend) {
    use tessera::model::Usage;
    let service = b.service();
    let minted = service.create(&caller(), new_token("used")).await.unwrap();
    let id = minted.record.id;
    assert_eq!(minted.record.last_used_at, None);
    let t = start_time();
    let usage = |secs: i64, from: &str, id| Usage {
        id,
        at: t + Duration::seconds(secs),
        from: Some(from.to_owned()),
    };
    let stranger = uuid::Uuid::new_v4();
    b.store
        .record_usage(vec![
            usage(5, "10.0.0.1", id),
            usage(5, "10.0.0.9", stranger),
        ])
        .await
        .unwrap();
    let record = service.get(id).await.unwrap();
    assert_eq!(record.last_used_at, Some(t + Duration::seconds(5)));
    assert_eq!(record.last_used_from.as_deref(), Some("10.0.0.1"));
    // An older use does not overwrite a newer one; a newer one does.
    b.store
        .record_usage(vec![usage(3, "10.0.0.2", id)])
        .await
        .unwrap();
    assert_eq!(
        service.get(id).await.unwrap().last_used_from.as_deref(),
        Some("10.0.0.1")
    );
    b.store
        .record_usage(vec![usage(9, "10.0.0.3", id)])
        .await
        .unwrap();
    let listed = service.list().await.unwrap();
    assert_eq!(listed[0].last_used_from.as_deref(), Some("10.0.0.3"));
    let by_name = service.get_by_name("used").await.unwrap().unwrap();
    assert_eq!(by_name.last_used_at, Some(t + Duration::seconds(9)));
    // Recording a use is no management change: no revision, no audit entry.
    assert_eq!(by_name.revision, 1);
    assert_eq!(service.audit(0, 10).await.unwrap().len(), 1);
    // The use goes with the token; a new token of the same name starts unused.
    service.delete(&caller(), id, None).await.unwrap();
    b.store
        .record_usage(vec![usage(20, "10.0.0.4", id)])
        .await
        .unwrap();
    let again = service.create(&caller(), new_token("used")).await.unwrap();
    assert_eq!(
        service.get(again.record.id).await.unwrap().last_used_at,
        None
    );
}

fn is_last_super_admin<T: std::fmt::Debug>(result: Result<T, LifecycleError>, id: uuid::Uuid) {
    match result {
        Err(LifecycleError::LastSuperAdmin(refused)) => assert_eq!(refused, id),
        other => panic!("expected last_super_admin for {id}, got {other:?}"),
    }
}

async fn the_last_live_super_admin_is_never_deleted_or_demoted(b: Backend) {
    let service = b.service();
    let a = service
        .create(&caller(), new_super_admin("admin-a"))
        .await
        .unwrap()
        .record
        .id;
    let demote = || TokenUpdate {
        description: None,
        permissions: Some(trigger("payments")),
        allowed_cidrs: None,
    };
    is_last_super_admin(service.delete(&caller(), a, None).await, a);
    is_last_super_admin(service.update(&caller(), a, demote(), None).await, a);
    // What leaves a live super-admin is allowed: a new version, a new description.
    service
        .regenerate(&caller(), a, Expiry::Days(7), None)
        .await
        .unwrap();
    let described = TokenUpdate {
        description: Some("still the one".into()),
        permissions: None,
        allowed_cidrs: None,
    };
    service.update(&caller(), a, described, None).await.unwrap();
    // The refusals are in the audit trail, under their own code.
    let refused: Vec<_> = service
        .audit(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.entry.outcome == "last_super_admin")
        .map(|e| e.entry.action)
        .collect();
    assert_eq!(refused, [Action::Delete, Action::Update]);

    // With a second one, either may go, but not both.
    let b_id = service
        .create(&caller(), new_super_admin("admin-b"))
        .await
        .unwrap()
        .record
        .id;
    service.update(&caller(), a, demote(), None).await.unwrap();
    is_last_super_admin(service.delete(&caller(), b_id, None).await, b_id);

    // An expired super-admin is not live: it keeps nobody in.
    let mut soon = new_super_admin("admin-soon");
    soon.expires = Expiry::Days(7);
    let c = service.create(&caller(), soon).await.unwrap().record.id;
    service.delete(&caller(), b_id, None).await.unwrap();
    b.clock.advance(Duration::days(8));
    let d = service
        .create(&caller(), new_super_admin("admin-d"))
        .await
        .unwrap()
        .record
        .id;
    is_last_super_admin(service.delete(&caller(), d, None).await, d);
    // And deleting the expired one takes nothing away.
    service.delete(&caller(), c, None).await.unwrap();
    let live: Vec<_> = service
        .live_super_admins()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(live, [d]);
}

async fn concurrent_deletes_of_the_last_two_super_admins_leave_one(b: Backend) {
    let service = Arc::new(b.service());
    let mut kept = None;
    for round in 0..10 {
        let mut ids = Vec::new();
        for i in 0..2 {
            let name = format!("admin-{round}-{i}");
            let minted = service.create(&caller(), new_super_admin(&name)).await;
            ids.push(minted.unwrap().record.id);
        }
        // The one the round before kept goes first, so these two are the last two.
        if let Some(old) = kept {
            service.delete(&caller(), old, None).await.unwrap();
        }
        let deletes: Vec<_> = ids
            .iter()
            .map(|&id| {
                let service = service.clone();
                tokio::spawn(async move { service.delete(&caller(), id, None).await })
            })
            .collect();
        let mut deleted = 0;
        for delete in deletes {
            match delete.await.unwrap() {
                Ok(_) => deleted += 1,
                Err(LifecycleError::LastSuperAdmin(_)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(deleted, 1, "round {round}: exactly one delete wins");
        let live = service.live_super_admins().await.unwrap();
        assert_eq!(live.len(), 1, "round {round}");
        kept = Some(live[0].id);
    }
}
