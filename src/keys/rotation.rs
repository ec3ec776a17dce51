//! The rotation steps on a key folder: stage a new key, make a key the signing key, retire a
//! key. Each loads the folder as a server would, refuses what would leave the folder unable
//! to sign or verify what it must, and rewrites the status file ([`super::status`]) atomically.
//!
//! Whether tokens signed by a key may still be live is the token store's to answer; `tessera
//! keys retire` asks it between [`retirable`] and [`retire`]. Running processes see a change
//! when they reload the folder (`SIGHUP`).

use super::folder::write_pair;
use super::*;

/// Make a new key pair in `dir`, **staged**: every process that loads the folder verifies
/// with it and publishes it, but it signs nothing until [`activate`]. The folder must already
/// have a key that signs (make the first with [`generate_into`]).
///
/// The status file is written first to name the current signer (so the new key, the newest in
/// the folder, can never sign by the rule for folders without a status file), then the pair,
/// then the file again to stage the new key.
pub fn rotate_into(dir: &Path, created: DateTime<Utc>) -> Result<GeneratedKey, KeyError> {
    let ring = KeyRing::load_dir(dir)?;
    let signer = ring
        .signing()
        .ok_or_else(|| {
            KeyError::Refused(format!(
                "no key in {} signs (no secret key, or the signing key's secret is missing), so \
                 there is nothing to rotate from; make the first key with `tessera keys generate`",
                dir.display()
            ))
        })?
        .public
        .id
        .clone();
    let mut marks = ring.status_file().cloned().unwrap_or_default();
    if marks.signing().is_none() {
        marks.set(&signer, Marked::Signing);
        marks.write(dir)?;
    }
    let made = write_pair(dir, created)?;
    marks.set(&made.id, Marked::Staged);
    if let Err(e) = marks.write(dir) {
        let _ = fs::remove_file(&made.secret_path);
        let _ = fs::remove_file(&made.public_path);
        return Err(e);
    }
    Ok(made)
}

/// Make the key `kid` (an id or a unique prefix of one) the signing key of `dir`; the key that
/// signed before becomes `active` (it still verifies). Refused for a retired key and for a key
/// whose secret half is not in `dir`.
pub fn activate(dir: &Path, kid: &str) -> Result<KeyId, KeyError> {
    let ring = KeyRing::load_dir(dir)?;
    let kid = resolve_kid(&ring, dir, kid)?;
    let Some(key) = ring.keys.iter().find(|k| k.public.id == kid) else {
        return Err(KeyError::Refused(format!(
            "{kid} is retired: a retired key never signs again; stage a new one with \
             `tessera keys rotate`"
        )));
    };
    if key.secret.is_none() {
        return Err(KeyError::Refused(format!(
            "only the public half of {kid} is in {}: activate it in the issuers' key folder, \
             which holds its secret, then copy that folder to the edges",
            dir.display()
        )));
    }
    let mut marks = ring.status_file().cloned().unwrap_or_default();
    marks.set(&kid, Marked::Signing);
    marks.write(dir)?;
    Ok(kid)
}

/// Check that the key `kid` (an id or a unique prefix of one) exists in `dir` and may be
/// retired as far as the folder goes: it is not the signing key. Returns its id.
pub fn retirable(dir: &Path, kid: &str) -> Result<KeyId, KeyError> {
    let ring = KeyRing::load_dir(dir)?;
    let kid = resolve_kid(&ring, dir, kid)?;
    let marked_signing = ring.status_file().and_then(StatusFile::signing) == Some(&kid);
    let signs = ring.signing().is_some_and(|k| k.public.id == kid);
    if marked_signing || signs {
        return Err(KeyError::Refused(format!(
            "{kid} is the signing key and cannot be retired: make another key the signing key \
             first (`tessera keys rotate`, reload every process, `tessera keys activate`)"
        )));
    }
    Ok(kid)
}

/// Retire the key `kid` in `dir`: processes that load the folder stop trusting it and stop
/// publishing it; its files stay (delete them later if you wish). Refused for the signing key
/// (see [`retirable`]). Whether tokens it signed are still live is the caller's to check.
pub fn retire(dir: &Path, kid: &str) -> Result<KeyId, KeyError> {
    let kid = retirable(dir, kid)?;
    let ring = KeyRing::load_dir(dir)?;
    let mut marks = ring.status_file().cloned().unwrap_or_default();
    marks.set(&kid, Marked::Retired);
    marks.write(dir)?;
    Ok(kid)
}

/// The id of the key in `ring` (retired keys included) that `text` names: a whole `k4.pid`, or
/// a prefix of one (with or without `k4.pid.`) of at least 8 characters that only one key has.
pub fn resolve_kid(ring: &KeyRing, dir: &Path, text: &str) -> Result<KeyId, KeyError> {
    let text = text.trim();
    let bare = text.strip_prefix("k4.pid.").unwrap_or(text);
    let no_such = || KeyError::NoSuchKey {
        kid: text.chars().take(60).collect(),
        dir: dir.to_path_buf(),
    };
    if bare.len() < 8 {
        return Err(no_such());
    }
    let mut found = ring
        .keys
        .iter()
        .chain(&ring.retired)
        .map(|k| &k.public.id)
        .filter(|id| id.0["k4.pid.".len()..].starts_with(bare));
    let first = found.next().ok_or_else(no_such)?.clone();
    if found.next().is_some() {
        return Err(KeyError::Refused(format!(
            "{text} is the start of several key ids; give more of it"
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn statuses(dir: &Path) -> Vec<(KeyId, KeyStatus)> {
        let ring = KeyRing::load_dir(dir).unwrap();
        let mut all: Vec<_> = ring
            .iter()
            .map(|(k, s)| (k.public.id().clone(), s))
            .collect();
        all.extend(
            ring.retired()
                .map(|k| (k.public.id().clone(), KeyStatus::Retired)),
        );
        all
    }

    #[test]
    fn rotate_stages_activate_signs_retire_drops_trust() {
        let dir = tempfile::tempdir().unwrap();
        let old = generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        let new = rotate_into(dir.path(), at("2026-02-01T00:00:00Z")).unwrap();
        assert_eq!(
            statuses(dir.path()),
            vec![
                (old.id.clone(), KeyStatus::Signing),
                (new.id.clone(), KeyStatus::Staged)
            ],
            "the newest key is staged: it verifies, the old key still signs"
        );
        let ring = KeyRing::load_dir(dir.path()).unwrap();
        assert!(ring.get(new.id.as_str()).is_some());
        assert_eq!(ring.signing().unwrap().public.id(), &old.id);

        assert_eq!(
            activate(dir.path(), &new.id.as_str()[7..20]).unwrap(),
            new.id
        );
        assert_eq!(
            statuses(dir.path()),
            vec![
                (old.id.clone(), KeyStatus::Active),
                (new.id.clone(), KeyStatus::Signing)
            ]
        );

        assert_eq!(retire(dir.path(), old.id.as_str()).unwrap(), old.id);
        let ring = KeyRing::load_dir(dir.path()).unwrap();
        assert!(
            ring.get(old.id.as_str()).is_none(),
            "a retired key verifies nothing"
        );
        assert!(ring.is_retired(old.id.as_str()));
        assert!(ring.retired().all(|k| k.secret.is_none()));
        assert_eq!(
            statuses(dir.path()),
            vec![
                (new.id.clone(), KeyStatus::Signing),
                (old.id.clone(), KeyStatus::Retired)
            ]
        );
        let err = activate(dir.path(), old.id.as_str())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is retired"), "{err}");
    }

    #[test]
    fn the_signing_key_cannot_be_retired_with_or_without_a_status_file() {
        let dir = tempfile::tempdir().unwrap();
        let only = generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        let err = retire(dir.path(), only.id.as_str())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is the signing key"), "{err}");
        assert!(!dir.path().join(STATUS_FILE).exists());
        let staged = rotate_into(dir.path(), at("2026-02-01T00:00:00Z")).unwrap();
        let err = retire(dir.path(), only.id.as_str())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is the signing key"), "{err}");
        // A staged key was never used: it may go.
        retire(dir.path(), staged.id.as_str()).unwrap();
        assert_eq!(statuses(dir.path()).len(), 2);
    }

    #[test]
    fn unknown_short_and_public_only_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        let staged = rotate_into(dir.path(), at("2026-02-01T00:00:00Z")).unwrap();
        let unknown = "k4.pid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        for kid in [unknown, "AAAAAAAA", &staged.id.as_str()[7..12]] {
            let err = activate(dir.path(), kid).unwrap_err();
            assert!(matches!(err, KeyError::NoSuchKey { .. }), "{kid}: {err}");
            assert!(err.to_string().contains("tessera keys list"), "{err}");
        }
        fs::remove_file(&staged.secret_path).unwrap();
        let err = activate(dir.path(), staged.id.as_str()).unwrap_err();
        assert!(err.to_string().contains("only the public half"), "{err}");
    }

    #[test]
    fn generate_with_a_status_file_marks_the_new_key_signing() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        rotate_into(dir.path(), at("2026-02-01T00:00:00Z")).unwrap();
        let third = generate_into(dir.path(), at("2026-03-01T00:00:00Z")).unwrap();
        let ring = KeyRing::load_dir(dir.path()).unwrap();
        assert_eq!(ring.signing().unwrap().public.id(), &third.id);
        assert_eq!(
            ring.status_file().unwrap().get(&first.id),
            Some(Marked::Active)
        );
    }

    #[test]
    fn a_status_file_naming_a_missing_signer_or_retiring_everything_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        let ghost = "k4.pid.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        fs::write(dir.path().join(STATUS_FILE), format!("{ghost} signing\n")).unwrap();
        let err = KeyRing::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no key file in the folder holds it"), "{err}");
        fs::write(
            dir.path().join(STATUS_FILE),
            format!("{} retired\n", key.id),
        )
        .unwrap();
        let err = KeyRing::load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("every key"), "{err}");
    }

    #[test]
    fn a_status_file_without_a_signer_never_lets_a_staged_key_sign() {
        let dir = tempfile::tempdir().unwrap();
        let old = generate_into(dir.path(), at("2026-01-01T00:00:00Z")).unwrap();
        let new = generate_into(dir.path(), at("2026-02-01T00:00:00Z")).unwrap();
        fs::write(dir.path().join(STATUS_FILE), format!("{} staged\n", new.id)).unwrap();
        let ring = KeyRing::load_dir(dir.path()).unwrap();
        assert_eq!(ring.signing().unwrap().public.id(), &old.id);
    }
}
