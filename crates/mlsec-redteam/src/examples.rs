//! Adversarial examples written out for adversarial training and regression tests.
//!
//! `DIR/adversarial.npy` holds the inputs as the model takes them (float32, shape
//! `[n, ...input]`), `DIR/labels.npy` their true labels (int64), and `DIR/adversarial.csv` the
//! same rows in the data's columns with the label, the class the model gave, the attack, the
//! distance and the source row. Each sample's smallest perturbation is written once.

use std::io::Write;
use std::path::Path;

use crate::RedteamError;
use crate::classifier::ClassifierReport;

/// A NumPy `.npy` (version 1.0) file: header, then little-endian values.
fn npy(descr: &str, shape: &[usize], body: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the report's examples under `dir` (created if needed). Returns how many were written.
pub fn save(
    report: &ClassifierReport,
    names: &[String],
    label_column: &str,
    row_shape: &[usize],
    dir: &Path,
) -> Result<usize, RedteamError> {
    let werr = |path: &Path, e: std::io::Error| RedteamError::Write {
        path: path.to_path_buf(),
        source: e,
    };
    fs_err::create_dir_all(dir).map_err(|e| werr(dir, e))?;
    let mut ex: Vec<&crate::classifier::Example> = report.examples.iter().collect();
    ex.sort_by_key(|e| e.row);
    let n = ex.len();
    let mut shape = vec![n];
    shape.extend_from_slice(row_shape);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for e in &ex {
        for v in &e.x {
            xs.extend_from_slice(&v.to_le_bytes());
        }
        ys.extend_from_slice(&(e.label as i64).to_le_bytes());
    }
    let p = dir.join("adversarial.npy");
    fs_err::write(&p, npy("<f4", &shape, &xs)).map_err(|e| werr(&p, e))?;
    let p = dir.join("labels.npy");
    fs_err::write(&p, npy("<i8", &[n], &ys)).map_err(|e| werr(&p, e))?;
    let p = dir.join("adversarial.csv");
    let mut out = Vec::new();
    let mut header: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
    header.extend(
        [
            label_column,
            "adversarial_label",
            "attack",
            "distance",
            "source_row",
        ]
        .iter()
        .map(|s| csv_field(s)),
    );
    let _ = writeln!(out, "{}", header.join(","));
    for e in &ex {
        let mut cells: Vec<String> = e.x.iter().map(ToString::to_string).collect();
        cells.push(e.label.to_string());
        cells.push(e.adversarial_label.to_string());
        cells.push(e.attack.as_str().to_string());
        cells.push(format!("{}", e.distance));
        cells.push(e.row.to_string());
        let _ = writeln!(out, "{}", cells.join(","));
    }
    fs_err::write(&p, out).map_err(|e| werr(&p, e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_are_aligned_and_parseable() {
        let f = npy("<f4", &[2, 3], &[0u8; 24]);
        assert_eq!(&f[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([f[8], f[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let h = std::str::from_utf8(&f[10..10 + hlen]).unwrap_or_default();
        assert!(h.contains("'shape': (2, 3)") && h.ends_with('\n'), "{h}");
        assert_eq!(f.len(), 10 + hlen + 24);
        let one = npy("<i8", &[5], &[0u8; 40]);
        let hlen = u16::from_le_bytes([one[8], one[9]]) as usize;
        assert!(
            std::str::from_utf8(&one[10..10 + hlen])
                .unwrap_or_default()
                .contains("(5,)")
        );
    }
}
