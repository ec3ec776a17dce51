//! The embedded store killed with SIGKILL in the middle of a write load, then reopened: it must
//! be consistent and hold every write that was acknowledged before the kill.
//!
//! The writer is this test binary itself, re-run as a child process with an environment
//! variable that turns `child_writer` into the load; it prints one line per acknowledged write,
//! flushed, so the parent knows exactly what was acknowledged when it kills the child.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use tessera::lifecycle::{Caller, Expiry, NewToken, TokenService, TokenUpdate};
use tessera::model::{Actor, FeedPage, FeedPosition};
use tessera::store::{EmbeddedStore, TokenStore};
use tessera::{Issuer, KeyRing, Permissions};
use uuid::Uuid;

const CHILD: &str = "TESSERA_CRASH_CHILD_DIR";

/// What the child acknowledged, one line each.
#[derive(Debug)]
enum Ack {
    Created(Uuid, String),
    Updated(Uuid, u64),
    Deleted(Uuid),
}

/// Lines of the load, as opposed to libtest's own output.
fn is_ack(line: &str) -> bool {
    ["created ", "updated ", "deleted "]
        .iter()
        .any(|p| line.starts_with(p))
}

fn parse(line: &str) -> Ack {
    let parts: Vec<&str> = line.split(' ').collect();
    let id = || Uuid::parse_str(parts[1]).unwrap();
    match parts[0] {
        "created" => Ack::Created(id(), parts[2].to_owned()),
        "updated" => Ack::Updated(id(), parts[2].parse().unwrap()),
        "deleted" => Ack::Deleted(id()),
        other => panic!("unexpected line {other:?}"),
    }
}

/// Whether the child deletes this token right after it makes it (every fifth of a writer's).
fn to_be_deleted(name: &str) -> bool {
    let index = name.rsplit('-').next().and_then(|i| i.parse::<u64>().ok());
    index.is_some_and(|i| i % 5 == 0)
}

/// The load, when run as the child: four writers creating tokens, updating every third and
/// deleting every fifth, until killed.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD) else {
        return; // Run as a normal test: nothing to do.
    };
    let dir = Path::new(&dir);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Arc::new(EmbeddedStore::open(dir.join("tessera.redb")).await.unwrap());
        let ring = Arc::new(KeyRing::load_dir(&dir.join("keys")).unwrap());
        let service = Arc::new(TokenService::new(store, Issuer::new(ring).unwrap()));
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let say = move |line: String| {
            let mut out = out.lock().unwrap();
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        };
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let service = service.clone();
                let say = say.clone();
                tokio::spawn(async move {
                    let caller = Caller {
                        actor: Actor::local("crash-test"),
                        from: None,
                    };
                    for i in 0.. {
                        let name = format!("w{w}-{i}");
                        let minted = service
                            .create(
                                &caller,
                                NewToken {
                                    name: name.clone(),
                                    description: String::new(),
                                    expires: Expiry::Days(30),
                                    permissions: Permissions::SuperAdmin,
                                    allowed_cidrs: Default::default(),
                                },
                            )
                            .await
                            .unwrap();
                        let id = minted.record.id;
                        say(format!("created {id} {name}"));
                        if i % 3 == 0 {
                            let update = TokenUpdate {
                                description: Some(format!("update {i}")),
                                permissions: None,
                                allowed_cidrs: None,
                            };
                            let record = service.update(&caller, id, update, None).await.unwrap();
                            say(format!("updated {id} {}", record.revision));
                        }
                        if i % 5 == 0 {
                            service.delete(&caller, id, None).await.unwrap();
                            say(format!("deleted {id}"));
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

#[test]
fn a_killed_writer_leaves_every_acknowledged_write_and_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    tessera::keys::generate_into(&dir.path().join("keys"), chrono::Utc::now()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::support::test_name(module_path!(), "child_writer"),
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    // Kill it well into the load, in the middle of whatever it is writing.
    while acks.len() < 300 {
        let line = lines.next().expect("the child keeps writing").unwrap();
        if is_ack(&line) {
            acks.push(parse(&line));
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines written before the kill are still in the pipe: they were acknowledged too.
    for line in lines.map_while(Result::ok) {
        if is_ack(&line) {
            acks.push(parse(&line));
        }
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path().join("tessera.redb"))
            .await
            .unwrap();
        let mut names = BTreeMap::new();
        let mut min_revision = BTreeMap::new();
        let mut deleted = BTreeSet::new();
        for ack in &acks {
            match ack {
                Ack::Created(id, name) => {
                    names.insert(*id, name.clone());
                    min_revision.insert(*id, 1);
                }
                Ack::Updated(id, revision) => {
                    min_revision.insert(*id, *revision);
                }
                Ack::Deleted(id) => {
                    deleted.insert(*id);
                }
            }
        }
        let snapshot = store.snapshot().await.unwrap();
        let restricted: BTreeSet<Uuid> = snapshot.entries.iter().map(|(id, _)| *id).collect();
        for (id, name) in &names {
            let record = store.get(*id).await.unwrap();
            // The writer deletes every fifth token right after it is made: killed between
            // that delete's commit and its acknowledgement, the token is gone unacknowledged.
            let deleted_unacknowledged = record.is_none() && to_be_deleted(name);
            if deleted.contains(id) || deleted_unacknowledged {
                assert!(record.is_none(), "{name} was deleted");
                assert!(store.get_by_name(name).await.unwrap().is_none());
                assert!(
                    restricted.contains(id),
                    "{name}'s deletion is in the state map"
                );
                continue;
            }
            let record = record.unwrap_or_else(|| panic!("acknowledged {name} is missing"));
            assert!(record.revision >= min_revision[id], "{name} lost an update");
            assert_eq!(
                store.get_by_name(name).await.unwrap().as_ref(),
                Some(&record)
            );
        }
        // Whatever else got in before the kill is whole: every record is reachable by its
        // name, and the feed runs from 1 to the snapshot's revision without a gap.
        for record in store.list().await.unwrap() {
            let by_name = store.get_by_name(&record.name).await.unwrap();
            assert_eq!(by_name.map(|r| r.id), Some(record.id));
        }
        let mut revisions = Vec::new();
        let mut after = FeedPosition::default();
        loop {
            let page = store
                .changes_since(after, std::time::Duration::ZERO)
                .await
                .unwrap();
            let FeedPage::Changes(changes) = page else {
                panic!("the feed holds every change after {after:?}");
            };
            let Some(last) = changes.last() else {
                break;
            };
            after = last.position();
            revisions.extend(changes.iter().map(|c| c.revision));
        }
        assert_eq!(revisions, (1..=snapshot.revision).collect::<Vec<_>>());
        // The snapshot names the newest change, tag included.
        assert_eq!(after, snapshot.position());
        eprintln!(
            "{} acknowledged writes before SIGKILL; {} records, state revision {}",
            acks.len(),
            store.list().await.unwrap().len(),
            snapshot.revision
        );
    });
}
