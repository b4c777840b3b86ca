//! The suite through the real component, as one test binary (wasmtime is
//! linked once): handler snapshots, collections, reconciliation, limits, the
//! money-correctness defects, and end to end through `serve`.

mod bad_day;
mod collections;
mod end_to_end;
mod exposure;
mod handlers;
mod histories;
mod limits;
mod merchants;
mod money;
mod observability;
mod reconciliation;
mod seams;
