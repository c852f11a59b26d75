//! Rules over a whole repository of manifests: which Services, NetworkPolicies, PDBs and HPAs
//! select which workloads, and which buckets, roles and secrets each environment uses. Each file
//! contributes [`FileFacts`] during the parallel scan; [`analyse`] runs once all are in.

use std::collections::{BTreeMap, HashMap, HashSet};

use mlsec_diagnostics::{Finding, Location, Rule, Severity};

use crate::rules::{ENV_SHARED, K8S_NO_NETWORK_POLICY, K8S_ORPHAN, K8S_SERVICE_EXPOSED};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Env {
    Dev,
    Staging,
    Prod,
}

impl Env {
    fn name(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Staging => "staging",
            Env::Prod => "prod",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceKind {
    Bucket,
    Role,
    Secret,
}

/// A bucket, role or secret named by a document of a known environment.
#[derive(Debug, Clone)]
pub struct ResourceUse {
    pub kind: ResourceKind,
    pub name: String,
    pub env: Env,
    pub line: u32,
    pub suppressed: Vec<String>,
}

/// A label selector: equality terms and set-based expressions `(key, operator, values)`.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub labels: Vec<(String, String)>,
    pub exprs: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    pub fn labels(pairs: Vec<(&str, &str)>) -> Selector {
        Selector {
            labels: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            exprs: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.exprs.is_empty()
    }

    /// Whether pods with `labels` are selected (an empty selector selects everything).
    pub fn matches(&self, labels: &[(String, String)]) -> bool {
        let get = |k: &str| labels.iter().find(|(l, _)| l == k).map(|(_, v)| v.as_str());
        self.labels.iter().all(|(k, v)| get(k) == Some(v))
            && self.exprs.iter().all(|(k, op, vals)| match op.as_str() {
                "In" => get(k).is_some_and(|v| vals.iter().any(|x| x == v)),
                "NotIn" => get(k).is_none_or(|v| !vals.iter().any(|x| x == v)),
                "Exists" => get(k).is_some(),
                "DoesNotExist" => get(k).is_none(),
                // An unknown operator selects nothing, as the API server would reject it.
                _ => false,
            })
    }
}

/// A workload's pods, as the selectors see them.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub labels: Vec<(String, String)>,
    /// Declares container ports, or is a serving kind (KServe, Seldon, Ray, notebooks).
    pub ports: bool,
    /// The ML server, notebook or dashboard it runs, if recognised.
    pub ml_server: Option<String>,
    pub line: u32,
    pub suppressed: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectingKind {
    Service,
    NetworkPolicy,
    Pdb,
    Hpa,
}

/// An object that points at workloads: a Service, NetworkPolicy, PDB or HPA.
#[derive(Debug, Clone)]
pub struct Selecting {
    pub kind: SelectingKind,
    pub name: String,
    pub namespace: Option<String>,
    pub selector: Selector,
    /// HPA target (kind, name).
    pub target: Option<(String, String)>,
    /// Service type that exposes it outside the cluster, and its line.
    pub exposed: Option<(String, u32)>,
    pub line: u32,
    pub suppressed: Vec<String>,
}

/// What one file contributes to the repository pass.
#[derive(Debug, Clone, Default)]
pub struct FileFacts {
    pub path: String,
    pub workloads: Vec<Workload>,
    pub selecting: Vec<Selecting>,
    pub resources: Vec<ResourceUse>,
}

/// Namespaces match when equal, or when either side does not say (it is set at deploy time).
fn same_ns(a: Option<&String>, b: Option<&String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn finding(
    rule: &'static Rule,
    severity: Severity,
    path: &str,
    line: u32,
    suppressed: &[String],
    message: String,
    evidence: Option<String>,
) -> Option<Finding> {
    if suppressed.iter().any(|s| s == rule.id) {
        return None;
    }
    let mut f = Finding::new(rule, Location::file(path).line_col(line, 1), message);
    f.severity = severity;
    f.evidence = evidence;
    Some(f)
}

fn kind_name(k: SelectingKind) -> &'static str {
    match k {
        SelectingKind::Service => "Service",
        SelectingKind::NetworkPolicy => "NetworkPolicy",
        SelectingKind::Pdb => "PodDisruptionBudget",
        SelectingKind::Hpa => "HorizontalPodAutoscaler",
    }
}

/// Runs the repository-wide rules.
pub fn analyse(files: &[FileFacts]) -> Vec<Finding> {
    let workloads: Vec<(&str, &Workload)> = files
        .iter()
        .flat_map(|f| f.workloads.iter().map(move |w| (f.path.as_str(), w)))
        .collect();
    let selecting: Vec<(&str, &Selecting)> = files
        .iter()
        .flat_map(|f| f.selecting.iter().map(move |s| (f.path.as_str(), s)))
        .collect();
    let selects = |s: &Selecting, w: &Workload| {
        same_ns(s.namespace.as_ref(), w.namespace.as_ref())
            && match s.kind {
                SelectingKind::Hpa => s
                    .target
                    .as_ref()
                    .is_some_and(|(k, n)| *k == w.kind && *n == w.name),
                _ => s.selector.matches(&w.labels),
            }
    };
    // Indexes, so that cost follows the matches rather than selecting objects x workloads.
    let mut by_label: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut by_target: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    let mut namespaces: HashSet<Option<&str>> = HashSet::new();
    for (i, (_, w)) in workloads.iter().enumerate() {
        for (k, v) in &w.labels {
            by_label.entry((k, v)).or_default().push(i);
        }
        by_target.entry((&w.kind, &w.name)).or_default().push(i);
        namespaces.insert(w.namespace.as_deref());
    }
    // Workloads a selecting object may select: by its HPA target or its first label, else all.
    let candidates = |s: &Selecting| -> Vec<usize> {
        let hit = match (&s.kind, &s.target, s.selector.labels.first()) {
            (SelectingKind::Hpa, Some((k, n)), _) => by_target.get(&(k.as_str(), n.as_str())),
            (SelectingKind::Hpa, None, _) => None,
            (_, _, Some((k, v))) => by_label.get(&(k.as_str(), v.as_str())),
            (_, _, None) => return (0..workloads.len()).collect(),
        };
        hit.cloned().unwrap_or_default()
    };
    let mut behind_service = vec![false; workloads.len()];
    let mut policed = vec![false; workloads.len()];
    let mut out = Vec::new();

    for (path, s) in &selecting {
        let selected: Vec<usize> = candidates(s)
            .into_iter()
            .filter(|&i| selects(s, workloads[i].1))
            .collect();
        for &i in &selected {
            match s.kind {
                SelectingKind::Service => behind_service[i] = true,
                SelectingKind::NetworkPolicy => policed[i] = true,
                _ => {}
            }
        }
        let title = format!("{}/{}", kind_name(s.kind), s.name);
        if let Some((ty, line)) = &s.exposed {
            let ml = selected
                .iter()
                .find_map(|&i| workloads[i].1.ml_server.as_deref());
            let (severity, what) = match ml {
                Some(server) => (
                    Severity::High,
                    format!(" in front of {server}, which has no authentication of its own"),
                ),
                None => (Severity::Medium, String::new()),
            };
            out.extend(finding(
                &K8S_SERVICE_EXPOSED,
                severity,
                path,
                *line,
                &s.suppressed,
                format!("{title} is type {ty}: reachable from outside the cluster{what}"),
                Some(format!("type: {ty}")),
            ));
        }
        let ns_has_workloads = match s.namespace.as_deref() {
            None => !workloads.is_empty(),
            Some(ns) => namespaces.contains(&Some(ns)) || namespaces.contains(&None),
        };
        if selected.is_empty() && ns_has_workloads {
            out.extend(finding(
                &K8S_ORPHAN,
                Severity::Low,
                path,
                s.line,
                &s.suppressed,
                format!("{title} selects no workload in the scanned manifests"),
                None,
            ));
        }
    }

    for (i, (path, w)) in workloads.iter().enumerate() {
        if !(w.ports || behind_service[i]) || policed[i] {
            continue;
        }
        let severity = if w.ml_server.is_some() {
            Severity::Medium
        } else {
            Severity::Low
        };
        out.extend(finding(
            &K8S_NO_NETWORK_POLICY,
            severity,
            path,
            w.line,
            &w.suppressed,
            format!(
                "no NetworkPolicy selects the pods of {}/{}: any pod in the cluster can reach them",
                w.kind, w.name
            ),
            None,
        ));
    }

    // Environment isolation: one finding per resource and lower environment.
    let mut by_resource: BTreeMap<(ResourceKind, &str), Vec<(&str, &ResourceUse)>> =
        BTreeMap::new();
    for f in files {
        for r in &f.resources {
            by_resource
                .entry((r.kind, r.name.as_str()))
                .or_default()
                .push((&f.path, r));
        }
    }
    for ((kind, name), uses) in by_resource {
        let top = uses.iter().map(|(_, r)| r.env).max().unwrap_or(Env::Dev);
        let Some((top_path, top_use)) = uses.iter().find(|(_, r)| r.env == top) else {
            continue;
        };
        let mut reported: Vec<(&str, Env)> = Vec::new();
        for (path, r) in &uses {
            if r.env == top || reported.contains(&(*path, r.env)) {
                continue;
            }
            reported.push((path, r.env));
            let what = match kind {
                ResourceKind::Bucket => "bucket",
                ResourceKind::Role => "cloud role",
                ResourceKind::Secret => "secret",
            };
            let severity = if top == Env::Prod {
                Severity::High
            } else {
                Severity::Medium
            };
            out.extend(finding(
                &ENV_SHARED,
                severity,
                path,
                r.line,
                &r.suppressed,
                format!(
                    "{} uses the {what} `{name}` that {} also uses",
                    r.env.name(),
                    top.name()
                ),
                Some(format!("{}: {top_path}:{}", top.name(), top_use.line)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_evaluate_labels_and_expressions() {
        let pod = labels(&[("app", "triton"), ("tier", "serving")]);
        let mut s = Selector::labels(vec![("app", "triton")]);
        assert!(s.matches(&pod));
        s.exprs.push((
            "tier".into(),
            "In".into(),
            vec!["serving".into(), "batch".into()],
        ));
        assert!(s.matches(&pod));
        s.exprs
            .push(("canary".into(), "DoesNotExist".into(), vec![]));
        assert!(s.matches(&pod));
        s.exprs
            .push(("tier".into(), "NotIn".into(), vec!["serving".into()]));
        assert!(!s.matches(&pod));
        assert!(
            Selector::default().matches(&pod),
            "an empty selector selects all"
        );
        let bogus = Selector {
            labels: vec![],
            exprs: vec![("app".into(), "Like".into(), vec![])],
        };
        assert!(!bogus.matches(&pod));
    }
}
