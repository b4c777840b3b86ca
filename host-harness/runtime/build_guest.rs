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
    let core = optimized(&module);
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("making a component of {package}: {e:#}"));
    let component = without_custom_section(&component, "component-name");
    let out = module.with_file_name(format!("{name}.component.wasm"));
    // Written only when it changed, so an unchanged component never makes
    // the crates that embed it build again.
    if std::fs::read(&out).ok().as_deref() != Some(&component[..]) {
        std::fs::write(&out, component).expect("writing the component");
    }
    out
}

/// `binary` (a component) without its top-level custom section `name`.
/// wit-component writes a `component-name` section (4.4 KB, names for
/// debuggers) that the runtime never needs; the plugin's size budget does.
fn without_custom_section(binary: &[u8], name: &str) -> Vec<u8> {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                return value;
            }
        }
    }
    let mut out = binary[..8].to_vec();
    let mut at = 8;
    while at < binary.len() {
        let start = at;
        let id = binary[at];
        at += 1;
        let size = leb(binary, &mut at);
        let body = at;
        at = body + size;
        let mut inner = body;
        let named = id == 0 && {
            let len = leb(binary, &mut inner);
            binary.get(inner..inner + len) == Some(name.as_bytes())
        };
        if !named {
            out.extend_from_slice(&binary[start..at]);
        }
    }
    out
}

/// Where binaryen's `wasm-opt` is looked for (`tests/run` installs Debian's
/// `binaryen`; `WASM_OPT` names another).
fn wasm_opt() -> PathBuf {
    env::var_os("WASM_OPT").map_or_else(|| PathBuf::from("/usr/bin/wasm-opt"), PathBuf::from)
}

/// The core module after binaryen's `wasm-opt` (at first `-O2`, which rustc's own
/// size-optimised build leaves about 12% larger (262,406 B against 230,090 B
/// when measured on 2026-12-03; now `-Oz`, below). Without `wasm-opt` the module is used as
/// built, with a warning: the component then exceeds its size budget, which
/// `tests/run` checks. Installing it later rebuilds the component.
fn optimized(module: &Path) -> Vec<u8> {
    let tool = wasm_opt();
    println!("cargo:rerun-if-env-changed=WASM_OPT");
    println!("cargo:rerun-if-changed={}", tool.display());
    let out = module.with_extension("opt.wasm");
    let ran = Command::new(&tool)
        // Size first (issue 22 brought the component to its 256 KiB guard):
        // -Oz and merging functions that differ only in constants save about
        // 4.4 KB against -O2; on-webhook timed the same (75.3 against 75.1 µs,
        // median of 3 runs of 20,000 events each, 2026-12-03, docs/speed.md).
        .arg("-Oz")
        .arg("--merge-similar-functions")
        // Then the control flow rebuilt from a flat form (`--flatten
        // --rereloop`) and optimised twice more: 2,974 B less than the
        // above alone (252,987 -> 250,013 B core module with binaryen 108,
        // 2026-12-04), room for issue 22's card page. on-webhook timed
        // within the noise (reused instance 74.2 against 72.8 µs, median of
        // 6 runs of 20,000 events each, docs/speed.md).
        .args(["--flatten", "--rereloop", "-Oz", "-Oz"])
        // The features rustc enables for wasm32-unknown-unknown.
        .args([
            "--enable-bulk-memory",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-nontrapping-float-to-int",
            "--enable-multivalue",
            "--enable-reference-types",
        ])
        .arg(module)
        .arg("-o")
        .arg(&out)
        .status();
    let chosen = match ran {
        Ok(status) if status.success() => out.as_path(),
        _ => {
            println!(
                "cargo:warning={} not found or failed: the plugin is not size-optimised (install binaryen)",
                tool.display()
            );
            module
        }
    };
    std::fs::read(chosen).expect("the guest's core module")
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
