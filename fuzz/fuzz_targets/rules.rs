//! Untrusted rule files (`--secrets-config`, gitleaks configurations): the TOML, regex and
//! allowlist checks, then the compiled rules run on the same bytes as text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_rule_engine::{Dialect, Matcher, RuleSet};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = mlsec_rule_engine::rules::translate_go(&text);
    for dialect in [Dialect::Rust, Dialect::Go] {
        if let Ok(rules) = RuleSet::parse_dialect(&text, "fuzz.toml", dialect) {
            let m = Matcher::new(rules);
            let _ = m.find_with("a.env", &text, true);
            let _ = m.redact_text("a.env", &text);
        }
    }
});
