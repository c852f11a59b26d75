//! mlsec-drift integration tests: the statistics against scipy's own answers, and drift
//! decisions on generated cases whose truth is known.

#![allow(clippy::unwrap_used)]

mod audit;
mod cases;
mod never_panics;
mod parquet;
mod profile;
mod scipy;
