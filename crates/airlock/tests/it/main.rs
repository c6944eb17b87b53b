//! Airlock's integration tests: one binary, one module per capability, with
//! one harness that starts Airlock (`harness`) and helpers in `support`.

mod abuse;
mod airbyte_ids;
mod approvals;
mod architecture;
mod audit;
mod bad_input;
mod bindings;
mod browser;
mod chaos;
mod cli;
mod console;
mod console_cookies;
mod demo;
mod examples;
mod front;
mod front_hardening;
mod front_writes;
mod harness;
mod identity;
mod jobs_e2e;
mod mcp;
mod observability;
mod oidc;
mod openapi;
mod policy;
mod reliability;
mod reload;
mod replicas;
mod sdk;
mod signals;
mod store;
mod store_approvals;
mod support;
mod traces;
mod webhooks;
