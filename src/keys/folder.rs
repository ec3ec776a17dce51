//! The key folder: reading it with the checks that keep a local user from planting a key, and
//! writing new key pairs into it.

use super::*;

impl KeyRing {
    /// Load every key file in `dir`, and its status file when it has one. Secret files must
    /// not be readable by group or others. A folder with no keys is an error: a verifier
    /// without keys can only refuse. Keys the status file retired are kept apart (listed,
    /// never trusted); a status file that marks as signing a key no file holds is an error.
    pub fn load_dir(dir: &Path) -> Result<Self, KeyError> {
        match open_checked(dir, Kind::Folder) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::NoFolder(dir.to_path_buf()))
            }
            other => drop(other?),
        }
        let marks = StatusFile::read(dir)?;
        let entries = fs::read_dir(dir).map_err(io_err(dir))?;
        let mut ring = Self::default();
        for entry in entries {
            let path = entry.map_err(io_err(dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(stem) = name.strip_suffix(".k4.secret") {
                let created = created_from_stem(&path, stem)?;
                let text = read_checked(&path, Kind::Secret)?;
                let secret = std::str::from_utf8(&text)
                    .ok()
                    .and_then(|text| SecretKey::from_paserk(text).ok())
                    .ok_or_else(|| KeyError::BadFile {
                        path: path.clone(),
                        reason: "does not hold a valid k4.secret key".into(),
                    })?;
                let public = secret.public_key();
                check_stem_matches(&path, stem, &public)?;
                ring.insert(RingKey {
                    public,
                    secret: Some(secret),
                    created,
                });
            } else if let Some(stem) = name.strip_suffix(".k4.public") {
                let created = created_from_stem(&path, stem)?;
                let text = read_checked(&path, Kind::Public)?;
                let public =
                    PublicKey::from_paserk(&String::from_utf8_lossy(&text)).map_err(|e| {
                        KeyError::BadFile {
                            path: path.clone(),
                            reason: match e {
                                KeyError::WeakPublicKey(_) => format!(
                                    "holds {e}; remove it, and copy the issuer's public key again"
                                ),
                                _ => "does not hold a valid k4.public key".into(),
                            },
                        }
                    })?;
                check_stem_matches(&path, stem, &public)?;
                ring.insert(RingKey {
                    public,
                    secret: None,
                    created,
                });
            }
        }
        if ring.is_empty() {
            return Err(KeyError::Empty(dir.to_path_buf()));
        }
        if let Some(marks) = marks {
            if let Some(kid) = marks.signing() {
                if ring.get(kid.as_str()).is_none() {
                    return Err(KeyError::BadFile {
                        path: dir.join(STATUS_FILE),
                        reason: format!(
                            "marks {kid} signing, but no key file in the folder holds it; copy \
                             the whole key folder"
                        ),
                    });
                }
            }
            let (retired, kept) = std::mem::take(&mut ring.keys)
                .into_iter()
                .partition(|k| marks.get(&k.public.id) == Some(Marked::Retired));
            ring.keys = kept;
            ring.retired = retired;
            for key in &mut ring.retired {
                // A retired key never signs: its secret has no business in memory.
                key.secret = None;
            }
            if ring.keys.is_empty() {
                return Err(KeyError::Refused(format!(
                    "every key in {} is retired; nothing verifies",
                    dir.display()
                )));
            }
            ring.marks = Some(marks);
        }
        Ok(ring)
    }
}

/// Length of the key-id prefix in key file names: enough to tell keys apart at a glance.
const STEM_ID_LEN: usize = 8;
const STEM_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

fn file_stem(created: DateTime<Utc>, id: &KeyId) -> String {
    let short = &id.0["k4.pid.".len().."k4.pid.".len() + STEM_ID_LEN];
    format!("{}-{short}", created.format(STEM_TIME_FORMAT))
}

fn created_from_stem(path: &Path, stem: &str) -> Result<DateTime<Utc>, KeyError> {
    let bad = || KeyError::BadFile {
        path: path.to_path_buf(),
        reason: "name is not <YYYYMMDDTHHMMSSZ>-<key id prefix>; keep the name tessera gave it"
            .into(),
    };
    let (time, _) = stem.split_once('-').ok_or_else(bad)?;
    NaiveDateTime::parse_from_str(time, STEM_TIME_FORMAT)
        .map(|t| t.and_utc())
        .map_err(|_| bad())
}

fn check_stem_matches(path: &Path, stem: &str, public: &PublicKey) -> Result<(), KeyError> {
    let short = stem.split_once('-').map(|(_, s)| s).unwrap_or_default();
    if public.id.0["k4.pid.".len()..].starts_with(short) && short.len() == STEM_ID_LEN {
        Ok(())
    } else {
        Err(KeyError::BadFile {
            path: path.to_path_buf(),
            reason: format!("holds key {} but its name says otherwise", public.id),
        })
    }
}

/// What a checked path must be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Folder,
    Public,
    Secret,
}

/// The largest key file read: a PASERK key is under 100 bytes.
const MAX_KEY_FILE: u64 = 4096;

/// Open `path` without following a symbolic link, and check the open handle (so nothing can
/// be swapped in between the check and the read): a folder or a regular file as `kind` says,
/// owned by this process's user or by root, writable by no one else; a secret file readable by
/// no one else either. Whoever can write a key folder or a public key file can make every
/// verifier trust a key of their own, and so forge tokens.
pub(super) fn open_checked(path: &Path, kind: Kind) -> Result<(fs::File, fs::Metadata), KeyError> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let what = if kind == Kind::Folder {
        "folder"
    } else {
        "file"
    };
    let unsafe_because = |problem: String| KeyError::Unsafe {
        what,
        path: path.to_path_buf(),
        problem,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => unsafe_because(
                "is a symbolic link; put the key itself there (whoever controls a link's \
                 target chooses the key)"
                    .into(),
            ),
            _ => io_err(path)(e),
        })?;
    let meta = file.metadata().map_err(io_err(path))?;
    let shown = path.display();
    if kind == Kind::Folder && !meta.is_dir() {
        return Err(unsafe_because("is not a folder".into()));
    }
    if kind != Kind::Folder && !meta.is_file() {
        return Err(unsafe_because("is not a regular file".into()));
    }
    let me = process_uid();
    if meta.uid() != 0 && Some(meta.uid()) != me {
        let owner = me.map_or_else(|| "this user".to_owned(), |uid| uid.to_string());
        return Err(unsafe_because(format!(
            "is owned by uid {}, neither this process's user nor root; fix it with `chown {owner} \
             {shown}`",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(unsafe_because(format!(
            "can be written by group or others (mode {mode:o}); fix it with `chmod go-w {shown}`"
        )));
    }
    if kind == Kind::Secret && mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok((file, meta))
}

/// A key file's bytes, read from the checked handle into memory zeroized on drop, sized from
/// the handle so the buffer never grows (and leaves no copy behind).
fn read_checked(path: &Path, kind: Kind) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use std::io::Read as _;
    let (file, meta) = open_checked(path, kind)?;
    let len = meta.len();
    if len > MAX_KEY_FILE {
        return Err(KeyError::BadFile {
            path: path.to_path_buf(),
            reason: format!("is {len} bytes, far more than a key"),
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(len as usize + 1));
    file.take(MAX_KEY_FILE)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    Ok(bytes)
}

/// This process's user id: the owner of `/proc/self`.
fn process_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Where a newly generated key was written.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The new key's id.
    pub id: KeyId,
    /// The secret key file (mode 0600).
    pub secret_path: PathBuf,
    /// The public key file.
    pub public_path: PathBuf,
}

/// Generate a key pair and write it to `dir` (created, mode 0700, if missing): the secret file
/// with mode 0600, the public file beside it, both synced to disk before returning.
///
/// The new key becomes the signing key: it is dated `created`, or one second after the newest
/// key already in `dir` when that is later (names carry whole seconds, and a tie would leave
/// the choice of signer to the key ids); when the folder has a status file, the file marks it
/// `signing` (and the key that signed before `active`).
pub fn generate_into(dir: &Path, created: DateTime<Utc>) -> Result<GeneratedKey, KeyError> {
    let made = write_pair(dir, created)?;
    if let Some(mut marks) = StatusFile::read(dir)? {
        marks.set(&made.id, Marked::Signing);
        marks.write(dir)?;
    }
    Ok(made)
}

/// Generate a key pair and write its two files, dated as [`generate_into`] says; the status
/// file is the caller's business.
pub(super) fn write_pair(dir: &Path, created: DateTime<Utc>) -> Result<GeneratedKey, KeyError> {
    let secret = SecretKey::generate()?;
    let public = secret.public_key();
    create_private_dir(dir)?;
    let created = match newest_in(dir)? {
        Some(newest) if newest >= created.trunc_subsecs(0) => newest + chrono::Duration::seconds(1),
        _ => created,
    };
    let stem = file_stem(created, public.id());
    let secret_path = dir.join(format!("{stem}.k4.secret"));
    let public_path = dir.join(format!("{stem}.k4.public"));
    write_new(&secret_path, secret.to_paserk().as_bytes(), 0o600)?;
    write_new(&public_path, public.to_paserk().as_bytes(), 0o644)?;
    sync_dir(dir)?;
    Ok(GeneratedKey {
        id: public.id().clone(),
        secret_path,
        public_path,
    })
}

/// The creation time of the newest key file in `dir`, read from the names alone.
fn newest_in(dir: &Path) -> Result<Option<DateTime<Utc>>, KeyError> {
    let mut newest = None;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let name = entry.map_err(io_err(dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = name
            .strip_suffix(".k4.secret")
            .or_else(|| name.strip_suffix(".k4.public"));
        if let Some(created) = stem.and_then(|s| created_from_stem(dir, s).ok()) {
            newest = newest.max(Some(created));
        }
    }
    Ok(newest)
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_err(dir))
}

pub(super) fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(contents).map_err(io_err(path))?;
    file.write_all(b"\n").map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn refused(dir: &Path) -> String {
        KeyRing::load_dir(dir).unwrap_err().to_string()
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_folder_or_public_file_others_can_write_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let made = generate_into(dir.path(), Utc::now()).unwrap();
        chmod(&made.public_path, 0o664);
        let err = refused(dir.path());
        assert!(err.contains("written by group or others"), "{err}");
        assert!(err.contains("chmod go-w"), "{err}");
        chmod(&made.public_path, 0o644);
        chmod(dir.path(), 0o777);
        let err = refused(dir.path());
        assert!(err.starts_with("key folder"), "{err}");
        assert!(err.contains("mode 777"), "{err}");
        chmod(dir.path(), 0o755);
        assert!(KeyRing::load_dir(dir.path()).is_ok());
    }

    #[test]
    fn a_planted_symlink_is_refused_for_a_key_file_and_for_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let made = generate_into(&keys, Utc::now()).unwrap();
        // An attacker's key, linked in under the name of the real one.
        let elsewhere = dir.path().join("elsewhere.k4.public");
        fs::rename(&made.public_path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &made.public_path).unwrap();
        let err = refused(&keys);
        assert!(err.contains("symbolic link"), "{err}");
        fs::remove_file(&made.public_path).unwrap();
        fs::rename(&elsewhere, &made.public_path).unwrap();
        let link = dir.path().join("linked-keys");
        std::os::unix::fs::symlink(&keys, &link).unwrap();
        let err = refused(&link);
        assert!(err.starts_with("key folder"), "{err}");
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn a_key_file_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = generate_into(dir.path(), Utc::now()).unwrap();
        // Only root can give a file away; elsewhere the check cannot be staged.
        if std::os::unix::fs::chown(&made.public_path, Some(4242), None).is_err() {
            eprintln!("not root: cannot stage a file owned by another user");
            return;
        }
        let err = refused(dir.path());
        assert!(err.contains("owned by uid 4242"), "{err}");
        assert!(err.contains("chown"), "{err}");
    }

    /// A public key file for `bytes`, named as tessera names them.
    fn plant_public(dir: &Path, bytes: &[u8; 32]) {
        let text = format!("k4.public.{}\n", crate::base64url::encode(bytes));
        fs::write(dir.join("20260101T000000Z-abcdefgh.k4.public"), text).unwrap();
    }

    #[test]
    fn small_order_and_non_canonical_public_keys_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        // The identity point: of small order, so anyone can "sign" under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        plant_public(dir.path(), &identity);
        let err = refused(dir.path());
        assert!(err.contains("of small order"), "{err}");
        assert!(err.contains("copy the issuer's public key again"), "{err}");

        // y + p for a small y on the curve: a second spelling of a point of large order.
        let non_canonical = (0u8..19)
            .map(|y| {
                let mut bytes = [0xff; 32];
                bytes[0] = 0xed + y;
                bytes[31] = 0x7f;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_ok_and(|key| !key.is_weak()))
            .expect("some y below 19 is on the curve");
        plant_public(dir.path(), &non_canonical);
        let err = refused(dir.path());
        assert!(err.contains("not canonically encoded"), "{err}");
    }
}
