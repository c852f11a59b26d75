//! Test data builders shared by mlsec's tests and benchmarks. Production crates never depend on
//! this crate (only `[dev-dependencies]` and examples do).
//!
//! # Brief overview
//! * [`templates::expand`]: secret-shaped values from templates (`${alnum:34}`,
//!   `${github:ghp}`, `${pem:RSA PRIVATE}`), the same for the same seed, so the repository holds
//!   no live-looking credential.
//! * [`corpus`]: a generated, labelled ML repository (`.env`, notebooks, cloud credentials,
//!   Kubernetes Secrets, decoys for every suppressor) that tests score exactly and
//!   `benches/secrets_bench.py` scores other tools on.
//! * [`idp::Idp`]: an Ed25519 identity provider made at test time: its JWKS and signed JWTs.
#![forbid(unsafe_code)]

pub mod corpus;
pub mod idp;
pub mod templates;
