//! The precompiled-component cache: native code, loaded into the process, so
//! only a directory this process owns and no one else can write is used
//! (security review S4). The directory is made `0700`; one owned by another
//! user is not used at all; one of ours that others could write is closed
//! to them and its contents are not trusted. Each artifact has its SHA-256
//! beside it, checked before it is loaded: a file that does not match is
//! compiled again and replaced. Files are written under a random name with
//! `O_NOFOLLOW` and `0600`, then renamed into place.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Whether a cache directory can be used, and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirTrust {
    /// Ours and closed to others: load from it, write to it.
    Private,
    /// Ours, but others could write it until now: closed now; write, never load what it held.
    Reclaimed,
    /// Not ours (or not a directory): neither load nor write.
    Refused,
}

impl DirTrust {
    pub fn name(self) -> &'static str {
        match self {
            DirTrust::Private => "private",
            DirTrust::Reclaimed => "reclaimed",
            DirTrust::Refused => "refused",
        }
    }
}

/// Makes `dir` (0700) if missing, and says how far it can be trusted.
pub fn prepare(dir: &Path) -> DirTrust {
    if std::fs::symlink_metadata(dir).is_err() {
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
        if made.is_err() {
            return DirTrust::Refused;
        }
    }
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return DirTrust::Refused;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me {
        return DirTrust::Refused;
    }
    if meta.mode() & 0o077 == 0 {
        return DirTrust::Private;
    }
    match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        Ok(()) => DirTrust::Reclaimed,
        Err(_) => DirTrust::Refused,
    }
}

/// The artifact at `path`, if its bytes match the SHA-256 kept beside it.
pub fn read_verified(path: &Path) -> Option<Vec<u8>> {
    let bytes = read_no_follow(path)?;
    let kept = read_no_follow(&digest_path(path))?;
    (hex::encode(Sha256::digest(&bytes)).as_bytes() == kept.as_slice()).then_some(bytes)
}

/// Writes the artifact and its SHA-256, each under a random name first.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(
        &digest_path(path),
        hex::encode(Sha256::digest(bytes)).as_bytes(),
    )?;
    write_atomically(path, bytes)
}

fn digest_path(path: &Path) -> PathBuf {
    path.with_extension("cwasm.sha256")
}

fn read_no_follow(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Bytes from the operating system's generator (a temporary file's name).
fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).context("reading the operating system's random generator")?;
    Ok(bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let random = random_bytes::<8>()?;
    let tmp = path.with_extension(format!("{}.tmp", hex::encode(random)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cache-test-{name}-{}-{}",
            std::process::id(),
            hex::encode(random_bytes::<4>().unwrap())
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_new_directory_is_private_and_an_open_one_is_closed_and_not_trusted() {
        let dir = scratch("modes");
        assert_eq!(prepare(&dir), DirTrust::Private);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(prepare(&dir), DirTrust::Reclaimed);
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(prepare(&dir), DirTrust::Private);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_artifact_is_read_only_when_its_hash_matches_and_never_through_a_link() {
        let dir = scratch("hash");
        assert_eq!(prepare(&dir), DirTrust::Private);
        let path = dir.join("a.cwasm");
        write(&path, b"native code").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(read_verified(&path).as_deref(), Some(&b"native code"[..]));
        std::fs::write(&path, b"planted code").unwrap();
        assert_eq!(read_verified(&path), None);
        let victim = dir.join("victim");
        std::fs::write(&victim, b"theirs").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert_eq!(read_verified(&path), None, "read through a symlink");
        write(&path, b"native code").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"theirs");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
