//! Builds a guest crate of this workspace as a component that imports nothing
//! but its contract: a core module for wasm32-unknown-unknown (no WASI; Rust's
//! std there needs no imports), turned into a component by `wit-component`
//! from the WIT that wit-bindgen embeds. A nested cargo with its own target
//! dir, the way wasmtime's test-programs do (so it never waits on the outer
//! build's lock). Shared by the build scripts of host-harness and tests.

use std::{env, path::Path, path::PathBuf, process::Command};

const TARGET: &str = "wasm32-unknown-unknown";

/// Builds `package` with the `wasm` profile (size-optimised, guests only) and
/// returns the path of the component.
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
        TARGET,
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
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
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
        "building {package} for {TARGET} failed; is the target installed? (rustup target add {TARGET})"
    );
    let name = package.replace('-', "_");
    let module = target_dir
        .join(TARGET)
        .join("wasm")
        .join(format!("{name}.wasm"));
    let core = std::fs::read(&module).expect("the guest's core module");
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("making a component of {package}: {e:#}"));
    let out = module.with_file_name(format!("{name}.component.wasm"));
    std::fs::write(&out, component).expect("writing the component");
    out
}

/// A fresh machine lacks the wasm standard library: add it with rustup.
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
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
    {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    assert!(
        added.is_ok_and(|s| s.success()),
        "could not add the {TARGET} target; run: rustup target add {TARGET}"
    );
}
