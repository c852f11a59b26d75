//! Git history and the staging area, read with gitoxide (pure Rust, no `git` process).
//!
//! History: commits from HEAD (minus those reachable from `--since`) are visited oldest first;
//! each tree is entered once and each blob scanned once, so the cost follows the repository's
//! distinct content, not commits × files. A finding names the commit that introduced the blob.
//! Staged: index entries whose blob is not in HEAD's tree (new or changed content about to be
//! committed), for a pre-commit hook.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use mlsec_diagnostics::{FileError, Finding, Report, Stats};
use rayon::prelude::*;

use crate::{BINARY_PROBE, Engine, MAX_FILE_BYTES, Options};

/// Largest blob read from history: gitoxide holds a blob whole in memory. Larger blobs are
/// reported as not scanned.
pub const MAX_HISTORY_BLOB: u64 = 256 << 20;

/// Blobs read into memory per batch before they are scanned in parallel.
const BATCH: usize = 512;

/// What to read from the repository.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Leave out commits reachable from this revision.
    pub since: Option<String>,
    /// Scan the staged content only.
    pub staged: bool,
}

struct Job {
    oid: gix::ObjectId,
    path: String,
    /// The commit that introduced the blob (none for staged content).
    commit: Option<gix::ObjectId>,
}

fn text_path(path: &str) -> bool {
    crate::wanted(Path::new(path))
}

/// Scans a repository's history (or staging area) for secrets.
pub fn scan_history(engine: &Engine, repo_dir: &Path, h: &History, opts: Options) -> Report {
    let start = Instant::now();
    let mut report = Report {
        rules: engine.catalogue().to_vec(),
        ..Report::default()
    };
    let fail = |report: &mut Report, what: String| {
        report.errors.push(FileError {
            path: repo_dir.display().to_string(),
            message: what,
        });
    };
    let repo = match gix::discover(repo_dir) {
        Ok(r) => r,
        Err(e) => {
            fail(&mut report, format!("not a git repository: {e}"));
            return report;
        }
    };
    let jobs = match if h.staged {
        staged(&repo)
    } else {
        history(&repo, h.since.as_deref())
    } {
        Ok(j) => j,
        Err(e) => {
            fail(&mut report, e);
            return report;
        }
    };
    let mut bytes = 0u64;
    let mut scanned = 0u64;
    let mut skipped = 0u64;
    for batch in jobs.chunks(BATCH) {
        let mut loaded = Vec::with_capacity(batch.len());
        for job in batch {
            match repo.find_header(job.oid) {
                Ok(hd) if hd.size() > MAX_HISTORY_BLOB => {
                    fail(
                        &mut report,
                        format!(
                            "{}: blob {} is {} bytes, larger than MAX_HISTORY_BLOB ({MAX_HISTORY_BLOB}); not scanned",
                            job.path,
                            job.oid,
                            hd.size()
                        ),
                    );
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    fail(
                        &mut report,
                        format!("{}: cannot read blob {}: {e}", job.path, job.oid),
                    );
                    continue;
                }
            }
            match repo.find_object(job.oid) {
                Ok(obj) => {
                    let data = obj.detach().data;
                    if data[..data.len().min(BINARY_PROBE)].contains(&0) {
                        skipped += 1;
                        continue;
                    }
                    bytes += data.len() as u64;
                    scanned += 1;
                    loaded.push((job, data));
                }
                Err(e) => fail(
                    &mut report,
                    format!("{}: cannot read blob {}: {e}", job.path, job.oid),
                ),
            }
        }
        let found: Vec<Finding> = loaded
            .par_iter()
            .flat_map_iter(|(job, data)| {
                let mut f = if data.len() as u64 > MAX_FILE_BYTES {
                    // In memory already: windows over the slice cannot fail to read.
                    engine
                        .scan_large(&job.path, &data.as_slice(), opts)
                        .unwrap_or_default()
                } else {
                    engine.scan_text(&job.path, &String::from_utf8_lossy(data), opts)
                };
                for x in &mut f {
                    match job.commit {
                        Some(c) => {
                            x.message.push_str(&format!(
                                " (introduced in commit {})",
                                c.to_hex_with_len(12)
                            ));
                            x.location.field = Some(format!("commit:{c}"));
                        }
                        None => x.message.push_str(" (staged)"),
                    }
                }
                f
            })
            .collect();
        report.findings.extend(found);
    }
    report.stats = Stats {
        files_scanned: scanned,
        files_skipped: skipped,
        bytes_scanned: bytes,
        duration: start.elapsed(),
    };
    report.sort();
    report
}

/// Walks `tree`, entering each tree not yet in `trees` once, and calls `blob(path, oid)` for
/// every blob entry found.
fn walk_tree(
    repo: &gix::Repository,
    tree: gix::ObjectId,
    trees: &mut HashSet<gix::ObjectId>,
    blob: &mut impl FnMut(String, gix::ObjectId),
) -> Result<(), String> {
    let mut stack = vec![(tree, String::new())];
    while let Some((t, prefix)) = stack.pop() {
        if !trees.insert(t) {
            continue;
        }
        let obj = repo
            .find_object(t)
            .map_err(|e| format!("cannot read tree {t}: {e}"))?
            .try_into_tree()
            .map_err(|e| format!("tree {t}: {e}"))?;
        let decoded = obj.decode().map_err(|e| format!("tree {t}: {e}"))?;
        for e in &decoded.entries {
            let name = format!("{prefix}{}", e.filename);
            if e.mode.is_tree() {
                stack.push((e.oid.to_owned(), format!("{name}/")));
            } else if e.mode.is_blob() {
                blob(name, e.oid.to_owned());
            }
        }
    }
    Ok(())
}

/// The tree of a commit.
fn commit_tree(repo: &gix::Repository, id: gix::ObjectId) -> Result<gix::ObjectId, String> {
    Ok(repo
        .find_object(id)
        .map_err(|e| format!("cannot read commit {id}: {e}"))?
        .try_into_commit()
        .map_err(|e| format!("commit {id}: {e}"))?
        .tree_id()
        .map_err(|e| format!("commit {id}: {e}"))?
        .detach())
}

fn staged(repo: &gix::Repository) -> Result<Vec<Job>, String> {
    let index = repo
        .open_index()
        .map_err(|e| format!("cannot read the index: {e}"))?;
    let mut committed = HashSet::new();
    if let Ok(head) = repo.head_id() {
        let tree = commit_tree(repo, head.detach())?;
        walk_tree(repo, tree, &mut HashSet::new(), &mut |_, oid| {
            committed.insert(oid);
        })?;
    }
    Ok(index
        .entries()
        .iter()
        .filter(|e| e.mode.to_tree_entry_mode().is_some_and(|m| m.is_blob()))
        .filter(|e| !committed.contains(&e.id))
        .map(|e| Job {
            oid: e.id,
            path: e.path(&index).to_string(),
            commit: None,
        })
        .filter(|j| text_path(&j.path))
        .collect())
}

fn history(repo: &gix::Repository, since: Option<&str>) -> Result<Vec<Job>, String> {
    let head = repo
        .head_id()
        .map_err(|e| format!("no commit to scan (HEAD): {e}"))?
        .detach();
    let mut walk = repo.rev_walk([head]);
    if let Some(rev) = since {
        let hidden = repo
            .rev_parse_single(rev)
            .map_err(|e| format!("--since {rev}: {e}"))?
            .detach();
        walk = walk.with_hidden([hidden]);
    }
    let mut commits = Vec::new();
    for info in walk
        .all()
        .map_err(|e| format!("cannot walk history: {e}"))?
    {
        commits.push(info.map_err(|e| format!("cannot walk history: {e}"))?.id);
    }
    let mut trees = HashSet::new();
    let mut blobs = HashSet::new();
    let mut jobs = Vec::new();
    // Oldest first: the first commit that shows a blob is the one that introduced it.
    for id in commits.iter().rev() {
        let tree = commit_tree(repo, *id)?;
        walk_tree(repo, tree, &mut trees, &mut |path, oid| {
            if blobs.insert(oid) && text_path(&path) {
                jobs.push(Job {
                    oid,
                    path,
                    commit: Some(*id),
                });
            }
        })?;
    }
    Ok(jobs)
}
