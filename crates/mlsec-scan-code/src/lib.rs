//! The code scanner: Python files and Jupyter notebooks, analysed on a real AST (ruff's parser),
//! reported in the shared findings model. Nothing is imported or executed.
//!
//! # Brief overview
//! * [`CodeScanner`]: the scanner the shared walk (`mlsec-walk`) drives; [`scan_paths`] runs it
//!   alone.
//! * [`scan_python`] and [`scan_notebook`]: one source's text, for tests and other callers.
//! * [`RULES`] and [`EXAMPLES`]: the rule catalogue, each rule with its positive and negative
//!   examples.

mod python;
pub mod rules;

use std::path::PathBuf;

use mlsec_diagnostics::{Finding, Location, Report};
use mlsec_walk::{FileInput, FileScanner};
use ruff_python_ast::PySourceType;
use ruff_text_size::Ranged;

pub use rules::{EXAMPLES, RULES};

/// Python files larger than this are reported, not parsed.
pub const MAX_SOURCE_BYTES: u64 = 8 << 20;
/// Notebooks larger than this are reported, not parsed.
pub const MAX_NOTEBOOK_BYTES: u64 = 64 << 20;
/// Deepest expression or statement nesting analysed; deeper files are reported.
pub const MAX_NESTING: usize = 200;

pub use mlsec_walk::Outcome;

/// `# mlsec: ignore[PY001, PY002] reason` on a line suppresses those rules on that line.
fn suppressions(
    src: &str,
    known: &dyn Fn(&str) -> bool,
    errors: &mut Vec<String>,
    label: &str,
) -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let Some(at) = line.find("mlsec: ignore[") else {
            continue;
        };
        if !line[..at].contains('#') {
            continue;
        }
        let rest = &line[at + "mlsec: ignore[".len()..];
        let Some(end) = rest.find(']') else {
            errors.push(format!("{label}:{}: unterminated `mlsec: ignore[`", i + 1));
            continue;
        };
        let ids: Vec<String> = rest[..end]
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        for id in &ids {
            if !known(id) {
                errors.push(format!(
                    "{label}:{}: suppression names unknown rule `{id}` (see `mlsec rules`)",
                    i + 1
                ));
            }
        }
        out.push((i as u32 + 1, ids));
    }
    out
}

fn is_known_rule(id: &str) -> bool {
    RULES.iter().any(|r| r.id == id)
}

fn apply_suppressions(findings: &mut Vec<Finding>, supp: &[(u32, Vec<String>)], cell: Option<u32>) {
    findings.retain(|f| {
        if f.location.cell != cell {
            return true;
        }
        let Some(line) = f.location.line else {
            return true;
        };
        !supp
            .iter()
            .any(|(l, ids)| *l == line && ids.iter().any(|id| id == f.rule.id))
    });
}

/// Most operators one statement may hold. The parser nests an expression one level per
/// operator, so this bounds the depth of the tree the analysis (and its drop) recurses over.
pub const MAX_STATEMENT_OPERATORS: usize = 10_000;

/// How deeply the source nests, measured without parsing, one logical line (a statement with
/// its bracketed continuation lines) at a time: the most operators in one line plus the deepest
/// brackets (strings and comments skipped).
struct Nesting {
    /// The worst logical line within the limits.
    worst: usize,
    /// Byte ranges of the logical lines past [`MAX_NESTING`] or [`MAX_STATEMENT_OPERATORS`].
    too_deep: Vec<std::ops::Range<usize>>,
}

fn nesting(src: &str) -> Nesting {
    let b = src.as_bytes();
    let (mut i, mut depth, mut ops, mut worst) = (0, 0usize, 0usize, 0usize);
    let (mut line_start, mut line_worst, mut over) = (0usize, 0usize, false);
    let mut too_deep = Vec::new();
    let mut word_start = true;
    let mut end_line = |at: usize, line_worst: &mut usize, over: &mut bool, start: &mut usize| {
        if *over {
            too_deep.push(*start..at);
        } else {
            worst = worst.max(*line_worst);
        }
        (*line_worst, *over, *start) = (0, false, at + 1);
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' | b'"' => {
                let triple = b
                    .get(i..i + 3)
                    .is_some_and(|t| t[0] == c && t[1] == c && t[2] == c);
                i += if triple { 3 } else { 1 };
                while i < b.len() {
                    if b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == c
                        && (!triple || b.get(i..i + 3).is_some_and(|t| t[1] == c && t[2] == c))
                    {
                        i += if triple { 3 } else { 1 };
                        break;
                    }
                    if b[i] == b'\n' && !triple {
                        break;
                    }
                    i += 1;
                }
                word_start = true;
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                ops += 1;
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' if depth == 0 && (i == 0 || b[i - 1] != b'\\') => {
                end_line(i, &mut line_worst, &mut over, &mut line_start);
                ops = 0;
            }
            b'.' | b'+' | b'-' | b'*' | b'/' | b'%' | b'@' | b'|' | b'&' | b'^' | b'~' | b'<'
            | b'>' | b'=' | b':' => ops += 1,
            _ if word_start && c.is_ascii_alphabetic() => {
                let end = b[i..]
                    .iter()
                    .position(|x| !x.is_ascii_alphanumeric() && *x != b'_')
                    .map_or(b.len(), |p| i + p);
                if matches!(
                    &b[i..end],
                    b"not" | b"lambda" | b"if" | b"and" | b"or" | b"await" | b"yield"
                ) {
                    ops += 1;
                }
                i = end;
                word_start = false;
                continue;
            }
            _ => {}
        }
        over |= depth > MAX_NESTING || ops > MAX_STATEMENT_OPERATORS;
        line_worst = line_worst.max(ops + depth);
        word_start = !(c.is_ascii_alphanumeric() || c == b'_');
        i += 1;
    }
    end_line(b.len(), &mut line_worst, &mut over, &mut line_start);
    Nesting { worst, too_deep }
}

/// The source with each too-deep logical line replaced by a statement of the same shape
/// (`pass`, or `if 0:` for a block header) padded with spaces, newlines kept: the rest of the
/// file parses and keeps its line numbers.
fn blank_out(src: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(src.len());
    let mut at = 0;
    for r in ranges {
        let r = r.start.min(src.len())..r.end.min(src.len());
        out.push_str(&src[at..r.start]);
        let text = &src[r.clone()];
        let indent = text.len() - text.trim_start_matches([' ', '\t']).len();
        let header = text
            .lines()
            .last()
            .is_some_and(|l| l.split('#').next().unwrap_or("").trim_end().ends_with(':'));
        let stmt = if header { "if 0:" } else { "pass" };
        out.push_str(&text[..indent]);
        out.push_str(stmt);
        let mut covered = stmt.len();
        for ch in text[indent..].chars() {
            if ch == '\n' {
                out.push('\n');
            } else if covered > 0 {
                covered -= 1;
            } else {
                out.push(' ');
            }
        }
        at = r.end;
    }
    out.push_str(&src[at..]);
    out
}

fn analyse_source(
    src: &str,
    source_type: PySourceType,
    location: &dyn Fn(u32, u32) -> Location,
    out: &mut Outcome,
) {
    let Nesting {
        worst: nesting,
        too_deep,
    } = nesting(src);
    let blanked;
    let src = if too_deep.is_empty() {
        src
    } else {
        let lines = python::Lines::new(src);
        for r in &too_deep {
            let (line, col) = lines.position(src, r.start);
            out.findings.push(Finding::new(
                &rules::CODE_TOO_DEEP,
                location(line, col),
                format!("a statement with brackets nested deeper than {MAX_NESTING} or more than {MAX_STATEMENT_OPERATORS} operators: this statement was not analysed, the rest of the file was"),
            ));
        }
        blanked = blank_out(src, &too_deep);
        blanked.as_str()
    };
    // The tree is bounded by the check above. Ordinary code runs on the caller's stack; deep
    // code is parsed, analysed and dropped on a stack sized for the bound, whatever thread
    // (rayon's are small) runs this.
    if nesting <= SHALLOW {
        analyse_parsed(src, source_type, location, out);
    } else {
        stacker::grow(STACK_BYTES, || {
            analyse_parsed(src, source_type, location, out);
        });
    }
}

/// Nesting that any thread's stack handles (a few frames per level).
const SHALLOW: usize = 64;

/// Stack for parsing, analysing and dropping one file (reserved, committed only as used).
const STACK_BYTES: usize = 256 << 20;

fn analyse_parsed(
    src: &str,
    source_type: PySourceType,
    location: &dyn Fn(u32, u32) -> Location,
    out: &mut Outcome,
) {
    // ruff's parser has panicked on some malformed IPython input (an `unreachable!` in its
    // escape-command handling): a parser panic is a finding about the file, not a crash.
    let Ok(parsed) =
        std::panic::catch_unwind(|| ruff_python_parser::parse_unchecked_source(src, source_type))
    else {
        out.findings.push(Finding::new(
            &rules::CODE_UNPARSABLE,
            location(1, 1),
            "the Python parser failed on this source; not analysed".to_owned(),
        ));
        return;
    };
    if let Some(err) = parsed.errors().first() {
        let lines = python::Lines::new(src);
        let (line, col) = lines.position(src, err.range().start().to_usize());
        let extra = parsed.errors().len() - 1;
        let msg = if extra > 0 {
            format!(
                "syntax error: {} (and {extra} more); the rest was analysed",
                err.error
            )
        } else {
            format!("syntax error: {}; the rest was analysed", err.error)
        };
        out.findings.push(Finding::new(
            &rules::CODE_UNPARSABLE,
            location(line, col),
            msg,
        ));
    }
    out.findings
        .extend(python::analyse(src, &parsed.syntax().body, location));
}

/// Scans Python source text.
pub fn scan_python(display: &str, src: &str) -> Outcome {
    let mut out = Outcome::default();
    let supp = suppressions(src, &is_known_rule, &mut out.errors, display);
    analyse_source(
        src,
        PySourceType::Python,
        &|l, c| Location::file(display).line_col(l, c),
        &mut out,
    );
    apply_suppressions(&mut out.findings, &supp, None);
    out
}

/// The `.ipynb` line of each source line of each cell, where nbformat's layout makes it
/// findable: every source line is a JSON string of its own, found in order in the raw text.
/// A cell whose lines cannot all be found gets none (findings then carry the cell line only).
fn source_file_lines(raw: &[u8], cells: &[serde_json::Value]) -> Vec<Vec<u32>> {
    let text = String::from_utf8_lossy(raw);
    let mut at = 0usize;
    let mut out = Vec::with_capacity(cells.len());
    for cell in cells {
        let parts: Vec<String> = match cell.get("source") {
            Some(serde_json::Value::Array(p)) => p
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let mut lines = Vec::new();
        let mut ok = true;
        for part in &parts {
            let Ok(needle) = serde_json::to_string(part) else {
                ok = false;
                break;
            };
            let Some(i) = text[at..].find(&needle) else {
                ok = false;
                break;
            };
            let pos = at + i;
            let line = text[..pos].matches('\n').count() as u32 + 1;
            // A string holding several lines (`"a\nb\n"`) sits on one file line.
            for _ in 0..part.matches('\n').count().max(1) {
                lines.push(line);
            }
            at = pos + needle.len();
        }
        out.push(if ok { lines } else { Vec::new() });
    }
    out
}

/// IPython runs `pip install x` without the `%` (automagic): such lines become `%pip ...`, as
/// IPython reads them, so that valid notebooks are not syntax errors.
fn automagic(src: &str) -> String {
    const COMMANDS: &[&str] = &["pip", "conda", "mamba"];
    const VERBS: &[&str] = &[
        "install",
        "uninstall",
        "list",
        "show",
        "freeze",
        "download",
        "create",
        "remove",
        "update",
        "env",
        "config",
    ];
    let mut out = String::with_capacity(src.len() + 8);
    for line in src.split_inclusive('\n') {
        let t = line.trim_start();
        let mut words = t.split_whitespace();
        if let (Some(cmd), Some(verb)) = (words.next(), words.next())
            && COMMANDS.contains(&cmd)
            && VERBS.contains(&verb)
            && line.len() == t.len()
        {
            out.push('%');
        }
        out.push_str(line);
    }
    out
}

/// Scans a Jupyter notebook: code cells only, IPython magics and `!` lines understood as such
/// (not as Python). Findings name the cell and the line within it.
pub fn scan_notebook(display: &str, bytes: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let unparsable =
        |msg: String| Finding::new(&rules::CODE_UNPARSABLE, Location::file(display), msg);
    let nb: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            out.findings
                .push(unparsable(format!("notebook is not JSON: {e}")));
            return out;
        }
    };
    let Some(cells) = nb.get("cells").and_then(|c| c.as_array()) else {
        out.findings.push(unparsable(
            "notebook has no `cells` list (nbformat 4 expected)".into(),
        ));
        return out;
    };
    // Cells run in one namespace: analyse them as one module (an import in the first cell
    // resolves names in the last), then map lines back to (cell, line in cell).
    let mut combined = String::new();
    let mut starts: Vec<(u32, u32)> = Vec::new(); // (first line in `combined`, cell index)
    let mut supp_all = Vec::new();
    let file_lines = source_file_lines(bytes, cells);
    for (i, cell) in cells.iter().enumerate() {
        if cell.get("cell_type").and_then(|t| t.as_str()) != Some("code") {
            continue;
        }
        let src = match cell.get("source") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(parts)) => {
                parts.iter().filter_map(|p| p.as_str()).collect()
            }
            _ => String::new(),
        };
        let mut src = automagic(&src);
        let cell_no = i as u32;
        let label = format!("{display} cell {cell_no}");
        supp_all.push((
            cell_no,
            suppressions(&src, &is_known_rule, &mut out.errors, &label),
        ));
        if !src.ends_with('\n') {
            src.push('\n');
        }
        starts.push((combined.matches('\n').count() as u32 + 1, cell_no));
        combined.push_str(&src);
    }
    let locate = |line: u32, col: u32| {
        let k = starts
            .partition_point(|(first, _)| *first <= line)
            .saturating_sub(1);
        match starts.get(k) {
            Some((first, cell)) => {
                let in_cell = line - first + 1;
                let file_line = file_lines
                    .get(*cell as usize)
                    .and_then(|l| l.get(in_cell as usize - 1))
                    .copied();
                Location::file(display).in_cell(*cell, in_cell, col, file_line)
            }
            None => Location::file(display).line_col(line, col),
        }
    };
    analyse_source(&combined, PySourceType::Ipynb, &locate, &mut out);
    for (cell_no, supp) in &supp_all {
        apply_suppressions(&mut out.findings, supp, Some(*cell_no));
    }
    out
}

fn scan_file(file: &FileInput<'_>) -> Outcome {
    let is_nb = file.extension().as_deref() == Some("ipynb");
    let (limit, what) = if is_nb {
        (MAX_NOTEBOOK_BYTES, "notebook")
    } else {
        (MAX_SOURCE_BYTES, "Python file")
    };
    let bytes = match file.read_all(limit, what) {
        Ok(b) => b,
        Err(too_big_or_unreadable) => return too_big_or_unreadable,
    };
    let display = file.display();
    if is_nb {
        return scan_notebook(display, bytes);
    }
    match decode_source(bytes.to_vec()) {
        Ok(src) => scan_python(display, &src),
        Err(_) => Outcome {
            findings: vec![Finding::new(
                &rules::CODE_UNPARSABLE,
                Location::file(display),
                "not UTF-8 text".to_owned(),
            )],
            ..Outcome::default()
        },
    }
}

fn decode_source(mut bytes: Vec<u8>) -> Result<String, Vec<u8>> {
    if bytes.starts_with(b"\xef\xbb\xbf") {
        bytes.drain(..3);
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let bytes = e.into_bytes();
            let head: String = bytes
                .split(|b| *b == b'\n')
                .take(2)
                .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join("\n");
            let latin1 = head.contains("coding")
                && [
                    "latin-1",
                    "latin1",
                    "iso-8859-1",
                    "iso8859-1",
                    "iso-8859-15",
                    "cp1252",
                    "windows-1252",
                ]
                .iter()
                .any(|c| head.contains(c));
            if latin1 {
                Ok(bytes.iter().map(|&b| char::from(b)).collect())
            } else {
                Err(bytes)
            }
        }
    }
}

/// The code scanner as the shared walk drives it: `.py`, `.pyw` and `.ipynb` files.
#[derive(Debug, Default)]
pub struct CodeScanner;

impl FileScanner for CodeScanner {
    fn rules(&self) -> Vec<&'static mlsec_diagnostics::Rule> {
        RULES.to_vec()
    }

    fn wants(&self, file: &FileInput<'_>) -> bool {
        matches!(file.extension().as_deref(), Some("py" | "pyw" | "ipynb"))
    }

    fn scan(&self, file: &FileInput<'_>) -> Outcome {
        scan_file(file)
    }
}

/// Scans every Python file and notebook under `paths`, in parallel.
pub fn scan_paths(paths: &[PathBuf]) -> Report {
    scan_paths_with(paths, mlsec_walk::WalkOptions::default())
}

/// [`scan_paths`] with walk options (honouring .gitignore).
pub fn scan_paths_with(paths: &[PathBuf], opts: mlsec_walk::WalkOptions) -> Report {
    mlsec_walk::scan(paths, opts, &[&CodeScanner], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_fires_on_its_positives_and_not_on_its_negatives() {
        assert_eq!(EXAMPLES.len(), RULES.len(), "every rule has examples");
        let failures =
            mlsec_diagnostics::example_failures(EXAMPLES, |src| scan_python("t.py", src).findings);
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn suppressions_need_a_known_rule() {
        let out = scan_python(
            "t.py",
            "import torch\ntorch.load('m.pt')  # mlsec: ignore[PY001] trusted local file\n",
        );
        assert!(
            out.findings.is_empty() && out.errors.is_empty(),
            "{:?} {:?}",
            out.findings,
            out.errors
        );
        let out = scan_python(
            "t.py",
            "import torch\ntorch.load('m.pt')  # mlsec: ignore[PY999] typo\n",
        );
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert!(out.errors[0].contains("PY999"));
        assert_eq!(out.findings.len(), 1, "an unknown id suppresses nothing");
        // Only the named rule, only on its line.
        let out = scan_python(
            "t.py",
            "import torch, pickle\ntorch.load(pickle.load(f))  # mlsec: ignore[PY001]\ntorch.load('x')\n",
        );
        let ids: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.line))
            .collect();
        assert_eq!(ids, [("PY002", Some(2)), ("PY001", Some(3))]);
    }

    #[test]
    fn positions_are_line_and_column() {
        let out = scan_python("t.py", "import torch\n\nx = 1; y = torch.load('m.pt')\n");
        assert_eq!(
            (
                out.findings[0].location.line,
                out.findings[0].location.column
            ),
            (Some(3), Some(12))
        );
    }

    #[test]
    fn notebooks_report_cell_and_line_and_understand_magics() {
        let nb = serde_json::json!({
            "cells": [
                {"cell_type": "markdown", "source": ["torch.load('not code')"]},
                {"cell_type": "code", "source": ["%pip install torch\n", "!wget http://x/m.pt\n", "import torch\n"]},
                {"cell_type": "code", "source": "%%time\nm = torch.load('m.pt', weights_only=False)\n"},
            ],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5
        });
        let out = scan_notebook("n.ipynb", &serde_json::to_vec(&nb).unwrap());
        let got: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.cell, f.location.cell_line))
            .collect();
        // Cells share one namespace: the import in cell 1 resolves `torch` in cell 2; magics
        // are not syntax errors; lines count within each cell.
        assert_eq!(got, [("PY001", Some(2), Some(2))]);
        // As nbformat writes it (one source line per JSON line), the file line is known too.
        let pretty = serde_json::to_string_pretty(&nb).unwrap();
        let out = scan_notebook("n.ipynb", pretty.as_bytes());
        let want = pretty
            .lines()
            .position(|l| l.contains("torch.load('m.pt', weights_only=False)"))
            .unwrap() as u32
            + 1;
        assert_eq!(
            out.findings[0].location.line,
            Some(want),
            "{:?}",
            out.findings[0].location
        );
        let nb_lines = serde_json::json!({"cells": [
            {"cell_type": "code", "source": ["import torch\n", "x = 1\n", "m = torch.load('m.pt')\n"]},
        ]});
        let pretty = serde_json::to_string_pretty(&nb_lines).unwrap();
        let out = scan_notebook("n.ipynb", pretty.as_bytes());
        let want = pretty
            .lines()
            .position(|l| l.contains("torch.load"))
            .unwrap() as u32
            + 1;
        let loc = &out.findings[0].location;
        assert_eq!(
            (loc.cell, loc.cell_line, loc.line),
            (Some(0), Some(3), Some(want))
        );
        // Automagic `pip install` (no `%`) is valid IPython, not a syntax error.
        let nb3 = serde_json::json!({"cells": [{"cell_type": "code", "source": ["pip install torch==2.3\n", "conda install -y numpy\n", "import torch\n", "m = torch.load('m.pt', weights_only=False)\n"]}]});
        let out = scan_notebook("n.ipynb", &serde_json::to_vec(&nb3).unwrap());
        let got: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.cell_line))
            .collect();
        assert_eq!(got, [("PY001", Some(4))]);
        let nb2 = serde_json::json!({"cells": [{"cell_type": "code", "source": "%%time\nimport torch\nm = torch.load('m.pt', weights_only=False)\n"}]});
        let out = scan_notebook("n.ipynb", &serde_json::to_vec(&nb2).unwrap());
        let got: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.cell, f.location.cell_line))
            .collect();
        assert_eq!(got, [("PY001", Some(0), Some(3))]);
        let out = scan_notebook("n.ipynb", b"{not json");
        assert_eq!(out.findings[0].rule.id, "PY900");
    }

    #[test]
    fn syntax_errors_are_findings_and_the_rest_is_still_analysed() {
        let out = scan_python(
            "t.py",
            "import pickle\ndef f(:\n    pass\npickle.loads(b)\n",
        );
        let ids: Vec<_> = out.findings.iter().map(|f| f.rule.id).collect();
        assert!(ids.contains(&"PY900"), "{ids:?}");
        assert!(ids.contains(&"PY002"), "{ids:?}");
    }

    #[test]
    fn deep_nesting_is_reported_not_overflowed() {
        let src = format!("x = {}1{}\n", "(".repeat(100_000), ")".repeat(100_000));
        let out = scan_python("t.py", &src);
        assert_eq!(out.findings[0].rule.id, "PY901");
    }

    #[test]
    fn a_deep_statement_hides_nothing_around_it() {
        let deep = format!("{}1{}", "(".repeat(201), ")".repeat(201));
        let src = format!(
            "import torch\ndef f(p):\n    x = {deep}\n    if {deep}:\n        y = 1\n    return torch.load(p)\nz = [\n  {deep},\n]\ntorch.load(q)\n"
        );
        let out = scan_python("t.py", &src);
        let got: Vec<(&str, Option<u32>)> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.line))
            .collect();
        assert_eq!(
            got,
            [
                ("PY901", Some(3)),
                ("PY901", Some(4)),
                ("PY901", Some(7)),
                ("PY001", Some(6)),
                ("PY001", Some(10)),
            ],
            "{:?}",
            out.findings
        );
        assert!(!rules::CODE_TOO_DEEP.remediation.contains("syntax"));
        assert!(out.findings.iter().all(|f| f.rule.id != "PY900"));
    }
}

#[cfg(test)]
mod deep {
    #[test]
    fn long_operator_chains_on_a_small_stack() {
        // Just under the limit: analysed (on a grown stack), and what follows is still seen.
        for chain in [
            ".b".repeat(9_000),
            " + 1".repeat(9_000),
            " if c else y".repeat(4_000),
        ] {
            let src = format!("import pickle\nx = a{chain}\npickle.loads(b)\n");
            let h = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || super::scan_python("t.py", &src))
                .unwrap();
            let out = h.join().unwrap();
            assert!(
                out.findings.iter().any(|f| f.rule.id == "PY002"),
                "{:?}",
                out.findings
            );
        }
        // Over it: reported, not analysed, never a crash.
        for src in [
            format!("x = a{}\n", ".b".repeat(50_000)),
            format!("x = 1{}\n", " + 1".repeat(50_000)),
            format!("x = {}y\n", "not ".repeat(50_000)),
            format!("x = {}y\n", "-".repeat(50_000)),
            format!("x = {}\n", "lambda: ".repeat(20_000)),
            format!("x = y{}\n", " if c else y".repeat(20_000)),
            format!("x = f(){}\n", "()".repeat(20_000)),
        ] {
            let h = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || super::scan_python("t.py", &src).findings.len())
                .unwrap();
            assert!(h.join().is_ok());
        }
    }
}
