//! Model-file scanning: finds code execution and structural attacks in pickle, PyTorch,
//! TorchScript, joblib, dill/cloudpickle, NumPy, Keras, HDF5, TensorFlow SavedModel, ONNX,
//! safetensors and GGUF files, and in the archives they travel in, without executing anything.
//!
//! # Brief overview
//! * [`ModelScanner`] is the scanner the shared walk (`mlsec-walk`) drives; [`scan_paths`] runs
//!   it alone over files and directories and returns a [`Report`].
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

#[rustfmt::skip]
#[allow(missing_docs)]
mod generated;
pub mod keras;
pub mod pickle;
pub mod policy;
pub mod rules;
pub mod scan;
pub mod template;

use std::path::{Path, PathBuf};

use mlsec_diagnostics::{Finding, Location, Report};
use mlsec_formats::source::FileSource;
pub use mlsec_walk::Progress;
use mlsec_walk::{FileInput, FileScanner, Outcome, WalkOptions};

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

/// The model scanner as the shared walk drives it: every file except Python sources outside a
/// Hugging Face model folder, detected by content.
#[derive(Debug, Default)]
pub struct ModelScanner;

fn is_python(file: &FileInput<'_>) -> bool {
    file.extension().as_deref() == Some("py")
}

/// A `.py` file beside a `config.json` (a Hugging Face model folder).
fn python_in_model_dir(path: &Path) -> bool {
    path.parent()
        .is_some_and(|d| d.join("config.json").is_file())
}

impl FileScanner for ModelScanner {
    fn rules(&self) -> Vec<&'static mlsec_diagnostics::Rule> {
        rules::ALL.to_vec()
    }

    fn wants(&self, file: &FileInput<'_>) -> bool {
        !is_python(file) || python_in_model_dir(file.path())
    }

    fn scan(&self, file: &FileInput<'_>) -> Outcome {
        let mut s = Scanner::new();
        let loc = Location::file(file.display());
        let kind = if is_python(file) {
            s.python_in_model_dir(&loc);
            Kind::PythonInModelDir
        } else {
            s.scan(file.source(), &loc, file.name(), file.path().parent(), 0)
        };
        Outcome {
            not_analysed: kind == Kind::Other,
            findings: s.findings,
            errors: Vec::new(),
        }
    }
}

/// Scans files and directories (recursively, in parallel on rayon's pool) with the model
/// scanner alone.
pub fn scan_paths(paths: &[PathBuf], progress: Option<&Progress>) -> Report {
    scan_paths_with(paths, progress, WalkOptions::default())
}

/// [`scan_paths`] with walk options (honouring .gitignore).
pub fn scan_paths_with(
    paths: &[PathBuf],
    progress: Option<&Progress>,
    opts: WalkOptions,
) -> Report {
    mlsec_walk::scan(paths, opts, &[&ModelScanner], progress)
}
