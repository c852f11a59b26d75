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

    /// Reads a baseline written by [`Baseline::write`].
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() as u64 > MAX_BASELINE_BYTES {
            return Err(format!("larger than {MAX_BASELINE_BYTES} bytes"));
        }
        let file: File =
            serde_json::from_slice(bytes).map_err(|e| format!("not an mlsec baseline: {e}"))?;
        if file.mlsec_baseline != 1 {
            return Err(format!(
                "baseline version {} (this mlsec reads version 1)",
                file.mlsec_baseline
            ));
        }
        let mut counts = HashMap::new();
        for e in file.findings {
            *counts.entry(e.fingerprint).or_insert(0) += 1;
        }
        Ok(Self { counts })
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
