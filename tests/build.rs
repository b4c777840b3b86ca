//! Builds the misbehaving test plugin (see host-harness/runtime/build_guest.rs).

#[path = "../host-harness/runtime/build_guest.rs"]
mod build_guest;

fn main() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    for watched in [
        "tests/rogue-plugin",
        "wit",
        "host-harness/runtime/build_guest.rs",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let wasm = build_guest::build_guest(&root, "rogue-plugin");
    println!("cargo:rustc-env=ROGUE_WASM={}", wasm.display());
}
