//! Where `serve` keeps its precompiled components when no `--cache-dir` is
//! given (the runtime's `component_cache` checks and uses the directory).

use std::path::{Path, PathBuf};

/// Where the cache lives when none is configured: beside a SQLite
/// database, or in the user's own cache directory (`$XDG_CACHE_HOME`, or
/// `~/.cache`) for PostgreSQL; never a shared temporary directory.
pub fn default_dir(db: &Path) -> Option<PathBuf> {
    if !crate::db::is_postgres(&db.to_string_lossy()) {
        let parent = db.parent().filter(|p| !p.as_os_str().is_empty());
        return Some(parent.unwrap_or(Path::new(".")).join("stripe-plugin-cache"));
    }
    user_dir()
}

/// The user's own cache directory for components (`$XDG_CACHE_HOME` or
/// `~/.cache`, then `stripe-plugin`).
pub fn user_dir() -> Option<PathBuf> {
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(home.join("stripe-plugin"))
}
