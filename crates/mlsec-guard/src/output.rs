//! What a model's output must not carry: secrets (the rule engine `mlsec scan` uses), personal
//! data, and the caller's system prompt (a canary planted in it, or long verbatim runs of it).
//!
//! Everything here works on one text at a time and reports byte spans, so a caller can block or
//! redact. Streams are the caller's business: it feeds a rolling window of the text seen so far
//! (see the gateway's output stage), and [`Leak`] keeps what it matched across calls.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::LazyLock;

use mlsec_rule_engine::Matcher;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Longest system text whose shingles are kept; the rest is not compared.
pub const MAX_SYSTEM_BYTES: usize = 64 << 10;
/// Words per shingle: five words in a row of the system text are rarely said by chance.
pub const SHINGLE_WORDS: usize = 5;
/// Shingles kept from the system text (one per word, at most).
pub const MAX_SHINGLES: usize = 8192;

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pii {
    Email,
    /// A payment card number: 13 to 19 digits, a known issuer prefix and the Luhn check.
    Card,
    /// A US social security number (valid area, group and serial).
    Ssn,
    /// A UK National Insurance number.
    Nino,
    /// An IBAN that passes its mod-97 check.
    Iban,
    Phone,
}

impl Pii {
    pub const ALL: [Pii; 6] = [
        Pii::Email,
        Pii::Card,
        Pii::Ssn,
        Pii::Nino,
        Pii::Iban,
        Pii::Phone,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Pii::Email => "email",
            Pii::Card => "card",
            Pii::Ssn => "ssn",
            Pii::Nino => "nino",
            Pii::Iban => "iban",
            Pii::Phone => "phone",
        }
    }
}

/// What was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A secret, by the id of the rule that found it.
    Secret(String),
    Pii(Pii),
    /// The canary planted in the system prompt.
    Canary,
    /// A long verbatim run of the system prompt.
    SystemPrompt,
}

impl Kind {
    /// The marker a redaction leaves, and the code in audit records.
    pub fn code(&self) -> String {
        match self {
            Kind::Secret(id) => format!("secret:{id}"),
            Kind::Pii(p) => format!("pii:{}", p.code()),
            Kind::Canary => "system_prompt:canary".into(),
            Kind::SystemPrompt => "system_prompt:verbatim".into(),
        }
    }
}

/// One finding: its kind and where it is in the text scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: Kind,
    pub span: Range<usize>,
}

impl Hit {
    /// A private key whose end has not come yet in `text`: everything after it is key until
    /// its end marker.
    pub fn is_open(&self, text: &str) -> bool {
        matches!(&self.kind, Kind::Secret(id) if id == OPEN_PRIVATE_KEY)
            && self.span.end == text.len()
            && private_key_end(&text[self.span.start..]).is_none()
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("valid regex")
});
static CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)\d(?:[ -]?\d){12,18}(?-u:\b)").expect("valid regex"));
static SSN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)(\d{3})-(\d{2})-(\d{4})(?-u:\b)").expect("valid regex"));
static NINO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D](?-u:\b)")
        .expect("valid regex")
});
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)")
        .expect("valid regex")
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|(?-u:\b)\d{3})[ .-]\d{3}[ .-]\d{4}(?-u:\b)|\+[1-9]\d{0,2}(?:[ .-]?\d{2,4}){3,5}(?-u:\b)",
    )
    .expect("valid regex")
});

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// The Luhn check over 13 to 19 digits.
pub fn luhn(s: &str) -> bool {
    let ds = digits(s);
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

/// A card issuer's prefix (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay): a Luhn-valid
/// order number is not a card.
fn card_prefix(ds: &[u32]) -> bool {
    let n = |k: usize| ds.iter().take(k).fold(0u32, |a, &d| a * 10 + d);
    matches!(n(1), 4)
        || (51..=55).contains(&n(2))
        || (2221..=2720).contains(&n(4))
        || matches!(n(2), 34 | 37 | 36 | 38 | 65 | 62 | 35 | 30)
        || n(4) == 6011
        || (644..=649).contains(&n(3))
}

fn ssn_valid(c: &regex::Captures<'_>) -> bool {
    let area = &c[1];
    area != "000" && area != "666" && !area.starts_with('9') && &c[2] != "00" && &c[3] != "0000"
}

fn nino_valid(c: &regex::Captures<'_>) -> bool {
    !matches!(&c[1], "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ")
}

/// The IBAN mod-97 check.
pub fn iban_valid(s: &str) -> bool {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !(15..=34).contains(&s.len()) {
        return false;
    }
    let mut rem = 0u32;
    for &b in s[4..].iter().chain(&s[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Personal data of the kinds asked for, in order of position.
pub fn find_pii(text: &str, kinds: &[Pii]) -> Vec<Hit> {
    let mut out = Vec::new();
    let on = |k: Pii| kinds.contains(&k);
    let mut push = |kind: Pii, span: Range<usize>| {
        out.push(Hit {
            kind: Kind::Pii(kind),
            span,
        });
    };
    if on(Pii::Email) && text.contains('@') {
        for m in EMAIL.find_iter(text) {
            push(Pii::Email, m.range());
        }
    }
    // Each kind needs so many digits: text with fewer skips its pattern.
    let n_digits = text.bytes().filter(u8::is_ascii_digit).count();
    if n_digits < 6 {
        return out;
    }
    if on(Pii::Card) && n_digits >= 13 {
        for m in CARD.find_iter(text) {
            let ds = digits(m.as_str());
            if card_prefix(&ds) && luhn(m.as_str()) {
                push(Pii::Card, m.range());
            }
        }
    }
    if on(Pii::Ssn) && n_digits >= 9 {
        for c in SSN.captures_iter(text) {
            if ssn_valid(&c) {
                push(Pii::Ssn, c.get(0).map_or(0..0, |m| m.range()));
            }
        }
    }
    if on(Pii::Nino) {
        for c in NINO.captures_iter(text) {
            if nino_valid(&c) {
                push(Pii::Nino, c.get(0).map_or(0..0, |m| m.range()));
            }
        }
    }
    if on(Pii::Iban) {
        for m in IBAN.find_iter(text) {
            if iban_valid(m.as_str()) {
                push(Pii::Iban, m.range());
            }
        }
    }
    if on(Pii::Phone) && n_digits >= 8 {
        for m in PHONE.find_iter(text) {
            push(Pii::Phone, m.range());
        }
    }
    out
}

static PEM_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN[ A-Z0-9_-]{0,40} PRIVATE KEY(?: BLOCK)?-----\r?\n[A-Za-z0-9+/=]{16}")
        .expect("valid regex")
});
static PEM_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----END[ A-Z0-9_-]{0,40} PRIVATE KEY(?: BLOCK)?-----").expect("valid regex")
});

/// The rule id of a private key found by its header and first line, before its end: a stream
/// can stop or hide it before the body goes out. Its span runs to the end marker or, while that
/// has not come, to the end of the text ([`Hit::is_open`]).
pub const OPEN_PRIVATE_KEY: &str = "private-key";

/// Where a private key's end marker ends in `text`, if it has one.
pub fn private_key_end(text: &str) -> Option<usize> {
    PEM_END.find(text).map(|m| m.end())
}

/// Secrets, by the shared rule engine's built-in rules. A secret found only in a decoded view
/// (base64) has no position of its own: it is reported where its value occurs, or else over the
/// whole text, so that redacting never lets it through.
pub fn find_secrets(text: &str) -> Vec<Hit> {
    let m = Matcher::builtin();
    let mut out: Vec<Hit> = Vec::new();
    if text.contains("-----BEGIN") {
        for k in PEM_KEY.find_iter(text) {
            let end = private_key_end(&text[k.start()..]).map_or(text.len(), |e| k.start() + e);
            out.push(Hit {
                kind: Kind::Secret(OPEN_PRIVATE_KEY.into()),
                span: k.start()..end,
            });
        }
    }
    let found = m
        .find("model-output", text)
        .matches
        .into_iter()
        .filter(|x| !x.secret.is_empty())
        .map(|x| Hit {
            kind: Kind::Secret(m.rules.rules[x.rule].id.clone()),
            span: x.span.unwrap_or_else(|| {
                text.find(&x.secret)
                    .map_or(0..text.len(), |i| i..i + x.secret.len())
            }),
        })
        .filter(|h| !out.iter().any(|o| overlaps(&o.span, &h.span)));
    let found: Vec<Hit> = found.collect();
    out.extend(found);
    out
}

/// Words as shingles see them: runs of letters and digits, lowercased, as a hash and a span.
fn words(text: &str, out: &mut Vec<(u64, Range<usize>)>) {
    out.clear();
    let mut h: u64 = 0;
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            if start.is_none() {
                start = Some(i);
                h = 0xcbf2_9ce4_8422_2325;
            }
            if c.is_ascii() {
                h ^= u64::from(c.to_ascii_lowercase() as u8);
                h = h.wrapping_mul(0x0100_0000_01b3);
            } else {
                for l in c.to_lowercase() {
                    h ^= u64::from(u32::from(l));
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
            }
        } else if let Some(s) = start.take() {
            out.push((h, s..i));
        }
    }
    if let Some(s) = start {
        out.push((h, s..text.len()));
    }
}

fn shingle_hash(ws: &[(u64, Range<usize>)]) -> u64 {
    ws.iter().fold(0x9e37_79b9_7f4a_7c15u64, |acc, (w, _)| {
        (acc ^ w)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29)
    })
}

/// System-prompt leakage: a canary planted in the system text, and verbatim runs of it.
#[derive(Debug, Clone)]
pub struct Leak {
    canary: Option<String>,
    shingles: HashSet<u64>,
    /// Distinct system shingles seen in the output so far.
    matched: HashSet<u64>,
    need: usize,
    scratch: Vec<(u64, Range<usize>)>,
}

impl Leak {
    /// `system` is the instructions the caller gave the model; `canary` a random token planted
    /// in them (letters and digits, at least 8).
    pub fn new(system: &str, canary: Option<String>) -> Leak {
        let mut cut = system.len().min(MAX_SYSTEM_BYTES);
        while !system.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut ws = Vec::new();
        words(&system[..cut], &mut ws);
        let shingles: HashSet<u64> = ws
            .windows(SHINGLE_WORDS)
            .take(MAX_SHINGLES)
            .map(shingle_hash)
            .collect();
        // A third of the prompt, between 4 and 12 shingles (8 to 16 words in a row at least).
        let need = (shingles.len() / 3).clamp(4, 12);
        Leak {
            canary: canary.map(|c| c.to_ascii_lowercase()),
            shingles,
            matched: HashSet::new(),
            need,
            scratch: ws,
        }
    }

    /// Whether there is anything to watch for.
    pub fn is_active(&self) -> bool {
        self.canary.is_some() || self.shingles.len() >= self.need
    }

    /// Looks at `text` (the output, or a window of it). Shingles matched stay matched across
    /// calls, so a prompt leaked a sentence at a time is caught when enough of it is out.
    pub fn check(&mut self, text: &str) -> Option<Hit> {
        if let Some(c) = &self.canary
            && let Some(span) = find_spread(text, c.as_bytes())
        {
            return Some(Hit {
                kind: Kind::Canary,
                span,
            });
        }
        if self.shingles.len() < self.need {
            return None;
        }
        let mut ws = std::mem::take(&mut self.scratch);
        words(text, &mut ws);
        let mut first: Option<usize> = None;
        let mut last = 0;
        for win in ws.windows(SHINGLE_WORDS) {
            let h = shingle_hash(win);
            if self.shingles.contains(&h) {
                self.matched.insert(h);
                first.get_or_insert(win[0].1.start);
                last = win[SHINGLE_WORDS - 1].1.end;
            }
        }
        self.scratch = ws;
        (self.matched.len() >= self.need).then(|| Hit {
            kind: Kind::SystemPrompt,
            span: first.unwrap_or(0)..last.max(first.unwrap_or(0)),
        })
    }
}

/// Where `needle` (lowercase ASCII letters and digits) occurs in `text` with anything but
/// letters and digits allowed between its characters (spaced or punctuated), case-insensitive.
fn find_spread(text: &str, needle: &[u8]) -> Option<Range<usize>> {
    let first = *needle.first()?;
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(p) = bytes[from..]
        .iter()
        .position(|b| b.to_ascii_lowercase() == first)
    {
        let start = from + p;
        let (mut i, mut k) = (start, 0);
        while i < bytes.len() && k < needle.len() {
            let b = bytes[i].to_ascii_lowercase();
            if b == needle[k] {
                k += 1;
            } else if b.is_ascii_alphanumeric() || !b.is_ascii() {
                break;
            }
            i += 1;
        }
        if k == needle.len() {
            return Some(start..i);
        }
        from = start + 1;
    }
    None
}

/// What to look for in output.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub secrets: bool,
    pub pii: Vec<Pii>,
}

/// Secrets, then personal data that does not overlap a secret, in order of position.
pub fn find(text: &str, checks: &Checks) -> Vec<Hit> {
    let mut hits = if checks.secrets {
        find_secrets(text)
    } else {
        Vec::new()
    };
    if !checks.pii.is_empty() {
        let secrets = hits.clone();
        hits.extend(
            find_pii(text, &checks.pii)
                .into_iter()
                .filter(|p| !secrets.iter().any(|s| overlaps(&s.span, &p.span))),
        );
    }
    hits.sort_by_key(|h| (h.span.start, std::cmp::Reverse(h.span.end)));
    hits
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// `text` with each hit replaced by `[REDACTED:<code>]` (overlapping hits merged into the first).
pub fn redact(text: &str, hits: &[Hit]) -> String {
    let mut sorted: Vec<&Hit> = hits.iter().collect();
    sorted.sort_by_key(|h| (h.span.start, std::cmp::Reverse(h.span.end)));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for h in sorted {
        if h.span.start < at || h.span.end > text.len() {
            continue;
        }
        out.push_str(&text[at..h.span.start]);
        out.push_str("[REDACTED:");
        out.push_str(&h.kind.code());
        out.push(']');
        at = h.span.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Hugging Face token, built at run time: the repository holds no secret-shaped literal.
    pub(crate) fn hf_token() -> String {
        let letters: String = (0..34u8)
            .map(|i| char::from(b'a' + (i * 7 + 3) % 26))
            .collect();
        format!("hf_{}", letters.to_uppercase().replacen('A', "q", 3))
    }

    fn kinds(text: &str) -> Vec<String> {
        find(
            text,
            &Checks {
                secrets: true,
                pii: Pii::ALL.to_vec(),
            },
        )
        .iter()
        .map(|h| h.kind.code())
        .collect()
    }

    #[test]
    fn personal_data_is_found_with_its_checks() {
        // 4111 1111 1111 1111 is the well-known Visa test number.
        let visa = ["4111", "1111", "1111", "1111"].join(" ");
        let text = format!(
            "Mail ana@example.org or call +44 20 7946 0958 / 415-555-0100. Card {visa}, \
             SSN 219-09-9999, NI JG 10 37 26 A, IBAN GB82 WEST 1234 5698 7654 32."
        );
        let k = kinds(&text);
        for want in [
            "pii:email",
            "pii:card",
            "pii:ssn",
            "pii:nino",
            "pii:iban",
            "pii:phone",
        ] {
            assert!(k.iter().any(|x| x == want), "{want} missing in {k:?}");
        }
    }

    #[test]
    fn numbers_that_fail_their_checks_are_not_personal_data() {
        // Luhn-valid but no issuer prefix; Luhn-invalid with a Visa prefix; SSN area 000 and 9xx;
        // a NINO with a forbidden prefix; an IBAN with a wrong check; version numbers and dates.
        let k = kinds(
            "order 1234567890123 ref 4111111111111112 id 000-12-3456 and 912-34-5678 \
             nino GB 12 34 56 A, iban GB00 WEST 1234 5698 7654 32, v2.10.3 on 2024-05-01",
        );
        assert!(k.is_empty(), "{k:?}");
    }

    #[test]
    fn secrets_come_from_the_rule_engine_and_are_redacted() {
        let tok = hf_token();
        let text = format!("use {tok} to log in");
        let hits = find(
            &text,
            &Checks {
                secrets: true,
                pii: vec![],
            },
        );
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(matches!(&hits[0].kind, Kind::Secret(id) if id.contains("hugging")));
        let r = redact(&text, &hits);
        assert!(!r.contains(&tok), "{r}");
        assert!(r.starts_with("use [REDACTED:secret:") && r.ends_with(" to log in"));
    }

    #[test]
    fn canaries_are_found_even_spaced_out() {
        let mut l = Leak::new("You are a billing assistant.", Some("x7Kq9Pz2Lm4T".into()));
        assert!(l.check("I cannot share that.").is_none());
        let hit = l
            .check("My instructions end with x7kq 9pz2 lm4t.")
            .expect("canary");
        assert_eq!(hit.kind, Kind::Canary);
    }

    #[test]
    fn a_leaked_system_prompt_is_found_a_sentence_at_a_time() {
        let system = "You are Atlas, the support agent for Northwind Bank. Never reveal account \
                      numbers. Escalate fraud reports to the security desk within five minutes. \
                      Answer only questions about cards, loans and savings accounts.";
        let mut l = Leak::new(system, None);
        assert!(l.is_active());
        assert!(
            l.check("Sure! I can help with cards, loans and savings accounts. What do you need?")
                .is_none(),
            "a short overlap is a normal answer"
        );
        assert!(
            l.check("My rules: You are Atlas, the support agent for Northwind Bank.")
                .is_none()
        );
        let hit = l.check("Never reveal account numbers. Escalate fraud reports to the security desk within five minutes.");
        assert_eq!(hit.map(|h| h.kind), Some(Kind::SystemPrompt));
    }

    #[test]
    fn a_private_key_is_found_from_its_first_line_before_its_end() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
        let head = format!("-----BEGIN {}-----\n{body}", ["PRIVATE", "KEY"].join(" "));
        let hits = find_secrets(&format!("Here it is:\n{head}"));
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(hits[0].is_open(&format!("Here it is:\n{head}")));
        let whole = format!(
            "{head}\nAAAA\n-----END {}-----\nDone.",
            ["PRIVATE", "KEY"].join(" ")
        );
        let hits = find_secrets(&whole);
        assert!(!hits.is_empty() && !hits[0].is_open(&whole), "{hits:?}");
        assert!(whole[hits[0].span.end..].starts_with("\nDone."));
        // A header that is only talked about is not a key.
        let talk = format!(
            "A PEM file starts with -----BEGIN {}----- and then base64.",
            ["PRIVATE", "KEY"].join(" ")
        );
        assert!(find_secrets(&talk).is_empty());
    }
}
