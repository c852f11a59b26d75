//! Baselines: a file of accepted findings, by fingerprint, so that only new findings fail CI.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Finding, Report};

/// Baseline files larger than this are refused.
pub const MAX_BASELINE_BYTES: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    fingerprint: String,
    rule_id: String,
    path: String,
    message: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    mlsec_baseline: u32,
    findings: Vec<Entry>,
}

/// The accepted findings, counted by fingerprint (the same finding twice needs two entries).
#[derive(Debug, Default)]
pub struct Baseline {
    counts: HashMap<String, usize>,
    entries: Vec<Entry>,
}

/// Why a baseline file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    #[error("larger than {MAX_BASELINE_BYTES} bytes")]
    TooLarge,
    #[error("not an mlsec baseline: {0}")]
    NotBaseline(#[source] serde_json::Error),
    #[error("baseline version {0} (this mlsec reads version 1)")]
    Version(u32),
}

impl Baseline {
    /// Serializes a report's findings as a baseline (JSON).
    pub fn write(report: &Report) -> Vec<u8> {
        let findings = report
            .findings
            .iter()
            .map(|f| Entry {
                fingerprint: f.fingerprint(),
                rule_id: f.rule.id.to_owned(),
                path: f.location.path.clone(),
                message: f.message.clone(),
            })
            .collect();
        let mut out = serde_json::to_vec_pretty(&File {
            mlsec_baseline: 1,
            findings,
        })
        .expect("baseline serializes");
        out.push(b'\n');
        out
    }

    /// Reads a baseline written by [`Baseline::write`]. The caller adds the file's path.
    pub fn parse(bytes: &[u8]) -> Result<Self, BaselineError> {
        if bytes.len() as u64 > MAX_BASELINE_BYTES {
            return Err(BaselineError::TooLarge);
        }
        let file: File = serde_json::from_slice(bytes).map_err(BaselineError::NotBaseline)?;
        if file.mlsec_baseline != 1 {
            return Err(BaselineError::Version(file.mlsec_baseline));
        }
        let mut counts = HashMap::new();
        for e in &file.findings {
            *counts.entry(e.fingerprint.clone()).or_insert(0) += 1;
        }
        Ok(Self {
            counts,
            entries: file.findings,
        })
    }

    /// Entries that accept none of `findings` (stale: fixed, moved to another file, or the
    /// secret rotated), as `rule_id path: message`.
    pub fn unused(&self, findings: &[Finding]) -> Vec<String> {
        let mut present: HashMap<String, usize> = HashMap::new();
        for f in findings {
            *present.entry(f.fingerprint()).or_insert(0) += 1;
        }
        let mut out = Vec::new();
        for e in &self.entries {
            match present.get_mut(&e.fingerprint) {
                Some(n) if *n > 0 => *n -= 1,
                _ => out.push(format!("{} {}: {}", e.rule_id, e.path, e.message)),
            }
        }
        out
    }

    /// Removes the findings the baseline accepts; returns how many were removed.
    pub fn apply(&self, findings: &mut Vec<Finding>) -> usize {
        let mut left = self.counts.clone();
        let before = findings.len();
        findings.retain(|f| match left.get_mut(&f.fingerprint()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        });
        before - findings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Location, Report, UNUSED_IGNORE};

    #[test]
    fn unused_entries_are_the_ones_matching_nothing() {
        let f = |m: &str| Finding::new(&UNUSED_IGNORE, Location::file("a.py"), m);
        let report = Report {
            findings: vec![f("one"), f("two")],
            ..Report::default()
        };
        let b = Baseline::parse(&Baseline::write(&report)).unwrap();
        assert!(b.unused(&[f("one"), f("two")]).is_empty());
        let stale = b.unused(&[f("one")]);
        assert_eq!(stale.len(), 1);
        assert!(stale[0].contains("two"), "{stale:?}");
        let mut now = vec![f("one"), f("three")];
        assert_eq!(b.apply(&mut now), 1);
        assert_eq!(now.len(), 1);
    }
}
