//! Where request and response checks plug in. This release has the `default` profile, which
//! passes everything; the prompt-injection detector, output scanning and abuse/extraction
//! detection of a later release implement [`Guard`] and are chosen by a policy's `guard`.
//!
//! The pipeline calls [`Guard::request`] after validation and before limits are charged, and
//! [`Guard::response_chunk`] on every chunk of a response, streamed or not, before the client
//! sees it. A guard that blocks a stream ends it with an error event.

use serde_json::{Map, Value};

use crate::config::RouteKind;

/// What a guard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Refuse with this stable code and reason (recorded in the audit log).
    Block {
        code: &'static str,
        reason: String,
    },
}

/// The context a guard sees.
pub struct GuardContext<'a> {
    pub route: RouteKind,
    pub model: &'a str,
    pub principal: &'a str,
}

pub trait Guard: Send + Sync {
    fn name(&self) -> &'static str;
    fn request(&self, ctx: &GuardContext<'_>, body: &Map<String, Value>) -> Verdict;
    /// `chunk` is the raw response bytes as they arrive (SSE events for streams).
    fn response_chunk(&self, ctx: &GuardContext<'_>, chunk: &[u8]) -> Verdict;
}

/// The `default` profile: no content checks.
pub struct PassThrough;

impl Guard for PassThrough {
    fn name(&self) -> &'static str {
        "default"
    }
    fn request(&self, _: &GuardContext<'_>, _: &Map<String, Value>) -> Verdict {
        Verdict::Pass
    }
    fn response_chunk(&self, _: &GuardContext<'_>, _: &[u8]) -> Verdict {
        Verdict::Pass
    }
}

/// The guard for a profile name (config checking already refused unknown names).
pub fn profile(name: &str) -> std::sync::Arc<dyn Guard> {
    debug_assert_eq!(name, "default");
    std::sync::Arc::new(PassThrough)
}
