//! Walking source trees for the text scanners: which files, which directories never, and a
//! per-file scan on rayon's pool, gathered into one [`Report`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use mlsec_diagnostics::{FileError, Finding, Report, Rule, Stats};
use rayon::prelude::*;

/// What scanning one file produced: findings, and errors that make the result incomplete (an
/// unreadable file, an unknown rule id in a suppression).
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            findings: Vec::new(),
            errors: vec![message.into()],
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

/// Directories never walked: version control, caches, virtual environments, dependencies.
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
            | ".mypy_cache"
            | ".ruff_cache"
            | ".ipynb_checkpoints"
    ) || path.join("pyvenv.cfg").is_file()
}

/// Reads a file of at most `limit` bytes, or says why not.
pub fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, Outcome> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > limit => Err(Outcome::error(format!(
            "{} bytes, larger than the {limit} read for a {what}",
            m.len()
        ))),
        Err(e) => Err(Outcome::error(format!("cannot read: {e}"))),
        Ok(_) => std::fs::read(path).map_err(|e| Outcome::error(format!("cannot read: {e}"))),
    }
}

/// Finds the files `wanted` accepts under `paths` (files given directly are taken if wanted),
/// scans each with `scan` in parallel, and gathers the results. A panic in `scan` is reported
/// as an error on that file, never a crash.
pub fn scan_tree(
    paths: &[PathBuf],
    opts: WalkOptions,
    wanted: &(dyn Fn(&Path) -> bool + Sync),
    scan: &(dyn Fn(&Path, &str) -> Outcome + Sync),
    rules: &[&'static Rule],
) -> Report {
    let start = Instant::now();
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for root in paths {
        if root.is_file() {
            if wanted(root) {
                files.push(root.clone());
            }
            continue;
        }
        if !root.exists() {
            errors.push(FileError {
                path: root.display().to_string(),
                message: "cannot read: no such file or directory".into(),
            });
            continue;
        }
        for entry in walk(root, opts, skip_dir) {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) && wanted(e.path()) => {
                    files.push(e.path().to_path_buf());
                }
                Ok(_) => {}
                Err(e) => errors.push(walk_error(root, &e)),
            }
        }
    }
    let findings = Mutex::new(Vec::new());
    let file_errors = Mutex::new(Vec::new());
    let bytes: u64 = files
        .par_iter()
        .map(|p| {
            let display = p.display().to_string();
            // Nothing shared is touched before the scan returns, so a panic leaves no broken state.
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scan(p, &display)))
                    .unwrap_or_else(|_| {
                        Outcome::error("internal error while analysing (a bug: please report it)")
                    });
            if let Ok(mut f) = findings.lock() {
                f.extend(outcome.findings);
            }
            if let Ok(mut e) = file_errors.lock() {
                e.extend(outcome.errors.into_iter().map(|m| FileError {
                    path: display.clone(),
                    message: m,
                }));
            }
            std::fs::metadata(p).map_or(0, |m| m.len())
        })
        .sum();
    errors.extend(file_errors.into_inner().unwrap_or_default());
    let mut report = Report {
        findings: findings.into_inner().unwrap_or_default(),
        errors,
        stats: Stats {
            files_scanned: files.len() as u64,
            files_skipped: 0,
            bytes_scanned: bytes,
            duration: start.elapsed(),
        },
        rules: rules.to_vec(),
    };
    report.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_wanted_files_and_skips_tool_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        std::fs::create_dir_all(d.join("venv")).unwrap();
        std::fs::write(d.join("venv/pyvenv.cfg"), "").unwrap();
        std::fs::write(d.join("venv/a.py"), "").unwrap();
        std::fs::write(d.join(".git/b.py"), "").unwrap();
        std::fs::write(d.join("c.py"), "abc").unwrap();
        std::fs::write(d.join("d.txt"), "").unwrap();
        let seen = Mutex::new(Vec::new());
        let r = scan_tree(
            &[d.to_path_buf()],
            WalkOptions::default(),
            &|p| p.extension().is_some_and(|e| e == "py"),
            &|p, _| {
                seen.lock().unwrap().push(p.file_name().unwrap().to_owned());
                if p.ends_with("c.py") {
                    Outcome::error("boom")
                } else {
                    Outcome::default()
                }
            },
            &[],
        );
        assert_eq!(seen.into_inner().unwrap(), ["c.py"]);
        assert_eq!(r.stats.files_scanned, 1);
        assert_eq!(r.stats.bytes_scanned, 3);
        assert_eq!(r.errors.len(), 1);
        let r = scan_tree(
            &[d.join("missing")],
            WalkOptions::default(),
            &|_| true,
            &|_, _| Outcome::default(),
            &[],
        );
        assert_eq!(r.errors.len(), 1, "a missing root is an error");
        let r = scan_tree(
            &[d.join("c.py")],
            WalkOptions::default(),
            &|_| true,
            &|_, _| panic!("scanner bug"),
            &[],
        );
        assert!(r.errors[0].message.contains("internal error"));
    }

    #[test]
    fn gitignore_is_honoured_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("build")).unwrap();
        std::fs::write(d.join(".gitignore"), "build/\n*.gen.py\n").unwrap();
        for f in ["a.py", "b.gen.py", "build/c.py"] {
            std::fs::write(d.join(f), "").unwrap();
        }
        let names = |gitignore| {
            let seen = Mutex::new(Vec::new());
            scan_tree(
                &[d.to_path_buf()],
                WalkOptions { gitignore },
                &|p| p.extension().is_some_and(|e| e == "py"),
                &|p, _| {
                    let rel = p.strip_prefix(d).unwrap().display().to_string();
                    seen.lock().unwrap().push(rel);
                    Outcome::default()
                },
                &[],
            );
            let mut v = seen.into_inner().unwrap();
            v.sort();
            v
        };
        assert_eq!(names(false), ["a.py", "b.gen.py", "build/c.py"]);
        assert_eq!(names(true), ["a.py"]);
    }
}
