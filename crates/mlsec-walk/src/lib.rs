//! One walk for every scanner: which files, which directories never, one open and one sniff
//! per file, dispatch to the scanners that want it, and one [`Report`] in which each file is
//! counted once.
//!
//! # Brief overview
//! * [`FileScanner`]: what a scanner family implements (`wants`, `scan`, `finish`).
//! * [`FileInput`]: one opened file as every scanner sees it: its name, the first
//!   [`HEAD_BYTES`] (the sniff), positioned reads, and its whole content read at most once
//!   and shared by the text scanners ([`FileInput::read_all`]).
//! * [`scan`]: walks the paths (ripgrep's `ignore` walker; [`skip_dir`] and, when asked,
//!   git's ignore rules), scans files on rayon's pool, catches a scanner's panic as that file's
//!   error, and gathers one [`Report`]. [`Progress`] can be read while it runs.
//!
//! # Example
//! ```
//! use mlsec_walk::{FileInput, FileScanner, Outcome, WalkOptions};
//!
//! struct Sizes;
//! impl FileScanner for Sizes {
//!     fn rules(&self) -> Vec<&'static mlsec_diagnostics::Rule> { Vec::new() }
//!     fn wants(&self, file: &FileInput<'_>) -> bool { file.name().ends_with(".txt") }
//!     fn scan(&self, file: &FileInput<'_>) -> Outcome {
//!         match file.read_all(1 << 20, "text file") {
//!             Ok(bytes) => { assert_eq!(bytes, b"hello"); Outcome::default() }
//!             Err(too_big) => too_big,
//!         }
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("a.txt"), "hello").unwrap();
//! let report = mlsec_walk::scan(&[dir.path().to_path_buf()], WalkOptions::default(), &[&Sizes], None);
//! assert_eq!(report.stats.files_scanned, 1);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mlsec_diagnostics::{FileError, Finding, Report, Rule, Stats};
use mlsec_formats::source::{FileSource, ReadAt};
use rayon::prelude::*;

/// Bytes read from the start of every file before any scanner is asked whether it wants it.
pub const HEAD_BYTES: usize = 8 << 10;

/// What scanning one file produced: findings, errors that make the result incomplete (an
/// unreadable file, an unknown rule id in a suppression), and whether the scanner found
/// nothing it analyses in it (a binary file for a text scanner, an unknown format for the
/// model scanner).
#[derive(Debug, Default)]
pub struct Outcome {
    /// What the scanner found in the file.
    pub findings: Vec<Finding>,
    /// What it could not check, each naming the reason (the walk adds the path).
    pub errors: Vec<String>,
    /// The scanner looked and left the file alone: it is counted as skipped unless another
    /// scanner analysed it.
    pub not_analysed: bool,
}

impl Outcome {
    /// An outcome that is only an error about the file.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            errors: vec![message.into()],
            ..Self::default()
        }
    }

    /// The scanner looked and found nothing it analyses.
    pub fn not_analysed() -> Self {
        Self {
            not_analysed: true,
            ..Self::default()
        }
    }
}

/// How directories are walked.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// Leave out what git ignores: `.gitignore` files in the tree and above it,
    /// `.git/info/exclude` and the global excludes file (also outside a git checkout).
    pub gitignore: bool,
}

/// One scanner family, as the walk drives it. Implementations keep per-scan state (the
/// deployment scanner's cross-file facts) behind their own locks: `scan` runs on many threads.
pub trait FileScanner: Sync {
    /// The rules this scanner can report (for the report's rule catalogue and SARIF).
    fn rules(&self) -> Vec<&'static Rule>;
    /// Whether to call [`FileScanner::scan`] on this file: decided from its name, path, length
    /// and first bytes ([`FileInput::head`]), never by reading more.
    fn wants(&self, file: &FileInput<'_>) -> bool;
    /// Scans one file. Reads go through `file` (never a second open of the path).
    fn scan(&self, file: &FileInput<'_>) -> Outcome;
    /// Runs once after every file was scanned: rules over the whole tree.
    fn finish(&self) -> Outcome {
        Outcome::default()
    }
}

/// One opened file, as every scanner sees it.
pub struct FileInput<'a> {
    path: &'a Path,
    display: &'a str,
    name: &'a str,
    source: &'a FileSource,
    head: &'a [u8],
    all: OnceCell<Result<Vec<u8>, String>>,
}

impl<'a> FileInput<'a> {
    /// The path as found by the walk.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The path as reports show it.
    pub fn display(&self) -> &'a str {
        self.display
    }

    /// The file name (lossy UTF-8).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The lower-case extension, if any.
    pub fn extension(&self) -> Option<String> {
        self.path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.source.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first [`HEAD_BYTES`] bytes (fewer for a shorter file).
    pub fn head(&self) -> &'a [u8] {
        self.head
    }

    /// Positioned reads over the open file (the model scanner reads headers by offset).
    pub fn source(&self) -> &'a FileSource {
        self.source
    }

    /// The whole file if it is at most `limit` bytes, read once and shared by every scanner
    /// that asks; otherwise an outcome that says so, naming `what` the file was read as.
    pub fn read_all(&self, limit: u64, what: &str) -> Result<&[u8], Outcome> {
        if self.len() > limit {
            return Err(Outcome::error(format!(
                "{} bytes, larger than the {limit} read for a {what}",
                self.len()
            )));
        }
        let all = self.all.get_or_init(|| {
            let len = usize::try_from(self.len()).map_err(|e| e.to_string())?;
            self.source
                .read_vec(0, len)
                .map_err(|e| format!("cannot read: {e}"))
        });
        all.as_deref().map_err(|e| Outcome::error(e.clone()))
    }
}

/// Counters, readable while a scan runs (a progress bar polls them).
#[derive(Debug, Default)]
pub struct Progress {
    /// Files found by the walk (known once the walk is done).
    pub files_total: AtomicU64,
    /// Files finished.
    pub files_done: AtomicU64,
    /// Bytes of finished files.
    pub bytes_done: AtomicU64,
    /// Files opened: exactly one open per file the walk found, whatever scans it.
    pub files_opened: AtomicU64,
}

/// Walks `root` in file-name order without following directory symlinks. Directories for which
/// `prune` is true are not entered (the root itself always is).
pub fn walk(root: &Path, opts: WalkOptions, prune: fn(&Path) -> bool) -> ignore::Walk {
    ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .git_ignore(opts.gitignore)
        .git_exclude(opts.gitignore)
        .git_global(opts.gitignore)
        .parents(opts.gitignore)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(std::ffi::OsStr::cmp)
        .filter_entry(move |e| {
            !(e.depth() > 0 && e.file_type().is_some_and(|t| t.is_dir()) && prune(e.path()))
        })
        .build()
}

/// The path an error from [`walk`] is about, if it says.
pub fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
}

/// An error from [`walk`] as a [`FileError`] (`root` when it names no path).
pub fn walk_error(root: &Path, e: &ignore::Error) -> FileError {
    let message = e
        .io_error()
        .map_or_else(|| e.to_string(), ToString::to_string);
    FileError {
        path: error_path(e).unwrap_or(root).display().to_string(),
        message: format!("cannot read: {message}"),
    }
}

/// Directories never walked unless named on the command line: version control, caches,
/// virtual environments, dependencies.
pub fn skip_dir(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(
        name,
        ".git"
            | ".hg"
            | ".svn"
            | "__pycache__"
            | "node_modules"
            | ".tox"
            | ".nox"
            | ".mypy_cache"
            | ".pytest_cache"
            | ".ruff_cache"
            | ".ipynb_checkpoints"
    ) || path.join("pyvenv.cfg").is_file()
        || path.join("conda-meta").is_dir()
}

/// What a path is when it is not a regular file or a directory.
fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "of an unknown type"
    }
}

fn not_regular(path: &Path, t: std::fs::FileType) -> FileError {
    FileError {
        path: path.display().to_string(),
        message: format!("{}, not a regular file: not read", special_kind(t)),
    }
}

/// The regular files under `paths` (a named file is taken as it is; symlinks to files are
/// followed, symlinks to directories are not), and an error for each path that cannot be read
/// or is not a regular file.
pub fn collect(paths: &[PathBuf], opts: WalkOptions, errors: &mut Vec<FileError>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for root in paths {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                errors.push(FileError {
                    path: root.display().to_string(),
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        if meta.is_file() {
            files.push(root.clone());
            continue;
        }
        if !meta.is_dir() {
            errors.push(not_regular(root, meta.file_type()));
            continue;
        }
        for entry in walk(root, opts, skip_dir) {
            let e = match entry {
                Ok(e) => e,
                Err(e) => {
                    errors.push(walk_error(root, &e));
                    continue;
                }
            };
            let Some(t) = e.file_type() else { continue };
            if t.is_file() {
                files.push(e.into_path());
            } else if t.is_symlink() {
                // A symlink to a file is scanned (Hugging Face caches link snapshots to blobs);
                // symlinks to directories are not followed, so walks cannot loop.
                match std::fs::metadata(e.path()) {
                    Ok(m) if m.is_file() => files.push(e.into_path()),
                    Ok(m) if !m.is_dir() => errors.push(not_regular(e.path(), m.file_type())),
                    Ok(_) => {}
                    Err(err) => errors.push(FileError {
                        path: e.path().display().to_string(),
                        message: format!("cannot read: broken symlink ({err})"),
                    }),
                }
            } else if !t.is_dir() {
                errors.push(not_regular(e.path(), t));
            }
        }
    }
    files
}

/// What one file yielded, across every scanner that wanted it.
#[derive(Default)]
struct FileResult {
    findings: Vec<Finding>,
    errors: Vec<FileError>,
    analysed: bool,
    bytes: u64,
}

fn scan_one(path: &Path, scanners: &[&dyn FileScanner], progress: &Progress) -> FileResult {
    let display = path.display().to_string();
    let mut out = FileResult::default();
    let err = |message: String| FileError {
        path: display.clone(),
        message,
    };
    let file = match std::fs::File::open(path).and_then(FileSource::new) {
        Ok(f) => f,
        Err(e) => {
            out.errors.push(err(format!("cannot open: {e}")));
            return out;
        }
    };
    progress.files_opened.fetch_add(1, Ordering::Relaxed);
    out.bytes = file.len();
    let head = match file.read_prefix(0, HEAD_BYTES) {
        Ok(h) => h,
        Err(e) => {
            out.errors.push(err(format!("cannot read: {e}")));
            return out;
        }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let input = FileInput {
        path,
        display: &display,
        name: &name,
        source: &file,
        head: &head,
        all: OnceCell::new(),
    };
    for s in scanners {
        if !s.wants(&input) {
            continue;
        }
        // Nothing shared is touched before the scan returns, so a panic leaves no broken state.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.scan(&input)))
            .unwrap_or_else(|_| {
                Outcome::error(
                    "internal error while scanning (a bug in mlsec; please report it with the file)",
                )
            });
        out.analysed |= !outcome.not_analysed || !outcome.findings.is_empty();
        out.findings.extend(outcome.findings);
        out.errors.extend(outcome.errors.into_iter().map(&err));
    }
    out
}

/// Finds the files under `paths`, opens each once, offers it to every scanner that wants it
/// (in parallel on rayon's pool), runs each scanner's [`FileScanner::finish`], and gathers one
/// [`Report`]: each file counted once, as scanned when some scanner analysed it and as skipped
/// otherwise.
pub fn scan(
    paths: &[PathBuf],
    opts: WalkOptions,
    scanners: &[&dyn FileScanner],
    progress: Option<&Progress>,
) -> Report {
    let start = Instant::now();
    let own = Progress::default();
    let progress = progress.unwrap_or(&own);
    let mut errors = Vec::new();
    let files = collect(paths, opts, &mut errors);
    progress
        .files_total
        .store(files.len() as u64, Ordering::Relaxed);
    let findings = Mutex::new(Vec::new());
    let file_errors = Mutex::new(Vec::new());
    let scanned = AtomicU64::new(0);
    let skipped = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    files.par_iter().for_each(|p| {
        let r = scan_one(p, scanners, progress);
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        progress.bytes_done.fetch_add(r.bytes, Ordering::Relaxed);
        if r.analysed {
            scanned.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(r.bytes, Ordering::Relaxed);
        } else if r.errors.is_empty() {
            skipped.fetch_add(1, Ordering::Relaxed);
        }
        // Only files with findings or errors add to memory: it follows findings, not files.
        if !r.findings.is_empty()
            && let Ok(mut f) = findings.lock()
        {
            f.extend(r.findings);
        }
        if !r.errors.is_empty()
            && let Ok(mut e) = file_errors.lock()
        {
            e.extend(r.errors);
        }
    });
    let mut findings = findings.into_inner().unwrap_or_default();
    errors.extend(file_errors.into_inner().unwrap_or_default());
    let mut rules: Vec<&'static Rule> = Vec::new();
    for s in scanners {
        let done = s.finish();
        findings.extend(done.findings);
        let root = paths
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        errors.extend(done.errors.into_iter().map(|m| FileError {
            path: root.clone(),
            message: m,
        }));
        for r in s.rules() {
            if !rules.iter().any(|x| x.id == r.id) {
                rules.push(r);
            }
        }
    }
    let mut report = Report {
        findings,
        errors,
        stats: Stats {
            files_scanned: scanned.into_inner(),
            files_skipped: skipped.into_inner(),
            bytes_scanned: bytes.into_inner(),
            duration: start.elapsed(),
        },
        rules,
    };
    report.sort();
    report
}

#[cfg(test)]
mod tests;
