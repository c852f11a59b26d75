//! `mlsec drift REFERENCE CURRENT`: per-column drift, as a table, JSON or SARIF findings.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use mlsec_diagnostics::render;
use mlsec_drift::compare::{ColumnDrift, Options};
use mlsec_drift::{DriftReport, table};

use crate::args::{AuditFormat, DataArgs, DataCommand, DriftArgs, DriftCommand, DriftFormat};

pub fn run(args: &DriftArgs) -> anyhow::Result<ExitCode> {
    if let Some(DriftCommand::Profile { data, output }) = &args.command {
        return profile(data, output.as_deref());
    }
    let (Some(reference), Some(current)) = (&args.reference, &args.current) else {
        bail!("usage: mlsec drift REFERENCE CURRENT (or mlsec drift profile DATA)");
    };
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        bail!(
            "--alpha {}: expected a probability between 0 and 1",
            args.alpha
        );
    }
    let options = Options {
        alpha: args.alpha,
        ..Options::default()
    };
    if let Some(n) = args.window {
        return window(args, reference, current, n, &options);
    }
    if current.as_os_str() == "-" {
        bail!("reading the current data from stdin needs --window N");
    }
    // Both files in parallel: each is one streaming pass.
    let (reference, current) =
        rayon::join(|| table::read_path(reference), || table::read_path(current));
    let reference = reference.context("reading the reference")?;
    let current = current.context("reading the current data")?;
    if current.format == table::Format::Profile {
        bail!("{}: a profile can only be the reference", current.path);
    }
    let report = DriftReport::new(&reference, &current, &options);
    let findings = report.findings();

    let mut buf = Vec::new();
    match args.format {
        DriftFormat::Text => text(&report, &findings, &mut buf)?,
        DriftFormat::Html => buf = mlsec_drift::html::render(&report, &findings).into_bytes(),
        DriftFormat::Prometheus => buf = mlsec_drift::prometheus::render(&report).into_bytes(),
        DriftFormat::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["findings"] = serde_json::to_value(&findings.findings)?;
            serde_json::to_writer_pretty(&mut buf, &v)?;
            buf.push(b'\n');
        }
        DriftFormat::Sarif => render::sarif::render(&findings, &mut buf)?,
    }
    write_out(args.output.as_deref(), &buf)?;
    for ds in [&report.reference, &report.current] {
        if ds.unreadable_rows > 0 {
            eprintln!(
                "warning: {}: {} row(s) could not be read (see DRF006)",
                ds.path, ds.unreadable_rows
            );
        }
    }
    let s = &report.summary;
    eprintln!(
        "{} of {} column(s) drifted ({:.1}%); dataset drift: {}",
        s.drifted,
        s.columns,
        s.share * 100.0,
        if s.dataset_drift { "yes" } else { "no" }
    );
    Ok(exit(fails(args, &findings)))
}

fn write_out(output: Option<&Path>, buf: &[u8]) -> anyhow::Result<()> {
    match output {
        Some(p) => fs_err::write(p, buf)?,
        None => std::io::stdout().lock().write_all(buf)?,
    }
    Ok(())
}

fn fails(args: &DriftArgs, findings: &mlsec_diagnostics::Report) -> bool {
    super::scan::severity(args.fail_on)
        .is_some_and(|t| findings.findings.iter().any(|f| f.severity >= t))
}

fn exit(fail: bool) -> ExitCode {
    if fail {
        ExitCode::from(crate::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    }
}

fn profile(data: &Path, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let table = table::read_path(data).with_context(|| format!("reading {}", data.display()))?;
    if table.format == table::Format::Profile {
        bail!("{}: already a profile", data.display());
    }
    let profile = mlsec_drift::profile::Profile::of(&table);
    let mut buf = serde_json::to_vec(&profile)?;
    buf.push(b'\n');
    write_out(output, &buf)?;
    if table.problem_count > 0 {
        eprintln!(
            "warning: {}: {} row(s) could not be read and are not in the profile (first at line {})",
            table.path,
            table.problem_count,
            table.problems.first().map_or(0, |p| p.line)
        );
    }
    eprintln!(
        "profiled {} rows, {} columns ({} bytes)",
        table.rows,
        table.columns.len(),
        buf.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// One verdict per window of `n` rows of the current data, printed as each window completes.
fn window(
    args: &DriftArgs,
    reference: &Path,
    current: &Path,
    n: u64,
    options: &Options,
) -> anyhow::Result<ExitCode> {
    if n == 0 {
        bail!("--window 0: a window needs at least one row");
    }
    if matches!(
        args.format,
        DriftFormat::Html | DriftFormat::Sarif | DriftFormat::Prometheus
    ) {
        bail!("--window prints one verdict per window: use --format text or json");
    }
    let reference = table::read_path(reference).context("reading the reference")?;
    let (input, name, format): (Box<dyn std::io::Read>, String, table::Format) =
        if current.as_os_str() == "-" {
            (
                Box::new(std::io::stdin().lock()),
                "<stdin>".to_string(),
                table::Format::Jsonl,
            )
        } else {
            let format = table::Format::from_path(current)?;
            let file = fs_err::File::open(current).context("reading the current data")?;
            (Box::new(file), current.display().to_string(), format)
        };
    let mut chunks = table::Chunks::new(input, &name, format)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(fs_err::File::create(p)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    let (mut index, mut first_row, mut any_fail, mut drifted_windows) = (0u64, 1u64, false, 0u64);
    while let Some(window) = chunks.next_table(Some(n))? {
        index += 1;
        let report = DriftReport::new(&reference, &window, options);
        let findings = report.findings();
        any_fail |= fails(args, &findings);
        let drifted: Vec<&ColumnDrift> = report.columns.iter().filter(|c| c.drift).collect();
        if !drifted.is_empty() {
            drifted_windows += 1;
        }
        let last_row = first_row + window.rows.saturating_sub(1);
        if args.format == DriftFormat::Json {
            let v = serde_json::json!({
                "window": index,
                "first_row": first_row,
                "rows": window.rows,
                "unreadable_rows": window.problem_count,
                "summary": report.summary,
                "drifted": drifted.iter().map(|c| serde_json::json!({
                    "column": c.name,
                    "signals": c.signals,
                })).collect::<Vec<_>>(),
                "findings": findings.findings,
            });
            writeln!(out, "{v}")?;
        } else {
            let what: Vec<String> = drifted
                .iter()
                .map(|c| {
                    let kinds: Vec<&str> = c
                        .signals
                        .iter()
                        .filter(|s| s.kind != mlsec_drift::compare::SignalKind::NotTested)
                        .map(|s| s.kind.as_str())
                        .collect();
                    format!("{} ({})", c.name, kinds.join(", "))
                })
                .collect();
            writeln!(
                out,
                "window {index} (rows {first_row}-{last_row}): {} of {} column(s) drifted{}{}",
                report.summary.drifted,
                report.summary.columns,
                if what.is_empty() {
                    String::new()
                } else {
                    format!(": {}", what.join("; "))
                },
                if window.problem_count > 0 {
                    format!(" [{} unreadable row(s)]", window.problem_count)
                } else {
                    String::new()
                }
            )?;
        }
        out.flush()?;
        first_row = last_row + 1;
    }
    eprintln!("{index} window(s) of up to {n} rows, {drifted_windows} with drift");
    Ok(exit(any_fail))
}

/// `mlsec data audit`.
pub fn data(args: &DataArgs) -> anyhow::Result<ExitCode> {
    let DataCommand::Audit {
        dataset,
        label,
        reference,
        schema,
        format,
        output,
        fail_on,
    } = &args.command;
    let (frame, reference) = rayon::join(
        || mlsec_drift::audit::read_frame(dataset),
        || reference.as_deref().map(mlsec_drift::audit::read_frame),
    );
    let frame = frame.context("reading the dataset")?;
    let reference = reference.transpose().context("reading the reference")?;
    let mut options = mlsec_drift::audit::AuditOptions::new(label);
    if let Some(path) = schema {
        options.schema =
            Some(mlsec_drift::audit::Schema::read(path).context("reading the schema")?);
    }
    let report = mlsec_drift::audit::audit(&frame, &options, reference.as_ref())?;
    let findings = report.findings(&frame);
    let mut buf = Vec::new();
    match format {
        AuditFormat::Html => {
            buf = mlsec_drift::html::render_audit(&report, &findings).into_bytes();
        }
        AuditFormat::Text => {
            writeln!(
                buf,
                "{}: {} rows, {} columns, label '{}' ({})",
                report.dataset,
                report.rows,
                report.columns,
                report.label,
                report
                    .label_counts
                    .iter()
                    .take(10)
                    .map(|(l, n)| format!("{l}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            writeln!(buf, "file sha256:         {}", report.file_sha256)?;
            writeln!(buf, "content fingerprint: {}", report.content_fingerprint)?;
            writeln!(buf)?;
            render::text::findings(&findings, &mut buf, false)?;
        }
        AuditFormat::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["findings"] = serde_json::to_value(&findings.findings)?;
            serde_json::to_writer_pretty(&mut buf, &v)?;
            buf.push(b'\n');
        }
        AuditFormat::Sarif => render::sarif::render(&findings, &mut buf)?,
    }
    write_out(output.as_deref(), &buf)?;
    eprintln!(
        "{} finding(s): {} label-flip suspects, {} trigger candidates, {} conflicting duplicate groups",
        findings.findings.len(),
        report.label_suspects.len(),
        report.triggers.len(),
        report.duplicates.conflicting_groups
    );
    let fail = super::scan::severity(*fail_on)
        .is_some_and(|t| findings.findings.iter().any(|f| f.severity >= t));
    Ok(exit(fail))
}

/// The main statistic of a column: the significance test, or the first one computed.
fn headline(c: &ColumnDrift) -> String {
    let test = c
        .tests
        .iter()
        .find(|t| t.name == "ks" || t.name == "chi2")
        .or_else(|| c.tests.first());
    match test {
        Some(t) => match t.p_value {
            Some(p) => format!("{} {:.4} (p={p:.2e})", t.name, t.statistic),
            None => format!("{} {:.4}", t.name, t.statistic),
        },
        None => "-".to_string(),
    }
}

fn effect(c: &ColumnDrift) -> String {
    c.tests
        .iter()
        .filter(|t| t.p_value.is_none())
        .map(|t| {
            let short = match t.name {
                "wasserstein_norm" => "W",
                "psi" => "PSI",
                "jensen_shannon" => "JS",
                "new_category_share" => "new",
                other => other,
            };
            format!("{short}={:.3}", t.statistic)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn text(
    report: &DriftReport,
    findings: &mlsec_diagnostics::Report,
    out: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let name_w = report
        .columns
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 40);
    writeln!(
        out,
        "{:<name_w$}  {:<11}  {:<5}  {:<32}  effect",
        "column", "kind", "drift", "test"
    )?;
    for c in &report.columns {
        let name: String = c.name.chars().take(40).collect();
        let kind = match c.kind {
            mlsec_drift::compare::Kind::Numeric => "numeric",
            mlsec_drift::compare::Kind::Categorical => "categorical",
            mlsec_drift::compare::Kind::Empty => "-",
        };
        writeln!(
            out,
            "{name:<name_w$}  {kind:<11}  {:<5}  {:<32}  {}",
            if c.drift { "YES" } else { "no" },
            headline(c),
            effect(c)
        )?;
    }
    writeln!(out)?;
    render::text::findings(findings, out, false)?;
    Ok(())
}
