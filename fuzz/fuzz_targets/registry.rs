//! The registry's parsers of client input: encrypted objects (as read back from storage), MLflow
//! search filters, query strings, Authorization headers, token scopes and artifact paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_registry::crypt::{Context, Kek, open_all};

fuzz_target!(|data: &[u8]| {
    let kek = Kek::from_bytes([7; 32]);
    let ctx = Context { env: "dev".into(), model: "m".into(), version: 1, path: "p".into() };
    let _ = open_all(&kek, &ctx, &"ab".repeat(32), data);
    let mut framed = b"MLSECENC\x01".to_vec();
    framed.extend_from_slice(data);
    let _ = open_all(&kek, &ctx, "", &framed);
    let text = String::from_utf8_lossy(data);
    if let Ok(clauses) = mlsec_registry::api::parse_filter(&text) {
        for c in clauses {
            let _ = c.matches(Some(&text));
        }
    }
    let _ = mlsec_registry::api::parse_query(&text);
    let _ = mlsec_registry::auth::token_from_header(&text);
    let _ = text.parse::<mlsec_registry::auth::Scope>();
    let _ = mlsec_registry::artifacts::check_path(&text);
    let _ = mlsec_registry::api::check_name("name", &text);
});
