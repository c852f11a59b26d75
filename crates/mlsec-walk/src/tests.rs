use std::collections::BTreeMap;

use super::*;

/// A scanner that records which files it was offered and scanned, and wants files by extension.
struct Recorder {
    exts: &'static [&'static str],
    seen: Mutex<Vec<String>>,
    /// Reads the whole file through the shared read.
    reads: bool,
}

impl Recorder {
    fn new(exts: &'static [&'static str], reads: bool) -> Self {
        Self {
            exts,
            seen: Mutex::new(Vec::new()),
            reads,
        }
    }

    fn seen(&self) -> Vec<String> {
        let mut v = self.seen.lock().unwrap().clone();
        v.sort();
        v
    }
}

impl FileScanner for Recorder {
    fn rules(&self) -> Vec<&'static Rule> {
        Vec::new()
    }

    fn wants(&self, file: &FileInput<'_>) -> bool {
        file.extension()
            .is_some_and(|e| self.exts.contains(&e.as_str()))
    }

    fn scan(&self, file: &FileInput<'_>) -> Outcome {
        self.seen.lock().unwrap().push(file.name().to_owned());
        if self.reads {
            let bytes = file.read_all(1 << 20, "test file").unwrap();
            assert_eq!(bytes.len() as u64, file.len());
        }
        assert_ne!(file.name(), "boom.py", "a scanner bug");
        Outcome::default()
    }
}

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn each_file_is_opened_once_and_counted_once_whatever_scans_it() {
    let dir = tree(&[
        ("a.py", "abc"),
        ("b.yaml", "kind: Pod\n"),
        ("c.bin", "12345"),
        ("d.txt", ""),
    ]);
    // Three scanners want a.py, two want b.yaml; two of them read the whole file.
    let code = Recorder::new(&["py"], true);
    let text = Recorder::new(&["py", "yaml", "txt"], true);
    let models = Recorder::new(&["py", "bin", "yaml"], false);
    let progress = Progress::default();
    let r = scan(
        &[dir.path().to_path_buf()],
        WalkOptions::default(),
        &[&code, &text, &models],
        Some(&progress),
    );
    assert_eq!(code.seen(), ["a.py"]);
    assert_eq!(text.seen(), ["a.py", "b.yaml", "d.txt"]);
    assert_eq!(models.seen(), ["a.py", "b.yaml", "c.bin"]);
    assert_eq!(progress.files_opened.load(Ordering::Relaxed), 4);
    assert_eq!(progress.files_done.load(Ordering::Relaxed), 4);
    assert_eq!(progress.bytes_done.load(Ordering::Relaxed), 3 + 10 + 5);
    assert_eq!(
        r.stats.files_scanned, 4,
        "one count per file, not per scanner"
    );
    assert_eq!(r.stats.bytes_scanned, 18);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn files_no_scanner_analyses_are_skipped_not_scanned() {
    struct Picky;
    impl FileScanner for Picky {
        fn rules(&self) -> Vec<&'static Rule> {
            Vec::new()
        }
        fn wants(&self, _: &FileInput<'_>) -> bool {
            true
        }
        fn scan(&self, file: &FileInput<'_>) -> Outcome {
            if file.head().starts_with(b"MODEL") {
                Outcome::default()
            } else {
                Outcome::not_analysed()
            }
        }
    }
    let dir = tree(&[("m", "MODEL..."), ("n", "notes")]);
    let r = scan(
        &[dir.path().to_path_buf()],
        WalkOptions::default(),
        &[&Picky],
        None,
    );
    assert_eq!((r.stats.files_scanned, r.stats.files_skipped), (1, 1));
    assert_eq!(r.stats.bytes_scanned, 8);
}

#[test]
fn tool_directories_are_skipped_for_every_scanner_unless_named() {
    let dir = tree(&[
        (".git/objects/x.py", ""),
        ("node_modules/pkg/y.py", ""),
        ("venv/pyvenv.cfg", ""),
        ("venv/lib/z.py", ""),
        ("env/conda-meta/history", ""),
        ("env/lib/w.py", ""),
        ("__pycache__/v.py", ""),
        ("src/c.py", ""),
    ]);
    let all = Recorder::new(&["py"], false);
    scan(
        &[dir.path().to_path_buf()],
        WalkOptions::default(),
        &[&all],
        None,
    );
    assert_eq!(all.seen(), ["c.py"]);
    // Named on the command line, a skipped directory is walked.
    let named = Recorder::new(&["py"], false);
    scan(
        &[dir.path().join("node_modules")],
        WalkOptions::default(),
        &[&named],
        None,
    );
    assert_eq!(named.seen(), ["y.py"]);
}

#[test]
fn a_scanner_panic_is_that_files_error_and_missing_paths_are_errors() {
    let dir = tree(&[("boom.py", "x"), ("ok.py", "y")]);
    let s = Recorder::new(&["py"], false);
    let r = scan(
        &[dir.path().to_path_buf(), dir.path().join("missing")],
        WalkOptions::default(),
        &[&s],
        None,
    );
    assert_eq!(s.seen(), ["boom.py", "ok.py"]);
    let errors: BTreeMap<_, _> = r
        .errors
        .iter()
        .map(|e| {
            (
                e.path.rsplit('/').next().unwrap().to_owned(),
                e.message.clone(),
            )
        })
        .collect();
    assert!(errors["boom.py"].contains("internal error"), "{errors:?}");
    assert!(errors["missing"].contains("cannot read"), "{errors:?}");
}

#[test]
fn a_named_fifo_or_device_is_an_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    assert!(made, "mkfifo is part of coreutils");
    let s = Recorder::new(&["py"], false);
    for path in [fifo.clone(), PathBuf::from("/dev/zero")] {
        let r = scan(
            std::slice::from_ref(&path),
            WalkOptions::default(),
            &[&s],
            None,
        );
        assert_eq!(r.errors.len(), 1, "{path:?}: {:?}", r.errors);
        assert_eq!(r.errors[0].path, path.display().to_string());
        assert!(
            r.errors[0].message.contains("not a regular file"),
            "{:?}",
            r.errors
        );
        assert_eq!(r.stats.files_scanned, 0);
    }
    // Inside a walked tree too: reported, never opened (opening a FIFO would block).
    std::fs::write(dir.path().join("a.py"), "").unwrap();
    let r = scan(
        &[dir.path().to_path_buf()],
        WalkOptions::default(),
        &[&s],
        None,
    );
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].message.starts_with("a FIFO"), "{:?}", r.errors);
    assert_eq!(r.stats.files_scanned, 1);
}

#[test]
fn read_all_is_bounded_and_names_what_it_read() {
    struct Small;
    impl FileScanner for Small {
        fn rules(&self) -> Vec<&'static Rule> {
            Vec::new()
        }
        fn wants(&self, _: &FileInput<'_>) -> bool {
            true
        }
        fn scan(&self, file: &FileInput<'_>) -> Outcome {
            file.read_all(4, "tiny file").err().unwrap_or_default()
        }
    }
    let dir = tree(&[("big", "123456")]);
    let r = scan(
        &[dir.path().join("big")],
        WalkOptions::default(),
        &[&Small],
        None,
    );
    assert_eq!(r.errors.len(), 1);
    assert_eq!(
        r.errors[0].message,
        "6 bytes, larger than the 4 read for a tiny file"
    );
}

#[test]
fn symlinks_to_files_are_followed_and_to_directories_not() {
    let dir = tree(&[("blobs/abc", "x"), ("sub/in.py", "")]);
    let d = dir.path();
    std::os::unix::fs::symlink(d.join("blobs/abc"), d.join("model.py")).unwrap();
    std::os::unix::fs::symlink(d.join("sub"), d.join("loop")).unwrap();
    std::os::unix::fs::symlink(d.join("gone"), d.join("broken.py")).unwrap();
    let s = Recorder::new(&["py"], true);
    let r = scan(&[d.to_path_buf()], WalkOptions::default(), &[&s], None);
    assert_eq!(s.seen(), ["in.py", "model.py"]);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].message.contains("broken symlink"));
}

#[test]
fn gitignore_is_honoured_only_when_asked() {
    let dir = tree(&[
        (".gitignore", "build/\n*.gen.py\n"),
        ("a.py", ""),
        ("b.gen.py", ""),
        ("build/c.py", ""),
    ]);
    let names = |gitignore| {
        let s = Recorder::new(&["py"], false);
        scan(
            &[dir.path().to_path_buf()],
            WalkOptions { gitignore },
            &[&s],
            None,
        );
        s.seen()
    };
    assert_eq!(names(false), ["a.py", "b.gen.py", "c.py"]);
    assert_eq!(names(true), ["a.py"]);
}
