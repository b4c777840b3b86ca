//! Builds the plugin component for the host to embed, the way wasmtime's
//! test-programs build their guests: a nested cargo with its own target dir
//! (so it never waits on the outer build's lock), for wasm32-wasip2.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    for watched in ["plugin/src", "plugin/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let wasm = build_guest(&root, "stripe-plugin");
    println!("cargo:rustc-env=PLUGIN_WASM={}", wasm.display());
}

/// Builds `package` for wasm32-wasip2 in release, with fat LTO for the guest only.
pub fn build_guest(root: &std::path::Path, package: &str) -> PathBuf {
    let target_dir = root.join("target").join("wasm-guests");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--package", package])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_PROFILE_RELEASE_LTO", "true");
    // The outer build's settings are for the host, not the guest.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the wasm plugin");
    assert!(
        status.success(),
        "building {package} for wasm32-wasip2 failed; is the target installed? (rustup target add wasm32-wasip2)"
    );
    target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", package.replace('-', "_")))
}
