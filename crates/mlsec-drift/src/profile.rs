//! Reference profiles: what drift detection needs of a dataset, without the dataset.
//!
//! `mlsec drift profile DATA -o ref.profile.json` keeps, per column, the counts (rows, missing,
//! numbers, text), up to [`PROFILE_QUANTILES`] evenly spaced order statistics of the numbers
//! (all of them when there are fewer) and the [`PROFILE_CATEGORIES`] commonest categories with
//! the rest pooled. A profile stands in for the reference wherever a file would: its quantiles
//! are an equally weighted sample whose ECDF is within `1 / PROFILE_QUANTILES` of the data's,
//! and p-values use the true counts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::table::{Column, DataError, Format, Table};

/// The profile format's version.
pub const PROFILE_VERSION: u32 = 1;
/// Order statistics kept per numeric column.
pub const PROFILE_QUANTILES: usize = 2_048;
/// Categories kept per column; the rest are pooled into `overflow`.
pub const PROFILE_CATEGORIES: usize = 1_000;
/// Largest profile file read.
pub const MAX_PROFILE_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub mlsec_drift_profile: u32,
    /// The file the profile was made from.
    pub source: String,
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnProfile {
    pub name: String,
    pub missing: u64,
    pub numeric: u64,
    pub non_finite: u64,
    pub text: u64,
    /// Sorted order statistics of the finite numbers.
    pub quantiles: Vec<f64>,
    pub categories: BTreeMap<String, u64>,
    /// Text values in categories not kept.
    pub overflow: u64,
}

impl Profile {
    /// The profile of a table that was read in full.
    pub fn of(table: &Table) -> Profile {
        Profile {
            mlsec_drift_profile: PROFILE_VERSION,
            source: table.path.clone(),
            rows: table.rows,
            columns: table.columns.iter().map(column_profile).collect(),
        }
    }

    /// Reads and checks a profile file: its size, its version, and that its counts add up.
    pub fn read(path: &Path) -> Result<Profile, DataError> {
        let name = path.display().to_string();
        let bad = |message: String| DataError::Profile {
            path: name.clone(),
            message,
        };
        let len = fs_err::metadata(path)
            .map_err(|e| DataError::Io {
                path: name.clone(),
                source: e,
            })?
            .len();
        if len > MAX_PROFILE_BYTES {
            return Err(bad(format!(
                "{len} bytes, over MAX_PROFILE_BYTES ({MAX_PROFILE_BYTES})"
            )));
        }
        let bytes = fs_err::read(path).map_err(|e| DataError::Io {
            path: name.clone(),
            source: e,
        })?;
        Profile::parse(&bytes, &name)
    }

    /// Parses and checks a profile's JSON; `name` labels the error.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Profile, DataError> {
        let bad = |message: String| DataError::Profile {
            path: name.to_string(),
            message,
        };
        if bytes.len() as u64 > MAX_PROFILE_BYTES {
            return Err(bad(format!("over MAX_PROFILE_BYTES ({MAX_PROFILE_BYTES})")));
        }
        let profile: Profile = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        profile.check().map_err(bad)?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        if self.mlsec_drift_profile != PROFILE_VERSION {
            return Err(format!(
                "version {} (this mlsec reads version {PROFILE_VERSION})",
                self.mlsec_drift_profile
            ));
        }
        for c in &self.columns {
            let sum = c
                .missing
                .checked_add(c.numeric)
                .and_then(|x| x.checked_add(c.text));
            if sum != Some(self.rows) {
                return Err(format!(
                    "column {:?}: missing + numeric + text is not rows ({})",
                    c.name, self.rows
                ));
            }
            if c.non_finite > c.numeric {
                return Err(format!("column {:?}: non_finite > numeric", c.name));
            }
            if c.quantiles.len() > PROFILE_QUANTILES
                || c.quantiles.len() as u64 > c.numeric - c.non_finite
            {
                return Err(format!("column {:?}: too many quantiles", c.name));
            }
            if c.quantiles.iter().any(|v| !v.is_finite())
                || c.quantiles.windows(2).any(|w| w[0] > w[1])
            {
                return Err(format!(
                    "column {:?}: quantiles must be finite and sorted",
                    c.name
                ));
            }
            if c.quantiles.is_empty() && c.numeric > c.non_finite {
                return Err(format!("column {:?}: numbers but no quantiles", c.name));
            }
            if c.categories.len() > PROFILE_CATEGORIES {
                return Err(format!("column {:?}: too many categories", c.name));
            }
            let cats = c
                .categories
                .values()
                .try_fold(c.overflow, |a, b| a.checked_add(*b));
            if cats != Some(c.text) {
                return Err(format!(
                    "column {:?}: category counts do not add up to text",
                    c.name
                ));
            }
        }
        Ok(())
    }

    /// The profile as a reference table: each column's quantiles stand for its numbers.
    pub fn to_table(&self) -> Table {
        Table {
            rows: self.rows,
            columns: self
                .columns
                .iter()
                .map(|c| {
                    let mut col = Column::new(c.name.clone());
                    col.present = self.rows;
                    col.missing = c.missing;
                    col.numeric = c.numeric;
                    col.non_finite = c.non_finite;
                    col.text = c.text;
                    col.values.clone_from(&c.quantiles);
                    col.categories = c.categories.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    col.overflow = c.overflow;
                    col
                })
                .collect(),
            ..Table::empty(self.source.clone(), Format::Profile)
        }
    }
}

fn column_profile(c: &Column) -> ColumnProfile {
    let v = &c.values;
    let quantiles = if v.len() <= PROFILE_QUANTILES {
        v.clone()
    } else {
        // Evenly spaced order statistics, both ends included.
        let last = (v.len() - 1) as f64;
        (0..PROFILE_QUANTILES)
            .map(|i| {
                let pos = (i as f64 * last / (PROFILE_QUANTILES - 1) as f64).round() as usize;
                v[pos.min(v.len() - 1)]
            })
            .collect()
    };
    let mut cats: Vec<(&String, &u64)> = c.categories.iter().collect();
    cats.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let kept: BTreeMap<String, u64> = cats
        .iter()
        .take(PROFILE_CATEGORIES)
        .map(|(k, v)| ((*k).clone(), **v))
        .collect();
    let pooled: u64 = cats.iter().skip(PROFILE_CATEGORIES).map(|(_, v)| **v).sum();
    ColumnProfile {
        name: c.name.clone(),
        missing: c.missing,
        numeric: c.numeric,
        non_finite: c.non_finite,
        text: c.text,
        quantiles,
        categories: kept,
        overflow: c.overflow + pooled,
    }
}
