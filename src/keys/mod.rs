//! Signing and verifying keys: PASERK encoding, key ids, key files and the key ring.
//!
//! Keys are Ed25519 pairs kept as PASERK strings (`k4.secret`, `k4.public`), one key per file
//! in a key folder, named `<created>-<id prefix>.k4.secret` / `.k4.public`. The creation time in
//! the name orders the ring. A status file in the folder ([`status`]) says which key signs,
//! which are staged (verify, never sign) and which are retired (neither); without it, the
//! newest key with a secret half signs and every key verifies. Key ids are PASERK `k4.pid`
//! strings, which is what a token's footer carries. [`LiveRing`] lets a running process swap
//! in a reloaded ring.
//!
//! Secret keys print as `SecretKey(..)`, are zeroized on drop (by `pasetors`), and are read from
//! files only when no one else can read them.

use crate::ed25519::TabledKey;
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use ed25519_dalek::VerifyingKey;
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::version4::V4;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use zeroize::Zeroizing;

mod folder;
mod live;
mod rotation;
pub mod status;

pub use folder::{generate_into, GeneratedKey};
pub use live::LiveRing;
pub use rotation::{activate, resolve_kid, retirable, retire, rotate_into};
pub use status::{Marked, StatusFile, STATUS_FILE};

/// Why a key operation failed. Messages name the file and say what to do; none contains key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key folder does not exist.
    #[error("key folder {} does not exist; create a key with `tessera keys generate --keys {}`", .0.display(), .0.display())]
    NoFolder(PathBuf),
    /// The key folder holds no keys.
    #[error("key folder {} holds no keys; create one with `tessera keys generate --keys {}`", .0.display(), .0.display())]
    Empty(PathBuf),
    /// Signing was asked of a ring with public keys only.
    #[error(
        "no secret key is loaded, so nothing can sign; create one with `tessera keys generate`"
    )]
    NoSigningKey,
    /// A secret key file that others may read.
    #[error("secret key file {} can be read by group or others (mode {mode:o}); fix it with `chmod 600 {}`", .path.display(), .path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key folder or file that someone other than its owner could have changed, or that is
    /// not what it seems (a symbolic link, not a regular file).
    #[error("key {what} {}: {problem}", .path.display())]
    Unsafe {
        /// `folder` or `file`.
        what: &'static str,
        /// The folder or file.
        path: PathBuf,
        /// What is wrong, and the command that fixes it.
        problem: String,
    },
    /// A public key under which no signature proves anything: of small order, or encoded
    /// other than canonically (two spellings of one point).
    #[error("a k4.public key that is {0}: no token signed under it can be trusted")]
    WeakPublicKey(&'static str),
    /// A file that does not hold what its name says.
    #[error("key file {}: {reason}", .path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, without key material.
        reason: String,
    },
    /// A PASERK string that is not a valid key of the expected type.
    #[error("not a valid {expected} key")]
    BadPaserk {
        /// The type expected, e.g. `k4.public`.
        expected: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The system's random source failed.
    #[error("key generation failed")]
    Generate,
    /// No key in the folder has this id (or id prefix).
    #[error("no key {kid} in {}; see `tessera keys list --keys {}`", .dir.display(), .dir.display())]
    NoSuchKey {
        /// The id or prefix asked for.
        kid: String,
        /// The key folder.
        dir: PathBuf,
    },
    /// A key operation the rotation rules refuse; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
}

fn bad_paserk(expected: &'static str) -> KeyError {
    KeyError::BadPaserk { expected }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A key id: the PASERK `k4.pid` of a public key. Shared, not copied: every token a verifier
/// checks keeps the id of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Arc<str>);

impl KeyId {
    /// The id as its PASERK string, `k4.pid.` followed by 44 base64url characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Ed25519 public key for v4.public tokens, with its id and a decompressed form ready for
/// fast verification.
#[derive(Clone)]
pub struct PublicKey {
    key: AsymmetricPublicKey<V4>,
    verifying: VerifyingKey,
    id: KeyId,
    /// The key's table for signature checks, built by the first check and shared by clones:
    /// a key that only signs or is listed never pays for it.
    tabled: Arc<OnceLock<TabledKey>>,
}

impl PublicKey {
    /// Parse a `k4.public.` PASERK string. Other types, versions and lengths are refused, and so
    /// is a value that is not a point on the curve.
    pub fn from_paserk(text: &str) -> Result<Self, KeyError> {
        let key = AsymmetricPublicKey::<V4>::try_from(text.trim())
            .map_err(|_| bad_paserk("k4.public"))?;
        Self::from_pasetors(key)
    }

    /// Build from raw key bytes (32 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::from_pasetors(pasetors_public(bytes)?)
    }

    fn from_pasetors(key: AsymmetricPublicKey<V4>) -> Result<Self, KeyError> {
        let point = <&[u8; 32]>::try_from(key.as_bytes())
            .ok()
            .and_then(|bytes| VerifyingKey::from_bytes(bytes).ok())
            .ok_or_else(|| bad_paserk("k4.public"))?;
        // Without these, such a key would load silently and every token under it would fail
        // as `bad_signature`, with no other sign of why.
        if point.is_weak() {
            return Err(KeyError::WeakPublicKey("of small order"));
        }
        if point.to_edwards().compress().as_bytes()[..] != *key.as_bytes() {
            return Err(KeyError::WeakPublicKey("not canonically encoded"));
        }
        let id = pid(&key);
        Ok(Self {
            key,
            verifying: point,
            id,
            tabled: Arc::default(),
        })
    }

    /// The key id (`k4.pid`).
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The `k4.public.` PASERK string.
    pub fn to_paserk(&self) -> String {
        paserk_string(&self.key)
    }

    /// The raw 32 key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.key.as_bytes()
    }

    /// The key in `pasetors`' type, for callers that cross-check with it.
    pub fn as_pasetors(&self) -> &AsymmetricPublicKey<V4> {
        &self.key
    }

    /// The decompressed key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The key with its table, ready for `paseto::open`; the first call builds the
    /// table (a fraction of a millisecond).
    pub fn tabled(&self) -> &TabledKey {
        self.tabled.get_or_init(|| TabledKey::new(&self.verifying))
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.id.0).finish()
    }
}

/// An Ed25519 secret key. Its `Debug` shows nothing, it is zeroized on drop, and it leaves the
/// process only through [`SecretKey::to_paserk`].
pub struct SecretKey(AsymmetricSecretKey<V4>);

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = AsymmetricKeyPair::<V4>::generate().map_err(|_| KeyError::Generate)?;
        Ok(Self(pair.secret))
    }

    /// Parse a `k4.secret.` PASERK string (see [`decode_secret_paserk`]).
    pub fn from_paserk(text: &str) -> Result<Self, KeyError> {
        Self::from_bytes(&decode_secret_paserk(text)?)
    }

    /// Build from raw key bytes: 64 bytes, the seed then the public key, which must match.
    ///
    /// An all-zero seed is refused: its secret is public knowledge (and `pasetors` would panic
    /// on it inside `ed25519-compact`; a key file must never be able to crash the process).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        check_secret_bytes(bytes)?;
        if bytes[..32].iter().all(|&b| b == 0) {
            return Err(bad_paserk(
                "k4.secret with a random seed (this one is all zeros)",
            ));
        }
        AsymmetricSecretKey::<V4>::from(bytes)
            .map(Self)
            .map_err(|_| bad_paserk("k4.secret"))
    }

    /// The `k4.secret.` PASERK string, in memory that is wiped when dropped.
    pub fn to_paserk(&self) -> Zeroizing<String> {
        secret_text(self.0.as_bytes())
    }

    /// The key id (`k4.sid`) of this secret key.
    pub fn id(&self) -> KeyId {
        KeyId(paserk_string(&Id::from(&self.0)).into())
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        // The secret key's last 32 bytes are its public key, checked against the seed on parse.
        PublicKey::from_bytes(&self.0.as_bytes()[32..]).expect("public half of a parsed secret key")
    }

    pub(crate) fn as_pasetors(&self) -> &AsymmetricSecretKey<V4> {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The PASERK `k4.public` string of 32 raw key bytes. Unlike [`PublicKey::from_bytes`], this
/// does not ask for a valid curve point: PASERK is an encoding, and its test vectors include
/// bytes that are not points.
pub fn public_paserk(raw: &[u8]) -> Result<String, KeyError> {
    Ok(paserk_string(&pasetors_public(raw)?))
}

/// The key id (`k4.pid`) of 32 raw public key bytes; see [`public_paserk`].
pub fn public_key_id(raw: &[u8]) -> Result<KeyId, KeyError> {
    Ok(pid(&pasetors_public(raw)?))
}

/// Raw bytes as `pasetors`' public key type, which checks the length only.
fn pasetors_public(raw: &[u8]) -> Result<AsymmetricPublicKey<V4>, KeyError> {
    AsymmetricPublicKey::<V4>::from(raw).map_err(|_| bad_paserk("k4.public"))
}

fn pid(key: &AsymmetricPublicKey<V4>) -> KeyId {
    KeyId(paserk_string(&Id::from(key)).into())
}

/// Decode a `k4.secret.` PASERK string into its 64 raw bytes (seed, then public key), checking
/// the length and that the public half belongs to the seed. This is the PASERK codec alone;
/// [`SecretKey`] is stricter still.
pub fn decode_secret_paserk(text: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bad = || bad_paserk("k4.secret");
    let b64 = text.trim().strip_prefix("k4.secret.").ok_or_else(bad)?;
    let raw = Zeroizing::new(crate::base64url::decode(b64).map_err(|_| bad())?);
    check_secret_bytes(&raw)?;
    Ok(raw)
}

/// Encode 64 raw secret key bytes as a `k4.secret.` PASERK string, with the checks of
/// [`decode_secret_paserk`].
pub fn secret_paserk(raw: &[u8]) -> Result<Zeroizing<String>, KeyError> {
    check_secret_bytes(raw)?;
    Ok(secret_text(raw))
}

/// `k4.secret.` and the base64url of `raw`, built in zeroized buffers of exactly the right
/// size: a growing `String` would leave copies of the key in memory it freed.
fn secret_text(raw: &[u8]) -> Zeroizing<String> {
    const PREFIX: &str = "k4.secret.";
    let mut encoded = Zeroizing::new(vec![0u8; crate::base64url::encoded_len(raw.len())]);
    let text = crate::base64url::encode_into(raw, &mut encoded);
    let mut out = Zeroizing::new(String::with_capacity(PREFIX.len() + text.len()));
    out.push_str(PREFIX);
    out.push_str(text);
    out
}

fn check_secret_bytes(bytes: &[u8]) -> Result<(), KeyError> {
    let bad = || bad_paserk("k4.secret");
    let (seed, public) = bytes
        .split_first_chunk::<32>()
        .filter(|(_, public)| public.len() == 32)
        .ok_or_else(bad)?;
    // ed25519-dalek derives the public key for any seed, zero included.
    let derived = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key();
    if derived.as_bytes() != public {
        return Err(bad());
    }
    Ok(())
}

fn paserk_string(value: &impl FormatAsPaserk) -> String {
    let mut out = String::new();
    value
        .fmt(&mut out)
        .expect("formatting into a String cannot fail");
    out
}

/// One key of a ring: its public half, its secret half when this process may sign with it,
/// and when it was created.
#[derive(Debug)]
pub struct RingKey {
    /// The public key.
    pub public: PublicKey,
    /// The secret key, when loaded.
    pub secret: Option<SecretKey>,
    /// When the key was created (from its file name).
    pub created: DateTime<Utc>,
}

impl RingKey {
    /// A key that can sign, created at `created`.
    pub fn with_secret(secret: SecretKey, created: DateTime<Utc>) -> Self {
        Self {
            public: secret.public_key(),
            secret: Some(secret),
            created,
        }
    }
}

/// What a key in a ring is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// New tokens are signed with it: the key the status file marks `signing`, or without a
    /// status file the newest key with a secret half.
    Signing,
    /// A secret is loaded but another key signs; it verifies.
    Active,
    /// Only the public half is loaded: it verifies.
    VerifyOnly,
    /// Made by `tessera keys rotate`: it verifies and is published, but does not sign until
    /// `tessera keys activate` makes it the signing key.
    Staged,
    /// Retired by `tessera keys retire`: it no longer verifies and is not published.
    Retired,
}

impl KeyStatus {
    /// Every status, for tables and documentation.
    pub const ALL: [KeyStatus; 5] = [
        KeyStatus::Staged,
        KeyStatus::Signing,
        KeyStatus::Active,
        KeyStatus::VerifyOnly,
        KeyStatus::Retired,
    ];
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Signing => "signing",
            Self::Active => "active",
            Self::VerifyOnly => "verify-only",
            Self::Staged => "staged",
            Self::Retired => "retired",
        })
    }
}

/// The keys a process holds: every key but a retired one verifies; the key the status file
/// marks `signing` signs (without a status file, the newest key with a secret half).
///
/// A ring is immutable once built; to rotate, build a new one from the key folder and swap it
/// into the [`LiveRing`] the verifier and issuer share.
#[derive(Debug, Default)]
pub struct KeyRing {
    // Sorted oldest first. Lookups scan: rings hold a handful of keys, and a scan over a few
    // 51-byte ids beats hashing one. Retired keys are not here.
    keys: Vec<RingKey>,
    /// The folder's status file, when it has one.
    marks: Option<StatusFile>,
    /// Keys the status file retired whose files are still in the folder (public half only).
    retired: Vec<RingKey>,
}

impl KeyRing {
    /// A ring of the given keys. Two entries with the same id are merged (a secret half wins).
    pub fn new(keys: impl IntoIterator<Item = RingKey>) -> Self {
        let mut ring = Self::default();
        for key in keys {
            ring.insert(key);
        }
        ring
    }

    /// A ring holding one public key, for offline verification.
    pub fn from_public(public: PublicKey) -> Self {
        Self::new([RingKey {
            public,
            secret: None,
            created: DateTime::<Utc>::UNIX_EPOCH,
        }])
    }

    fn insert(&mut self, key: RingKey) {
        if let Some(existing) = self.keys.iter_mut().find(|k| k.public == key.public) {
            if existing.secret.is_none() {
                existing.secret = key.secret;
            }
            existing.created = existing.created.min(key.created);
        } else {
            self.keys.push(key);
        }
        self.keys
            .sort_by(|a, b| (a.created, &a.public.id).cmp(&(b.created, &b.public.id)));
    }

    /// The public key with this id, if the ring holds it.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.get_bytes(kid.as_bytes())
    }

    /// [`KeyRing::get`] for an id not yet known to be text.
    pub(crate) fn get_bytes(&self, kid: &[u8]) -> Option<&PublicKey> {
        self.keys
            .iter()
            .map(|k| &k.public)
            .find(|p| p.id.0.as_bytes() == kid)
    }

    /// The key new tokens are signed with: the one the status file marks `signing` when its
    /// secret half is here; with a status file that marks none, the newest key with a secret
    /// half that is not staged; without a status file, the newest key with a secret half.
    pub fn signing(&self) -> Option<&RingKey> {
        let mut with_secret = self.keys.iter().rev().filter(|k| k.secret.is_some());
        match &self.marks {
            None => with_secret.next(),
            Some(marks) => match marks.signing() {
                Some(kid) => with_secret.find(|k| k.public.id == *kid),
                None => with_secret.find(|k| marks.get(&k.public.id) != Some(Marked::Staged)),
            },
        }
    }

    /// Every key that verifies with its status, oldest first. Retired keys are not among
    /// them (see [`KeyRing::retired`]).
    pub fn iter(&self) -> impl Iterator<Item = (&RingKey, KeyStatus)> {
        let signer = self.signing().map(|k| k.public.id.clone());
        self.keys.iter().map(move |k| {
            let marked = self.marks.as_ref().and_then(|m| m.get(&k.public.id));
            let status = match (marked, &k.secret, &signer) {
                (Some(Marked::Staged), _, _) => KeyStatus::Staged,
                // What the folder says, even where only the public half is (an edge): the
                // status is the fleet's.
                (Some(Marked::Signing), _, _) => KeyStatus::Signing,
                (Some(Marked::Active), _, _) => KeyStatus::Active,
                (_, Some(_), Some(s)) if *s == k.public.id => KeyStatus::Signing,
                (_, Some(_), _) => KeyStatus::Active,
                (_, None, _) => KeyStatus::VerifyOnly,
            };
            (k, status)
        })
    }

    /// The retired keys whose files are still in the folder, oldest first: listed, never
    /// trusted.
    pub fn retired(&self) -> impl Iterator<Item = &RingKey> {
        self.retired.iter()
    }

    /// Whether the status file retired `kid` (for the detail of a refusal).
    pub fn is_retired(&self, kid: &str) -> bool {
        self.marks.as_ref().is_some_and(|m| {
            m.iter()
                .any(|(k, marked)| marked == Marked::Retired && k.as_str() == kid)
        })
    }

    /// The folder's status file, when it has one.
    pub fn status_file(&self) -> Option<&StatusFile> {
        self.marks.as_ref()
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn secret_keys_never_print() {
        let pair = AsymmetricKeyPair::<V4>::generate().unwrap();
        let secret = SecretKey(pair.secret);
        let paserk = secret.to_paserk();
        let printed = format!(
            "{secret:?} {:?}",
            RingKey {
                public: secret.public_key(),
                secret: Some(SecretKey::from_paserk(&paserk).unwrap()),
                created: Utc::now(),
            }
        );
        assert!(!printed.contains(&paserk[10..30]), "{printed}");
        assert!(printed.contains("SecretKey(..)"));
    }

    #[test]
    fn generated_keys_load_back_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let made = generate_into(&keys, at("2026-01-01T00:00:00Z")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&made.secret_path), 0o600);
        assert_eq!(mode(&keys), 0o700);
        let ring = KeyRing::load_dir(&keys).unwrap();
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.signing().unwrap().public.id(), &made.id);
        assert!(ring.get(made.id.as_str()).is_some());
    }

    #[test]
    fn the_newest_secret_key_signs_and_all_keys_verify() {
        let dir = tempfile::tempdir().unwrap();
        let old = generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        let new = generate_into(dir.path(), at("2026-06-01T00:00:00Z")).unwrap();
        let pub_only = generate_into(dir.path(), at("2026-09-01T00:00:00Z")).unwrap();
        fs::remove_file(&pub_only.secret_path).unwrap();
        let ring = KeyRing::load_dir(dir.path()).unwrap();
        let statuses: Vec<_> = ring
            .iter()
            .map(|(k, s)| (k.public.id().clone(), s))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (old.id.clone(), KeyStatus::Active),
                (new.id.clone(), KeyStatus::Signing),
                (pub_only.id.clone(), KeyStatus::VerifyOnly),
            ]
        );
        for id in [&old.id, &new.id, &pub_only.id] {
            assert!(ring.get(id.as_str()).is_some());
        }
    }

    #[test]
    fn a_key_generated_in_the_same_second_still_becomes_the_signer() {
        let dir = tempfile::tempdir().unwrap();
        let same = at("2026-01-01T00:00:00Z");
        let mut last = None;
        for _ in 0..5 {
            let made = generate_into(dir.path(), same).unwrap();
            let ring = KeyRing::load_dir(dir.path()).unwrap();
            assert_eq!(ring.signing().unwrap().public.id(), &made.id);
            last = Some(made.id);
        }
        assert_eq!(KeyRing::load_dir(dir.path()).unwrap().len(), 5);
        assert!(last.is_some());
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let made = generate_into(dir.path(), Utc::now()).unwrap();
        fs::set_permissions(&made.secret_path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = KeyRing::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("640"), "{err}");
    }

    #[test]
    fn missing_empty_and_mislabeled_folders_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = KeyRing::load_dir(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("tessera keys generate"));
        let empty = KeyRing::load_dir(dir.path()).unwrap_err();
        assert!(matches!(empty, KeyError::Empty(_)));

        let a = generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        let b = generate_into(dir.path(), at("2026-02-01T00:00:00Z")).unwrap();
        fs::copy(&b.public_path, &a.public_path).unwrap();
        let err = KeyRing::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("its name says otherwise"), "{err}");
    }

    #[test]
    fn garbage_in_a_key_file_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("20260101T000000Z-abcdefgh.k4.public");
        fs::write(&path, "k4.public.c2VjcmV0LXN0dWZm").unwrap();
        let err = KeyRing::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not hold a valid k4.public key"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
    }
}
