//! The lifecycle on a store, for the tests that run it without HTTP: a key ring, a manual
//! clock, a store of either backend (each test gets a fresh one), a token service, a verifier
//! that follows the store's feed through a state mirror.

#[cfg(feature = "redis")]
use super::redis_server::RedisServer;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;
use std::time::Instant;
use tessera::lifecycle::{Caller, Expiry, NewToken, TokenService};
use tessera::mirror::{MirrorOptions, StateMirror};
use tessera::model::{FeedPage, FeedPosition};
use tessera::store::{AnyStore, TokenStore};
use tessera::{keys, Issuer, KeyRing, ManualClock, Permissions, Verifier};

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Embedded,
    Redis,
}

/// Everything a lifecycle test needs, kept alive together.
pub struct Backend {
    pub kind: Kind,
    pub store: Arc<AnyStore>,
    pub ring: Arc<KeyRing>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    #[cfg(feature = "redis")]
    pub redis: Option<RedisServer>,
}

/// A fixed starting instant, so expiry arithmetic in assertions is exact.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

impl Backend {
    /// A fresh backend of `kind`, or `None` when Redis is wanted but `redis-server` is missing
    /// outside CI (the harness prints why).
    pub async fn new(kind: Kind) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        keys::generate_into(&dir.path().join("keys"), Utc::now()).unwrap();
        let ring = Arc::new(KeyRing::load_dir(&dir.path().join("keys")).unwrap());
        #[cfg(feature = "redis")]
        let mut redis = None;
        let store = match kind {
            Kind::Embedded => {
                let path = dir.path().join("data/tessera.redb");
                AnyStore::open(&format!("file:{}", path.display()))
                    .await
                    .unwrap()
            }
            #[cfg(feature = "redis")]
            Kind::Redis => {
                let server = RedisServer::start_or_skip()?;
                let store = AnyStore::open(&server.url()).await.unwrap();
                redis = Some(server);
                store
            }
            #[cfg(not(feature = "redis"))]
            Kind::Redis => {
                eprintln!("this build has no Redis support (feature `redis`): skipping");
                return None;
            }
        };
        Some(Self {
            kind,
            store: Arc::new(store),
            ring,
            clock: Arc::new(ManualClock::new(start_time())),
            dir,
            #[cfg(feature = "redis")]
            redis,
        })
    }

    pub fn service(&self) -> TokenService<AnyStore> {
        TokenService::new(self.store.clone(), Issuer::new(self.ring.clone()).unwrap())
            .with_clock(self.clock.clone())
    }

    pub fn offline_verifier(&self) -> Verifier {
        Verifier::new(self.ring.clone()).with_clock(self.clock.clone())
    }

    /// A verifier following the store's state feed.
    pub async fn follower(&self) -> Follower {
        let mirror = StateMirror::start(
            self.store.clone(),
            MirrorOptions {
                poll_wait: std::time::Duration::from_millis(200),
                ..MirrorOptions::default()
            },
        )
        .await
        .unwrap();
        let verifier = Verifier::new(self.ring.clone())
            .with_clock(self.clock.clone())
            .with_state(mirror.state());
        Follower {
            mirror,
            verifier,
            store: self.store.clone(),
        }
    }
}

/// A verifier with its mirror.
pub struct Follower {
    pub mirror: StateMirror,
    pub verifier: Verifier,
    store: Arc<AnyStore>,
}

impl Follower {
    /// Wait until the mirror has applied everything the store has committed.
    pub async fn sync(&self) {
        let target = self.store.snapshot().await.unwrap().revision;
        let started = Instant::now();
        while self.mirror.state().revision() < target {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "the mirror did not reach revision {target} (at {})",
                self.mirror.state().revision()
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// The reason code a token gets after syncing, or `ok`.
    pub async fn code(&self, token: &str) -> &'static str {
        self.sync().await;
        match self.verifier.verify(token) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }
}

pub fn super_admin() -> Permissions {
    Permissions::SuperAdmin
}

pub fn perms(json: &str) -> Permissions {
    serde_json::from_str(json).unwrap()
}

pub fn trigger(project: &str) -> Permissions {
    perms(&format!(
        r#"{{"grants": [{{"resource": "devtron-app", "role": "trigger", "project": "{project}",
            "environments": ["*"], "apps": ["*"]}}]}}"#
    ))
}

/// A token with a devtron-app grant: not a super-admin, so deleting it is never refused as the
/// last one.
pub fn new_token(name: &str) -> NewToken {
    NewToken {
        name: name.to_owned(),
        description: format!("{name} description"),
        expires: Expiry::Days(30),
        permissions: trigger("payments"),
        allowed_cidrs: Default::default(),
    }
}

/// A super-admin token.
pub fn new_super_admin(name: &str) -> NewToken {
    NewToken {
        permissions: super_admin(),
        allowed_cidrs: Default::default(),
        ..new_token(name)
    }
}

pub fn caller() -> Caller {
    Caller {
        actor: tessera::model::Actor::local("tester"),
        from: None,
    }
}

pub fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// Where a follower that applied every change up to `revision` stands: the revision and the
/// tag of its change, read from the store's feed. A revision the feed no longer holds gets tag
/// 0 (which the store will not recognize).
pub async fn position(store: &impl TokenStore, revision: u64) -> FeedPosition {
    let mut at = FeedPosition::default();
    while at.revision < revision {
        match store.changes_since(at, std::time::Duration::ZERO).await {
            Ok(FeedPage::Changes(changes)) if !changes.is_empty() => {
                match changes.iter().find(|c| c.revision == revision) {
                    Some(change) => return change.position(),
                    None => at = changes.last().unwrap().position(),
                }
            }
            _ => break,
        }
    }
    FeedPosition { revision, tag: 0 }
}

/// One test per backend, each with a fresh [`Backend`]: `conformance!(test_a, test_b)` in a
/// module that has `async fn test_a(b: Backend)` and so on, and `Backend`, `Kind` in scope.
#[allow(unused_macros)] // Only the stores tests use it.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let backend = super::Backend::new(super::Kind::Embedded).await.unwrap();
                    super::$test(backend).await;
                }
            )*
        }
        #[cfg(feature = "redis")]
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(backend) = super::Backend::new(super::Kind::Redis).await else {
                        return;
                    };
                    super::$test(backend).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use conformance;
