//! The secrets scanner: the rule engine (`mlsec-rule-engine`) over files, notebooks and git
//! history, its matches turned into findings with redacted evidence.
//!
//! # Brief overview
//! * [`Engine`]: a compiled rule set ([`mlsec_rule_engine::Matcher`]) with its findings-model
//!   catalogue (one [`Rule`] per secret rule); [`Engine::scan_text`] turns one text's matches
//!   into findings.
//! * [`SecretsScanner`]: the scanner the shared walk (`mlsec-walk`) drives; [`scan_paths`] runs
//!   it alone.
//! * `history` (feature `git`): commits and the staging area through gitoxide.

#[cfg(feature = "git")]
pub mod history;

use std::path::PathBuf;
use std::sync::OnceLock;

use mlsec_diagnostics::{Finding, Location, Report, Rule};
use mlsec_formats::source::ReadAt;
pub use mlsec_rule_engine::{Dialect, Match, Matcher, RuleSet, SecretRule, redact, rules};
use mlsec_walk::{FileInput, FileScanner, Outcome, WalkOptions};

/// Files up to this size are read whole; larger ones are scanned in windows of this size.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// How much consecutive windows share, so that a secret across a window edge is seen whole.
pub const WINDOW_OVERLAP: u64 = 64 << 10;
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

/// Compiled rules, ready to scan, with the findings-model rule of each.
pub struct Engine {
    pub matcher: Matcher,
    /// The findings-model rule of each secret rule.
    catalogue: Vec<&'static Rule>,
}

/// The findings-model description of a secret rule. Strings are leaked once per rule and
/// process: the catalogue lives as long as the program, like the built-in rules' statics.
fn describe(r: &SecretRule) -> &'static Rule {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    Box::leak(Box::new(Rule {
        id: leak(r.id.clone()),
        // Each rule its own name: `hardcoded-huggingface-token`, for SARIF and `mlsec rules`.
        name: leak(format!("hardcoded-{}", r.id)),
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
    /// Compiles `rules`.
    pub fn new(rules: RuleSet) -> Engine {
        let catalogue = rules.rules.iter().map(describe).collect();
        Engine {
            matcher: Matcher::new(rules),
            catalogue,
        }
    }

    /// The built-in rules, compiled once.
    pub fn builtin() -> &'static Engine {
        static E: OnceLock<Engine> = OnceLock::new();
        E.get_or_init(|| Engine::new(RuleSet::builtin()))
    }

    /// The rules (loaded and compiled).
    pub fn rules(&self) -> &RuleSet {
        &self.matcher.rules
    }

    /// The findings-model rules, for `mlsec rules` and SARIF.
    pub fn catalogue(&self) -> &[&'static Rule] {
        &self.catalogue
    }

    /// Scans one file's text.
    pub fn scan_text(&self, path: &str, text: &str, opts: Options) -> Vec<Finding> {
        let found = self
            .matcher
            .find_with(path, text, opts.report_unused_ignores);
        let unused = found.unused_allows.iter().map(|u| {
            let loc = Location::file(path);
            let loc = match u.cell {
                Some(c) => loc.in_cell(c, u.line, 1, None),
                None => loc.line_col(u.line, 1),
            };
            Finding::new(
                &mlsec_diagnostics::UNUSED_IGNORE,
                loc,
                "this allow comment keeps no secret finding out: remove it",
            )
        });
        found
            .matches
            .iter()
            .map(|m| self.finding(path, m, opts))
            .chain(unused)
            .collect()
    }

    /// Scans text larger than [`MAX_FILE_BYTES`] (a 17 MB `.env`, minified JSON) in windows of
    /// that size that overlap by [`WINDOW_OVERLAP`], cut at line ends where there are any, with
    /// lines (and the columns of a window that starts mid-line) counted from the file's start.
    /// A finding seen in two windows is reported once.
    pub fn scan_large(
        &self,
        path: &str,
        src: &dyn ReadAt,
        opts: Options,
    ) -> std::io::Result<Vec<Finding>> {
        self.scan_windows(path, src, opts, MAX_FILE_BYTES, WINDOW_OVERLAP)
    }

    fn scan_windows(
        &self,
        path: &str,
        src: &dyn ReadAt,
        opts: Options,
        window: u64,
        overlap: u64,
    ) -> std::io::Result<Vec<Finding>> {
        let len = src.len();
        let mut out: Vec<Finding> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let (mut start, mut line_base, mut col_base) = (0u64, 0u32, 0u32);
        while start < len {
            let end = (start + window).min(len);
            let buf = src.read_vec(start, (end - start) as usize)?;
            let last = end == len;
            // Cut after the last line end unless this is the last window (or a single line).
            let cut = if last {
                buf.len()
            } else {
                memchr::memrchr(b'\n', &buf).map_or(buf.len(), |i| i + 1)
            };
            let text = String::from_utf8_lossy(&buf[..cut]);
            for mut f in self.scan_text(path, &text, opts) {
                if let Some(l) = f.location.line {
                    if l == 1 {
                        f.location.column = f.location.column.map(|c| c + col_base);
                    }
                    f.location.line = Some(l + line_base);
                }
                let key = (
                    f.rule.id,
                    f.location.line,
                    f.location.column,
                    f.evidence.clone(),
                );
                if seen.insert(key) {
                    out.push(f);
                }
            }
            if last {
                break;
            }
            // The next window starts WINDOW_OVERLAP before the cut, at a line start if one is
            // in reach.
            let from = (cut as u64).saturating_sub(overlap) as usize;
            let next = match memchr::memrchr(b'\n', &buf[..from]) {
                Some(i) if i + 1 > from.saturating_sub(overlap as usize) => i + 1,
                _ => from.max(1),
            };
            let consumed = &buf[..next];
            let newlines = memchr::memchr_iter(b'\n', consumed).count() as u32;
            col_base = match memchr::memrchr(b'\n', consumed) {
                Some(i) => String::from_utf8_lossy(&consumed[i + 1..]).chars().count() as u32,
                None => col_base + String::from_utf8_lossy(consumed).chars().count() as u32,
            };
            line_base += newlines;
            start += next as u64;
        }
        Ok(out)
    }

    fn finding(&self, path: &str, h: &Match, opts: Options) -> Finding {
        let r = &self.matcher.rules.rules[h.rule];
        let mut loc = Location::file(path);
        let message = format!(
            "{} ({}, confidence {})",
            r.description,
            r.provider,
            r.confidence.as_str()
        );
        match (h.cell, h.cell_line) {
            (Some(cell), Some(cl)) => loc = loc.in_cell(cell, cl, h.column, Some(h.line)),
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
#[cfg(feature = "git")]
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
        if head[..head.len().min(BINARY_PROBE)].contains(&0) {
            return Outcome::not_analysed();
        }
        if file.len() > MAX_FILE_BYTES {
            return match self
                .engine
                .scan_large(file.display(), file.source(), self.options)
            {
                Ok(findings) => Outcome {
                    findings,
                    ..Outcome::default()
                },
                Err(e) => Outcome::error(format!("cannot read: {e}")),
            };
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
