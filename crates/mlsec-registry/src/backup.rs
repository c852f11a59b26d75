//! Backup and restore. A backup is a folder: every table as JSON lines (read in one
//! transaction, so it is one consistent snapshot), every object the metadata references, copied
//! as stored (still encrypted), and `manifest.json`, written last (a folder without it is an
//! unfinished backup and restore refuses it). The key-encryption key is not in the backup: keep
//! the key file (or the transit key) apart, as the backup is useless without it and harmless to
//! whoever lacks it.
//!
//! The format is the same whatever the stores, so a backup of the embedded default restores
//! into PostgreSQL and S3, and back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Registry;
use crate::blobs::BlobError;
use crate::crypt::{Context, Header};

pub const FORMAT: u32 = 1;
/// Longest table line read back.
pub const MAX_LINE_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{path}: {detail}")]
    File { path: String, detail: String },
    #[error("metadata: {0}")]
    Db(#[from] crate::store::DbError),
    #[error("object {object}: {source}")]
    Object { object: String, source: BlobError },
    #[error("{0}")]
    Refused(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub mlsec_registry_backup: u32,
    pub created_ms: i64,
    pub tables: BTreeMap<String, usize>,
    pub objects: usize,
    pub bytes: u64,
    /// The key-encryption keys the objects are wrapped under (ids, never keys).
    pub keys: Vec<String>,
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> BackupError {
    BackupError::File {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Object keys are made by the registry (`objects/ab/<32 hex>`); anything else in a backup is
/// refused before it can name a path.
fn valid_object_key(k: &str) -> bool {
    let parts: Vec<&str> = k.split('/').collect();
    matches!(parts.as_slice(), ["objects", p, id]
        if p.len() == 2 && id.len() == 32 && id.starts_with(p) && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn artifact_rows(tables: &[(String, Vec<Map<String, Value>>)]) -> Vec<&Map<String, Value>> {
    tables
        .iter()
        .filter(|(t, _)| t == "artifacts")
        .flat_map(|(_, rows)| rows.iter())
        .collect()
}

fn context_of(row: &Map<String, Value>) -> Context {
    let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Context {
        env: s("env"),
        model: s("model"),
        version: row.get("version").and_then(Value::as_i64).unwrap_or(0),
        path: s("path"),
    }
}

/// Writes a backup into `out` (which must not exist or be empty).
pub async fn backup(reg: &Registry, out: &Path) -> Result<Manifest, BackupError> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| file_err(out, e))?
            .next()
            .is_some()
    {
        return Err(BackupError::Refused(format!(
            "{}: not empty; back up into a new folder",
            out.display()
        )));
    }
    std::fs::create_dir_all(out.join("tables")).map_err(|e| file_err(out, e))?;
    let tables = reg.store.dump().await?;
    let mut counts = BTreeMap::new();
    for (table, rows) in &tables {
        let p = out.join("tables").join(format!("{table}.jsonl"));
        let mut text = String::new();
        for r in rows {
            text.push_str(&Value::Object(r.clone()).to_string());
            text.push('\n');
        }
        std::fs::write(&p, text).map_err(|e| file_err(&p, e))?;
        counts.insert(table.clone(), rows.len());
    }
    let mut bytes = 0u64;
    let mut keys = BTreeSet::new();
    let artifacts = artifact_rows(&tables);
    for row in &artifacts {
        let object = row.get("object").and_then(Value::as_str).unwrap_or("");
        if !valid_object_key(object) {
            return Err(BackupError::Refused(format!(
                "metadata names an object {object:?} the registry cannot have made"
            )));
        }
        let dest = out.join(object);
        let n = reg
            .blobs
            .raw_to_file(object, &dest)
            .await
            .map_err(|source| BackupError::Object {
                object: object.to_owned(),
                source,
            })?;
        bytes += n;
        let head = read_head(&dest)?;
        keys.insert(head.kek);
    }
    let manifest = Manifest {
        mlsec_registry_backup: FORMAT,
        created_ms: crate::store::now_ms(),
        tables: counts,
        objects: artifacts.len(),
        bytes,
        keys: keys.into_iter().collect(),
    };
    let p = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    std::fs::write(&p, text).map_err(|e| file_err(&p, e))?;
    Ok(manifest)
}

fn read_head(path: &Path) -> Result<Header, BackupError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let mut buf = vec![0u8; 13 + crate::crypt::MAX_HEADER];
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..]).map_err(|e| file_err(path, e))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    match Header::parse(&buf[..n]) {
        Ok(Some((h, _))) => Ok(h),
        Ok(None) => Err(file_err(path, "ends inside its header")),
        Err(e) => Err(file_err(path, e)),
    }
}

/// Restores a backup into this registry, which must be empty. Objects are written first and
/// the metadata last, in one transaction: a restore cut short leaves the registry empty.
pub async fn restore(reg: &Registry, from: &Path) -> Result<Manifest, BackupError> {
    let mp = from.join("manifest.json");
    let text = std::fs::read_to_string(&mp)
        .map_err(|e| file_err(&mp, format!("{e} (an unfinished or foreign backup)")))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| file_err(&mp, e))?;
    if manifest.mlsec_registry_backup != FORMAT {
        return Err(file_err(
            &mp,
            format!(
                "format {} (this release reads {FORMAT})",
                manifest.mlsec_registry_backup
            ),
        ));
    }
    if !reg.store.is_empty().await? {
        return Err(BackupError::Refused(
            "this registry is not empty: restore into a new one".into(),
        ));
    }
    let mut tables = Vec::new();
    for (table, _) in crate::store::tables() {
        let p = from.join("tables").join(format!("{table}.jsonl"));
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) => return Err(file_err(&p, e)),
        };
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            if line.len() > MAX_LINE_BYTES {
                return Err(file_err(
                    &p,
                    format!("line {}: longer than {MAX_LINE_BYTES} bytes", i + 1),
                ));
            }
            match serde_json::from_str(line) {
                Ok(Value::Object(m)) => rows.push(m),
                _ => return Err(file_err(&p, format!("line {}: not a JSON object", i + 1))),
            }
        }
        if manifest.tables.get(table) != Some(&rows.len()) {
            return Err(file_err(
                &p,
                format!(
                    "{} rows, the manifest says {:?}",
                    rows.len(),
                    manifest.tables.get(table)
                ),
            ));
        }
        tables.push((table.to_owned(), rows));
    }
    // Every object present and valid, and this registry can open one per key, before writing.
    let artifacts = artifact_rows(&tables);
    let mut proven = BTreeSet::new();
    for row in &artifacts {
        let object = row.get("object").and_then(Value::as_str).unwrap_or("");
        if !valid_object_key(object) {
            return Err(BackupError::Refused(format!(
                "the backup names an object {object:?} the registry cannot have made"
            )));
        }
        let head = read_head(&from.join(object))?;
        if proven.insert(head.kek.clone()) {
            let kek = reg.blobs.keyring().for_header(&head).map_err(|e| {
                BackupError::Refused(format!(
                    "objects were wrapped under {}, which this registry cannot use: {e}",
                    head.kek
                ))
            })?;
            crate::crypt::open_header(kek, &context_of(row), &head)
                .await
                .map_err(|e| {
                    BackupError::Refused(format!(
                        "objects were wrapped under {}, which this registry cannot use: {e}",
                        head.kek
                    ))
                })?;
        }
    }
    for row in &artifacts {
        let object = row.get("object").and_then(Value::as_str).unwrap_or("");
        reg.blobs
            .put_raw_file(object, &from.join(object))
            .await
            .map_err(|source| BackupError::Object {
                object: object.to_owned(),
                source,
            })?;
    }
    reg.store.load(&tables).await?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_from_a_backup_cannot_name_other_paths() {
        let id = "ab0123456789abcdef0123456789abcd";
        assert!(valid_object_key(&format!("objects/ab/{id}")));
        for bad in [
            "objects/ab/../../etc/passwd",
            "/etc/passwd",
            "objects/cd/ab0123456789abcdef0123456789abcd",
            "objects/ab",
            "",
        ] {
            assert!(!valid_object_key(bad), "{bad}");
        }
    }
}
