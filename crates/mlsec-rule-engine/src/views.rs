//! The texts a file is scanned as: the file itself; for notebooks, each cell's source and text
//! outputs, JSON-unescaped, with image and widget payloads left out; and bounded base64 decodings
//! (Kubernetes Secret `data:`, `b64decode("...")`). Each view maps its lines back to the file.

use std::borrow::Cow;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use regex::Regex;

/// Most base64 blobs decoded per file.
pub const MAX_DECODED_BLOBS: usize = 1_000;
/// Largest base64 blob decoded, in encoded bytes.
pub const MAX_BLOB_LEN: usize = 64 << 10;

/// How a view's lines map to the file's.
#[derive(Debug, Clone)]
pub enum Lines {
    /// The view is the file.
    Same,
    /// Every line of the view comes from this file line (a decoded blob, a one-line JSON string).
    At(u32),
    /// File line of each view line.
    Table(Vec<u32>),
}

impl Lines {
    /// The 1-based file line of the view's 0-based line `i`.
    pub fn file_line(&self, i: usize) -> u32 {
        match self {
            Lines::Same => i as u32 + 1,
            Lines::At(l) => *l,
            Lines::Table(t) => t.get(i).or(t.last()).copied().unwrap_or(1),
        }
    }
}

/// One text to scan.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// The text as the rules see it (a notebook cell's unescaped source, a decoding).
    pub text: Cow<'a, str>,
    /// Line starts of [`View::text`], for positions.
    pub lines: Lines,
    /// Notebook cell index.
    pub cell: Option<u32>,
    /// Where in the file: `""` for the file, `/cells/3/source`, `/cells/3/outputs/0`, `base64`.
    pub field: String,
}

/// The views of a file.
pub fn views<'a>(path: &str, text: &'a str) -> Vec<View<'a>> {
    let mut out = Vec::new();
    if path.to_ascii_lowercase().ends_with(".ipynb")
        && let Some(cells) = notebook(text)
    {
        out.extend(cells);
    } else {
        out.push(View {
            text: Cow::Borrowed(text),
            lines: Lines::Same,
            cell: None,
            field: String::new(),
        });
    }
    out.extend(decoded(text));
    out
}

/// JSON-escapes `s` as it would appear between quotes in the file.
fn escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or("")
        .to_owned()
}

/// Finds, from `cursor` on, the raw line holding the escaped form of `piece`; moves the cursor.
fn locate(raw: &[&str], cursor: &mut usize, piece: &str) -> u32 {
    let needle = escaped(piece.trim_end_matches('\n'));
    let probe: String = needle.chars().take(80).collect();
    if !probe.trim().is_empty()
        && let Some(off) = raw[*cursor..].iter().position(|l| l.contains(&probe))
    {
        *cursor += off;
    }
    *cursor as u32 + 1
}

fn text_of(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => s.split_inclusive('\n').map(str::to_owned).collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .flat_map(|s| {
                s.split_inclusive('\n')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn view_of(
    pieces: &[String],
    raw: &[&str],
    cursor: &mut usize,
    cell: u32,
    field: String,
) -> View<'static> {
    let lines = pieces.iter().map(|p| locate(raw, cursor, p)).collect();
    View {
        text: Cow::Owned(pieces.concat()),
        lines: Lines::Table(lines),
        cell: Some(cell),
        field,
    }
}

/// Cell sources and text outputs of a notebook; `None` if it is not notebook JSON (then the
/// file is scanned as text).
fn notebook(text: &str) -> Option<Vec<View<'static>>> {
    let nb: serde_json::Value = serde_json::from_str(text).ok()?;
    let cells = nb.get("cells")?.as_array()?;
    let raw: Vec<&str> = text.lines().collect();
    let mut cursor = 0;
    let mut out = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        let i = i as u32;
        // Within a cell, `outputs` may come before or after `source` (nbformat sorts keys, so
        // outputs usually come first): both are looked for from the cell's start.
        let start = cursor;
        let mut src_cursor = start;
        let source = text_of(c.get("source").unwrap_or(&serde_json::Value::Null));
        out.push(view_of(
            &source,
            &raw,
            &mut src_cursor,
            i,
            format!("/cells/{i}/source"),
        ));
        for (j, o) in c
            .get("outputs")
            .and_then(|o| o.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let mut pieces = text_of(o.get("text").unwrap_or(&serde_json::Value::Null));
            if let Some(data) = o.get("data") {
                // Text only: images, HTML widgets and widget models are not where keys print.
                pieces.extend(text_of(
                    data.get("text/plain").unwrap_or(&serde_json::Value::Null),
                ));
            }
            for key in ["ename", "evalue"] {
                if let Some(s) = o.get(key).and_then(|v| v.as_str()) {
                    pieces.push(format!("{s}\n"));
                }
            }
            pieces.extend(text_of(
                o.get("traceback").unwrap_or(&serde_json::Value::Null),
            ));
            if !pieces.is_empty() {
                out.push(view_of(
                    &pieces,
                    &raw,
                    &mut cursor,
                    i,
                    format!("/cells/{i}/outputs/{j}"),
                ));
            }
        }
        cursor = cursor.max(src_cursor);
    }
    Some(out)
}

fn blob_patterns() -> &'static [Regex; 2] {
    static P: OnceLock<[Regex; 2]> = OnceLock::new();
    P.get_or_init(|| {
        [
            // b64decode("..."), atob('...'), base64.b64decode(b"...")
            Regex::new(r#"(?:b64decode|atob|decodebytes|FromBase64String)\s*\(\s*b?["']([A-Za-z0-9+/]{16,}={0,2})["']"#)
                .unwrap_or_else(|e| panic!("{e}")),
            // Kubernetes Secret data entries: `  key: base64`
            Regex::new(r#"(?m)^\s+[A-Za-z0-9_.\-]+:\s*["']?([A-Za-z0-9+/]{12,}={0,2})["']?\s*$"#)
                .unwrap_or_else(|e| panic!("{e}")),
        ]
    })
}

/// Decoded base64 blobs, each a view at the blob's line.
fn decoded(text: &str) -> Vec<View<'static>> {
    let secret_manifest = text.contains("kind: Secret") || text.contains("kind: \"Secret\"");
    let mut out = Vec::new();
    for (k, re) in blob_patterns().iter().enumerate() {
        if k == 1 && !secret_manifest {
            continue;
        }
        for c in re.captures_iter(text) {
            if out.len() >= MAX_DECODED_BLOBS {
                return out;
            }
            let Some(m) = c.get(1) else { continue };
            if m.len() > MAX_BLOB_LEN {
                continue;
            }
            let Ok(bytes) = STANDARD.decode(m.as_str()) else {
                continue;
            };
            let Ok(s) = String::from_utf8(bytes) else {
                continue;
            };
            if s.chars().any(|c| c.is_control() && !c.is_whitespace()) {
                continue;
            }
            let line = text[..m.start()].bytes().filter(|&b| b == b'\n').count() as u32 + 1;
            out.push(View {
                text: Cow::Owned(s),
                lines: Lines::At(line),
                cell: None,
                field: "base64".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notebook_cells_and_outputs_map_to_file_lines() {
        let nb = r#"{
 "cells": [
  {
   "cell_type": "code",
   "source": [
    "import os\n",
    "os.environ[\"A\"] = \"x\"\n"
   ],
   "outputs": [
    {"output_type": "stream", "text": ["printed \"key\"\n"]},
    {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure>"]}}
   ]
  }
 ],
 "metadata": {}, "nbformat": 4, "nbformat_minor": 5
}"#;
        let v = views("a.ipynb", nb);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].text, "import os\nos.environ[\"A\"] = \"x\"\n");
        assert_eq!(v[0].lines.file_line(1), 7);
        assert_eq!(v[1].text, "printed \"key\"\n");
        assert_eq!(v[1].lines.file_line(0), 10);
        assert!(!v[2].text.contains("iVBOR"), "images are not scanned");
    }

    #[test]
    fn base64_blobs_in_secrets_and_calls() {
        let enc = STANDARD.encode("password=hunter2-long-enough");
        let y = format!("apiVersion: v1\nkind: Secret\ndata:\n  DB: {enc}\n");
        let v = views("s.yaml", &y);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].text, "password=hunter2-long-enough");
        assert_eq!(v[1].lines.file_line(0), 4);
        let p = format!("k = base64.b64decode(\"{enc}\")\n");
        assert_eq!(views("a.py", &p).len(), 2);
        assert_eq!(
            views("a.yaml", &format!("data:\n  DB: {enc}\n")).len(),
            1,
            "not a Secret"
        );
    }
}
