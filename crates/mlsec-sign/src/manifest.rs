//! The manifest: what a signature covers (a digest per file or per file shard), how it was
//! serialized, and the root digest over it all, exactly as OpenSSF model-signing defines them.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::Error;

/// Most resources one manifest may list; a bundle listing more is refused before any work.
pub const MAX_RESOURCES: usize = 1_000_000;
/// Longest resource name accepted from a bundle, in bytes.
pub const MAX_NAME_LEN: usize = 4096;
/// Smallest and largest shard sizes accepted from a bundle.
pub const MIN_SHARD_SIZE: u64 = 1;
pub const MAX_SHARD_SIZE: u64 = 1 << 40;

/// The hash used for each file or shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    Sha256,
    Blake2b,
    Blake3,
}

impl HashAlgorithm {
    /// The name model-signing records in `hash_type` and in each resource.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Blake2b => "blake2b",
            Self::Blake3 => "blake3",
        }
    }

    /// Accepts the recorded names and model-signing's CLI spelling (`blake2`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "blake2b" | "blake2" => Some(Self::Blake2b),
            "blake3" => Some(Self::Blake3),
            _ => None,
        }
    }

    /// Digest length in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        match self {
            Self::Sha256 | Self::Blake3 => 32,
            Self::Blake2b => 64,
        }
    }
}

/// How the model was cut into resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One resource per file, named by its path.
    Files,
    /// Files cut into `shard_size` byte pieces, named `path:start:end`. Empty files are left out.
    Shards { shard_size: u64 },
}

/// The `serialization` section of the predicate: everything needed to recompute the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serialization {
    pub method: Method,
    pub hash: HashAlgorithm,
    pub allow_symlinks: bool,
    /// Paths, relative to the model root, left out of the signature.
    pub ignore_paths: Vec<String>,
}

impl Serialization {
    /// Files with sha256, the model-signing default.
    pub fn files(hash: HashAlgorithm) -> Self {
        Self {
            method: Method::Files,
            hash,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        }
    }

    /// The algorithm name recorded per resource: `sha256` for files, `sha256-sharded-N` for shards.
    pub fn resource_algorithm(&self) -> String {
        match self.method {
            Method::Files => self.hash.name().to_owned(),
            Method::Shards { shard_size } => format!("{}-sharded-{shard_size}", self.hash.name()),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        match self.method {
            Method::Files => {
                map.insert("method".into(), json!("files"));
            }
            Method::Shards { shard_size } => {
                map.insert("method".into(), json!("shards"));
                map.insert("shard_size".into(), json!(shard_size));
            }
        }
        map.insert("hash_type".into(), json!(self.hash.name()));
        map.insert("allow_symlinks".into(), json!(self.allow_symlinks));
        if !self.ignore_paths.is_empty() {
            map.insert("ignore_paths".into(), json!(self.ignore_paths));
        }
        Value::Object(map)
    }

    /// Reads the section from a signed statement. Every field is checked; nothing is guessed.
    pub fn from_json(value: &Value) -> Result<Self, Error> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::new("predicate.serialization: not an object"))?;
        let method = obj
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::new("predicate.serialization.method: missing or not a string"))?;
        let hash_name = obj
            .get("hash_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::new("predicate.serialization.hash_type: missing or not a string")
            })?;
        let hash = HashAlgorithm::from_name(hash_name).ok_or_else(|| Error::new(format!("predicate.serialization.hash_type: unsupported hash `{hash_name}` (sha256, blake2b, blake3)")))?;
        let allow_symlinks = match obj.get("allow_symlinks") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::new(format!(
                    "predicate.serialization.allow_symlinks: expected a boolean, found {other}"
                )));
            }
        };
        let method = match method {
            "files" => Method::Files,
            "shards" => {
                let raw = obj.get("shard_size").ok_or_else(|| {
                    Error::new("predicate.serialization.shard_size: missing for method `shards`")
                })?;
                Method::Shards { shard_size: integral(raw).filter(|s| (MIN_SHARD_SIZE..=MAX_SHARD_SIZE).contains(s)).ok_or_else(|| Error::new(format!("predicate.serialization.shard_size: expected an integer in {MIN_SHARD_SIZE}..={MAX_SHARD_SIZE}, found {raw}")))? }
            }
            other => {
                return Err(Error::new(format!(
                    "predicate.serialization.method: unknown method `{other}` (files, shards)"
                )));
            }
        };
        let mut ignore_paths = Vec::new();
        if let Some(list) = obj.get("ignore_paths") {
            let list = list
                .as_array()
                .ok_or_else(|| Error::new("predicate.serialization.ignore_paths: not an array"))?;
            for (i, item) in list.iter().enumerate() {
                let s = item.as_str().ok_or_else(|| {
                    Error::new(format!(
                        "predicate.serialization.ignore_paths[{i}]: not a string"
                    ))
                })?;
                ignore_paths.push(s.to_owned());
            }
        }
        Ok(Self {
            method,
            hash,
            allow_symlinks,
            ignore_paths,
        })
    }
}

/// model-signing writes the predicate through a protobuf `Struct`, so integers arrive as `4.0`.
fn integral(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && (0.0..9.0e15).contains(&f)).then_some(f as u64)
}

/// The key of one resource: a file, or a byte range of one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceKey {
    /// Path relative to the model root with `/` separators; `.` when the model is a single file.
    pub path: String,
    /// `Some((start, end))` for a shard.
    pub range: Option<(u64, u64)>,
}

impl ResourceKey {
    pub fn file(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            range: None,
        }
    }

    /// Parses a resource name as the serialization method names it.
    pub fn parse(name: &str, method: Method) -> Result<Self, Error> {
        match method {
            Method::Files => {
                check_name(name)?;
                Ok(Self::file(name))
            }
            Method::Shards { .. } => {
                let mut parts = name.rsplitn(3, ':');
                let (Some(end), Some(start), Some(path)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(Error::new(format!(
                        "resource `{name}`: a shard is named `path:start:end`"
                    )));
                };
                let (Ok(start), Ok(end)) = (start.parse::<u64>(), end.parse::<u64>()) else {
                    return Err(Error::new(format!(
                        "resource `{name}`: shard offsets are not integers"
                    )));
                };
                if end <= start {
                    return Err(Error::new(format!(
                        "resource `{name}`: shard end must be past its start"
                    )));
                }
                check_name(path)?;
                Ok(Self {
                    path: path.to_owned(),
                    range: Some((start, end)),
                })
            }
        }
    }

    /// Orders by path components, then offsets, as model-signing sorts `PurePosixPath`s.
    fn cmp_key(&self, other: &Self) -> Ordering {
        self.path
            .split('/')
            .cmp(other.path.split('/'))
            .then(self.range.cmp(&other.range))
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.range {
            None => f.write_str(&self.path),
            Some((start, end)) => write!(f, "{}:{start}:{end}", self.path),
        }
    }
}

/// A name from a bundle must stay inside the model: no `..`, no absolute path, no empty or `.`
/// components (except the lone `.` that names a single-file model), no NUL.
pub fn check_name(name: &str) -> Result<(), Error> {
    if name.len() > MAX_NAME_LEN {
        return Err(Error::new(format!(
            "resource name of {} bytes is longer than the {MAX_NAME_LEN} allowed",
            name.len()
        )));
    }
    if name == "." {
        return Ok(());
    }
    if name.is_empty() {
        return Err(Error::new("resource with an empty name"));
    }
    if name.starts_with('/') || name.contains('\0') || name.contains('\\') && has_drive_or_unc(name)
    {
        return Err(Error::new(format!(
            "resource `{}`: absolute path",
            name.escape_debug()
        )));
    }
    for part in name.split('/') {
        match part {
            ".." => {
                return Err(Error::new(format!(
                    "resource `{}`: `..` leaves the model directory",
                    name.escape_debug()
                )));
            }
            "" | "." => {
                return Err(Error::new(format!(
                    "resource `{}`: empty or `.` path component",
                    name.escape_debug()
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

fn has_drive_or_unc(name: &str) -> bool {
    let b = name.as_bytes();
    name.starts_with("\\\\")
        || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
}

/// One signed (or measured) resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub key: ResourceKey,
    pub algorithm: String,
    pub digest: Vec<u8>,
}

/// What a signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Informative only: the model directory's (or file's) name.
    pub model_name: String,
    pub serialization: Serialization,
    /// Sorted by path components, then offsets.
    pub resources: Vec<Resource>,
}

impl Manifest {
    /// Sorts the resources and refuses duplicates.
    pub fn new(
        model_name: String,
        serialization: Serialization,
        mut resources: Vec<Resource>,
    ) -> Result<Self, Error> {
        resources.sort_by(|a, b| a.key.cmp_key(&b.key));
        if let Some(w) = resources.windows(2).find(|w| w[0].key == w[1].key) {
            return Err(Error::new(format!(
                "resource `{}` is listed twice",
                w[0].key
            )));
        }
        Ok(Self {
            model_name,
            serialization,
            resources,
        })
    }

    /// SHA-256 over the raw resource digests, in order: the statement's subject digest.
    pub fn root_digest(&self) -> [u8; 32] {
        root_digest(self.resources.iter().map(|r| r.digest.as_slice()))
    }

    /// The distinct file paths the manifest names.
    pub fn paths(&self) -> HashSet<&str> {
        self.resources.iter().map(|r| r.key.path.as_str()).collect()
    }
}

pub fn root_digest<'a>(digests: impl Iterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    h.finalize().into()
}

/// Where two manifests differ, by resource name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diff {
    /// In both, with different digests.
    pub changed: Vec<String>,
    /// On disk but not signed.
    pub added: Vec<String>,
    /// Signed but not on disk.
    pub missing: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty() && self.missing.is_empty()
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (label, list) in [
            ("changed", &self.changed),
            ("added (not signed)", &self.added),
            ("missing", &self.missing),
        ] {
            if !list.is_empty() {
                const SHOWN: usize = 20;
                let mut s = format!(
                    "{label}: {}",
                    list.iter()
                        .take(SHOWN)
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if list.len() > SHOWN {
                    s.push_str(&format!(" and {} more", list.len() - SHOWN));
                }
                parts.push(s);
            }
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_root_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
            "C:\\x",
            "\\\\host\\share",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in [".", "a", "a/b.bin", ".hidden/x", "weird name:1", "ünï/çødé"] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn order_is_by_path_components() {
        // Whole-string byte order would put "a-b/x" and "a.b" before "a/b/c"; components put "a" first.
        let keys = ["a-b/x", "a/z", "a/b/c", "B", "a.b"];
        let res = keys
            .iter()
            .map(|k| Resource {
                key: ResourceKey::file(*k),
                algorithm: "sha256".into(),
                digest: vec![],
            })
            .collect();
        let m =
            Manifest::new("m".into(), Serialization::files(HashAlgorithm::Sha256), res).unwrap();
        let order: Vec<_> = m.resources.iter().map(|r| r.key.path.as_str()).collect();
        assert_eq!(order, ["B", "a/b/c", "a/z", "a-b/x", "a.b"]);
    }

    #[test]
    fn shard_names_parse_with_colons_in_the_path() {
        let k = ResourceKey::parse("dir/we:ird:0:10", Method::Shards { shard_size: 10 }).unwrap();
        assert_eq!(k.path, "dir/we:ird");
        assert_eq!(k.range, Some((0, 10)));
        assert!(ResourceKey::parse("x:10:10", Method::Shards { shard_size: 10 }).is_err());
        assert!(ResourceKey::parse("x:a:10", Method::Shards { shard_size: 10 }).is_err());
        assert!(ResourceKey::parse("../x:0:1", Method::Shards { shard_size: 10 }).is_err());
    }

    #[test]
    fn shard_size_written_as_a_float_is_read() {
        let s = Serialization::from_json(&json!({"method": "shards", "shard_size": 4.0, "hash_type": "sha256", "allow_symlinks": false})).unwrap();
        assert_eq!(s.method, Method::Shards { shard_size: 4 });
        assert!(
            Serialization::from_json(
                &json!({"method": "shards", "shard_size": 4.5, "hash_type": "sha256"})
            )
            .is_err()
        );
        assert!(
            Serialization::from_json(
                &json!({"method": "shards", "shard_size": 0, "hash_type": "sha256"})
            )
            .is_err()
        );
        assert!(Serialization::from_json(&json!({"method": "files", "hash_type": "md5"})).is_err());
    }

    #[test]
    fn duplicates_are_refused() {
        let r = Resource {
            key: ResourceKey::file("a"),
            algorithm: "sha256".into(),
            digest: vec![1],
        };
        assert!(
            Manifest::new(
                "m".into(),
                Serialization::files(HashAlgorithm::Sha256),
                vec![r.clone(), r]
            )
            .is_err()
        );
    }
}
