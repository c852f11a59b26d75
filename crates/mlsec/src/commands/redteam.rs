//! `mlsec redteam classifier|membership`: attacks and audits, as text, JSON, SARIF or HTML.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use mlsec_diagnostics::render;
use mlsec_redteam::classifier::{self, AttackKind, ClassifierReport};
use mlsec_redteam::membership::MembershipReport;
use mlsec_redteam::model::{Classifier, Layout};
use mlsec_redteam::{data, examples, membership};

use crate::args::{
    RedteamArgs, RedteamClassifierArgs, RedteamCommand, RedteamCompareArgs, RedteamFormat,
    RedteamLlmArgs, RedteamMembershipArgs, RedteamOutput,
};

pub fn run(args: &RedteamArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        RedteamCommand::Classifier(a) => run_classifier(a),
        RedteamCommand::Membership(a) => run_membership(a),
        RedteamCommand::Llm(a) => run_llm(a),
        RedteamCommand::Compare(a) => run_compare(a),
    }
}

fn run_llm(a: &RedteamLlmArgs) -> anyhow::Result<ExitCode> {
    use mlsec_probe::probes::Family;
    let mut families = Vec::new();
    for f in &a.families {
        match Family::parse(f) {
            Some(x) => families.push(x),
            None => bail!(
                "--families {f}: unknown family ({})",
                Family::ALL.map(Family::as_str).join(", ")
            ),
        }
    }
    if families.is_empty() {
        families = Family::ALL.to_vec();
    }
    if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
        bail!("--url {}: expected an http:// or https:// API base", a.url);
    }
    let target = mlsec_probe::run::Target {
        url: a.url.clone(),
        model: a.model.clone(),
        key: a.key.clone(),
    };
    let opts = mlsec_probe::run::Options {
        families,
        concurrency: a.concurrency,
        rate: a.rate,
        timeout: std::time::Duration::from_secs(a.timeout.max(1)),
        retries: a.retries,
        seed: a.seed,
        journal: a.journal.clone(),
        ..mlsec_probe::run::Options::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(mlsec_probe::run::run(&target, &opts))?;
    let findings = mlsec_probe::report::findings(&report);
    let total = report.summary.last().cloned().unwrap_or_default();
    eprintln!(
        "{} probes: {} vulnerable, {} resisted, {} blocked, {} undecided ({} requests in {:.1} s)",
        total.probes,
        total.vulnerable,
        total.resisted,
        total.blocked,
        total.errors,
        report.requests,
        report.seconds
    );
    let mut json = serde_json::to_value(&report)?;
    json["kind"] = "llm".into();
    emit(
        &a.out,
        json,
        &findings,
        || mlsec_probe::report::text(&report),
        || mlsec_probe::report::html(&report, &findings),
    )
}

fn run_compare(a: &RedteamCompareArgs) -> anyhow::Result<ExitCode> {
    let read = |p: &std::path::Path| -> anyhow::Result<mlsec_probe::run::ProbeReport> {
        let bytes = fs_err::read(p)?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", p.display()))?;
        if v["kind"] != "llm" {
            bail!(
                "{}: not a `mlsec redteam llm --format json` report",
                p.display()
            );
        }
        serde_json::from_value(v).with_context(|| format!("{}: not a probe report", p.display()))
    };
    let (before, after) = (read(&a.before)?, read(&a.after)?);
    let c = mlsec_probe::run::compare(&before, &after)?;
    let out = match a.format {
        RedteamFormat::Json => {
            let mut v = serde_json::to_value(&c)?;
            v["kind"] = "llm-compare".into();
            v["schema_version"] = mlsec_redteam::SCHEMA_VERSION.into();
            let mut b = serde_json::to_vec_pretty(&v)?;
            b.push(b'\n');
            b
        }
        RedteamFormat::Text => mlsec_probe::report::comparison_text(&c).into_bytes(),
        RedteamFormat::Sarif | RedteamFormat::Html => {
            bail!("compare prints text or json")
        }
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
    eprintln!(
        "{} fixed, {} regressed, {} still vulnerable",
        c.fixed.len(),
        c.regressed.len(),
        c.still_vulnerable.len()
    );
    Ok(if c.regressed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FINDINGS)
    })
}

fn range(s: &str, what: &str) -> anyhow::Result<(f32, f32)> {
    let (a, b) = s
        .split_once(':')
        .with_context(|| format!("{what} {s:?}: expected MIN:MAX"))?;
    let parse = |v: &str| -> anyhow::Result<f32> {
        let x: f32 = v
            .trim()
            .parse()
            .with_context(|| format!("{what} {s:?}: {v:?} is not a number"))?;
        if !x.is_finite() {
            bail!("{what} {s:?}: {v:?} is not finite");
        }
        Ok(x)
    };
    Ok((parse(a)?, parse(b)?))
}

fn emit(
    out: &RedteamOutput,
    json: serde_json::Value,
    findings: &mlsec_diagnostics::Report,
    text: impl FnOnce() -> String,
    html: impl FnOnce() -> String,
) -> anyhow::Result<ExitCode> {
    let buf = match out.format {
        RedteamFormat::Text => {
            let mut t = text();
            for f in &findings.findings {
                let _ = writeln!(
                    t,
                    "{} {} [{}] {}",
                    f.rule.id, f.rule.name, f.severity, f.message
                );
            }
            t.into_bytes()
        }
        RedteamFormat::Html => html().into_bytes(),
        RedteamFormat::Json => {
            let mut v = json;
            v["schema_version"] = mlsec_redteam::SCHEMA_VERSION.into();
            v["findings"] = serde_json::to_value(&findings.findings)?;
            let mut b = serde_json::to_vec_pretty(&v)?;
            b.push(b'\n');
            b
        }
        RedteamFormat::Sarif => {
            let mut b = Vec::new();
            render::sarif::render(findings, &mut b)?;
            b
        }
    };
    match &out.output {
        Some(p) => fs_err::write(p, &buf)?,
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), &buf)?,
    }
    let fail = super::scan::severity(out.fail_on)
        .is_some_and(|t| findings.findings.iter().any(|f| f.severity >= t));
    Ok(if fail {
        ExitCode::from(crate::EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

fn warn_unused(path: &str, u: &data::Unused) {
    if u.total() > 0 {
        eprintln!(
            "warning: {path}: {} row(s) not used{} (see RTM003)",
            u.total(),
            u.first
                .as_ref()
                .map(|f| format!("; first: {f}"))
                .unwrap_or_default()
        );
    }
}

fn run_classifier(a: &RedteamClassifierArgs) -> anyhow::Result<ExitCode> {
    let mut attacks = Vec::new();
    for name in &a.attacks {
        match AttackKind::parse(name) {
            Some(k) => attacks.push(k),
            None => bail!(
                "--attacks {name}: unknown attack (noise, worst-of-k, square, hop-skip-jump, features)"
            ),
        }
    }
    if attacks.is_empty() {
        attacks = AttackKind::ALL.to_vec();
    }
    let layout = match &a.image {
        Some(s) => Some(
            Layout::parse(s).with_context(|| format!("--image {s:?}: expected HxW or CxHxW"))?,
        ),
        None => None,
    };
    let mut ranges = Vec::new();
    for r in &a.ranges {
        let (col, span) = r
            .split_once('=')
            .with_context(|| format!("--range {r:?}: expected COL=MIN:MAX"))?;
        let (lo, hi) = range(span, "--range")?;
        ranges.push((col.to_string(), lo, hi));
    }
    let input_range = a
        .input_range
        .as_deref()
        .map(|s| range(s, "--input-range"))
        .transpose()?;
    if !(0.0..=1.0).contains(&a.min_accuracy) {
        bail!(
            "--min-accuracy {}: expected a share between 0 and 1",
            a.min_accuracy
        );
    }
    let mut ds = data::read(&a.data, a.labels.as_deref(), &a.classes, None)?;
    if let Some(n) = a.max_samples {
        if n == 0 {
            bail!("--max-samples 0: nothing to attack");
        }
        ds.limit(n);
        if ds.unused.limited > 0 {
            eprintln!(
                "note: {}: attacking the first {n} valid rows; {} more left out (--max-samples)",
                ds.path, ds.unused.limited
            );
        }
    }
    let model = Classifier::load(&a.model, Some(ds.width()), layout)?;
    let opts = classifier::Options {
        budgets: a.budget.clone(),
        attacks,
        noise_draws: a.noise_draws,
        queries: a.queries,
        input_range,
        ranges,
        frozen: a.frozen.clone(),
        tabular: a.tabular,
        seed: a.seed,
        min_accuracy: a.min_accuracy,
        ..classifier::Options::default()
    };
    let report = classifier::run(&model, &ds, &opts)?;
    let findings = mlsec_redteam::classifier_findings(&report);
    warn_unused(&ds.path, &report.unused);
    if let Some(dir) = &a.save_examples {
        let n = examples::save(&report, &ds.names, &ds.label_column, model.row_shape(), dir)?;
        eprintln!("wrote {n} adversarial example(s) to {}", dir.display());
    }
    let worst = report
        .results
        .iter()
        .min_by(|x, y| x.robust_accuracy.total_cmp(&y.robust_accuracy));
    eprintln!(
        "clean accuracy {:.3}; lowest under attack {:.3}{}; {} queries in {:.1} s",
        report.clean_accuracy,
        worst.map_or(report.clean_accuracy, |w| w.robust_accuracy),
        worst
            .map(|w| format!(" ({} at eps {})", w.attack.as_str(), w.budget))
            .unwrap_or_default(),
        report.queries,
        report.seconds
    );
    let mut json = serde_json::to_value(&report)?;
    json["kind"] = "classifier".into();
    emit(
        &a.out,
        json,
        &findings,
        || classifier_text(&report),
        || {
            mlsec_redteam::html::classifier(&report, &findings, &|row| {
                ds.source_rows
                    .iter()
                    .position(|r| *r == row)
                    .map(|i| ds.row(i).to_vec())
            })
        },
    )
}

fn classifier_text(r: &ClassifierReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} on {}: {} samples{}, {} mode, {} classes, budget in {}",
        r.model,
        r.data,
        r.samples,
        if r.unused.limited > 0 {
            format!(" ({} more left out by --max-samples)", r.unused.limited)
        } else {
            String::new()
        },
        r.mode,
        r.classes,
        r.domain.budget_unit
    );
    let _ = writeln!(t, "clean accuracy {:.3}\n", r.clean_accuracy);
    let _ = writeln!(
        t,
        "{:<14} {:<7} {:>6} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "attack", "access", "eps", "accuracy", "broken", "median d", "queries", "seconds"
    );
    for a in &r.results {
        let _ = writeln!(
            t,
            "{:<14} {:<7} {:>6} {:>9.3} {:>9} {:>10} {:>9} {:>8.2}",
            a.attack.as_str(),
            a.access,
            a.budget,
            a.robust_accuracy,
            format!("{}/{}", a.succeeded, a.attacked),
            a.median_distance.map_or("-".into(), |d| format!("{d:.4}")),
            a.queries,
            a.seconds
        );
    }
    if !r.feature_weakness.is_empty() {
        let parts: Vec<String> = r
            .feature_weakness
            .iter()
            .map(|f| format!("{} ({})", f.feature, f.flips))
            .collect();
        let _ = writeln!(t, "\nfeatures the decisions hang on: {}", parts.join(", "));
    }
    if !r.worst.is_empty() {
        let _ = writeln!(t, "\nweakest samples:");
        for e in &r.worst {
            let what = if e.changes.is_empty() {
                format!("{} values changed", e.changed)
            } else {
                e.changes
                    .iter()
                    .map(|c| format!("{} {} -> {}", c.feature, c.from, c.to))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                t,
                "  row {}: {} -> {} by {} at distance {:.4}: {what}",
                e.row,
                e.label,
                e.adversarial_label,
                e.attack.as_str(),
                e.distance
            );
        }
    }
    t.push('\n');
    t
}

fn run_membership(a: &RedteamMembershipArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.max_auc) || !(0.0..=1.0).contains(&a.max_tpr) {
        bail!("--max-auc and --max-tpr are shares between 0 and 1");
    }
    let read = |p: &std::path::Path| data::read(p, a.labels.as_deref(), &a.classes, None);
    let train = read(&a.train)?;
    let holdout = read(&a.holdout)?;
    let population = a.population.as_deref().map(read).transpose()?;
    let model = Classifier::load(&a.model, Some(train.width()), None)?;
    let references: Vec<Classifier> = a
        .references
        .iter()
        .map(|p| Classifier::load(p, Some(train.width()), None))
        .collect::<Result<_, _>>()?;
    if references.len() == 1 {
        eprintln!("warning: one reference model gives a noisy calibration; two or more are better");
    }
    let report = membership::run(
        &model,
        &train,
        &holdout,
        population.as_ref(),
        &references,
        &membership::Options {
            max_auc: a.max_auc,
            max_tpr_at_1: a.max_tpr,
        },
    )?;
    let findings = mlsec_redteam::membership_findings(&report);
    for (p, u) in &report.unused {
        warn_unused(p, u);
    }
    if report.overlap > 0 {
        eprintln!(
            "warning: {} holdout row(s) also occur in {}: they count as non-members",
            report.overlap, report.train
        );
    }
    eprintln!("{}", report.interpretation);
    let mut json = serde_json::to_value(&report)?;
    json["kind"] = "membership".into();
    emit(
        &a.out,
        json,
        &findings,
        || membership_text(&report),
        || mlsec_redteam::html::membership(&report, &findings),
    )
}

fn membership_text(r: &MembershipReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{}: {} members, {} non-members; train accuracy {:.3}, holdout {:.3}\n",
        r.model, r.members, r.non_members, r.train_accuracy, r.holdout_accuracy
    );
    let _ = writeln!(
        t,
        "{:<12} {:>7} {:>14} {:>12} {:>10}",
        "attack", "AUC", "TPR@0.1%FPR", "TPR@1%FPR", "advantage"
    );
    for a in &r.attacks {
        let _ = writeln!(
            t,
            "{:<12} {:>7.3} {:>14.3} {:>12.3} {:>10.3}",
            a.attack, a.auc, a.tpr_at_0_1_fpr, a.tpr_at_1_fpr, a.advantage
        );
    }
    if let Some(best) = r.attacks.iter().find(|a| a.attack == r.strongest) {
        let per: Vec<String> = best
            .per_class
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c.class,
                    c.auc.map_or("-".into(), |a| format!("{a:.3}"))
                )
            })
            .collect();
        let _ = writeln!(t, "\nper class ({}): {}", r.strongest, per.join(", "));
    }
    let _ = writeln!(t, "\nmost exposed training rows ({} attack):", r.exposed_by);
    for e in &r.exposed {
        let _ = writeln!(
            t,
            "  row {} (label {}): score {:.4}, confidence {:.4}, {} holdout rows score as high",
            e.row, e.label, e.score, e.confidence, e.holdout_at_or_above
        );
    }
    let _ = writeln!(t, "\n{}\n", r.interpretation);
    t
}
