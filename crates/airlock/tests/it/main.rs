//! Airlock's integration tests: one binary, one module per capability, with
//! typed helpers in `support`.

mod audit;
mod identity;
mod oidc;
mod policy;
mod sdk;
mod stack;
mod store;
mod support;
