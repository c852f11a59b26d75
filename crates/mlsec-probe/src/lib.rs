//! Probes against OpenAI-compatible LLM endpoints: the catalogue ([`probes`]) and the
//! detectors that decide each probe's outcome from the reply ([`detect`]), and the runner
//! ([`run`]): bounded concurrency and rate, retries, a resumable journal, run comparison;
//! [`report`] turns a run into findings (rules `RTL001`-`RTL007`), text and HTML.
//!
//! Every probe runs under a system prompt the run writes, with values planted per run (a
//! canary, a marker, a forbidden word, a fake credential and contact details, an attacker
//! host), so an outcome is a fact about the reply: the planted value is in it, in some
//! recoverable form, or it is not. No judge model is needed.
//!
//! ```
//! use mlsec_probe::{detect, probes};
//! let plants = probes::Plants::new(7);
//! let catalogue = probes::catalogue(&plants);
//! let reply = detect::Reply { status: 200, content: "Sorry, I can't share that.".into(), ..Default::default() };
//! let verdict = detect::judge(&catalogue[0], &plants, &reply);
//! assert_eq!(verdict.outcome, detect::Outcome::Resisted);
//! ```

#![forbid(unsafe_code)]

pub mod detect;
pub mod probes;
pub mod report;
pub mod run;
