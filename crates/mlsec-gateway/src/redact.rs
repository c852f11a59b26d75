//! Redaction for audit bodies: secrets found by mlsec's rule engine (the secret rules `mlsec scan`
//! uses) and personal data (`mlsec_guard::output`: e-mail addresses, payment card numbers that
//! pass the Luhn check, national ids, IBANs, phone numbers), replaced by
//! `[REDACTED:secret:<rule id>]` and `[REDACTED:pii:<kind>]`.

use mlsec_guard::output::{self, Checks, Pii};

/// Longest body kept in an audit record (the rest is cut, and the cut says so).
pub const MAX_AUDIT_BODY: usize = 64 << 10;

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
    let hits = output::find(
        &out,
        &Checks {
            secrets: true,
            pii: Pii::ALL.to_vec(),
        },
    );
    output::redact(&out, &hits)
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
