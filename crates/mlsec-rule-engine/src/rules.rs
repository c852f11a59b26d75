//! Secret rules: a TOML format that reads gitleaks configurations as they are and adds
//! provider, severity, confidence, validator and examples. Rules are checked when loaded: a file
//! that is not TOML or defines a rule twice is an error; a rule with a bad regex, an unknown
//! validator or an entropy threshold without keywords is left out with a warning naming the file
//! and the rule, and the others load. Files given by users are read as Go RE2 (gitleaks'
//! dialect, see [`translate_go`]).

use std::collections::HashSet;

use mlsec_diagnostics::Severity;
use regex::Regex;
use serde::Deserialize;

use crate::validate::Validator;

/// The built-in rules, compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// Most rules read from one file.
pub const MAX_RULES: usize = 10_000;
/// Longest regex accepted (before macro expansion).
pub const MAX_REGEX_LEN: usize = 8_192;
/// Compiled size limit per regex, in bytes (the regex crate's own bound).
pub const MAX_REGEX_SIZE: usize = 4 << 20;

/// The left boundary is checked in code after a match (see [`left_boundary_ok`]): written into
/// the regex, it would hide the token's literal prefix from the regex engine's prefilter and
/// make every rule scan every byte.
const LEFT: &str = "";
/// Right boundary.
const RIGHT: &str = r"(?:[^0-9A-Za-z]|$)";
/// An optional quote, escaped or not.
const QUOTE: &str = r#"(?:\\?["'`])?"#;

/// What joins a keyword to its value: the rest of an identifier (`_API_KEY`), an optional
/// closing quote or bracket, a separator (`=`, `:`, `=>`, `:=`, a call's `(` with an optional
/// `key=`, or `= Client(api_key=`), and an optional opening quote.
fn assign() -> String {
    // Besides `=`, `:`, calls and commas: a command-line flag (`--wandb-api-key VALUE`), a
    // nested YAML key (`wandb:` then `  api_key: VALUE`) and a nested JSON object
    // (`"mistral": {"api_key": "VALUE"`), and prose as notebooks and logs print it (`Using
    // Cohere API key is VALUE`).
    const NESTED: &str = r"(?:api_?key|key|token|secret)";
    const PROSE: &str = r"[ \t]+(?:api[ \t]+)?(?:key|token|secret)(?:[ \t]+is)?:?[ \t]+";
    format!(
        r"[A-Za-z0-9_.\-]{{0,40}}{QUOTE}\]?\s*(?:=\s*[A-Za-z_][A-Za-z0-9_.]{{0,30}}\(\s*(?:[A-Za-z_]+\s*=\s*)?|=>|:=|=|-(?:api-)?(?:key|token|secret)[ \t]+|:[ \t]*\r?\n[ \t]+{NESTED}[ \t]*:|:[ \t]*\{{[ \t]*{QUOTE}{NESTED}{QUOTE}[ \t]*:|{PROSE}|:|\(\s*(?:[A-Za-z_]+\s*=\s*)?|,)\s*{QUOTE}\s*"
    )
}

/// Whether a match starting at byte `start` has a left boundary: the start of the text, a
/// non-alphanumeric character, or an escape sequence such as `\n` (notebooks and JSON keep code
/// in escaped strings).
pub fn left_boundary_ok(text: &str, start: usize) -> bool {
    let before = &text.as_bytes()[..start];
    match before {
        [] => true,
        [.., b'\\', b'n' | b'r' | b't'] => true,
        [.., c] => !c.is_ascii_alphanumeric(),
    }
}

/// Expands the rule macros (`{L}`, `{R}`, `{ASSIGN}`, `{Q}`).
pub fn expand(regex: &str) -> String {
    regex
        .replace("{L}", LEFT)
        .replace("{R}", RIGHT)
        .replace("{ASSIGN}", &assign())
        .replace("{Q}", QUOTE)
}

#[derive(Debug, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    rules: Vec<RawRule>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Debug, Deserialize)]
struct RawRule {
    id: String,
    description: Option<String>,
    regex: Option<String>,
    #[serde(rename = "secretGroup", alias = "secret_group")]
    secret_group: Option<usize>,
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    path: Option<String>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
    provider: Option<String>,
    severity: Option<String>,
    confidence: Option<String>,
    validator: Option<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    negatives: Vec<String>,
    #[serde(default)]
    supersedes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawAllowlist {
    #[serde(rename = "regexTarget", alias = "regex_target")]
    regex_target: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    condition: Option<String>,
}

/// What an allowlist regex is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The secret (the rule's secret group).
    Secret,
    /// The whole regex match.
    Match,
    /// The line the match is on.
    Line,
}

/// Conditions under which a match is not a finding.
#[derive(Debug, Clone)]
pub struct Allowlist {
    /// What [`Allowlist::regexes`] are matched against.
    pub target: Target,
    /// A match of any of these is allowed.
    pub regexes: Vec<Regex>,
    /// A file whose path matches any of these is allowed.
    pub paths: Vec<Regex>,
    /// A secret containing any of these words (lower-cased) is allowed.
    pub stopwords: Vec<String>,
    /// gitleaks' `condition = "AND"`: every kind of criterion given must hold.
    pub all: bool,
}

impl Allowlist {
    /// Whether this allowlist excuses a match.
    pub fn allows(&self, path: &str, secret: &str, whole: &str, line: &str) -> bool {
        let text = match self.target {
            Target::Secret => secret,
            Target::Match => whole,
            Target::Line => line,
        };
        let lower = secret.to_ascii_lowercase();
        let mut checks = Vec::new();
        if !self.regexes.is_empty() {
            checks.push(self.regexes.iter().any(|r| r.is_match(text)));
        }
        if !self.paths.is_empty() {
            checks.push(self.paths.iter().any(|r| r.is_match(path)));
        }
        if !self.stopwords.is_empty() {
            checks.push(self.stopwords.iter().any(|w| lower.contains(w.as_str())));
        }
        if self.all {
            !checks.is_empty() && checks.iter().all(|c| *c)
        } else {
            checks.iter().any(|c| *c)
        }
    }
}

/// How sure a rule is that a match is a live secret (reported with each finding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Generic shapes (keyword plus entropy).
    Low,
    /// Provider shapes without a checksum.
    Medium,
    /// Shapes with a prefix and checksum, or a validator that proved the structure.
    High,
}

impl Confidence {
    /// `low`, `medium` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct SecretRule {
    /// Stable id (`aws-access-key-id`); gitleaks ids are kept as they are.
    pub id: String,
    /// Who issues the credential (`AWS`, `GitHub`), for the report.
    pub provider: String,
    /// One line for the report.
    pub description: String,
    /// What a secret looks like; `None` for a rule on the path alone.
    pub regex: Option<Regex>,
    /// The capture group that holds the secret (else the first group, else the match).
    pub secret_group: Option<usize>,
    /// Least Shannon entropy (bits per character) a secret must have.
    pub entropy: Option<f64>,
    /// Lower-cased; a rule runs on a file only when one of them occurs in it.
    pub keywords: Vec<String>,
    /// Files the rule applies to (alone: a file that is itself a secret, such as a key file).
    pub path: Option<Regex>,
    /// The regex starts with `{L}`: matches need a left boundary.
    pub left_boundary: bool,
    /// The rule's own allowlists.
    pub allowlists: Vec<Allowlist>,
    /// Severity of a finding (a validator may lower it).
    pub severity: Severity,
    /// See [`Confidence`].
    pub confidence: Confidence,
    /// A structural check a match must pass.
    pub validator: Option<Validator>,
    /// Texts the rule must match (checked by the tests, built at test time).
    pub examples: Vec<String>,
    /// Texts the rule must not match.
    pub negatives: Vec<String>,
    /// Rules whose findings in the same file this one replaces (a service-account JSON is one
    /// finding, not also its private key).
    pub supersedes: Vec<String>,
}

/// Rules and the global allowlists of one or more files.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// In file order; ids are unique.
    pub rules: Vec<SecretRule>,
    /// Allowlists that apply to every rule.
    pub allowlists: Vec<Allowlist>,
    /// Rules and allowlist patterns left out because they cannot be used, each naming the file,
    /// the rule and the reason. The rest of the file is loaded.
    pub warnings: Vec<String>,
}

/// Which regex dialect a rule file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Rust's `regex` syntax, Unicode-aware classes (the built-in rules).
    Rust,
    /// Go's RE2, as gitleaks reads it: `\w`, `\d`, `\s` and `\b` are ASCII, and a `{` that does
    /// not start a repetition is a literal. Rule files given with `--secrets-config`.
    Go,
}

/// Rewrites Go RE2 syntax into the `regex` crate's: ASCII `\w \d \s \b` (Go's meaning, and
/// far smaller compiled automata than Unicode classes), and literal braces escaped where Go
/// takes them literally (`^\$(?:\d+|{\d+})$`).
pub fn translate_go(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len() + 16);
    let mut i = 0;
    let mut in_class = false;
    let mut class_start = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            '\\' if i + 1 < b.len() => {
                let n = b[i + 1];
                let ascii = |inside: bool| -> Option<&'static str> {
                    Some(match (n, inside) {
                        ('w', false) => "[0-9A-Za-z_]",
                        ('d', false) => "[0-9]",
                        ('s', false) => "[\\t\\n\\f\\r ]",
                        ('W', false) => "[^0-9A-Za-z_]",
                        ('D', false) => "[^0-9]",
                        ('S', false) => "[^\\t\\n\\f\\r ]",
                        ('b', false) => "(?-u:\\b)",
                        ('B', false) => "(?-u:\\B)",
                        ('w', true) => "0-9A-Za-z_",
                        ('d', true) => "0-9",
                        ('s', true) => "\\t\\n\\f\\r ",
                        _ => return None,
                    })
                };
                if let Some(rep) = ascii(in_class) {
                    out.push_str(rep);
                    i += 2;
                    continue;
                }
                out.push(c);
                out.push(n);
                i += 2;
                // `\p{Greek}`, `\x{41}`: copy the braces as they are.
                if matches!(n, 'p' | 'P' | 'x') && b.get(i) == Some(&'{') {
                    while i < b.len() {
                        out.push(b[i]);
                        i += 1;
                        if b[i - 1] == '}' {
                            break;
                        }
                    }
                }
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = i;
                out.push(c);
            }
            // `[]a]` and `[^]a]`: a `]` first in a class is a literal.
            ']' if in_class
                && !(i == class_start + 1
                    || (i == class_start + 2 && b[class_start + 1] == '^')) =>
            {
                in_class = false;
                out.push(c);
            }
            '{' if !in_class => {
                // A repetition is `{n}`, `{n,}` or `{n,m}`; anything else is a literal in Go.
                let rest: String = b[i..b.len().min(i + 24)].iter().collect();
                let rep_len = repetition_len(&rest);
                match rep_len {
                    Some(n) => {
                        out.push_str(&rest[..n]);
                        i += n;
                        continue;
                    }
                    None => out.push_str("\\{"),
                }
            }
            '}' if !in_class => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The length of `{n}`, `{n,}` or `{n,m}` at the start of `s`.
fn repetition_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if b.first() != Some(&b'{') || !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b',') {
        i += 1;
        digits(&mut i);
    }
    (b.get(i) == Some(&b'}')).then_some(i + 1)
}

fn compile(
    origin: &str,
    id: &str,
    what: &str,
    src: &str,
    dialect: Dialect,
) -> Result<Regex, RuleError> {
    if src.len() > MAX_REGEX_LEN {
        return Err(RuleError::at(
            origin,
            format!("rule `{id}`: {what} is longer than {MAX_REGEX_LEN} bytes"),
        ));
    }
    let expanded = expand(src);
    let pattern = match dialect {
        Dialect::Rust => expanded,
        Dialect::Go => translate_go(&expanded),
    };
    regex::RegexBuilder::new(&pattern)
        .size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| RuleError::at(origin, format!("rule `{id}`: {what} does not compile: {e}")))
}

fn allowlist(
    origin: &str,
    id: &str,
    raw: &RawAllowlist,
    dialect: Dialect,
    warnings: &mut Vec<String>,
) -> Result<Allowlist, RuleError> {
    let target = match raw.regex_target.as_deref() {
        None | Some("secret") => Target::Secret,
        Some("match") => Target::Match,
        Some("line") => Target::Line,
        Some(other) => {
            return Err(RuleError::at(
                origin,
                format!(
                    "rule `{id}`: unknown allowlist regexTarget `{other}` (secret, match or line)"
                ),
            ));
        }
    };
    let all = match raw.condition.as_deref() {
        None => false,
        Some(c) if c.eq_ignore_ascii_case("or") => false,
        Some(c) if c.eq_ignore_ascii_case("and") => true,
        Some(other) => {
            return Err(RuleError::at(
                origin,
                format!("rule `{id}`: unknown allowlist condition `{other}` (OR or AND)"),
            ));
        }
    };
    let mut usable = |what: &str, list: &[String]| -> Vec<Regex> {
        list.iter()
            .filter_map(|r| match compile(origin, id, what, r, dialect) {
                Ok(re) => Some(re),
                Err(e) => {
                    warnings.push(format!("{e}; that pattern is left out"));
                    None
                }
            })
            .collect()
    };
    let regexes = usable("an allowlist regex", &raw.regexes);
    let paths = usable("an allowlist path", &raw.paths);
    Ok(Allowlist {
        target,
        regexes,
        paths,
        stopwords: raw
            .stopwords
            .iter()
            .map(|w| w.to_ascii_lowercase())
            .collect(),
        all,
    })
}

fn severity(origin: &str, id: &str, s: Option<&str>) -> Result<Severity, RuleError> {
    Ok(match s.map(str::to_ascii_lowercase).as_deref() {
        None | Some("high") => Severity::High,
        Some("critical") => Severity::Critical,
        Some("medium") => Severity::Medium,
        Some("low") => Severity::Low,
        Some("info") => Severity::Info,
        Some(other) => {
            return Err(RuleError::at(
                origin,
                format!("rule `{id}`: unknown severity `{other}`"),
            ));
        }
    })
}

/// A rule file that cannot be used: the file (or origin) and what is wrong, naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
#[non_exhaustive]
pub struct RuleError {
    /// The file the rules came from (or "built-in rules").
    pub origin: String,
    /// What is wrong, naming the rule when one is at fault.
    pub message: String,
}

impl RuleError {
    fn at(origin: &str, message: String) -> RuleError {
        RuleError {
            origin: origin.to_string(),
            message,
        }
    }
}

impl RuleSet {
    /// The built-in rules.
    pub fn builtin() -> RuleSet {
        // The built-in file is tested to load; failing here is a build defect, not input.
        let set = RuleSet::parse(DEFAULT_RULES, "built-in rules").unwrap_or_else(|e| panic!("{e}"));
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        set
    }

    /// Parses one rule file (mlsec's format or a gitleaks configuration) in Rust regex syntax.
    pub fn parse(text: &str, origin: &str) -> Result<RuleSet, RuleError> {
        RuleSet::parse_dialect(text, origin, Dialect::Rust)
    }

    /// Parses one rule file whose regexes are written for `dialect`. The file must be valid TOML
    /// with unique rule ids; a rule that cannot be used (its regex does not compile, an unknown
    /// validator, ...) is left out with a warning in [`RuleSet::warnings`], and the rest load.
    pub fn parse_dialect(text: &str, origin: &str, dialect: Dialect) -> Result<RuleSet, RuleError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| RuleError::at(origin, format!("{e}")))?;
        if raw.rules.len() > MAX_RULES {
            return Err(RuleError::at(
                origin,
                format!("more than {MAX_RULES} rules"),
            ));
        }
        let mut out = RuleSet::default();
        for a in raw.allowlist.iter().chain(&raw.allowlists) {
            match allowlist(origin, "(global)", a, dialect, &mut out.warnings) {
                Ok(a) => out.allowlists.push(a),
                Err(e) => out
                    .warnings
                    .push(format!("{e}; that allowlist is left out")),
            }
        }
        let mut seen = HashSet::new();
        for r in raw.rules {
            let id = r.id.trim().to_owned();
            if !seen.insert(id.clone()) {
                return Err(RuleError::at(
                    origin,
                    format!("rule `{id}` is defined twice"),
                ));
            }
            match rule(origin, r, dialect, &mut out.warnings) {
                Ok(rule) => out.rules.push(rule),
                Err(e) => out.warnings.push(format!("{e}; the rule is left out")),
            }
        }
        Ok(out)
    }
}

/// One rule, checked and compiled.
fn rule(
    origin: &str,
    r: RawRule,
    dialect: Dialect,
    warnings: &mut Vec<String>,
) -> Result<SecretRule, RuleError> {
    let id = r.id.trim().to_owned();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(RuleError::at(
            origin,
            format!("rule id `{id}` must be letters, digits, `-`, `_` or `.`"),
        ));
    }
    let regex = r
        .regex
        .as_deref()
        .map(|src| compile(origin, &id, "regex", src, dialect))
        .transpose()?;
    let path = r
        .path
        .as_deref()
        .map(|src| compile(origin, &id, "path", src, dialect))
        .transpose()?;
    if regex.is_none() && path.is_none() {
        return Err(RuleError::at(
            origin,
            format!("rule `{id}` has neither regex nor path"),
        ));
    }
    if let (Some(g), Some(re)) = (r.secret_group, &regex)
        && g >= re.captures_len()
    {
        return Err(RuleError::at(
            origin,
            format!(
                "rule `{id}`: secretGroup {g} but the regex has {} group(s)",
                re.captures_len() - 1
            ),
        ));
    }
    if r.entropy.is_some() && r.keywords.is_empty() {
        return Err(RuleError::at(
            origin,
            format!(
                "rule `{id}`: an entropy threshold needs keywords (entropy alone is never evidence)"
            ),
        ));
    }
    let validator = r
        .validator
        .as_deref()
        .map(|v| {
            Validator::from_name(v).ok_or_else(|| {
                RuleError::at(origin, format!("rule `{id}`: unknown validator `{v}`"))
            })
        })
        .transpose()?;
    let confidence = match r.confidence.as_deref() {
        Some("high") => Confidence::High,
        Some("medium") => Confidence::Medium,
        Some("low") => Confidence::Low,
        Some(other) => {
            return Err(RuleError::at(
                origin,
                format!("rule `{id}`: unknown confidence `{other}`"),
            ));
        }
        // A value found only by its keyword's proximity may be something else.
        None if r.regex.as_deref().is_some_and(|x| x.contains("{ASSIGN}"))
            && validator.is_none() =>
        {
            Confidence::Medium
        }
        None => Confidence::High,
    };
    let mut allowlists = Vec::new();
    for a in r.allowlist.iter().chain(&r.allowlists) {
        allowlists.push(allowlist(origin, &id, a, dialect, warnings)?);
    }
    Ok(SecretRule {
        provider: r.provider.unwrap_or_else(|| "generic".into()),
        description: r.description.unwrap_or_else(|| id.clone()),
        severity: severity(origin, &id, r.severity.as_deref())?,
        id,
        regex,
        secret_group: r.secret_group,
        entropy: r.entropy,
        keywords: r.keywords.iter().map(|k| k.to_ascii_lowercase()).collect(),
        left_boundary: r.regex.as_deref().is_some_and(|x| x.starts_with("{L}")),
        path,
        allowlists,
        confidence,
        validator,
        examples: r.examples,
        negatives: r.negatives,
        supersedes: r.supersedes,
    })
}

impl RuleSet {
    /// Adds another file's rules; a rule with an existing id replaces it.
    pub fn extend(&mut self, other: RuleSet) {
        for r in other.rules {
            self.rules.retain(|x| x.id != r.id);
            self.rules.push(r);
        }
        self.allowlists.extend(other.allowlists);
        self.warnings.extend(other.warnings);
    }
}

/// Shannon entropy of a string, in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_load_and_are_many() {
        let r = RuleSet::builtin();
        assert!(r.rules.len() >= 100, "{}", r.rules.len());
    }

    #[test]
    fn gitleaks_configs_load() {
        let cfg = r#"
title = "gitleaks config"
[extend]
useDefault = true

[allowlist]
description = "global"
paths = ['''(^|/)vendor/''']

[[rules]]
id = "acme-token"
description = "ACME token"
regex = '''acme_[a-z0-9]{32}'''
keywords = ["acme_"]
entropy = 3.0
tags = ["acme"]
[[rules.allowlists]]
regexTarget = "line"
regexes = ['''test''']

[[rules]]
id = "pkcs12-file"
path = '''(?i)\.p12$'''
"#;
        let r = RuleSet::parse(cfg, "gitleaks.toml").unwrap();
        assert_eq!(r.rules.len(), 2);
        assert_eq!(r.allowlists.len(), 1);
        assert_eq!(r.rules[0].allowlists[0].target, Target::Line);
    }

    #[test]
    fn bad_rules_are_left_out_with_a_warning_naming_file_and_rule() {
        for (cfg, want) in [
            (
                "[[rules]]\nid = \"a\"\nregex = '''(unclosed'''\n",
                "rule `a`: regex does not compile",
            ),
            (
                "[[rules]]\nid = \"a\"\nregex = 'x'\nentropy = 3.0\n",
                "needs keywords",
            ),
            (
                "[[rules]]\nid = \"a\"\nregex = 'x'\nvalidator = \"luhn\"\n",
                "unknown validator",
            ),
            ("[[rules]]\nid = \"a\"\n", "neither regex nor path"),
            (
                "[[rules]]\nid = \"a\"\nregex = '(x)'\nsecretGroup = 2\n",
                "secretGroup 2",
            ),
        ] {
            // A good rule beside the bad one still loads.
            let text = format!("{cfg}[[rules]]\nid = \"good\"\nregex = 'tok_[0-9]{{8}}'\n");
            let set = RuleSet::parse(&text, "my.toml").unwrap();
            assert_eq!(
                set.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
                ["good"]
            );
            assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
            let w = &set.warnings[0];
            assert!(
                w.contains(want) && w.starts_with("my.toml: ") && w.contains("left out"),
                "{w}"
            );
        }
        // What makes the whole file unusable is still an error.
        for (cfg, want) in [
            (
                "[[rules]]\nid = \"a\"\nregex = 'x'\n[[rules]]\nid = \"a\"\nregex = 'y'\n",
                "defined twice",
            ),
            ("rules = 3\n", "invalid type"),
        ] {
            let e = RuleSet::parse(cfg, "my.toml").unwrap_err();
            assert!(e.message.contains(want) && e.origin == "my.toml", "{e}");
        }
    }

    #[test]
    fn go_regex_syntax_is_translated() {
        for (go, rust) in [
            (r"^\$(?:\d+|{\d+})$", r"^\$(?:[0-9]+|\{[0-9]+\})$"),
            (r"a{2,}b{3}c{1,4}", r"a{2,}b{3}c{1,4}"),
            (r"[\w.-]{8}\b", r"[0-9A-Za-z_.-]{8}(?-u:\b)"),
            (r"\p{Greek}\x{41}", r"\p{Greek}\x{41}"),
            (r"[]{}]x", r"[]{}]x"),
        ] {
            assert_eq!(translate_go(go), rust, "{go}");
        }
        // Go's literal brace compiles, with Go's meaning.
        let set = RuleSet::parse_dialect(
            "[[allowlists]]\nregexes = ['''^\\$(?:\\d+|{\\d+})$''']\n",
            "gitleaks.toml",
            Dialect::Go,
        )
        .unwrap();
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
        assert!(set.allowlists[0].regexes[0].is_match("${12}"));
        // ASCII classes, as in Go: `\w` does not match `é`.
        let set = RuleSet::parse_dialect(
            "[[rules]]\nid = \"w\"\nregex = '''^\\w+$'''\n",
            "g.toml",
            Dialect::Go,
        )
        .unwrap();
        let re = set.rules[0].regex.as_ref().unwrap();
        assert!(re.is_match("abc_1") && !re.is_match("café"));
    }

    #[test]
    fn entropy_is_bits_per_character() {
        assert!(entropy("aaaaaaaa") < 0.01);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Rule files are untrusted input: any text parses or is an error naming the origin,
        /// and rules that parse compile into a matcher that runs.
        #[test]
        fn rule_files_never_panic(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("[[rules]]".to_string()),
                    proptest::strategy::Just("[[allowlists]]".to_string()),
                    "id = \"[a-z]{1,3}\"",
                    "regex = '''[ -~]{0,12}'''",
                    "keywords = \\[\"[a-z]{1,4}\"\\]",
                    "entropy = [0-9]\\.[0-9]",
                    "secretGroup = [0-9]",
                    "path = '''[ -~]{0,6}'''",
                    "[ -~]{0,20}",
                ],
                0..14,
            ),
        ) {
            let text = lines.join("\n");
            let _ = translate_go(&text);
            if let Ok(rules) = RuleSet::parse_dialect(&text, "p.toml", Dialect::Go) {
                let _ = crate::Matcher::new(rules).find("a.env", &text);
            }
            match RuleSet::parse(&text, "p.toml") {
                Ok(rules) => {
                    let m = crate::Matcher::new(rules);
                    let _ = m.find("a.env", &text);
                }
                Err(e) => proptest::prop_assert_eq!(e.origin, "p.toml"),
            }
        }
    }
}
