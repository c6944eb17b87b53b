//! Airlock's integration tests: one binary, one module per capability, with
//! typed helpers in `support`.

mod identity;
mod sdk;
mod store;
mod support;
