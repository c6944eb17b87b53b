//! Airlock's domain: what the rest of Airlock is about, with no SQL, no
//! HTTP server and no configuration file.
//!
//! The modules, lowest layer first (ARCHITECTURE.md has the table of which
//! may use which; a test holds the code to it):
//! - foundation: [`clock`] (injected time), [`secret`] (secrets in
//!   configuration, PBKDF2 hashes of stored ones), [`settings`] (the error
//!   every configuration section's check returns), [`host_gate`] (which
//!   `Host`/`Origin` values a door answers).
//! - [`jobs`] (the job model and its shape for users), [`identity`]
//!   (verified tokens to a `Principal`), [`audit`] (the hash chain's
//!   records), [`policy`] (roles and grants; deny by default),
//!   [`approvals`] (four-eyes approvals of destructive actions: the model,
//!   `[approvals]`, and the rules as pure functions).
//!
//! The `airlock` crate builds the store, the services, the HTTP doors and
//! the binary on top; nothing here can reach up to them.

pub mod approvals;
pub mod audit;
pub mod clock;
pub mod host_gate;
pub mod identity;
pub mod jobs;
pub mod policy;
pub mod secret;
pub mod settings;
