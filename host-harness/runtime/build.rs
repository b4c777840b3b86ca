//! Builds the plugin component for the host to embed (see build_guest.rs).

#[path = "build_guest.rs"]
mod build_guest;

fn main() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    for watched in [
        "plugin/src",
        "plugin/Cargo.toml",
        // The `wasm` profile the guest is built with.
        "Cargo.toml",
        "wit",
        "Cargo.lock",
        "host-harness/runtime/build_guest.rs",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let wasm = build_guest::build_guest(&root, "stripe-plugin");
    println!("cargo:rustc-env=PLUGIN_WASM={}", wasm.display());
}
