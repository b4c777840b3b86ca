//! Builds a guest crate of this workspace for wasm32-wasip2, the way wasmtime's
//! test-programs do: a nested cargo with its own target dir (so it never waits
//! on the outer build's lock). Shared by the build scripts of host-harness and tests.

use std::{env, path::Path, path::PathBuf, process::Command};

/// Builds `package` for wasm32-wasip2 with the `wasm` profile (size-optimised, guests only).
pub fn build_guest(root: &Path, package: &str) -> PathBuf {
    ensure_wasm_target();
    let target_dir = root.join("target").join("wasm-guests");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--profile",
        "wasm",
        "--target",
        "wasm32-wasip2",
        "--package",
        package,
    ])
    .arg("--manifest-path")
    .arg(root.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    // A 128 KiB stack instead of Rust's 1 MiB default: every call touches
    // (and the pooling allocator resets) fewer pages. The plugin does not recurse deeply.
    .env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-Clink-arg=-zstack-size=131072",
    );
    // The outer build's settings are for the host, not the guest.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the wasm plugin");
    assert!(
        status.success(),
        "building {package} for wasm32-wasip2 failed; is the target installed? (rustup target add wasm32-wasip2)"
    );
    target_dir
        .join("wasm32-wasip2/wasm")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// A fresh machine lacks the wasm32-wasip2 standard library: add it with rustup.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok();
    let sysroot = sysroot
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip2")
        .exists()
    {
        return;
    }
    println!("cargo:warning=installing the wasm32-wasip2 target with rustup");
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    assert!(
        added.is_ok_and(|s| s.success()),
        "could not add the wasm32-wasip2 target; run: rustup target add wasm32-wasip2"
    );
}
