//! Model-file scanning: finds code execution and structural attacks in pickle, PyTorch,
//! TorchScript, joblib, dill/cloudpickle, NumPy, Keras, HDF5, TensorFlow SavedModel, ONNX,
//! safetensors and GGUF files, and in the archives they travel in, without executing anything.
//!
//! # Brief overview
//! * [`scan_paths`] walks files and directories in parallel and returns a [`Report`].
//! * [`scan_file`] scans one file; [`scan_bytes`] scans an in-memory buffer (fuzzing, tests).
//! * [`rules::ALL`] is the rule catalogue; [`policy::classify`] the verdict on a Python global.
//! * [`pickle::analyze`] is the symbolic pickle machine.
//!
//! Architecture invariant: nothing here executes, imports or unpickles model content. Pickles are
//! simulated symbolically; archives are parsed, never extracted to disk.
//!
//! # Example
//! ```
//! let findings = mlsec_scan_model::scan_bytes(b"cos\nsystem\n(S'echo hi'\ntR.", "model.pkl");
//! assert_eq!(findings[0].rule.id, "PKL001");
//! assert_eq!(findings[0].evidence.as_deref(), Some("os.system(\"echo hi\")"));
//! ```
#![forbid(unsafe_code)]

pub mod keras;
pub mod pickle;
pub mod policy;
pub mod rules;
pub mod scan;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mlsec_diagnostics::{FileError, Finding, Location, Report, Stats};
use mlsec_formats::source::FileSource;
use mlsec_walk::WalkOptions;
use rayon::prelude::*;

pub use scan::{Kind, Scanner};

/// The result of scanning one file.
#[derive(Debug)]
pub struct FileOutcome {
    pub path: String,
    pub kind: Kind,
    pub bytes: u64,
    pub findings: Vec<Finding>,
    pub error: Option<String>,
}

/// Scans an in-memory buffer named `name`.
pub fn scan_bytes(data: &[u8], name: &str) -> Vec<Finding> {
    let mut s = Scanner::new();
    s.scan(&data, &Location::file(name), name, None, 0);
    s.findings
}

/// Scans one file on disk, shown as `display` in locations.
pub fn scan_file(path: &Path, display: &str) -> FileOutcome {
    let mut out = FileOutcome {
        path: display.to_owned(),
        kind: Kind::Other,
        bytes: 0,
        findings: Vec::new(),
        error: None,
    };
    let file = match std::fs::File::open(path).and_then(FileSource::new) {
        Ok(f) => f,
        Err(e) => {
            out.error = Some(format!("cannot open: {e}"));
            return out;
        }
    };
    out.bytes = mlsec_formats::source::ReadAt::len(&file);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut s = Scanner::new();
    out.kind = s.scan(&file, &Location::file(display), &name, path.parent(), 0);
    out.findings = s.findings;
    out
}

/// What to scan, found by walking the given paths.
struct Job {
    path: PathBuf,
    display: String,
    /// A `.py` file in a Hugging Face model folder.
    python_in_model_dir: bool,
}

fn collect(paths: &[PathBuf], opts: WalkOptions, errors: &mut Vec<FileError>) -> Vec<Job> {
    let mut jobs = Vec::new();
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
            let is_py = root.extension().is_some_and(|x| x == "py");
            let in_model_dir = is_py
                && root
                    .parent()
                    .is_some_and(|d| d.join("config.json").is_file());
            jobs.push(Job {
                path: root.clone(),
                display: root.display().to_string(),
                python_in_model_dir: in_model_dir,
            });
            continue;
        }
        for entry in mlsec_walk::walk(root, opts, |_| false) {
            match entry {
                // A symlink to a file is scanned (Hugging Face caches link snapshots to blobs);
                // symlinks to directories are not followed, so walks cannot loop.
                Ok(e)
                    if e.file_type().is_some_and(|t| t.is_file())
                        || (e.path_is_symlink() && e.path().is_file()) =>
                {
                    let p = e.path();
                    let is_py = p.extension().is_some_and(|x| x == "py");
                    let in_model_dir =
                        is_py && p.parent().is_some_and(|d| d.join("config.json").is_file());
                    if is_py && !in_model_dir {
                        continue;
                    }
                    jobs.push(Job {
                        path: p.to_path_buf(),
                        display: p.display().to_string(),
                        python_in_model_dir: in_model_dir,
                    });
                }
                Ok(_) => {}
                Err(e) => errors.push(mlsec_walk::walk_error(root, &e)),
            }
        }
    }
    jobs
}

/// Progress counters, readable while a scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_total: AtomicU64,
    pub files_done: AtomicU64,
    pub bytes_done: AtomicU64,
}

/// Scans files and directories (recursively, in parallel on rayon's pool).
pub fn scan_paths(paths: &[PathBuf], progress: Option<&Progress>) -> Report {
    scan_paths_with(paths, progress, WalkOptions::default())
}

/// [`scan_paths`] with walk options (honouring .gitignore).
pub fn scan_paths_with(
    paths: &[PathBuf],
    progress: Option<&Progress>,
    opts: WalkOptions,
) -> Report {
    let start = Instant::now();
    let mut errors = Vec::new();
    let jobs = collect(paths, opts, &mut errors);
    if let Some(p) = progress {
        p.files_total.store(jobs.len() as u64, Ordering::Relaxed);
    }
    // Only outcomes with findings or errors are kept; clean files are counted and dropped, so
    // memory follows findings, not the number of files.
    let outcomes: Mutex<Vec<FileOutcome>> = Mutex::new(Vec::new());
    let scanned = AtomicU64::new(0);
    let skipped = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    jobs.par_iter().for_each(|job| {
        let outcome = if job.python_in_model_dir {
            let mut s = Scanner::new();
            s.python_in_model_dir(&Location::file(&job.display));
            let bytes = std::fs::metadata(&job.path).map_or(0, |m| m.len());
            FileOutcome {
                path: job.display.clone(),
                kind: Kind::PythonInModelDir,
                bytes,
                findings: s.findings,
                error: None,
            }
        } else {
            // Defence in depth: a bug must cost one file, reported, not the whole run.
            std::panic::catch_unwind(|| scan_file(&job.path, &job.display)).unwrap_or_else(|_| FileOutcome {
                path: job.display.clone(),
                kind: Kind::Other,
                bytes: 0,
                findings: Vec::new(),
                error: Some("internal error while scanning (a bug in mlsec; please report it with the file)".to_owned()),
            })
        };
        if let Some(p) = progress {
            p.files_done.fetch_add(1, Ordering::Relaxed);
            p.bytes_done.fetch_add(outcome.bytes, Ordering::Relaxed);
        }
        if outcome.error.is_none() {
            if outcome.kind == Kind::Other && outcome.findings.is_empty() {
                skipped.fetch_add(1, Ordering::Relaxed);
            } else {
                scanned.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(outcome.bytes, Ordering::Relaxed);
            }
        }
        if (outcome.error.is_some() || !outcome.findings.is_empty())
            && let Ok(mut v) = outcomes.lock()
        {
            v.push(outcome);
        }
    });
    let outcomes = outcomes.into_inner().unwrap_or_default();
    let mut report = Report {
        rules: rules::ALL.to_vec(),
        ..Report::default()
    };
    let mut stats = Stats {
        files_scanned: scanned.into_inner(),
        files_skipped: skipped.into_inner(),
        bytes_scanned: bytes.into_inner(),
        ..Stats::default()
    };
    for o in outcomes {
        if let Some(e) = o.error {
            errors.push(FileError {
                path: o.path,
                message: e,
            });
            continue;
        }
        report.findings.extend(o.findings);
    }
    report.errors = errors;
    stats.duration = start.elapsed();
    report.stats = stats;
    report.sort();
    report
}
