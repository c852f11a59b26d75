//! The rule engine: secret rules (TOML; gitleaks configurations import as they are), an
//! Aho-Corasick keyword prefilter that picks the rules to run on a text, views that see through
//! notebooks and base64, offline validators and ML-aware suppressors. It takes text and returns
//! typed [`Match`]es with positions; what to do with them (findings with redacted evidence,
//! redaction of an audit body, a guard's verdict on a model's output) is the caller's.
//!
//! # Brief overview
//! * [`RuleSet`]: rules loaded from TOML ([`RuleSet::builtin`], [`RuleSet::parse`]), checked
//!   when loaded.
//! * [`Matcher`]: a compiled rule set; [`Matcher::find`] runs it over one text.
//! * [`Match`]: one secret: its rule, the value, the line, column and notebook cell, and its
//!   byte span in the text when the text itself (not a decoded view of it) holds it.
//! * [`redact`]: a secret as it may be printed (prefix, length, digest);
//!   [`Matcher::redact_text`] replaces every secret in a text.
//!
//! # Example
//! ```
//! let matcher = mlsec_rule_engine::Matcher::builtin();
//! // Built at run time: the repository holds no secret-shaped literal.
//! let body: String = (0..34u32).map(|i| char::from(b'a' + ((i * i * 7 + i) % 26) as u8)).collect();
//! let key = format!("hf_{body}");
//! let text = format!("token = \"{key}\"\n");
//! let found = matcher.find("config.py", &text);
//! assert_eq!(found.matches.len(), 1);
//! let m = &found.matches[0];
//! assert_eq!(matcher.rules.rules[m.rule].id, "huggingface-token");
//! assert_eq!(m.span.clone().map(|s| &text[s]), Some(key.as_str()));
//! assert!(!matcher.redact_text("body", &text).contains(&key));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod rules;
pub mod suppress;
pub mod validate;
pub mod views;

use std::collections::HashSet;
use std::ops::Range;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use mlsec_diagnostics::Severity;
use sha2::{Digest, Sha256};

pub use rules::{Dialect, RuleError, RuleSet, SecretRule};
use validate::Verdict;

/// Compiled rules, ready to run.
pub struct Matcher {
    /// The rules, in the order [`Match::rule`] indexes.
    pub rules: RuleSet,
    ac: AhoCorasick,
    /// For each keyword pattern, the rules it enables.
    by_keyword: Vec<Vec<usize>>,
    /// Rules with no keywords: they run on every text.
    always: Vec<usize>,
}

/// One secret found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Index of the rule in [`Matcher::rules`].
    pub rule: usize,
    /// The secret itself (empty for rules that match a file by its path alone). Callers must
    /// redact it before it leaves the process.
    pub secret: String,
    /// Byte span of the secret in the text given to [`Matcher::find`], when the text holds it
    /// as it is (not only in a notebook cell's unescaped source or a base64 decoding).
    pub span: Option<Range<usize>>,
    /// 1-based line in the text.
    pub line: u32,
    /// 1-based column (characters) in the view the secret was found in.
    pub column: u32,
    /// Notebook cell index.
    pub cell: Option<u32>,
    /// 1-based line inside the cell.
    pub cell_line: Option<u32>,
    /// Where in the file: `""` for the text itself, `/cells/3/source`, `base64`, ...
    pub field: String,
    /// The rule's severity, or the validator's verdict on this value.
    pub severity: Severity,
}

/// An allow comment that kept nothing out (reported with `--report-unused-ignores`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedAllow {
    /// 1-based line: in the cell when `cell` is set, else in the text.
    pub line: u32,
    /// Notebook cell index.
    pub cell: Option<u32>,
}

/// What [`Matcher::find`] found in one text.
#[derive(Debug, Default)]
pub struct Found {
    /// In order of position; duplicates and superseded matches removed.
    pub matches: Vec<Match>,
    /// Filled only when asked (`unused_allows = true`).
    pub unused_allows: Vec<UnusedAllow>,
}

impl Matcher {
    /// Compiles a rule set: the keyword automaton and the rules each keyword enables.
    pub fn new(rules: RuleSet) -> Matcher {
        let mut keywords: Vec<String> = Vec::new();
        let mut by_keyword: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, r) in rules.rules.iter().enumerate() {
            if r.keywords.is_empty() {
                always.push(i);
            }
            for k in &r.keywords {
                if let Some(p) = keywords.iter().position(|x| x == k) {
                    by_keyword[p].push(i);
                } else {
                    keywords.push(k.clone());
                    by_keyword.push(vec![i]);
                }
            }
        }
        // A DFA: the overlapping search (every keyword, even inside another) is the scanner's
        // hot loop, and the DFA runs it several times faster than the default NFA.
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .unwrap_or_else(|e| panic!("keyword automaton: {e}"));
        Matcher {
            rules,
            ac,
            by_keyword,
            always,
        }
    }

    /// The built-in rules, compiled once.
    pub fn builtin() -> &'static Matcher {
        static M: OnceLock<Matcher> = OnceLock::new();
        M.get_or_init(|| Matcher::new(RuleSet::builtin()))
    }

    /// Which rules the keywords in `text` enable.
    fn triggered(&self, text: &str) -> Vec<usize> {
        let mut on = vec![false; self.rules.rules.len()];
        for &i in &self.always {
            on[i] = true;
        }
        for m in self.ac.find_overlapping_iter(text) {
            for &i in &self.by_keyword[m.pattern().as_usize()] {
                on[i] = true;
            }
        }
        on.iter()
            .enumerate()
            .filter_map(|(i, &b)| b.then_some(i))
            .collect()
    }

    /// Finds the secrets in one text named `path` (the name picks the views: a `.ipynb` is
    /// read as a notebook; path-scoped rules and allowlists match it). With `unused_allows`,
    /// also lists the allow comments that kept nothing out.
    pub fn find(&self, path: &str, text: &str) -> Found {
        self.find_with(path, text, false)
    }

    /// [`Matcher::find`], optionally listing unused allow comments.
    pub fn find_with(&self, path: &str, text: &str, unused_allows: bool) -> Found {
        let mut found = Found::default();
        if suppress::encrypted_file(text) {
            return found;
        }
        let hash_file = suppress::hash_file(path);
        let mut hits: Vec<Match> = Vec::new();
        for (i, r) in self.rules.rules.iter().enumerate() {
            if r.regex.is_none() && r.path.as_ref().is_some_and(|p| p.is_match(path)) {
                hits.push(Match {
                    rule: i,
                    secret: String::new(),
                    span: None,
                    line: 1,
                    column: 1,
                    cell: None,
                    cell_line: None,
                    field: String::new(),
                    severity: r.severity,
                });
            }
        }
        for view in views::views(path, text) {
            let triggered = self.triggered(&view.text);
            if triggered.is_empty() && !(unused_allows && suppress::has_allow_marker(&view.text)) {
                continue;
            }
            // The view is the text itself: spans are offsets into the caller's text.
            let is_text = matches!(view.lines, views::Lines::Same) && view.cell.is_none();
            let mut used_allows: HashSet<usize> = HashSet::new();
            let starts: Vec<usize> = std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', view.text.as_bytes()).map(|i| i + 1))
                .collect();
            // Line `k` of the view, from the line starts (no second pass over the text).
            let line_at = |k: usize| -> &str {
                let end = starts.get(k + 1).map_or(view.text.len(), |e| e - 1);
                &view.text[starts[k]..end]
            };
            for i in triggered {
                let r = &self.rules.rules[i];
                let Some(re) = &r.regex else { continue };
                if r.path.as_ref().is_some_and(|p| !p.is_match(path)) {
                    continue;
                }
                if hash_file && r.entropy.is_some() {
                    continue;
                }
                let text = &*view.text;
                let mut at = 0;
                while at <= text.len() {
                    let Some(c) = re.captures_at(text, at) else {
                        break;
                    };
                    let Some(whole) = c.get(0) else { break };
                    // Move on by at least one character, whatever is decided below.
                    at = if whole.end() > whole.start() {
                        whole.end()
                    } else {
                        whole.end() + text[whole.end()..].chars().next().map_or(1, char::len_utf8)
                    };
                    if r.left_boundary && !rules::left_boundary_ok(text, whole.start()) {
                        at = whole.start()
                            + text[whole.start()..]
                                .chars()
                                .next()
                                .map_or(1, char::len_utf8);
                        continue;
                    }
                    let m = match r.secret_group {
                        Some(g) => c.get(g),
                        None => (1..c.len()).find_map(|g| c.get(g)).or(Some(whole)),
                    };
                    let Some(m) = m else { continue };
                    let secret = m.as_str();
                    let idx = starts
                        .partition_point(|&s| s <= m.start())
                        .saturating_sub(1);
                    let line_text = line_at(idx);
                    let col_byte = m.start() - starts[idx];
                    let before = line_text.get(..col_byte).unwrap_or("");
                    if r.entropy.is_some_and(|t| rules::entropy(secret) < t)
                        || (r.validator != Some(validate::Validator::PrivateKey)
                            && (suppress::placeholder(secret)
                                || suppress::identifier(secret)
                                || suppress::documentation_example(secret).is_some()))
                        || suppress::benign_context(line_text, before)
                        || self
                            .rules
                            .allowlists
                            .iter()
                            .chain(&r.allowlists)
                            .any(|a| a.allows(path, secret, whole.as_str(), line_text))
                    {
                        continue;
                    }
                    let severity = match r.validator.map(|v| v.check(secret, whole.as_str())) {
                        Some(Verdict::Reject) => continue,
                        Some(Verdict::KeepAs(s)) => s,
                        Some(Verdict::Keep) | None => r.severity,
                    };
                    // Allow comments last, so that unused ones can be told from used ones.
                    if suppress::allowed_inline(line_text) {
                        used_allows.insert(idx);
                        continue;
                    }
                    if idx > 0 && suppress::allowed_next(line_at(idx - 1)) {
                        used_allows.insert(idx - 1);
                        continue;
                    }
                    hits.push(Match {
                        rule: i,
                        secret: secret.to_owned(),
                        span: is_text.then(|| m.range()),
                        line: view.lines.file_line(idx),
                        column: before.chars().count() as u32 + 1,
                        cell: view.cell,
                        cell_line: view.cell.map(|_| idx as u32 + 1),
                        field: view.field.clone(),
                        severity,
                    });
                }
            }
            if unused_allows {
                for k in 0..starts.len() {
                    if suppress::has_allow_marker(line_at(k)) && !used_allows.contains(&k) {
                        found.unused_allows.push(UnusedAllow {
                            line: match view.cell {
                                Some(_) => k as u32 + 1,
                                None => view.lines.file_line(k),
                            },
                            cell: view.cell,
                        });
                    }
                }
            }
        }
        // A rule that explains another's finding replaces it (a service-account JSON, not also
        // its private key).
        let superseded: HashSet<&str> = hits
            .iter()
            .flat_map(|h| {
                self.rules.rules[h.rule]
                    .supersedes
                    .iter()
                    .map(String::as_str)
            })
            .collect();
        let mut seen = HashSet::new();
        found.matches = hits
            .into_iter()
            .filter(|h| !superseded.contains(self.rules.rules[h.rule].id.as_str()))
            .filter(|h| seen.insert((h.rule, h.secret.clone(), h.line, h.field.clone())))
            .collect();
        found
    }

    /// `text` with every secret replaced by `[REDACTED:<rule id>]`: by position where the text
    /// holds the secret as it is, and by value for secrets found only in a decoded view.
    pub fn redact_text(&self, path: &str, text: &str) -> String {
        let found = self.find(path, text);
        let mut spans: Vec<(Range<usize>, &str)> = Vec::new();
        let mut by_value: Vec<(&str, &str)> = Vec::new();
        for m in &found.matches {
            let id = self.rules.rules[m.rule].id.as_str();
            match &m.span {
                Some(s) => spans.push((s.clone(), id)),
                // Short values would replace innocent text elsewhere.
                None if m.secret.len() >= 8 => by_value.push((&m.secret, id)),
                None => {}
            }
        }
        spans.sort_by_key(|(s, _)| (s.start, std::cmp::Reverse(s.end)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, id) in spans {
            if s.start < at {
                continue; // inside a span already replaced
            }
            out.push_str(&text[at..s.start]);
            out.push_str("[REDACTED:");
            out.push_str(id);
            out.push(']');
            at = s.end;
        }
        out.push_str(&text[at..]);
        for (secret, id) in by_value {
            out = out.replace(secret, &format!("[REDACTED:{id}]"));
        }
        out
    }
}

/// A secret as it may be printed: a short prefix, its length and a digest (so that reports and
/// baselines can tell two secrets apart without holding either).
pub fn redact(secret: &str) -> String {
    let keep = (secret.chars().count() / 5).min(4);
    let prefix: String = secret.chars().take(keep).collect();
    let digest = Sha256::digest(secret.as_bytes());
    let hex = digest.iter().take(6).fold(String::new(), |mut acc, b| {
        use std::fmt::Write as _;
        let _ = write!(acc, "{b:02x}");
        acc
    });
    format!("{prefix}… ({} chars, sha256:{hex})", secret.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Hugging Face token, built at run time: the repository holds no secret-shaped literal.
    fn key() -> String {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let body: String = (0..34)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % 52) as u8;
                char::from(if i < 26 { b'a' + i } else { b'A' + i - 26 })
            })
            .collect();
        format!("hf_{body}")
    }

    #[test]
    fn spans_point_into_the_text_and_redaction_uses_them() {
        let m = Matcher::builtin();
        let k = key();
        let text = format!("a = 1\nHF_TOKEN=\"{k}\"\nb = 2\n");
        let found = m.find("settings.env", &text);
        assert_eq!(found.matches.len(), 1, "{found:?}");
        let hit = &found.matches[0];
        assert_eq!(hit.line, 2);
        assert_eq!(hit.span.clone().map(|s| &text[s]), Some(k.as_str()));
        let red = m.redact_text("body", &text);
        assert_eq!(
            red,
            "a = 1\nHF_TOKEN=\"[REDACTED:huggingface-token]\"\nb = 2\n"
        );
    }

    #[test]
    fn secrets_in_decoded_views_have_no_span_but_are_still_redacted() {
        use base64::Engine as _;
        let m = Matcher::builtin();
        let k = key();
        let enc = base64::engine::general_purpose::STANDARD.encode(format!("token: {k}\n"));
        let text =
            format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  token: {enc}\n");
        let found = m.find("secret.yaml", &text);
        let hit = found
            .matches
            .iter()
            .find(|h| h.secret == k)
            .expect("found in the base64 view");
        assert_eq!(hit.span, None);
        assert_eq!(hit.field, "base64");
    }

    #[test]
    fn unused_allows_are_listed_only_when_asked() {
        let m = Matcher::builtin();
        let text = "x = 1  # mlsec:allow\n";
        assert!(m.find("a.py", text).unused_allows.is_empty());
        assert_eq!(
            m.find_with("a.py", text, true).unused_allows,
            [UnusedAllow {
                line: 1,
                cell: None
            }]
        );
    }

    proptest::proptest! {
        #[test]
        fn redaction_never_panics_and_never_leaves_a_key(
            before in "[ -~\n\u{e9}\u{4e2d}]{0,200}",
            after in "[ -~\n]{0,200}",
        ) {
            let m = Matcher::builtin();
            let _ = m.redact_text("body", &before);
            let text = format!("{before} token={} {after}", key());
            let red = m.redact_text("body", &text);
            proptest::prop_assert!(!red.contains(&key()), "{}", red);
        }
    }
}
