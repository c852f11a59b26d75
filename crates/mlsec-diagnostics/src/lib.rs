//! The findings model shared by every mlsec scanner, and the renderers that turn a [`Report`] into
//! text, JSON or SARIF 2.1.0.
//!
//! A scanner never prints. It produces [`Finding`]s, each tied to a static [`Rule`] that carries the
//! stable id, the documentation and the CWE / OWASP tags. The binary gathers findings and per-file
//! errors into a [`Report`] and hands it to one renderer.
//!
//! # Brief overview
//! * [`Rule`]: a stable id (`PKL001`), a kebab-case name, a default [`Severity`], docs and tags.
//! * [`Finding`]: one problem found at one [`Location`], with a message and evidence.
//! * [`Report`]: findings, per-file errors and scan statistics.
//! * [`render`]: `text`, `json` and `sarif` renderers, one module each.
//!
//! # Example
//! ```
//! use mlsec_diagnostics::{Finding, Location, Report, Rule, Severity, render};
//!
//! static DEMO: Rule = Rule {
//!     id: "DEMO001",
//!     name: "demo-rule",
//!     summary: "A demonstration rule",
//!     severity: Severity::High,
//!     cwe: &["CWE-502"],
//!     owasp: &["ML06"],
//!     what: "Shows how a rule is declared.",
//!     why: "Documentation needs an example.",
//!     example: "",
//!     remediation: "Nothing to fix.",
//!     references: &[],
//! };
//!
//! let mut report = Report::default();
//! report.findings.push(Finding::new(&DEMO, Location::file("model.pkl"), "demo finding"));
//! let mut out = Vec::new();
//! render::json::render(&report, &mut out).unwrap();
//! assert!(String::from_utf8(out).unwrap().contains("DEMO001"));
//! ```
#![forbid(unsafe_code)]

/// Declares a `pub static` [`Rule`]: stable id, kebab-case name, default severity, CWE and OWASP
/// tags, and the documentation sections `mlsec rules` prints.
#[macro_export]
macro_rules! rule {
    ($ident:ident, $id:literal, $name:literal, $sev:ident, $cwe:expr, $owasp:expr,
     summary: $summary:literal, what: $what:literal, why: $why:literal, example: $example:literal,
     fix: $fix:literal, refs: $refs:expr) => {
        pub static $ident: $crate::Rule = $crate::Rule {
            id: $id,
            name: $name,
            summary: $summary,
            severity: $crate::Severity::$sev,
            cwe: $cwe,
            owasp: $owasp,
            what: $what,
            why: $why,
            example: $example,
            remediation: $fix,
            references: $refs,
        };
    };
}

/// A rule with source snippets that must raise it and snippets that must not.
pub type RuleExamples = (
    &'static Rule,
    &'static [&'static str],
    &'static [&'static str],
);

/// Runs every rule's examples through `scan`; returns one line per positive that was missed or
/// negative that raised the rule (empty when all hold). Scanners with example tables share this test.
pub fn example_failures(
    examples: &[RuleExamples],
    scan: impl Fn(&str) -> Vec<Finding>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (rule, positives, negatives) in examples {
        if positives.is_empty() || negatives.is_empty() {
            failures.push(format!("{}: needs positive and negative examples", rule.id));
        }
        for src in *positives {
            if !scan(src).iter().any(|f| f.rule.id == rule.id) {
                failures.push(format!("{} missed:\n{src}", rule.id));
            }
        }
        for src in *negatives {
            let found = scan(src);
            if let Some(f) = found.iter().find(|f| f.rule.id == rule.id) {
                failures.push(format!("{} false alarm ({}):\n{src}", rule.id, f.message));
            }
        }
    }
    failures
}

pub mod baseline;
pub mod render;

rule!(UNUSED_IGNORE, "IGN001", "unused-ignore", Low, &[], &[],
    summary: "A suppression that suppresses nothing",
    what: "With `--report-unused-ignores`: baseline entries that match no current finding, and secret allow comments (`mlsec:allow`, `gitleaks:allow`, `pragma: allowlist secret`) on lines where nothing was found.",
    why: "Stale suppressions hide the next real finding that lands on the same line or fingerprint, and make reviews trust exceptions nobody needs.",
    example: "`KEY = os.environ[\"KEY\"]  # mlsec:allow` after the secret was removed",
    fix: "Delete the comment, or run `mlsec scan --baseline FILE --update-baseline` to rewrite the baseline.",
    refs: &[]);

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses the lower-case name used on the command line and in JSON.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|sev| sev.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A rule: the stable identity and documentation behind a family of findings.
///
/// Rules are `static` items owned by the scanner crate that raises them. Their `id` never changes
/// once released; a retired rule keeps its id reserved.
#[derive(Debug)]
pub struct Rule {
    /// Stable code, e.g. `PKL001`.
    pub id: &'static str,
    /// Stable kebab-case name, e.g. `pickle-dangerous-global`.
    pub name: &'static str,
    /// One line shown in listings.
    pub summary: &'static str,
    /// Default severity; a finding may raise or lower it with a reason.
    pub severity: Severity,
    /// CWE identifiers, e.g. `CWE-502`.
    pub cwe: &'static [&'static str],
    /// OWASP Machine Learning Security Top 10 (2023) identifiers, e.g. `ML06`.
    pub owasp: &'static [&'static str],
    /// "What it does".
    pub what: &'static str,
    /// "Why is this bad?".
    pub why: &'static str,
    /// "Example": a short description or snippet of what triggers the rule.
    pub example: &'static str,
    /// How to fix or avoid the problem.
    pub remediation: &'static str,
    /// Advisories and further reading.
    pub references: &'static [&'static str],
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// Where a finding is: the file, the chain of container members inside it, and a position inside
/// the innermost member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The scanned file, as given on the command line or found under a given directory.
    pub path: String,
    /// Container members from outermost to innermost, e.g. `["inner.zip", "archive/data.pkl"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Byte offset inside the innermost member (or the file when `members` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The pickle opcode at `offset`, when the finding comes from pickle analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opcode: Option<String>,
    /// A structural pointer, e.g. a JSON pointer into a config or a metadata key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Notebook cell (0-based index among all cells), when the file is a notebook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<u32>,
    /// 1-based line inside the notebook cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell_line: Option<u32>,
    /// 1-based line of the file (for a notebook, of the `.ipynb` JSON, when it is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column, in characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl Location {
    pub fn file(path: impl Into<String>) -> Location {
        Location {
            path: path.into(),
            ..Location::default()
        }
    }

    #[must_use]
    pub fn member(mut self, name: impl Into<String>) -> Location {
        self.members.push(name.into());
        self
    }

    #[must_use]
    pub fn at(mut self, offset: u64) -> Location {
        self.offset = Some(offset);
        self
    }

    #[must_use]
    pub fn opcode(mut self, opcode: impl Into<String>) -> Location {
        self.opcode = Some(opcode.into());
        self
    }

    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> Location {
        self.field = Some(field.into());
        self
    }

    /// A source position (1-based line and column).
    #[must_use]
    pub fn line_col(mut self, line: u32, column: u32) -> Location {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    #[must_use]
    pub fn cell(mut self, cell: u32) -> Location {
        self.cell = Some(cell);
        self
    }

    /// A notebook position: the cell, the line inside it, the column, and the line of the
    /// `.ipynb` file when it is known.
    #[must_use]
    pub fn in_cell(
        mut self,
        cell: u32,
        cell_line: u32,
        column: u32,
        file_line: Option<u32>,
    ) -> Location {
        self.cell = Some(cell);
        self.cell_line = Some(cell_line);
        self.column = Some(column);
        self.line = file_line;
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(cell) = self.cell {
            // `nb.ipynb cell 3:2:9 (line 57)`: the cell, the line in it, the column, then the
            // line of the .ipynb file.
            write!(f, " cell {cell}")?;
            if let Some(cl) = self.cell_line {
                write!(f, ":{cl}")?;
                if let Some(col) = self.column {
                    write!(f, ":{col}")?;
                }
            }
            if let Some(line) = self.line {
                write!(f, " (line {line})")?;
            }
        } else if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        for m in &self.members {
            write!(f, " > {m}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " [{field}]")?;
        }
        if let Some(off) = self.offset {
            write!(f, " @{off}")?;
        }
        if let Some(op) = &self.opcode {
            write!(f, " ({op})")?;
        }
        Ok(())
    }
}

/// One problem found by a scanner.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    /// What was seen, e.g. the resolved global `os.system('echo pwned')`.
    pub evidence: Option<String>,
}

impl Finding {
    /// A finding at the rule's default severity.
    pub fn new(rule: &'static Rule, location: Location, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            severity: rule.severity,
            location,
            message: message.into(),
            evidence: None,
        }
    }

    #[must_use]
    pub fn evidence(mut self, evidence: impl Into<String>) -> Finding {
        self.evidence = Some(evidence.into());
        self
    }

    /// A stable identity for baselines and SARIF `partialFingerprints`: rule, file, container
    /// members and the evidence (or message). Line numbers are left out, so a finding keeps its
    /// fingerprint when code above it moves.
    pub fn fingerprint(&self) -> String {
        let members = self.location.members.join("/");
        let parts = [
            self.rule.id,
            &self.location.path,
            &members,
            self.evidence.as_deref().unwrap_or(&self.message),
        ];
        // FNV-1a 64: stable, dependency-free; not a security boundary.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for p in parts {
            for b in p.bytes().chain(std::iter::once(0)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }

    /// Sets the evidence in place (for findings already pushed to a list).
    pub fn set_evidence(&mut self, evidence: impl Into<String>) -> &mut Finding {
        self.evidence = Some(evidence.into());
        self
    }

    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Finding", 10)?;
        st.serialize_field("rule_id", self.rule.id)?;
        st.serialize_field("rule_name", self.rule.name)?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("location", &self.location)?;
        st.serialize_field("message", &self.message)?;
        st.serialize_field("evidence", &self.evidence)?;
        st.serialize_field("remediation", self.rule.remediation)?;
        st.serialize_field("cwe", self.rule.cwe)?;
        st.serialize_field("owasp", self.rule.owasp)?;
        st.end()
    }
}

/// A file the tool could not process at all (I/O error, permission denied). Unlike a finding,
/// an error means the tool failed to do its job for that path, and the exit code is 2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    pub path: String,
    pub message: String,
}

/// Counters shown in the summary line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub files_scanned: u64,
    pub files_skipped: u64,
    pub bytes_scanned: u64,
    #[serde(serialize_with = "ser_ms")]
    pub duration: Duration,
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Everything one run produced.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub errors: Vec<FileError>,
    pub stats: Stats,
    /// The rule catalogue of the scanners that ran, for SARIF `tool.driver.rules`.
    pub rules: Vec<&'static Rule>,
}

impl Report {
    /// Adds another scanner's results: findings, errors, rules, and the work counted.
    pub fn merge(&mut self, other: Report) {
        self.findings.extend(other.findings);
        // Both scanners walk the same paths: one error per unreadable path is enough.
        for e in other.errors {
            if !self.errors.iter().any(|x| x.path == e.path) {
                self.errors.push(e);
            }
        }
        for r in other.rules {
            if !self.rules.iter().any(|x| x.id == r.id) {
                self.rules.push(r);
            }
        }
        self.stats.files_scanned += other.stats.files_scanned;
        self.stats.files_skipped += other.stats.files_skipped;
        self.stats.bytes_scanned += other.stats.bytes_scanned;
        self.stats.duration += other.stats.duration;
        self.sort();
    }

    /// Sorts findings by path, member chain, offset, then rule id, so output is deterministic
    /// whatever order parallel workers finished in.
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            (
                &a.location.path,
                &a.location.members,
                a.location.offset,
                (
                    a.location.cell,
                    a.location.cell_line,
                    a.location.line,
                    a.location.column,
                ),
                a.rule.id,
                &a.message,
            )
                .cmp(&(
                    &b.location.path,
                    &b.location.members,
                    b.location.offset,
                    (
                        b.location.cell,
                        b.location.cell_line,
                        b.location.line,
                        b.location.column,
                    ),
                    b.rule.id,
                    &b.message,
                ))
        });
        self.errors.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// The highest severity among findings, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Number of findings per severity, highest first.
    pub fn counts(&self) -> [(Severity, usize); 5] {
        Severity::ALL.map(|sev| {
            (
                sev,
                self.findings.iter().filter(|f| f.severity == sev).count(),
            )
        })
    }
}
