//! The contract's bindings, generated from `wit/` by wit-bindgen.

wit_bindgen::generate!({
    world: "plugin",
    path: "../wit",
    generate_all,
});
