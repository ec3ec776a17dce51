//! The key status file: what each key of a folder is for, written by `tessera keys rotate`,
//! `activate` and `retire`, and read with the folder by every process that loads it.
//!
//! The status lives in the key folder itself (`keys.status`), so whoever copies the folder to
//! an edge copies the status with it. One line a key, `<k4.pid> <status>`, `#` starts a
//! comment:
//!
//! | status | verifies | signs | published |
//! |---|---|---|---|
//! | `staged` | yes | never | yes |
//! | `signing` | yes | yes (exactly this key) | yes |
//! | `active` | yes | no | yes |
//! | `retired` | no | no | no |
//!
//! A key the file does not name is `active` (or `verify-only` with its public half alone). A
//! folder without the file keeps the rule from before: the newest key with a secret half signs.
//!
//! The file is read with the checks of a public key file (no symbolic link, owned by this
//! user or root, writable by no one else): whoever can write it can stage a key of their own
//! or retire the real ones. It is replaced atomically: written to a new file, synced, renamed
//! over the old one, and the folder synced.

use super::folder::{open_checked, sync_dir, Kind};
use super::*;

/// The status file's name in the key folder.
pub const STATUS_FILE: &str = "keys.status";

/// The largest status file read: a line is about 60 bytes.
const MAX_STATUS_FILE: u64 = 256 * 1024;

/// A status the file gives a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// Verifies and is published, never signs: every process loads it before it signs.
    Staged,
    /// The signing key.
    Signing,
    /// Verifies, does not sign.
    Active,
    /// Neither verifies nor is published.
    Retired,
}

impl Marked {
    fn word(self) -> &'static str {
        match self {
            Marked::Staged => "staged",
            Marked::Signing => "signing",
            Marked::Active => "active",
            Marked::Retired => "retired",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [
            Marked::Staged,
            Marked::Signing,
            Marked::Active,
            Marked::Retired,
        ]
        .into_iter()
        .find(|m| m.word() == word)
    }
}

/// The parsed status file: each key id at most once, at most one `signing`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusFile {
    entries: Vec<(KeyId, Marked)>,
}

impl StatusFile {
    /// Parse the file's text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, KeyError> {
        let bad = |line: usize, reason: String| KeyError::BadFile {
            path: path.to_path_buf(),
            reason: format!("line {line}: {reason}"),
        };
        let mut file = Self::default();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(kid), Some(word), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad(n, "is not `<k4.pid> <status>`".into()));
            };
            let kid =
                parse_pid(kid).ok_or_else(|| bad(n, "does not start with a k4.pid".into()))?;
            let marked = Marked::parse(word).ok_or_else(|| {
                bad(
                    n,
                    format!(
                        "unknown status {:?}: use staged, signing, active or retired",
                        word.chars().take(20).collect::<String>()
                    ),
                )
            })?;
            if file.get(&kid).is_some() {
                return Err(bad(n, format!("names {kid} a second time")));
            }
            if marked == Marked::Signing && file.signing().is_some() {
                return Err(bad(n, "marks a second key signing; one key signs".into()));
            }
            file.entries.push((kid, marked));
        }
        Ok(file)
    }

    /// The file in `dir`, or `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>, KeyError> {
        use std::io::Read as _;
        let path = dir.join(STATUS_FILE);
        let (file, meta) = match open_checked(&path, Kind::Public) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            other => other?,
        };
        if meta.len() > MAX_STATUS_FILE {
            return Err(KeyError::BadFile {
                path,
                reason: format!("is {} bytes, far more than a status file", meta.len()),
            });
        }
        let mut text = String::new();
        file.take(MAX_STATUS_FILE)
            .read_to_string(&mut text)
            .map_err(io_err(&path))?;
        Self::parse(&path, &text).map(Some)
    }

    /// Replace the file in `dir` atomically and durably (mode 0644).
    pub fn write(&self, dir: &Path) -> Result<(), KeyError> {
        let mut text = String::from(
            "# Key status, written by `tessera keys rotate|activate|retire`; see `tessera keys \
             list`.\n# <k4.pid> staged|signing|active|retired\n",
        );
        for (kid, marked) in &self.entries {
            text.push_str(&format!("{kid} {}\n", marked.word()));
        }
        let path = dir.join(STATUS_FILE);
        let partial = dir.join(format!(".{STATUS_FILE}.{}.partial", std::process::id()));
        let _ = fs::remove_file(&partial);
        let written = super::folder::write_new(&partial, text.trim_end().as_bytes(), 0o644)
            .and_then(|()| fs::rename(&partial, &path).map_err(io_err(&path)))
            .and_then(|()| sync_dir(dir));
        if written.is_err() {
            let _ = fs::remove_file(&partial);
        }
        written
    }

    /// The status the file gives `kid`.
    pub fn get(&self, kid: &KeyId) -> Option<Marked> {
        self.entries
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, marked)| *marked)
    }

    /// The key marked `signing`.
    pub fn signing(&self) -> Option<&KeyId> {
        self.entries
            .iter()
            .find(|(_, marked)| *marked == Marked::Signing)
            .map(|(kid, _)| kid)
    }

    /// Give `kid` a status; a new `signing` key makes the old one `active`.
    pub fn set(&mut self, kid: &KeyId, marked: Marked) {
        if marked == Marked::Signing {
            for entry in &mut self.entries {
                if entry.1 == Marked::Signing {
                    entry.1 = Marked::Active;
                }
            }
        }
        match self.entries.iter_mut().find(|(k, _)| k == kid) {
            Some(entry) => entry.1 = marked,
            None => self.entries.push((kid.clone(), marked)),
        }
    }

    /// Every entry, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, Marked)> {
        self.entries.iter().map(|(kid, marked)| (kid, *marked))
    }
}

/// A `k4.pid.` string of the right shape (44 base64url characters after the prefix).
fn parse_pid(text: &str) -> Option<KeyId> {
    let b64 = text.strip_prefix("k4.pid.")?;
    let ok = b64.len() == 44
        && b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| KeyId(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const A: &str = "k4.pid.Yj9vij4pY3XoE-DbelubhBsfKfaxCqFdgMssdNnNNBG5";
    const B: &str = "k4.pid.Zj9vij4pY3XoE-DbelubhBsfKfaxCqFdgMssdNnNNBG5";

    fn parse(text: &str) -> Result<StatusFile, String> {
        StatusFile::parse(Path::new("keys.status"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_status_file_parses_with_comments_and_round_trips() {
        let file = parse(&format!(
            "# hello\n{A} signing  # the signer\n\n{B} staged\n"
        ))
        .unwrap();
        assert_eq!(file.signing().map(KeyId::as_str), Some(A));
        assert_eq!(file.get(&KeyId(B.into())), Some(Marked::Staged));
        let dir = tempfile::tempdir().unwrap();
        file.write(dir.path()).unwrap();
        assert_eq!(StatusFile::read(dir.path()).unwrap(), Some(file));
        let mode = fs::metadata(dir.path().join(STATUS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no leftovers");
    }

    #[test]
    fn bad_lines_are_refused_by_line_number() {
        for (text, says) in [
            (
                format!("{A} signing\n{B} signing"),
                "line 2: marks a second key signing",
            ),
            (format!("{A} staged\n{A} retired"), "line 2: names"),
            (format!("{A} trusted"), "unknown status \"trusted\""),
            (A.to_string(), "is not `<k4.pid> <status>`"),
            (format!("{A} active extra"), "is not"),
            (
                "k4.pid.short active".to_owned(),
                "does not start with a k4.pid",
            ),
            (format!("{} active", &A[..A.len() - 1]), "k4.pid"),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn setting_a_new_signer_demotes_the_old_one() {
        let mut file = parse(&format!("{A} signing\n{B} staged")).unwrap();
        file.set(&KeyId(B.into()), Marked::Signing);
        assert_eq!(file.get(&KeyId(A.into())), Some(Marked::Active));
        assert_eq!(file.signing().map(KeyId::as_str), Some(B));
    }

    #[test]
    fn a_status_file_others_can_write_or_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATUS_FILE);
        fs::write(&path, format!("{A} retired\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = StatusFile::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("written by group or others"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(StatusFile::read(dir.path()).unwrap().is_some());

        let elsewhere = dir.path().join("elsewhere");
        fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = StatusFile::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
    }

    #[test]
    fn an_oversized_status_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATUS_FILE);
        fs::write(&path, "#".repeat(MAX_STATUS_FILE as usize + 1)).unwrap();
        let err = StatusFile::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("far more than a status file"), "{err}");
    }
}
