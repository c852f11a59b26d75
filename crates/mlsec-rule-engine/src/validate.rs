//! Offline validators: structure and checksums that real secrets have and look-alikes do not.
//! Nothing here contacts a provider.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mlsec_diagnostics::Severity;

use crate::suppress::placeholder;

/// A structural check that tells a real credential from a look-alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// GitHub classic tokens: the last 6 characters are the base62 CRC32 of the 30 before.
    GithubCrc32,
    /// npm tokens: the same scheme.
    NpmCrc32,
    /// AWS key ids: base32 alphabet, not a documentation example.
    AwsKeyId,
    /// Stripe: secret and restricted keys are secrets, publishable keys are not; test keys
    /// matter less.
    StripeSecret,
    /// The header and payload are base64url JSON objects and the header names an algorithm.
    Jwt,
    /// PEM, OpenSSH or PGP private key whose body decodes to the structure of a key.
    PrivateKey,
    /// Base64 of `user:password` (Docker registry auth).
    Base64UserPass,
    /// The password of a URL is not a placeholder or a local default.
    UrlPassword,
}

/// What a validator decided.
pub enum Verdict {
    /// Not a credential: no finding.
    Reject,
    /// A credential, at the rule's severity.
    Keep,
    /// Keep, at another severity (a Stripe test key).
    KeepAs(Severity),
}

impl Validator {
    /// The validator a rule file names (`github-crc32`, `jwt`, ...).
    pub fn from_name(name: &str) -> Option<Validator> {
        Some(match name {
            "github-crc32" => Validator::GithubCrc32,
            "npm-crc32" => Validator::NpmCrc32,
            "aws-key-id" => Validator::AwsKeyId,
            "stripe-secret" => Validator::StripeSecret,
            "jwt" => Validator::Jwt,
            "private-key" => Validator::PrivateKey,
            "base64-userpass" => Validator::Base64UserPass,
            "url-password" => Validator::UrlPassword,
            _ => return None,
        })
    }

    /// Judges a secret; `whole` is the full regex match.
    pub fn check(self, secret: &str, whole: &str) -> Verdict {
        let ok = match self {
            Validator::GithubCrc32 | Validator::NpmCrc32 => base62_crc32_ok(secret),
            Validator::AwsKeyId => !secret.contains("EXAMPLE"),
            Validator::StripeSecret => {
                if secret.starts_with("pk_") {
                    false
                } else if secret.contains("_test_") {
                    return Verdict::KeepAs(Severity::Medium);
                } else {
                    true
                }
            }
            Validator::Jwt => jwt_ok(secret),
            Validator::PrivateKey => private_key_ok(secret),
            Validator::Base64UserPass => userpass_ok(secret),
            Validator::UrlPassword => url_password_ok(secret, whole),
        };
        if ok { Verdict::Keep } else { Verdict::Reject }
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 digits, most significant first, of `n`, padded to `width`.
pub fn base62(mut n: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `prefix_` + 30 random + 6 checksum characters, as GitHub and npm mint them.
fn base62_crc32_ok(token: &str) -> bool {
    let Some((_, body)) = token.split_once('_') else {
        return false;
    };
    if body.len() != 36 || !body.is_ascii() {
        return false;
    }
    let (random, check) = body.split_at(30);
    base62(u64::from(crc32fast::hash(random.as_bytes())), 6) == check
}

fn json_object(b64: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

fn jwt_ok(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        return false;
    };
    json_object(h).is_some_and(|h| h.get("alg").is_some_and(serde_json::Value::is_string))
        && json_object(p).is_some()
}

/// Decodes a PEM block (escaped newlines allowed) and checks that the body is a key: DER for
/// PEM types, the `openssh-key-v1` magic for OpenSSH, a packet stream for PGP.
fn private_key_ok(block: &str) -> bool {
    let text = block.replace("\\n", "\n").replace("\\r", "");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let Some(begin) = lines.first() else {
        return false;
    };
    let body: String = lines
        .iter()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        // Encrypted PEM headers (Proc-Type, DEK-Info), PGP armor headers and checksum.
        .filter(|l| !l.contains(':') && !l.starts_with('='))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\\')
        .collect();
    let Ok(der) = STANDARD.decode(body.as_bytes()) else {
        return false;
    };
    if der.len() < 64 {
        return false;
    }
    if begin.contains("OPENSSH") {
        der.starts_with(b"openssh-key-v1\0")
    } else if begin.contains("PGP") {
        // An old- or new-format packet header for a secret-key packet (tag 5).
        der[0] & 0x80 != 0
    } else {
        der[0] == 0x30
    }
}

fn userpass_ok(b64: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(b64) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return false;
    };
    match text.split_once(':') {
        Some((user, pass)) => !user.is_empty() && pass.len() >= 3 && !placeholder(pass),
        None => false,
    }
}

/// Default credentials of local development services: not secrets worth an alarm.
const LOCAL_DEFAULTS: &[&str] = &[
    "postgres", "password", "secret", "root", "guest", "admin", "test", "example", "changeme",
    "mysql", "redis", "user", "pass",
];

fn url_password_ok(password: &str, whole: &str) -> bool {
    if placeholder(password) || password.contains('{') {
        return false;
    }
    let lower = password.to_ascii_lowercase();
    if LOCAL_DEFAULTS.contains(&lower.as_str()) {
        return false;
    }
    // user == password (`guest:guest`) is a default, not a secret.
    let after_scheme = whole.split_once("://").map_or(whole, |(_, r)| r);
    if let Some((user, _)) = after_scheme.split_once(':')
        && user.eq_ignore_ascii_case(password)
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_tokens() {
        let random = "abcdefghijklmnopqrstuvwxyzABCD";
        let check = base62(u64::from(crc32fast::hash(random.as_bytes())), 6);
        let good = format!("ghp_{random}{check}");
        assert!(base62_crc32_ok(&good));
        let bad = format!("ghp_{random}000000");
        assert!(!base62_crc32_ok(&bad));
        assert!(!base62_crc32_ok("ghp_short"));
        assert_eq!(base62(61, 2), "0z");
    }

    #[test]
    fn jwt_needs_json_and_alg() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub":"1"}"#);
        assert!(jwt_ok(&format!("{h}.{p}.sig")));
        let h2 = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT"}"#);
        assert!(!jwt_ok(&format!("{h2}.{p}.sig")));
        assert!(!jwt_ok("eyJ.eyJ.x"));
    }

    #[test]
    fn url_passwords() {
        assert!(!url_password_ok(
            "postgres",
            "postgres://postgres:postgres@localhost"
        ));
        assert!(!url_password_ok("bob", "amqp://bob:bob@rabbit"));
        assert!(url_password_ok("Zq8vN2kLp0", "postgres://ml:Zq8vN2kLp0@db"));
    }
}
