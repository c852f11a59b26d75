//! The secrets scanner: rules in TOML (gitleaks configurations import as they are), an
//! Aho-Corasick keyword prefilter that picks the rules to run on each file, views that see
//! through notebooks and base64, offline validators, ML-aware suppressors, and redaction of
//! every secret in every output unless asked otherwise.

pub mod corpus;
#[cfg(feature = "git")]
pub mod history;
pub mod rules;
pub mod suppress;
pub mod templates;
pub mod validate;
pub mod views;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use mlsec_diagnostics::{Finding, Location, Report, Rule, Severity};
use mlsec_walk::{FileInput, FileScanner, Outcome, WalkOptions};
use sha2::{Digest, Sha256};

pub use rules::{RuleSet, SecretRule};
use validate::Verdict;

/// Files larger than this are not read (counted as skipped).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Bytes looked at to decide that a file is binary.
pub const BINARY_PROBE: usize = 8 << 10;

/// How findings are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Print secrets in full (never the default).
    pub show_secrets: bool,
    /// Report allow comments that keep no finding out.
    pub report_unused_ignores: bool,
}

/// Compiled rules, ready to scan.
pub struct Engine {
    pub rules: RuleSet,
    ac: AhoCorasick,
    /// For each keyword pattern, the rules it enables.
    by_keyword: Vec<Vec<usize>>,
    /// Rules with no keywords: they run on every file.
    always: Vec<usize>,
    /// The findings-model rule of each secret rule.
    catalogue: Vec<&'static Rule>,
}

/// The findings-model description of a secret rule. Strings are leaked once per rule and
/// process: the catalogue lives as long as the program, like the built-in rules' statics.
fn describe(r: &SecretRule) -> &'static Rule {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    Box::leak(Box::new(Rule {
        id: leak(r.id.clone()),
        name: "hardcoded-secret",
        summary: leak(format!("{} ({})", r.description, r.provider)),
        severity: r.severity,
        cwe: &["CWE-798"],
        owasp: &["ML05"],
        what: leak(format!(
            "Finds {} ({}). Confidence {}{}{}.",
            r.description,
            r.provider,
            r.confidence.as_str(),
            if r.validator.is_some() {
                ", checked offline by a validator"
            } else {
                ""
            },
            r.entropy.map_or(String::new(), |e| format!(
                ", entropy at least {e} bits per character next to its keyword"
            )),
        )),
        why: "Anyone who can read the repository, its history, the image or the notebook can use the credential: model and data theft, cost abuse, and access to whatever the account can reach.",
        example: leak(r.examples.first().map_or_else(String::new, |e| {
            format!("`{e}` (a template: `${{alnum:34}}` stands for 34 random letters and digits)")
        })),
        remediation: leak(format!(
            "Revoke the credential at {} now (it is exposed even if the line is deleted), purge it from history, and load it from the environment or a secret store.",
            r.provider
        )),
        references: &[],
    }))
}

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
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
        let catalogue = rules.rules.iter().map(describe).collect();
        Engine {
            rules,
            ac,
            by_keyword,
            always,
            catalogue,
        }
    }

    /// The built-in rules, compiled once.
    pub fn builtin() -> &'static Engine {
        static E: OnceLock<Engine> = OnceLock::new();
        E.get_or_init(|| Engine::new(RuleSet::builtin()))
    }

    /// The findings-model rules, for `mlsec rules` and SARIF.
    pub fn catalogue(&self) -> &[&'static Rule] {
        &self.catalogue
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

    /// Scans one file's text.
    pub fn scan_text(&self, path: &str, text: &str, opts: Options) -> Vec<Finding> {
        if suppress::encrypted_file(text) {
            return Vec::new();
        }
        let hash_file = suppress::hash_file(path);
        let mut hits: Vec<Hit> = Vec::new();
        for (i, r) in self.rules.rules.iter().enumerate() {
            if r.regex.is_none() && r.path.as_ref().is_some_and(|p| p.is_match(path)) {
                hits.push(Hit {
                    rule: i,
                    secret: String::new(),
                    line: 1,
                    column: 1,
                    cell: None,
                    cell_line: None,
                    field: String::new(),
                    severity: r.severity,
                });
            }
        }
        let mut unused = Vec::new();
        for view in views::views(path, text) {
            let triggered = self.triggered(&view.text);
            if triggered.is_empty()
                && !(opts.report_unused_ignores && suppress::has_allow_marker(&view.text))
            {
                continue;
            }
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
                            && suppress::placeholder(secret))
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
                    // Allow comments last, so that `--report-unused-ignores` knows which ones
                    // kept a real finding out.
                    if suppress::allowed_inline(line_text) {
                        used_allows.insert(idx);
                        continue;
                    }
                    if idx > 0 && suppress::allowed_next(line_at(idx - 1)) {
                        used_allows.insert(idx - 1);
                        continue;
                    }
                    hits.push(Hit {
                        rule: i,
                        secret: secret.to_owned(),
                        line: view.lines.file_line(idx),
                        column: before.chars().count() as u32 + 1,
                        cell: view.cell,
                        cell_line: view.cell.map(|_| idx as u32 + 1),
                        field: view.field.clone(),
                        severity,
                    });
                }
            }
            if opts.report_unused_ignores {
                for k in 0..starts.len() {
                    if suppress::has_allow_marker(line_at(k)) && !used_allows.contains(&k) {
                        let mut loc = Location::file(path);
                        loc = match view.cell {
                            Some(c) => loc.cell(c).line_col(k as u32 + 1, 1),
                            None => loc.line_col(view.lines.file_line(k), 1),
                        };
                        unused.push(Finding::new(
                            &mlsec_diagnostics::UNUSED_IGNORE,
                            loc,
                            "this allow comment keeps no secret finding out: remove it",
                        ));
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
        hits.into_iter()
            .filter(|h| !superseded.contains(self.rules.rules[h.rule].id.as_str()))
            .filter(|h| seen.insert((h.rule, h.secret.clone(), h.line, h.field.clone())))
            .map(|h| self.finding(path, &h, opts))
            .chain(unused)
            .collect()
    }

    fn finding(&self, path: &str, h: &Hit, opts: Options) -> Finding {
        let r = &self.rules.rules[h.rule];
        let mut loc = Location::file(path);
        let mut message = format!(
            "{} ({}, confidence {})",
            r.description,
            r.provider,
            r.confidence.as_str()
        );
        match (h.cell, h.cell_line) {
            (Some(cell), Some(cl)) => {
                loc = loc.cell(cell).line_col(cl, h.column);
                message.push_str(&format!(" at file line {}", h.line));
            }
            _ => loc = loc.line_col(h.line, h.column),
        }
        if !h.field.is_empty() {
            loc = loc.field(&h.field);
        }
        let mut f = Finding::new(self.catalogue[h.rule], loc, message);
        f.severity = h.severity;
        if !h.secret.is_empty() {
            f.evidence = Some(if opts.show_secrets {
                h.secret.clone()
            } else {
                redact(&h.secret)
            });
        }
        f
    }
}

struct Hit {
    rule: usize,
    secret: String,
    line: u32,
    column: u32,
    cell: Option<u32>,
    cell_line: Option<u32>,
    field: String,
    severity: Severity,
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

/// Extensions never read: binaries and model weights (other scanners handle those).
const BINARY_EXTENSIONS: &[&str] = &[
    "png",
    "jpg",
    "jpeg",
    "gif",
    "webp",
    "ico",
    "bmp",
    "tiff",
    "pdf",
    "mp3",
    "mp4",
    "wav",
    "mov",
    "avi",
    "zip",
    "gz",
    "tgz",
    "bz2",
    "xz",
    "zst",
    "7z",
    "tar",
    "whl",
    "jar",
    "so",
    "dylib",
    "dll",
    "exe",
    "o",
    "a",
    "pyc",
    "class",
    "pt",
    "pth",
    "bin",
    "safetensors",
    "gguf",
    "onnx",
    "h5",
    "hdf5",
    "keras",
    "pkl",
    "pickle",
    "joblib",
    "npy",
    "npz",
    "parquet",
    "arrow",
    "feather",
    "tflite",
    "pb",
    "ckpt",
    "msgpack",
    "woff",
    "woff2",
    "ttf",
    "otf",
    "db",
    "sqlite",
];

fn binary_extension(ext: Option<&str>) -> bool {
    ext.is_some_and(|e| BINARY_EXTENSIONS.contains(&e))
}

/// Whether a path names a file the secrets scanner reads (git history uses it on blob paths).
pub(crate) fn wanted(p: &std::path::Path) -> bool {
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    !binary_extension(ext.as_deref())
}

/// The secrets scanner as the shared walk drives it: every text file (dotfiles included);
/// binary extensions and files with a NUL byte in their first [`BINARY_PROBE`] bytes are left
/// to the other scanners.
pub struct SecretsScanner<'e> {
    pub engine: &'e Engine,
    pub options: Options,
}

impl FileScanner for SecretsScanner<'_> {
    fn rules(&self) -> Vec<&'static Rule> {
        self.engine.catalogue().to_vec()
    }

    fn wants(&self, file: &FileInput<'_>) -> bool {
        !binary_extension(file.extension().as_deref())
    }

    fn scan(&self, file: &FileInput<'_>) -> Outcome {
        let head = file.head();
        if head[..head.len().min(BINARY_PROBE)].contains(&0) || file.len() > MAX_FILE_BYTES {
            return Outcome::not_analysed();
        }
        let bytes = match file.read_all(MAX_FILE_BYTES, "text file") {
            Ok(b) => b,
            Err(unreadable) => return unreadable,
        };
        let text = String::from_utf8_lossy(bytes);
        Outcome {
            findings: self.engine.scan_text(file.display(), &text, self.options),
            ..Outcome::default()
        }
    }
}

/// Scans every text file under `paths` (dotfiles included; VCS, caches and virtualenvs not)
/// with the secrets scanner alone.
pub fn scan_paths(engine: &Engine, paths: &[PathBuf], walk: WalkOptions, opts: Options) -> Report {
    let scanner = SecretsScanner {
        engine,
        options: opts,
    };
    mlsec_walk::scan(paths, walk, &[&scanner], None)
}

#[cfg(test)]
mod tests;
