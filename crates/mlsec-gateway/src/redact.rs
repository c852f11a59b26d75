//! Redaction for audit bodies: secrets found by mlsec's rule engine (the secret rules `mlsec scan`
//! uses), and common PII
//! (e-mail addresses, payment card numbers that pass the Luhn check, US social security
//! numbers, phone numbers), replaced by `[REDACTED:<kind>]`.

use std::sync::LazyLock;

use mlsec_rule_engine::Matcher;
use regex::Regex;

/// Longest body kept in an audit record (the rest is cut, and the cut says so).
pub const MAX_AUDIT_BODY: usize = 64 << 10;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("valid regex")
});
static CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:\d[ -]?){12,18}\d\b").expect("valid regex"));
static SSN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{3}-\d{2}-\d{4}\b").expect("valid regex"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d{1,3}[ .-]?)?\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b").expect("valid regex")
});

fn luhn(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Redacts secrets and PII.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if out.len() > MAX_AUDIT_BODY {
        let mut cut = MAX_AUDIT_BODY;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("…[truncated]");
    }
    // Secrets first, by position, so the PII patterns below never see part of one.
    out = Matcher::builtin().redact_text("gateway-body", &out);
    out = EMAIL.replace_all(&out, "[REDACTED:email]").into_owned();
    out = CARD
        .replace_all(&out, |c: &regex::Captures<'_>| {
            if luhn(&c[0]) {
                "[REDACTED:card]".to_string()
            } else {
                c[0].to_string()
            }
        })
        .into_owned();
    out = SSN.replace_all(&out, "[REDACTED:ssn]").into_owned();
    PHONE.replace_all(&out, "[REDACTED:phone]").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pii_and_secrets_are_redacted() {
        // Built at run time: the repository holds no secret-shaped literal.
        use rand_core::RngCore;
        let letters: String = (0..34)
            .map(|_| {
                let i = (rand_core::OsRng.next_u32() % 52) as u8;
                char::from(if i < 26 { b'a' + i } else { b'A' + i - 26 })
            })
            .collect();
        let key = format!("hf_{letters}");
        let text = format!(
            "mail bob@example.org, card 4111 1111 1111 1111, ssn 123-45-6789, call 415-555-0100, token {key}, order 1234567890123"
        );
        let r = redact(&text);
        assert!(!r.contains("bob@example.org"), "{r}");
        assert!(!r.contains("4111 1111"), "{r}");
        assert!(!r.contains("123-45-6789"), "{r}");
        assert!(!r.contains("415-555-0100"), "{r}");
        assert!(!r.contains(&key), "{r}");
        assert!(
            r.contains("order 1234567890123"),
            "a number failing Luhn is kept: {r}"
        );
    }
}
