//! Labelled rows for attacks and audits, read by `mlsec-drift`'s readers (CSV, TSV, JSON Lines,
//! Parquet) with their limits.
//!
//! Every column but the label is a feature, in file order. A row whose features are not all
//! numbers, or whose label is not a class, is not used: it is counted, and the first one is
//! named, never dropped silently.

use std::path::Path;

use mlsec_drift::audit::{Cell, Frame, read_frame};
use serde::Serialize;

use crate::RedteamError;

/// Labelled rows, row-major.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: String,
    /// Feature names, in the order the model receives them.
    pub names: Vec<String>,
    pub label_column: String,
    /// `rows * names.len()` values.
    pub x: Vec<f32>,
    pub y: Vec<usize>,
    /// The 1-based data row each used row came from.
    pub source_rows: Vec<usize>,
    pub unused: Unused,
}

/// Rows read but not used, and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unused {
    /// Rows the reader could not parse (see `mlsec drift`'s readers).
    pub unreadable: u64,
    /// Rows past the reader's row limit.
    pub not_read: u64,
    /// Rows with a missing or non-numeric feature, or a label that is not a class.
    pub invalid: u64,
    /// The first problem, with its data row.
    pub first: Option<String>,
    /// Valid rows left out on request (`--max-samples`): said in the report, not a finding.
    pub limited: u64,
}

impl Unused {
    pub fn total(&self) -> u64 {
        self.unreadable + self.not_read + self.invalid
    }
}

impl Dataset {
    /// Keeps the first `n` rows; the rest are counted in `unused.limited`.
    pub fn limit(&mut self, n: usize) {
        let n = n.min(self.rows());
        self.unused.limited += (self.rows() - n) as u64;
        self.x.truncate(n * self.width());
        self.y.truncate(n);
        self.source_rows.truncate(n);
    }

    pub fn rows(&self) -> usize {
        self.y.len()
    }
    pub fn width(&self) -> usize {
        self.names.len()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        let d = self.width();
        &self.x[i * d..(i + 1) * d]
    }
}

/// Reads `path`. `label` names the label column (default: `label` if there is one, else the
/// last column). `classes` maps text labels to class indices in order; without it labels must
/// be whole numbers below `n_classes`.
pub fn read(
    path: &Path,
    label: Option<&str>,
    classes: &[String],
    n_classes: Option<usize>,
) -> Result<Dataset, RedteamError> {
    let frame = read_frame(path).map_err(|e| RedteamError::Data {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    from_frame(&frame, label, classes, n_classes)
}

/// As [`read`], from a frame already read.
pub fn from_frame(
    frame: &Frame,
    label: Option<&str>,
    classes: &[String],
    n_classes: Option<usize>,
) -> Result<Dataset, RedteamError> {
    let err = |problem: String| RedteamError::Data {
        path: frame.path.clone(),
        problem,
    };
    if frame.names.len() < 2 {
        return Err(err(format!(
            "has {} column(s); expected features and a label",
            frame.names.len()
        )));
    }
    let label_index = match label {
        Some(l) => frame.names.iter().position(|n| n == l).ok_or_else(|| {
            err(format!(
                "no label column {l:?} (columns: {})",
                frame.names.join(", ")
            ))
        })?,
        None => frame
            .names
            .iter()
            .position(|n| n == "label")
            .unwrap_or(frame.names.len() - 1),
    };
    let features: Vec<usize> = (0..frame.names.len())
        .filter(|&c| c != label_index)
        .collect();
    let mut ds = Dataset {
        path: frame.path.clone(),
        names: features.iter().map(|&c| frame.names[c].clone()).collect(),
        label_column: frame.names[label_index].clone(),
        x: Vec::with_capacity(frame.rows * features.len()),
        y: Vec::with_capacity(frame.rows),
        source_rows: Vec::with_capacity(frame.rows),
        unused: Unused {
            unreadable: frame.unreadable_rows,
            not_read: frame.rows_not_read,
            invalid: 0,
            first: frame
                .first_problem
                .as_ref()
                .map(|(line, msg)| format!("line {line}: {msg}")),
            limited: 0,
        },
    };
    let mut row = Vec::with_capacity(features.len());
    for r in 0..frame.rows {
        row.clear();
        let mut problem = None;
        for &c in &features {
            match frame.cells[c][r] {
                Cell::Num(v) if v.is_finite() => row.push(v as f32),
                Cell::Num(_) => problem = Some(format!("{} is not finite", frame.names[c])),
                Cell::Missing => problem = Some(format!("{} is missing", frame.names[c])),
                Cell::Text(t) => {
                    problem = Some(format!(
                        "{} is text ({:?}), not a number",
                        frame.names[c],
                        frame.texts.get(t as usize).map_or("", String::as_str)
                    ));
                }
            }
            if problem.is_some() {
                break;
            }
        }
        let y = match frame.cells[label_index][r] {
            Cell::Num(v) if v >= 0.0 && v.fract() == 0.0 && classes.is_empty() => {
                Some(v as usize).filter(|&c| n_classes.is_none_or(|n| c < n))
            }
            Cell::Num(v) if !classes.is_empty() => {
                let text = format!("{v}");
                classes.iter().position(|c| *c == text)
            }
            Cell::Text(t) => {
                let text = frame.texts.get(t as usize).map_or("", String::as_str);
                classes.iter().position(|c| c == text)
            }
            _ => None,
        };
        if problem.is_none() && y.is_none() {
            problem = Some(match frame.cells[label_index][r] {
                Cell::Text(_) if classes.is_empty() => format!(
                    "label {:?} is text: give the class names in model order (--classes)",
                    ds.label_column
                ),
                _ => format!(
                    "label {:?} is not a class of the model{}",
                    ds.label_column,
                    n_classes
                        .map(|n| format!(" (0 to {})", n - 1))
                        .unwrap_or_default()
                ),
            });
        }
        match (problem, y) {
            (None, Some(y)) => {
                ds.x.extend_from_slice(&row);
                ds.y.push(y);
                ds.source_rows.push(r + 1);
            }
            (p, _) => {
                ds.unused.invalid += 1;
                if ds.unused.first.is_none() {
                    ds.unused.first = p.map(|p| format!("data row {}: {p}", r + 1));
                }
            }
        }
    }
    if ds.y.is_empty() {
        return Err(err(format!(
            "no usable rows{}",
            ds.unused
                .first
                .as_ref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        )));
    }
    Ok(ds)
}
