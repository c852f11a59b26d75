//! Walking a model and hashing it: which files are in, which are left out, and a digest per file
//! or shard computed on a thread pool, largest first.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use blake2::Blake2b512;
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::cache::{Cache, FileIdentity};
use crate::manifest::{HashAlgorithm, Method, Resource, ResourceKey, Serialization};

/// Paths model-signing leaves out of every signature unless told otherwise (top level only).
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// Read size for streaming hashes.
const CHUNK: usize = 4 << 20;
/// blake3 files at least this big are hashed with all cores inside the file.
const BLAKE3_PARALLEL_MIN: u64 = 32 << 20;

/// A regular file of the model.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// Relative to the model root, `/`-separated; `.` for a single-file model.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub identity: FileIdentity,
}

/// A file that an ignore rule left out, and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub name: String,
    pub rule: String,
}

/// What to walk and what to leave out.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    pub allow_symlinks: bool,
    /// Relative paths; a directory covers everything under it.
    pub ignore: Vec<String>,
    /// If set, only these names are taken (verification with `--ignore-unsigned-files`).
    pub only: Option<std::collections::HashSet<String>>,
}

/// Normalizes an ignore path relative to the model root: strips `./` and trailing `/`. Returns
/// `None` for paths that cannot name anything inside the model (absolute, `..`).
pub fn normalize_relative(p: &str) -> Option<String> {
    if p.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            other => parts.push(other),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn matching_rule<'a>(name: &str, rules: &'a [String]) -> Option<&'a String> {
    rules.iter().find(|r| {
        name == r.as_str()
            || name
                .strip_prefix(r.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Lists the model's files, sorted by name. A single file is the model `.`.
pub fn list_files(
    root: &Path,
    opts: &WalkOptions,
) -> Result<(Vec<FileEntry>, Vec<Ignored>), Error> {
    let top = std::fs::symlink_metadata(root).map_err(|e| Error::io(root, &e))?;
    if top.file_type().is_symlink() && !opts.allow_symlinks {
        return Err(Error::new(format!(
            "{}: is a symbolic link (pass --allow-symlinks to follow it)",
            root.display()
        )));
    }
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, &e))?;
    if meta.is_file() {
        return Ok((
            vec![entry(".".into(), root.to_path_buf(), &meta)],
            Vec::new(),
        ));
    }
    if !meta.is_dir() {
        return Err(Error::new(format!(
            "{}: neither a file nor a directory",
            root.display()
        )));
    }
    let canonical_root = root.canonicalize().map_err(|e| Error::io(root, &e))?;
    let mut files = Vec::new();
    let mut ignored = Vec::new();
    // Links are never followed into directories, as model-signing's `glob("**/*")` does not:
    // a signature made there over a model with a directory link verifies here.
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1);
    let mut it = walker.into_iter();
    while let Some(item) = it.next() {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map_or_else(|| root.display().to_string(), |p| p.display().to_string());
            if e.loop_ancestor().is_some() {
                Error::new(format!("{path}: symbolic link loop"))
            } else {
                Error::new(format!(
                    "{path}: {}",
                    e.io_error()
                        .map_or_else(|| e.to_string(), ToString::to_string)
                ))
            }
        })?;
        let rel = item.path().strip_prefix(root).map_err(|_| {
            Error::new(format!("{}: outside the model root", item.path().display()))
        })?;
        let name = rel_name(rel)?;
        if let Some(rule) = matching_rule(&name, &opts.ignore) {
            if item.file_type().is_dir() {
                it.skip_current_dir();
            } else {
                ignored.push(Ignored {
                    name,
                    rule: rule.clone(),
                });
            }
            continue;
        }
        let mut link_meta = None;
        if item.path_is_symlink() {
            if !opts.allow_symlinks {
                return Err(Error::new(format!(
                    "{}: is a symbolic link (pass --allow-symlinks to follow links that stay inside the model)",
                    item.path().display()
                )));
            }
            let target = item
                .path()
                .canonicalize()
                .map_err(|e| Error::io(item.path(), &e))?;
            if !target.starts_with(&canonical_root) {
                return Err(Error::new(format!(
                    "{}: symbolic link leaves the model directory (to {})",
                    item.path().display(),
                    target.display()
                )));
            }
            let meta = std::fs::metadata(item.path()).map_err(|e| Error::io(item.path(), &e))?;
            if meta.is_dir() {
                // A link to a directory is skipped, files and all (model-signing does the same).
                continue;
            }
            link_meta = Some(meta);
        }
        let ft = link_meta
            .as_ref()
            .map_or_else(|| item.file_type(), Metadata::file_type);
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(Error::new(format!(
                "{}: not a regular file (socket, pipe or device)",
                item.path().display()
            )));
        }
        if let Some(only) = &opts.only
            && !only.contains(&name)
        {
            continue;
        }
        let meta = match link_meta {
            Some(m) => m,
            None => item
                .metadata()
                .map_err(|e| Error::new(format!("{}: {e}", item.path().display())))?,
        };
        files.push(entry(name, item.path().to_path_buf(), &meta));
    }
    Ok((files, ignored))
}

fn entry(name: String, path: PathBuf, meta: &Metadata) -> FileEntry {
    FileEntry {
        name,
        path,
        size: meta.len(),
        identity: FileIdentity::of(meta),
    }
}

fn rel_name(rel: &Path) -> Result<String, Error> {
    let mut parts = Vec::new();
    for c in rel.components() {
        let s = c.as_os_str().to_str().ok_or_else(|| {
            Error::new(format!(
                "{}: file name is not UTF-8 and cannot be named in a signature",
                rel.display()
            ))
        })?;
        parts.push(s);
    }
    Ok(parts.join("/"))
}

/// One unit of hashing work.
struct Job {
    file: usize,
    range: Option<(u64, u64)>,
    len: u64,
}

/// Options for hashing a listed model.
pub struct HashJob<'a> {
    pub serialization: &'a Serialization,
    /// Expected digests by resource name: with `fail_fast`, the first difference stops the work.
    pub expected: Option<&'a HashMap<String, Vec<u8>>>,
    pub fail_fast: bool,
    pub cache: Option<&'a Cache>,
}

/// The outcome of hashing: resources computed, and whether work stopped early.
#[allow(clippy::struct_field_names)]
pub struct Hashed {
    pub resources: Vec<Resource>,
    pub stopped_early: bool,
    pub bytes_hashed: u64,
    pub cache_hits: usize,
}

/// Hashes every file (or shard) on rayon's pool, biggest first, so one large file does not
/// start last and leave the other cores idle.
pub fn hash_files(files: &[FileEntry], job: &HashJob<'_>) -> Result<Hashed, Error> {
    let ser = job.serialization;
    let mut jobs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match ser.method {
            Method::Files => jobs.push(Job {
                file: i,
                range: None,
                len: f.size,
            }),
            Method::Shards { shard_size } => {
                let mut start = 0;
                while start < f.size {
                    let end = start.saturating_add(shard_size).min(f.size);
                    jobs.push(Job {
                        file: i,
                        range: Some((start, end)),
                        len: end - start,
                    });
                    start = end;
                }
            }
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.len));
    let algorithm = ser.resource_algorithm();
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    rayon::scope_fifo(|s| {
        for j in &jobs {
            let tx = tx.clone();
            let stop = &stop;
            s.spawn_fifo(move |_| {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let f = &files[j.file];
                let key = ResourceKey {
                    path: f.name.clone(),
                    range: j.range,
                };
                let name = key.to_string();
                let cached = job.cache.and_then(|c| c.get(&name, ser.hash, &f.identity));
                let hit = cached.is_some();
                let result = match cached {
                    Some(d) => Ok(d),
                    None => hash_one(f, j.range, ser.hash, stop),
                };
                if let (Ok(d), Some(exp)) = (&result, job.expected)
                    && job.fail_fast
                    && exp.get(&name) != Some(d)
                {
                    stop.store(true, Ordering::Relaxed);
                }
                let _ = tx.send((j.file, key, result, hit, j.len));
            });
        }
    });
    drop(tx);
    let mut resources = Vec::with_capacity(jobs.len());
    let (mut bytes_hashed, mut cache_hits) = (0, 0);
    for (file, key, result, hit, len) in rx {
        let digest = match result {
            Ok(d) => d,
            Err(e) if e.is_interrupted() => continue,
            Err(e) => return Err(e),
        };
        if hit {
            cache_hits += 1;
        } else {
            bytes_hashed += len;
            if let Some(c) = job.cache {
                // Only remember a digest if the file did not change while it was read.
                if let Ok(meta) = std::fs::metadata(&files[file].path)
                    && FileIdentity::of(&meta) == files[file].identity
                {
                    c.put(&key.to_string(), ser.hash, &files[file].identity, &digest);
                }
            }
        }
        resources.push(Resource {
            key,
            algorithm: algorithm.clone(),
            digest,
        });
    }
    Ok(Hashed {
        resources,
        stopped_early: stop.load(Ordering::Relaxed),
        bytes_hashed,
        cache_hits,
    })
}

enum Engine {
    Sha256(Sha256),
    Blake2b(Box<Blake2b512>),
    Blake3(Box<blake3::Hasher>),
}

impl Engine {
    fn new(alg: HashAlgorithm) -> Self {
        match alg {
            HashAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
            HashAlgorithm::Blake2b => Self::Blake2b(Box::default()),
            HashAlgorithm::Blake3 => Self::Blake3(Box::default()),
        }
    }
    fn update(&mut self, data: &[u8], parallel: bool) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Blake2b(h) => h.update(data),
            Self::Blake3(h) if parallel => {
                h.update_rayon(data);
            }
            Self::Blake3(h) => {
                h.update(data);
            }
        }
    }
    fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Blake2b(h) => h.finalize().to_vec(),
            Self::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

/// Hashes a file, or `range` of it, streaming. Stops (with an "interrupted" error) when `stop` is set.
pub fn hash_one(
    f: &FileEntry,
    range: Option<(u64, u64)>,
    alg: HashAlgorithm,
    stop: &AtomicBool,
) -> Result<Vec<u8>, Error> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(&f.path).map_err(|e| Error::io(&f.path, &e))?;
    let (start, mut remaining) = match range {
        Some((s, e)) => (s, Some(e - s)),
        None => (0, None),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(&f.path, &e))?;
    }
    let parallel = alg == HashAlgorithm::Blake3 && f.size >= BLAKE3_PARALLEL_MIN;
    let mut engine = Engine::new(alg);
    let mut buf =
        vec![0u8; CHUNK.min(usize::try_from(remaining.unwrap_or(f.size).max(1)).unwrap_or(CHUNK))];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::interrupted());
        }
        let want = match remaining {
            Some(0) => break,
            Some(r) => buf.len().min(usize::try_from(r).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = match read_full(&mut file, &mut buf[..want]) {
            Ok(n) => n,
            Err(e) => return Err(Error::io(&f.path, &e)),
        };
        if n == 0 {
            if let Some(r) = remaining {
                return Err(Error::new(format!(
                    "{}: file ended {r} bytes before the end of shard {start}..{}, it changed while being hashed",
                    f.path.display(),
                    range.map_or(0, |r| r.1)
                )));
            }
            break;
        }
        engine.update(&buf[..n], parallel);
        if let Some(r) = remaining.as_mut() {
            *r -= n as u64;
        }
    }
    Ok(engine.finish())
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The name model-signing gives a model: the last component of its path.
pub fn model_name(root: &Path) -> String {
    let name = root
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "..");
    match name {
        Some(n) => n.to_owned(),
        None => root
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .unwrap_or_default(),
    }
}
