//! Templates for secret-shaped test data: `${alnum:34}`, `${github:ghp}`, `${pem:RSA PRIVATE}`...
//! Rule examples, the labelled corpus and the benchmark are written with them, so the
//! repository holds nothing that looks like a live credential; values are made when needed,
//! from a seed, the same every time.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use mlsec_rule_engine::validate::base62;

/// A small deterministic generator (xorshift64*), seeded per example.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn from(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 24) as u8).collect()
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn pem(g: &mut Gen, kind: &str, newline: &str) -> String {
    let mut der = vec![0x30, 0x82, 0x04, 0xa4, 0x02, 0x01, 0x00];
    der.extend(g.bytes(1_180));
    let b64 = STANDARD.encode(der);
    let body: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN {kind} KEY-----{newline}{}{newline}-----END {kind} KEY-----",
        body.join(newline)
    )
}

fn generate(g: &mut Gen, kind: &str, arg: &str) -> Option<String> {
    let n = || arg.parse::<usize>().ok();
    Some(match kind {
        "alnum" => g.from(ALNUM, n()?),
        "hex" => g.from(b"0123456789abcdef", n()?),
        "HEX" => g.from(b"0123456789ABCDEF", n()?),
        "lower" => g.from(b"abcdefghijklmnopqrstuvwxyz", n()?),
        "upper" => g.from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", n()?),
        "alpha" => g.from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            n()?,
        ),
        "bech32" => g.from(b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", n()?),
        "digits" => g.from(b"0123456789", n()?),
        "b64" => g.from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            n()?,
        ),
        "b64url" => g.from(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            n()?,
        ),
        "base32" => g.from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", n()?),
        "lit" => arg.to_owned(),
        "github" | "npm" => {
            let random = g.from(ALNUM, 30);
            let check = base62(u64::from(crc32fast::hash(random.as_bytes())), 6);
            let prefix = if kind == "npm" { "npm" } else { arg };
            format!("{prefix}_{random}{check}")
        }
        "jwt" => {
            let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
            let p = URL_SAFE_NO_PAD.encode(format!(
                r#"{{"sub":"{}","iat":1700000000}}"#,
                g.from(ALNUM, 12)
            ));
            format!(
                "{h}.{p}.{}",
                g.from(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                    43
                )
            )
        }
        "pem" => pem(g, arg, "\n"),
        "pem-escaped" => pem(g, arg, "\\n"),
        "openssh" => {
            let mut body = b"openssh-key-v1\0".to_vec();
            body.extend(g.bytes(400));
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\\n{}\\n-----END OPENSSH PRIVATE KEY-----",
                STANDARD.encode(body)
            )
        }
        "pgp" => {
            // A new-format secret-key packet header (tag 5), then random key material.
            let mut body = vec![0xc5, 0xc1, 0x58, 0x04];
            body.extend(g.bytes(340));
            format!(
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nComment: test key\n\n{}\n={}\n-----END PGP PRIVATE KEY BLOCK-----",
                STANDARD.encode(body),
                g.from(ALNUM, 4)
            )
        }
        "docker-auth" => STANDARD.encode(format!("ci-bot:{}", g.from(ALNUM, 20))),
        _ => return None,
    })
}

/// Expands `${kind:arg}` and `${kind}` templates; anything else (`${HF_TOKEN}`) stays as is.
pub fn expand(template: &str, seed: u64) -> String {
    let mut g = Gen(seed | 1);
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 2..];
        let Some(end) = tail.find('}') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let inner = &tail[..end];
        let (kind, arg) = inner.split_once(':').unwrap_or((inner, ""));
        match generate(&mut g, kind, arg) {
            Some(s) => out.push_str(&s),
            None => out.push_str(&rest[at..=at + 2 + end]),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}
