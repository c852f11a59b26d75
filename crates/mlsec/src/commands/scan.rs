//! `mlsec scan`: resolve settings, run the selected scanners over one walk, render, pick the
//! exit code.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use mlsec_diagnostics::baseline::Baseline;
use mlsec_diagnostics::{Severity, render};
use mlsec_walk::{FileScanner, Progress};

use crate::args::{ColorChoice, Format, MinSeverityArg, ScanArgs, Scanner, SeverityArg};
use crate::{EXIT_ERROR, EXIT_FINDINGS};

pub(super) fn severity(s: SeverityArg) -> Option<Severity> {
    match s {
        SeverityArg::Info => Some(Severity::Info),
        SeverityArg::Low => Some(Severity::Low),
        SeverityArg::Medium => Some(Severity::Medium),
        SeverityArg::High => Some(Severity::High),
        SeverityArg::Critical => Some(Severity::Critical),
        SeverityArg::Never => None,
    }
}

fn walk(args: &ScanArgs) -> mlsec_walk::WalkOptions {
    mlsec_walk::WalkOptions {
        gitignore: args.gitignore,
    }
}

/// Runs `f` with a progress bar over the whole scan (files and bytes) on a terminal.
fn with_progress(
    args: &ScanArgs,
    f: impl FnOnce(Option<&Progress>) -> mlsec_diagnostics::Report,
) -> mlsec_diagnostics::Report {
    let show_bar = !args.quiet && io::stderr().is_terminal();
    if !show_bar {
        return f(None);
    }
    let progress = Progress::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let bar_thread = s.spawn(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} files {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            while !done.load(Ordering::Relaxed) {
                bar.set_length(progress.files_total.load(Ordering::Relaxed));
                bar.set_position(progress.files_done.load(Ordering::Relaxed));
                bar.set_message(render::human_bytes(
                    progress.bytes_done.load(Ordering::Relaxed),
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        let report = f(Some(&progress));
        done.store(true, Ordering::Relaxed);
        let _ = bar_thread.join();
        report
    })
}

pub fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    if let Some(jobs) = args.jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build_global()
            .context("cannot start worker threads")?;
    }
    if args.git {
        return finish(args, git_report(args)?);
    }
    // One walk: every selected scanner is offered each file once.
    let model = mlsec_scan_model::ModelScanner;
    let code = mlsec_scan_code::CodeScanner;
    let deploy = mlsec_scan_deploy::DeployScanner::default();
    let mut rule_errors = Vec::new();
    let secrets = if args.only.contains(&Scanner::Secrets) {
        let (engine, errors) = secrets_engine(args)?;
        rule_errors = errors;
        Some(mlsec_scan_secrets::SecretsScanner {
            engine,
            options: secrets_options(args),
        })
    } else {
        None
    };
    let mut scanners: Vec<&dyn FileScanner> = Vec::new();
    if args.only.contains(&Scanner::Models) {
        scanners.push(&model);
    }
    if args.only.contains(&Scanner::Code) {
        scanners.push(&code);
    }
    if args.only.contains(&Scanner::Deploy) {
        scanners.push(&deploy);
    }
    if let Some(s) = &secrets {
        scanners.push(s);
    }
    let mut report = with_progress(args, |progress| {
        mlsec_walk::scan(&args.paths, walk(args), &scanners, progress)
    });
    report.errors.extend(rule_errors);
    finish(args, report)
}

fn secrets_options(args: &ScanArgs) -> mlsec_scan_secrets::Options {
    mlsec_scan_secrets::Options {
        show_secrets: args.show_secrets,
        report_unused_ignores: args.report_unused_ignores,
    }
}

/// The built-in secret rules, plus those of `--secrets-config` files. A custom engine lives for
/// the rest of the process, like the built-in one (its rule catalogue is referenced by findings).
/// Rules of a `--secrets-config` file that cannot be used are left out, and each is an error
/// of the scan (on stderr and in the report) naming the file and the rule.
fn secrets_engine(
    args: &ScanArgs,
) -> anyhow::Result<(
    &'static mlsec_scan_secrets::Engine,
    Vec<mlsec_diagnostics::FileError>,
)> {
    if args.secrets_config.is_empty() {
        return Ok((mlsec_scan_secrets::Engine::builtin(), Vec::new()));
    }
    let mut set = mlsec_scan_secrets::RuleSet::builtin();
    let mut errors = Vec::new();
    for path in &args.secrets_config {
        let text = fs_err::read_to_string(path)?;
        let shown = path.display().to_string();
        let mut user = mlsec_scan_secrets::RuleSet::parse_dialect(
            &text,
            &shown,
            mlsec_scan_secrets::Dialect::Go,
        )
        .map_err(anyhow::Error::msg)?;
        for w in std::mem::take(&mut user.warnings) {
            let message = w
                .strip_prefix(&format!("{shown}: "))
                .unwrap_or(&w)
                .to_owned();
            errors.push(mlsec_diagnostics::FileError {
                path: shown.clone(),
                message,
            });
        }
        set.extend(user);
    }
    Ok((
        Box::leak(Box::new(mlsec_scan_secrets::Engine::new(set))),
        errors,
    ))
}

/// `--git`: each path is a repository whose history (or staging area) is scanned for secrets.
fn git_report(args: &ScanArgs) -> anyhow::Result<mlsec_diagnostics::Report> {
    let (engine, rule_errors) = secrets_engine(args)?;
    let history = mlsec_scan_secrets::history::History {
        since: args.since.clone(),
        staged: args.staged,
    };
    let mut report = mlsec_diagnostics::Report::default();
    for path in &args.paths {
        report.merge(mlsec_scan_secrets::history::scan_history(
            engine,
            path,
            &history,
            secrets_options(args),
        ));
    }
    report.errors.extend(rule_errors);
    Ok(report)
}

/// Baselines, filters, rendering and the exit code.
fn finish(args: &ScanArgs, mut report: mlsec_diagnostics::Report) -> anyhow::Result<ExitCode> {
    if args.report_unused_ignores {
        report.rules.push(&mlsec_diagnostics::UNUSED_IGNORE);
    }
    if let Some(path) = &args.write_baseline {
        fs_err::write(path, Baseline::write(&report))?;
        if !args.quiet {
            let _ = writeln!(
                io::stderr(),
                "wrote {} finding(s) to the baseline {}",
                report.findings.len(),
                path.display()
            );
        }
    }
    if let Some(path) = &args.baseline {
        if args.update_baseline {
            let old = match fs_err::read(path) {
                Ok(bytes) => Baseline::parse(&bytes)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                    .unused(&report.findings)
                    .len(),
                Err(_) => 0,
            };
            fs_err::write(path, Baseline::write(&report))?;
            if !args.quiet {
                let _ = writeln!(
                    io::stderr(),
                    "updated the baseline {}: {} finding(s) accepted, {old} stale entr(ies) dropped",
                    path.display(),
                    report.findings.len()
                );
            }
        }
        let bytes = fs_err::read(path)?;
        let baseline =
            Baseline::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let stale = if args.report_unused_ignores {
            baseline.unused(&report.findings)
        } else {
            Vec::new()
        };
        let n = baseline.apply(&mut report.findings);
        for entry in stale {
            report.findings.push(mlsec_diagnostics::Finding::new(
                &mlsec_diagnostics::UNUSED_IGNORE,
                mlsec_diagnostics::Location::file(path.display().to_string()),
                format!("baseline entry matches no finding: {entry}"),
            ));
        }

        if !args.quiet && n > 0 {
            let _ = writeln!(
                io::stderr(),
                "{n} finding(s) left out: already in the baseline {}",
                path.display()
            );
        }
    }
    if let Some(min) = severity(match args.min_severity {
        MinSeverityArg::Info => SeverityArg::Info,
        MinSeverityArg::Low => SeverityArg::Low,
        MinSeverityArg::Medium => SeverityArg::Medium,
        MinSeverityArg::High => SeverityArg::High,
        MinSeverityArg::Critical => SeverityArg::Critical,
    }) {
        report.findings.retain(|f| f.severity >= min);
    }
    let to_file = args.output.is_some();
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            !to_file
                && io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let mut buf: Vec<u8> = Vec::new();
    match args.format {
        // On stdout the errors are left to stderr (below); a report file keeps them.
        Format::Text if to_file => render::text::render(&report, &mut buf, color)?,
        Format::Text => render::text::findings(&report, &mut buf, color)?,
        Format::Json => render::json::render(&report, &mut buf)?,
        Format::Sarif => render::sarif::render(&report, &mut buf)?,
    }
    if let Some(path) = &args.output {
        fs_err::write(path, &buf)?;
    } else {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        out.write_all(&buf)?;
        out.flush()?;
    }
    // Errors go to stderr in every format (and are in the JSON and SARIF reports too), even
    // with --quiet: a scan that could not read everything must say what and why.
    let err_color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let _ = render::text::errors(&report, &mut io::stderr().lock(), err_color);
    if !args.quiet {
        let _ = writeln!(io::stderr(), "{}", render::text::summary(&report));
    }
    if !report.errors.is_empty() {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let fail =
        severity(args.fail_on).is_some_and(|t| report.findings.iter().any(|f| f.severity >= t));
    Ok(if fail {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
