//! `mlsec registry inventory`: what the registry holds against what runs.
//!
//! Endpoints come from Kubernetes/KServe/Seldon manifests (read with the deploy scanner's YAML
//! reader) and from the gateway's models (`registry` and `owner` in `[[models]]`). Every string
//! in a manifest that names a registry model counts: `models:/NAME@ALIAS`, `models:/NAME/N`,
//! and `mlflow-artifacts:/registry/ENV/ID` (a version's own storage). The findings use the
//! shared findings model, so the usual renderers and `--fail-on` apply.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use mlsec_diagnostics::{FileError, Finding, Location, Report, Rule, Severity};
use mlsec_scan_deploy::repo::Env;

use crate::store::{DbError, ModelVersion, Store};

/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 8 << 20;
/// Most manifest files read.
pub const MAX_MANIFESTS: usize = 100_000;

pub static REG_UNALIASED: Rule = Rule {
    id: "REG001",
    name: "deployed-version-without-alias",
    summary: "A deployment serves a model version that no alias points at",
    severity: Severity::Medium,
    cwe: &["CWE-1104"],
    owasp: &["ML06"],
    what: "Finds endpoints that pin a version number (models:/NAME/N or a version's storage path) when no alias of the model points at that version.",
    why: "A version served from no alias escapes promotion: nobody moved a protected alias onto it, so its scan and signature were never gated, and rolling the alias back does not touch it.",
    example: "storageUri: models:/fraud/7 while fraud@prod points at version 9",
    remediation: "Serve models:/NAME@ALIAS (a protected alias for production), or move an alias onto the version through the registry's gates.",
    references: &[
        "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html",
    ],
};

pub static REG_RETIRED: Rule = Rule {
    id: "REG002",
    name: "deployed-retired-version",
    summary: "A deployment serves a deleted or archived model version",
    severity: Severity::High,
    cwe: &["CWE-1104"],
    owasp: &["ML06"],
    what: "Finds endpoints whose model version was deleted from the registry or moved to the Archived stage.",
    why: "A deleted or archived version is one the owners withdrew (often for a reason: a bad scan, a leak, a regression) and that nobody maintains; an endpoint still serving it is an orphaned deployment.",
    example: "storageUri: models:/fraud/3 after version 3 was deleted",
    remediation: "Point the endpoint at a current alias, or take it down.",
    references: &[
        "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html",
    ],
};

pub static REG_NONPROD_IN_PROD: Rule = Rule {
    id: "REG003",
    name: "non-production-model-in-production",
    summary: "A production endpoint serves a model through an alias or version not promoted to production",
    severity: Severity::High,
    cwe: &["CWE-1104"],
    owasp: &["ML06"],
    what: "Finds endpoints in a production environment (namespace, labels or path) that serve a model through an unprotected alias (@staging, @test ...) or a version that no protected alias points at.",
    why: "Only protected aliases pass the registry's gates (a clean scan, a trusted signature, an alias grant). A staging or test model reachable in production skipped them.",
    example: "namespace: prod, storageUri: models:/fraud@staging",
    remediation: "Serve a protected alias (policy.protected_aliases) in production.",
    references: &[
        "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html",
    ],
};

pub static REG_NO_OWNER: Rule = Rule {
    id: "REG004",
    name: "endpoint-without-owner",
    summary: "An endpoint serving a registry model names no owner",
    severity: Severity::Low,
    cwe: &["CWE-1059"],
    owasp: &["ML06"],
    what: "Finds endpoints with no owner: no `owner`, `team`, `app.kubernetes.io/owner` or `mlsec.io/owner` label or annotation on the manifest, and no `owner` on the gateway model.",
    why: "An endpoint nobody owns is nobody's to patch, rotate or retire: it becomes an orphaned deployment.",
    example: "an InferenceService without an owner label",
    remediation: "Label the object with its owning team (metadata.labels.owner) or set owner on the gateway model.",
    references: &[
        "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html",
    ],
};

pub static REG_ALIAS_UNCHECKED: Rule = Rule {
    id: "REG005",
    name: "alias-on-failed-version",
    summary: "An alias points at a version whose scan or signature check failed",
    severity: Severity::Medium,
    cwe: &["CWE-502", "CWE-345"],
    owasp: &["ML06"],
    what: "Finds aliases pointing at versions whose scan found something at or above policy.fail_on or could not finish, or whose signature is invalid (or, when signatures are required, not verified). High for protected aliases (set before the policy tightened) and for aliases something deploys.",
    why: "Whatever loads NAME@ALIAS loads that version: a pickle that runs code, or files that do not match their signature.",
    example: "fraud@staging -> version 4, scan: findings (PKL001 os.system)",
    remediation: "Move the alias to a clean, signed version (mlsec registry rollback MODEL@ALIAS undoes the last move).",
    references: &[
        "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html",
    ],
};

pub static REG_UNKNOWN: Rule = Rule {
    id: "REG006",
    name: "deployed-model-unknown-to-registry",
    summary: "A deployment names a registry model, alias or version that does not exist",
    severity: Severity::High,
    cwe: &["CWE-1104"],
    owasp: &["ML06"],
    what: "Finds endpoints naming a model, alias, version number or version storage path the registry does not hold.",
    why: "Either the endpoint serves something from elsewhere under a registry name, or it will fail at its next restart; in both cases what runs is not what the registry vouches for.",
    example: "storageUri: models:/fraud@prod when fraud has no prod alias",
    remediation: "Register the model through the registry, or fix the reference.",
    references: &[
        "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html",
    ],
};

/// Every inventory rule, for `mlsec rules`.
pub static RULES: &[&Rule] = &[
    &REG_UNALIASED,
    &REG_RETIRED,
    &REG_NONPROD_IN_PROD,
    &REG_NO_OWNER,
    &REG_ALIAS_UNCHECKED,
    &REG_UNKNOWN,
];

/// What an endpoint names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Alias { model: String, alias: String },
    Version { model: String, version: i64 },
    Storage(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Alias { model, alias } => write!(f, "models:/{model}@{alias}"),
            Target::Version { model, version } => write!(f, "models:/{model}/{version}"),
            Target::Storage(s) => write!(f, "mlflow-artifacts:/{s}"),
        }
    }
}

/// Finds registry references in one string.
pub fn targets_in(s: &str) -> Vec<Target> {
    let mut out = Vec::new();
    let stop = |c: char| c.is_whitespace() || "\"',;)]}>".contains(c);
    let mut rest = s;
    while let Some(i) = rest.find("models:/") {
        let tail = &rest[i + "models:/".len()..];
        let end = tail.find(stop).unwrap_or(tail.len());
        let r = tail[..end].trim_end_matches('/');
        if let Some((m, a)) = r.split_once('@') {
            let a = a.split('/').next().unwrap_or("");
            if !m.is_empty() && !a.is_empty() {
                out.push(Target::Alias {
                    model: m.to_owned(),
                    alias: a.to_owned(),
                });
            }
        } else if let Some((m, v)) = r.split_once('/')
            && let Ok(n) = v.split('/').next().unwrap_or("").parse::<i64>()
        {
            out.push(Target::Version {
                model: m.to_owned(),
                version: n,
            });
        }
        rest = &tail[end..];
    }
    let mut rest = s;
    while let Some(i) = rest.find("registry/") {
        let tail = &rest[i + "registry/".len()..];
        let end = tail.find(stop).unwrap_or(tail.len());
        let mut parts = tail[..end].split('/');
        if let (Some(env), Some(id)) = (parts.next(), parts.next())
            && id.len() == 32
            && id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let before = &rest[..i];
            if before.ends_with("mlflow-artifacts:/") || before.ends_with("/artifacts/") {
                out.push(Target::Storage(format!("registry/{env}/{id}")));
            }
        }
        rest = &tail[end..];
    }
    out
}

/// One thing that serves models.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Where it is declared (file, line) and what it is (`InferenceService/fraud`).
    pub location: Location,
    pub title: String,
    pub env: Option<Env>,
    pub owner: Option<String>,
    pub targets: Vec<Target>,
}

const OWNER_KEYS: &[&str] = &[
    "owner",
    "team",
    "app.kubernetes.io/owner",
    "mlsec.io/owner",
    "owner.mlsec.io",
];

/// Reads manifests (files or folders) into endpoints. Files that cannot be read are errors,
/// named with their path.
pub fn endpoints_from_manifests(paths: &[PathBuf]) -> (Vec<Endpoint>, Vec<FileError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            for e in walkdir::WalkDir::new(p)
                .follow_links(false)
                .sort_by_file_name()
            {
                match e {
                    Ok(e)
                        if e.file_type().is_file()
                            && mlsec_scan_deploy::k8s::is_yaml(
                                &e.file_name().to_string_lossy(),
                            ) =>
                    {
                        files.push(e.into_path());
                    }
                    Ok(_) => {}
                    Err(err) => errors.push(FileError {
                        path: p.display().to_string(),
                        message: err.to_string(),
                    }),
                }
                if files.len() > MAX_MANIFESTS {
                    break;
                }
            }
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files.into_iter().take(MAX_MANIFESTS) {
        let display = f.display().to_string();
        let text = match std::fs::metadata(&f) {
            Ok(m) if m.len() > MAX_MANIFEST_BYTES => {
                errors.push(FileError {
                    path: display,
                    message: format!("larger than {MAX_MANIFEST_BYTES} bytes"),
                });
                continue;
            }
            Ok(_) => match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(FileError {
                        path: display,
                        message: e.to_string(),
                    });
                    continue;
                }
            },
            Err(e) => {
                errors.push(FileError {
                    path: display,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let docs = mlsec_scan_deploy::yaml::parse(&text);
        if let Some(e) = &docs.error {
            errors.push(FileError {
                path: display.clone(),
                message: format!(
                    "line {}: {} (documents before it were read)",
                    e.line, e.message
                ),
            });
        }
        for doc in &docs.docs {
            let meta = mlsec_scan_deploy::k8s::Meta::of(doc);
            let mut targets = Vec::new();
            let mut first_line = meta.as_ref().map_or(1, |m| m.line);
            doc.each_scalar(&mut |s, line| {
                let t = targets_in(s);
                if !t.is_empty() && targets.is_empty() {
                    first_line = line;
                }
                targets.extend(t);
            });
            if targets.is_empty() {
                continue;
            }
            let owner = meta.as_ref().and_then(|m| {
                m.labels
                    .iter()
                    .chain(&m.annotations)
                    .find(|(k, v)| OWNER_KEYS.contains(k) && !v.trim().is_empty())
                    .map(|(_, v)| (*v).to_owned())
            });
            let title = meta.as_ref().map_or_else(
                || "document".to_owned(),
                |m| {
                    if m.name.is_empty() {
                        m.kind.to_owned()
                    } else {
                        format!("{}/{}", m.kind, m.name)
                    }
                },
            );
            out.push(Endpoint {
                location: Location::file(display.clone()).line_col(first_line, 1),
                title,
                env: mlsec_scan_deploy::k8s::environment(&display, meta.as_ref()),
                owner,
                targets,
            });
        }
    }
    (out, errors)
}

fn finding(
    rule: &'static Rule,
    severity: Severity,
    location: Location,
    message: String,
    evidence: Option<String>,
) -> Finding {
    let mut f = Finding::new(rule, location, message);
    f.severity = severity;
    f.evidence = evidence;
    f
}

fn check_failed(v: &ModelVersion, policy: &crate::config::Policy) -> Option<String> {
    if v.checks.scan != "clean" {
        let first = v.checks.findings.first().cloned().unwrap_or_default();
        return Some(format!(
            "scan {}{}",
            v.checks.scan,
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        ));
    }
    match v.checks.signature.as_str() {
        "invalid" | "error" => Some(format!(
            "signature {}: {}",
            v.checks.signature, v.checks.signature_detail
        )),
        s if policy.require_signature && s != "verified" => {
            Some(format!("signature {s}, and signatures are required"))
        }
        _ => None,
    }
}

/// Compares the registry with the endpoints.
pub async fn inventory(
    store: &Store,
    policy: &crate::config::Policy,
    endpoints: &[Endpoint],
) -> Result<Report, DbError> {
    let mut report = Report {
        rules: RULES.to_vec(),
        ..Report::default()
    };
    let versions = store.all_versions().await?;
    let by_key: BTreeMap<(String, i64), &ModelVersion> = versions
        .iter()
        .map(|v| ((v.name.clone(), v.version), v))
        .collect();
    let by_storage: BTreeMap<&str, &ModelVersion> =
        versions.iter().map(|v| (v.storage.as_str(), v)).collect();
    let retired: Vec<(String, i64, String)> = store.retired_versions().await?;
    let mut aliases: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for m in store.registered_models().await? {
        aliases.insert(m.name.clone(), store.aliases_of(&m.name).await?);
    }
    let protected = |a: &str| {
        policy
            .protected_aliases
            .iter()
            .any(|p| p.eq_ignore_ascii_case(a))
    };
    let mut deployed_aliases: HashSet<(String, String)> = HashSet::new();
    for ep in endpoints {
        let where_ = &ep.title;
        for t in &ep.targets {
            // Resolve to a version.
            let resolved: Option<&ModelVersion> = match t {
                Target::Alias { model, alias } => {
                    deployed_aliases.insert((model.clone(), alias.clone()));
                    let n = aliases
                        .get(model)
                        .and_then(|a| a.iter().find(|(x, _)| x == alias).map(|(_, n)| *n));
                    n.and_then(|n| by_key.get(&(model.clone(), n)).copied())
                }
                Target::Version { model, version } => {
                    by_key.get(&(model.clone(), *version)).copied()
                }
                Target::Storage(s) => by_storage.get(s.as_str()).copied(),
            };
            let Some(v) = resolved else {
                let gone = match t {
                    Target::Version { model, version } => {
                        retired.iter().any(|(n, x, _)| n == model && x == version)
                    }
                    Target::Storage(s) => retired.iter().any(|(_, _, st)| st == s),
                    Target::Alias { .. } => false,
                };
                if gone {
                    report.findings.push(finding(
                        &REG_RETIRED,
                        Severity::High,
                        ep.location.clone(),
                        format!("{where_} serves {t}, a deleted version"),
                        Some(t.to_string()),
                    ));
                } else {
                    report.findings.push(finding(
                        &REG_UNKNOWN,
                        Severity::High,
                        ep.location.clone(),
                        format!("{where_} serves {t}, which the registry does not hold"),
                        Some(t.to_string()),
                    ));
                }
                continue;
            };
            let label = format!("{}/{}", v.name, v.version);
            if v.stage == "Archived" {
                report.findings.push(finding(
                    &REG_RETIRED,
                    Severity::High,
                    ep.location.clone(),
                    format!("{where_} serves {t} (version {label}), which is archived"),
                    Some(t.to_string()),
                ));
            }
            let pointing: Vec<&String> = aliases
                .get(&v.name)
                .map(|a| {
                    a.iter()
                        .filter(|(_, n)| *n == v.version)
                        .map(|(a, _)| a)
                        .collect()
                })
                .unwrap_or_default();
            if !matches!(t, Target::Alias { .. }) && pointing.is_empty() {
                report.findings.push(finding(
                    &REG_UNALIASED,
                    Severity::Medium,
                    ep.location.clone(),
                    format!("{where_} serves {t} (version {label}), which no alias points at"),
                    Some(t.to_string()),
                ));
            }
            if ep.env == Some(Env::Prod) {
                let through_protected = match t {
                    Target::Alias { alias, .. } => protected(alias),
                    _ => pointing.iter().any(|a| protected(a)),
                };
                if !through_protected {
                    report.findings.push(finding(
                        &REG_NONPROD_IN_PROD,
                        Severity::High,
                        ep.location.clone(),
                        format!("{where_} is in production and serves {t} (version {label}) without a protected alias ({})", policy.protected_aliases.join(", ")),
                        Some(t.to_string()),
                    ));
                }
            }
            if let Some(why) = check_failed(v, policy) {
                report.findings.push(finding(
                    &REG_ALIAS_UNCHECKED,
                    Severity::High,
                    ep.location.clone(),
                    format!("{where_} serves {t} (version {label}): {why}"),
                    Some(t.to_string()),
                ));
            }
        }
        if ep.owner.is_none() {
            report.findings.push(finding(
                &REG_NO_OWNER,
                Severity::Low,
                ep.location.clone(),
                format!("{where_} serves registry models and names no owner"),
                None,
            ));
        }
    }
    // Aliases on versions that failed their checks, whether or not anything deploys them.
    for (model, list) in &aliases {
        for (alias, n) in list {
            let Some(v) = by_key.get(&(model.clone(), *n)) else {
                continue;
            };
            if let Some(why) = check_failed(v, policy) {
                let severity = if protected(alias)
                    || deployed_aliases.contains(&(model.clone(), alias.clone()))
                {
                    Severity::High
                } else {
                    Severity::Medium
                };
                report.findings.push(finding(
                    &REG_ALIAS_UNCHECKED,
                    severity,
                    Location::file(format!("registry:{model}@{alias}")),
                    format!("alias {model}@{alias} points at version {n}: {why}"),
                    Some(format!("models:/{model}@{alias}")),
                ));
            }
        }
    }
    report.stats.files_scanned = endpoints.len() as u64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_inside_any_string() {
        let id = "0123456789abcdef0123456789abcdef";
        let t = targets_in(&format!(
            "MODEL_URI=models:/fraud@prod; other models:/churn/12/ and 'mlflow-artifacts:/registry/dev/{id}/MLmodel'"
        ));
        assert_eq!(
            t,
            vec![
                Target::Alias {
                    model: "fraud".into(),
                    alias: "prod".into()
                },
                Target::Version {
                    model: "churn".into(),
                    version: 12
                },
                Target::Storage(format!("registry/dev/{id}")),
            ]
        );
        assert!(targets_in("models:/ models:/x models:/x@ registry/dev/short").is_empty());
        assert_eq!(
            targets_in(&format!(
                "http://r:5000/api/2.0/mlflow-artifacts/artifacts/registry/prod/{id}"
            ))
            .len(),
            1
        );
    }
}
