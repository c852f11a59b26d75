//! Kubernetes manifests: every workload normalised into pod-template views, the effective
//! security context of each container, the per-object rules, and the facts the repository-wide
//! rules ([`crate::repo`]) need.

use mlsec_diagnostics::{Finding, Location, Rule, Severity};

use crate::dockerfile::{exposed_dashboard, secret_name, unpinned_image};
use crate::repo::{
    Env, FileFacts, ResourceKind, ResourceUse, Selecting, SelectingKind, Selector, Workload,
};
use crate::rules::{
    K8S_CAPABILITIES, K8S_ESCALATION, K8S_EXPOSED_DASHBOARD, K8S_HOST_NAMESPACES, K8S_HOST_PATH,
    K8S_IMAGE_UNPINNED, K8S_INFERENCE_PUBLIC, K8S_NO_MEMORY_LIMIT, K8S_PRIVILEGED, K8S_ROOT,
    K8S_SECRET_IN_ENV, K8S_UNCONFINED, K8S_WRITABLE_ROOT, RULES, YAML_UNPARSEABLE,
};
use crate::suppress::{self, Suppressions};
use crate::yaml::{self, Node};

/// YAML files larger than this are reported, not read.
pub const MAX_YAML_BYTES: u64 = 8 << 20;

/// Annotation prefix for object-level suppressions: `ignore.mlsec.io/K8S005: "reason"`.
pub const IGNORE_ANNOTATION: &str = "ignore.mlsec.io/";

/// What one object says about itself.
pub struct Meta<'a> {
    pub kind: &'a str,
    /// API group (`apps`, `serving.kserve.io`; empty for the core group).
    pub group: &'a str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    /// Line of `kind:`.
    pub line: u32,
    pub labels: Vec<(&'a str, &'a str)>,
    pub annotations: Vec<(&'a str, &'a str)>,
}

impl<'a> Meta<'a> {
    pub fn of(doc: &'a Node) -> Option<Meta<'a>> {
        let (line, kind) = doc.entry("kind")?;
        let api = doc.get("apiVersion")?.str()?;
        let meta = doc.get("metadata").unwrap_or(Node::null());
        Some(Meta {
            kind: kind.str()?,
            group: api.rsplit_once('/').map_or("", |(g, _)| g),
            name: meta.get("name").and_then(Node::str).unwrap_or(""),
            namespace: meta.get("namespace").and_then(Node::str),
            line,
            labels: meta.get("labels").map(Node::string_map).unwrap_or_default(),
            annotations: meta
                .get("annotations")
                .map(Node::string_map)
                .unwrap_or_default(),
        })
    }

    fn title(&self) -> String {
        if self.name.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}/{}", self.kind, self.name)
        }
    }

    /// Rule ids suppressed by `ignore.mlsec.io/ID` annotations.
    pub fn ignored(&self) -> Vec<&'a str> {
        self.annotations
            .iter()
            .filter_map(|(k, _)| k.strip_prefix(IGNORE_ANNOTATION))
            .collect()
    }
}

/// A pod template found inside a workload.
pub struct PodView<'a> {
    /// The PodSpec (or the PodSpec-like KServe component).
    pub spec: &'a Node,
    /// Dotted path of `spec` in the document.
    pub path: String,
    /// Labels the pods will carry.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(&'a str, &'a str)>,
    /// A KServe component: framework keys are containers and KServe sets default resources.
    pub kserve: bool,
}

const KSERVE_FRAMEWORKS: &[&str] = &[
    "model",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "lightgbm",
    "paddle",
    "pmml",
    "alibi",
    "art",
];

fn template_view<'a>(t: &'a Node, path: &str, extra: &[(String, String)]) -> Option<PodView<'a>> {
    let spec = t.get("spec")?;
    let meta = t.get("metadata").unwrap_or(Node::null());
    let mut labels: Vec<(String, String)> = extra.to_vec();
    labels.extend(
        meta.get("labels")
            .map(Node::string_map)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Some(PodView {
        spec,
        path: format!("{path}.spec"),
        labels,
        annotations: meta
            .get("annotations")
            .map(Node::string_map)
            .unwrap_or_default(),
        kserve: false,
    })
}

/// Every pod template of a workload, whatever its kind.
pub fn pod_views<'a>(doc: &'a Node, m: &Meta<'a>) -> Vec<PodView<'a>> {
    let spec = doc.get("spec").unwrap_or(Node::null());
    let own: Vec<(String, String)> = m
        .labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut views = Vec::new();
    match (m.group, m.kind) {
        ("", "Pod") => views.push(PodView {
            spec,
            path: "spec".into(),
            labels: own,
            annotations: m.annotations.clone(),
            kserve: false,
        }),
        ("batch", "CronJob") => {
            views.extend(
                spec.at(&["jobTemplate", "spec", "template"])
                    .and_then(|t| template_view(t, "spec.jobTemplate.spec.template", &[])),
            );
        }
        ("serving.kserve.io", "InferenceService") => {
            let mut labels = own;
            labels.push((
                "serving.kserve.io/inferenceservice".into(),
                m.name.to_owned(),
            ));
            for comp in ["predictor", "transformer", "explainer"] {
                if let Some(c) = spec.get(comp) {
                    views.push(PodView {
                        spec: c,
                        path: format!("spec.{comp}"),
                        labels: labels.clone(),
                        annotations: m.annotations.clone(),
                        kserve: true,
                    });
                }
            }
        }
        ("serving.kserve.io", "ServingRuntime" | "ClusterServingRuntime") => views.push(PodView {
            spec,
            path: "spec".into(),
            labels: own,
            annotations: m.annotations.clone(),
            kserve: false,
        }),
        ("machinelearning.seldon.io", "SeldonDeployment") => {
            let extra = [("seldon-deployment-id".to_owned(), m.name.to_owned())];
            for (i, p) in spec
                .get("predictors")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                for (j, c) in p
                    .get("componentSpecs")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    views.extend(template_view(
                        c,
                        &format!("spec.predictors[{i}].componentSpecs[{j}]"),
                        &extra,
                    ));
                }
            }
        }
        ("ray.io", kind @ ("RayCluster" | "RayService" | "RayJob")) => {
            let (cluster, prefix) = match kind {
                "RayService" => (spec.get("rayClusterConfig"), "spec.rayClusterConfig"),
                "RayJob" => (spec.get("rayClusterSpec"), "spec.rayClusterSpec"),
                _ => (Some(spec), "spec"),
            };
            let cluster = cluster.unwrap_or(Node::null());
            let extra = [("ray.io/cluster".to_owned(), m.name.to_owned())];
            if let Some(t) = cluster.at(&["headGroupSpec", "template"]) {
                views.extend(template_view(
                    t,
                    &format!("{prefix}.headGroupSpec.template"),
                    &extra,
                ));
            }
            for (i, w) in cluster
                .get("workerGroupSpecs")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if let Some(t) = w.get("template") {
                    views.extend(template_view(
                        t,
                        &format!("{prefix}.workerGroupSpecs[{i}].template"),
                        &extra,
                    ));
                }
            }
        }
        ("serving.knative.dev", "Service") => {
            let extra = [("serving.knative.dev/service".to_owned(), m.name.to_owned())];
            views.extend(
                spec.get("template")
                    .and_then(|t| template_view(t, "spec.template", &extra)),
            );
        }
        ("kubeflow.org", "Notebook") => {
            // The notebook controller labels the pods with the notebook's name.
            let extra = [("notebook-name".to_owned(), m.name.to_owned())];
            views.extend(
                spec.get("template")
                    .and_then(|t| template_view(t, "spec.template", &extra)),
            );
        }
        _ => {
            // Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, Kubeflow Notebooks, Argo
            // Rollouts and any other kind with a pod template.
            if let Some(t) = spec.get("template") {
                views.extend(template_view(t, "spec.template", &[]));
            }
            // Kubeflow training jobs: spec.pytorchReplicaSpecs.Master.template, ...
            for (k, v) in spec.entries() {
                let Some(key) = k.str() else { continue };
                if key.ends_with("ReplicaSpecs") {
                    for (role, r) in v.entries() {
                        if let Some(t) = r.get("template") {
                            let role = role.str().unwrap_or("?");
                            views.extend(template_view(
                                t,
                                &format!("spec.{key}.{role}.template"),
                                &[],
                            ));
                        }
                    }
                }
            }
        }
    }
    views
}

/// One container of a pod view.
pub struct Container<'a> {
    pub node: &'a Node,
    /// Line findings about the container as a whole point at (its list item or its key).
    pub line: u32,
    pub name: String,
    pub path: String,
    /// A KServe framework spec (`model:`, `sklearn:`, ...).
    pub framework: bool,
}

pub fn containers<'a>(v: &PodView<'a>) -> Vec<Container<'a>> {
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in v
            .spec
            .get(list)
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            out.push(Container {
                node: c,
                line: c.line,
                name: c.get("name").and_then(Node::str).unwrap_or("?").to_owned(),
                path: format!("{}.{list}[{i}]", v.path),
                framework: false,
            });
        }
    }
    if v.kserve {
        for fw in KSERVE_FRAMEWORKS {
            if let Some((line, c)) = v.spec.entry(fw)
                && matches!(c.value, yaml::Value::Map(_))
            {
                out.push(Container {
                    node: c,
                    line,
                    name: c.get("name").and_then(Node::str).unwrap_or(fw).to_owned(),
                    path: format!("{}.{fw}", v.path),
                    framework: true,
                });
            }
        }
    }
    out
}

/// Images, commands and arguments that identify an ML server, notebook or dashboard.
const ML_SERVERS: &[&str] = &[
    "vllm",
    "tritonserver",
    "torchserve",
    "tensorflow/serving",
    "tfserving",
    "ollama",
    "text-generation-inference",
    "llama.cpp",
    "llama-server",
    "llamacpp",
    "mlflow",
    "jupyter",
    "notebook",
    "rayproject/ray",
    "ray-ml",
    "gradio",
    "streamlit",
    "kserve",
    "seldon",
    "bentoml",
    "tensorboard",
    "localai",
    "sglang",
    "lmdeploy",
    "xinference",
    "openvino/model_server",
    "mlserver",
    "triton",
];

/// What ML server a container runs, if it looks like one.
pub fn ml_server(c: &Node) -> Option<String> {
    let image = c
        .get("image")
        .and_then(Node::str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut words = vec![image.clone()];
    for key in ["command", "args"] {
        for w in c.get(key).map(Node::items).unwrap_or_default() {
            words.push(w.str().unwrap_or("").to_ascii_lowercase());
        }
    }
    ML_SERVERS
        .iter()
        .find(|s| words.iter().any(|w| w.contains(*s)))
        .map(|s| (*s).to_owned())
}

const DANGEROUS_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "SYS_RAWIO",
    "DAC_READ_SEARCH",
    "BPF",
    "PERFMON",
    "SYS_BOOT",
];

/// Collects findings for one file, honouring comment and annotation suppressions.
struct Sink<'s> {
    display: &'s str,
    supp: &'s Suppressions,
    ignored: Vec<String>,
    /// The current document is a patch (a Kustomize overlay fragment): what it does not say is
    /// said by the base it patches, so only what it sets is judged.
    fragment: bool,
    findings: Vec<Finding>,
}

impl Sink<'_> {
    /// A finding about a field that is absent: none for a patch fragment.
    fn push_absent(
        &mut self,
        rule: &'static Rule,
        severity: Severity,
        line: u32,
        field: &str,
        message: String,
    ) {
        if !self.fragment {
            self.push(rule, severity, line, field, message, None);
        }
    }

    fn push(
        &mut self,
        rule: &'static Rule,
        severity: Severity,
        line: u32,
        field: &str,
        message: String,
        evidence: Option<String>,
    ) {
        if self.ignored.iter().any(|i| i == rule.id) || self.supp.covers(rule.id, line) {
            return;
        }
        let mut location = Location::file(self.display).line_col(line, 1);
        if !field.is_empty() {
            location = location.field(field);
        }
        let mut f = Finding::new(rule, location, message);
        f.severity = severity;
        f.evidence = evidence;
        self.findings.push(f);
    }
}

/// The effective value of a securityContext field: the container's, else the pod's.
fn effective<'a>(
    container_sc: &'a Node,
    pod_sc: &'a Node,
    key: &str,
) -> Option<(u32, &'a Node, bool)> {
    container_sc
        .entry(key)
        .map(|(l, n)| (l, n, true))
        .or_else(|| pod_sc.entry(key).map(|(l, n)| (l, n, false)))
}

/// Whether a document is a patch rather than a whole object: a Kustomize `$patch` directive, or
/// a container without an image (a real workload cannot start one; a strategic-merge patch names
/// the container only to change it).
fn is_fragment(doc: &Node, views: &[PodView]) -> bool {
    let mut directive = false;
    doc.each_key(&mut |k| directive |= k == "$patch" || k.starts_with("$setElementOrder/"));
    directive
        || views.iter().any(|v| {
            containers(v)
                .iter()
                .any(|c| !c.framework && c.node.get("image").is_none())
        })
}

fn check_container(out: &mut Sink, m: &Meta, v: &PodView, c: &Container) {
    let who = format!("{} container `{}`", m.title(), c.name);
    let sc = c.node.get("securityContext").unwrap_or(Node::null());
    let pod_sc = v.spec.get("securityContext").unwrap_or(Node::null());
    let line = c.line;
    let field = |k: &str| format!("{}.securityContext.{k}", c.path);

    let privileged = sc
        .entry("privileged")
        .filter(|(_, n)| n.bool() == Some(true));
    if let Some((l, _)) = privileged {
        out.push(
            &K8S_PRIVILEGED,
            Severity::High,
            l,
            &field("privileged"),
            format!("{who} runs privileged"),
            None,
        );
    }
    match sc.entry("allowPrivilegeEscalation") {
        Some((l, n)) if n.bool() == Some(true) => out.push(
            &K8S_ESCALATION,
            Severity::High,
            l,
            &field("allowPrivilegeEscalation"),
            format!("{who} sets allowPrivilegeEscalation: true"),
            None,
        ),
        Some((_, n)) if n.bool() == Some(false) => {}
        _ if privileged.is_none() => out.push_absent(
            &K8S_ESCALATION,
            Severity::Low,
            line,
            &field("allowPrivilegeEscalation"),
            format!("{who} does not set allowPrivilegeEscalation: false"),
        ),
        _ => {}
    }
    let caps = sc.get("capabilities").unwrap_or(Node::null());
    let added: Vec<String> = caps
        .get("add")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(Node::str)
        .map(|s| s.trim_start_matches("CAP_").to_ascii_uppercase())
        .filter(|s| DANGEROUS_CAPS.contains(&s.as_str()))
        .collect();
    if !added.is_empty() {
        let l = caps.entry("add").map_or(line, |(l, _)| l);
        out.push(
            &K8S_CAPABILITIES,
            Severity::High,
            l,
            &field("capabilities.add"),
            format!("{who} adds {}", added.join(", ")),
            Some(format!("capabilities.add: [{}]", added.join(", "))),
        );
    }
    let drops_all = caps
        .get("drop")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .any(|d| d.str().is_some_and(|s| s.eq_ignore_ascii_case("ALL")));
    if !drops_all && privileged.is_none() {
        out.push_absent(
            &K8S_CAPABILITIES,
            Severity::Low,
            line,
            &field("capabilities.drop"),
            format!("{who} keeps the default capabilities (no drop: [ALL])"),
        );
    }

    let user = effective(sc, pod_sc, "runAsUser");
    let non_root = effective(sc, pod_sc, "runAsNonRoot");
    match (user.and_then(|(l, n, _)| n.int().map(|u| (l, u))), non_root) {
        (Some((l, 0)), _) => out.push(
            &K8S_ROOT,
            Severity::High,
            l,
            &field("runAsUser"),
            format!("{who} runs as uid 0"),
            None,
        ),
        (Some(_), _) => {}
        (None, Some((_, n, _))) if n.bool() == Some(true) => {}
        (None, Some((l, ..))) => out.push(
            &K8S_ROOT,
            Severity::Medium,
            l,
            &field("runAsNonRoot"),
            format!("{who} may run as root: runAsNonRoot is not true and no non-zero runAsUser"),
            None,
        ),
        (None, None) => out.push_absent(
            &K8S_ROOT,
            Severity::Medium,
            line,
            &field("runAsNonRoot"),
            format!("{who} may run as root: no runAsNonRoot: true and no non-zero runAsUser"),
        ),
    }
    // Group 0 reads and writes whatever root's group owns, in the image and on volumes.
    for key in ["runAsGroup", "fsGroup"] {
        let at = if key == "fsGroup" {
            pod_sc.entry(key).map(|(l, n)| (l, n, false))
        } else {
            effective(sc, pod_sc, key)
        };
        if let Some((l, n, _)) = at
            && n.int() == Some(0)
        {
            out.push(
                &K8S_ROOT,
                Severity::Medium,
                l,
                &field(key),
                format!("{who} runs with {key}: 0, the root group"),
                None,
            );
        }
    }
    match sc.entry("readOnlyRootFilesystem") {
        Some((_, n)) if n.bool() == Some(true) => {}
        Some((l, _)) => out.push(
            &K8S_WRITABLE_ROOT,
            Severity::Low,
            l,
            &field("readOnlyRootFilesystem"),
            format!("{who} has a writable root filesystem"),
            None,
        ),
        None => out.push_absent(
            &K8S_WRITABLE_ROOT,
            Severity::Low,
            line,
            &field("readOnlyRootFilesystem"),
            format!("{who} has a writable root filesystem"),
        ),
    }

    let seccomp_annotation = v
        .annotations
        .iter()
        .chain(&m.annotations)
        .find(|(k, _)| *k == "seccomp.security.alpha.kubernetes.io/pod")
        .map(|(_, v)| *v);
    match effective(sc, pod_sc, "seccompProfile") {
        Some((l, n, _)) => {
            let ty = n.get("type").and_then(Node::str).unwrap_or("");
            if ty.eq_ignore_ascii_case("Unconfined") {
                out.push(
                    &K8S_UNCONFINED,
                    Severity::Medium,
                    l,
                    &field("seccompProfile"),
                    format!("{who} runs with seccomp Unconfined"),
                    None,
                );
            }
        }
        None if seccomp_annotation.is_some_and(|a| a != "unconfined") => {}
        None if seccomp_annotation == Some("unconfined") => out.push(
            &K8S_UNCONFINED,
            Severity::Medium,
            m.line,
            "metadata.annotations",
            format!("{who} runs with seccomp unconfined (annotation)"),
            None,
        ),
        None => out.push_absent(
            &K8S_UNCONFINED,
            Severity::Low,
            line,
            &field("seccompProfile"),
            format!("{who} has no seccomp profile"),
        ),
    }
    let apparmor_key = format!("container.apparmor.security.beta.kubernetes.io/{}", c.name);
    let apparmor_field = effective(sc, pod_sc, "appArmorProfile")
        .and_then(|(l, n, _)| n.get("type").and_then(Node::str).map(|t| (l, t)));
    let apparmor_note = v
        .annotations
        .iter()
        .chain(&m.annotations)
        .find(|(k, _)| *k == apparmor_key)
        .map(|(_, v)| (m.line, *v));
    if let Some((l, t)) = apparmor_field.or(apparmor_note)
        && t.eq_ignore_ascii_case("unconfined")
    {
        out.push(
            &K8S_UNCONFINED,
            Severity::Medium,
            l,
            &field("appArmorProfile"),
            format!("{who} runs with AppArmor unconfined"),
            None,
        );
    }

    // The command line, `sh -c "..."` strings split into their words.
    let words: Vec<String> = ["command", "args"]
        .iter()
        .filter_map(|k| c.node.get(k))
        .flat_map(Node::items)
        .filter_map(Node::str)
        .flat_map(|w| w.split_whitespace())
        .map(ToOwned::to_owned)
        .collect();
    if let Some(what) = exposed_dashboard(&words) {
        out.push(
            &K8S_EXPOSED_DASHBOARD,
            Severity::High,
            c.node
                .entry("args")
                .or(c.node.entry("command"))
                .map_or(line, |(l, _)| l),
            &format!("{}.args", c.path),
            format!("{who} starts {what}"),
            Some(words.join(" ")),
        );
    }

    let limits = c.node.at(&["resources", "limits"]).unwrap_or(Node::null());
    if limits.get("memory").and_then(Node::str).is_none() {
        // KServe gives a framework predictor the cluster's default resources
        // (inferenceservice-config), which the manifest cannot show: low.
        let (severity, message) = if c.framework {
            (
                Severity::Low,
                format!(
                    "{who} has no memory limit of its own: it gets the cluster's KServe default (inferenceservice-config), if one is set"
                ),
            )
        } else {
            (Severity::Medium, format!("{who} has no memory limit"))
        };
        out.push_absent(
            &K8S_NO_MEMORY_LIMIT,
            severity,
            c.node.entry("resources").map_or(line, |(l, _)| l),
            &format!("{}.resources.limits.memory", c.path),
            message,
        );
    }

    if let Some((l, img)) = c
        .node
        .entry("image")
        .and_then(|(l, n)| n.str().map(|s| (l, s)))
        && !img.contains('$')
        && !img.contains("{{")
        && let Some(what) = unpinned_image(img)
    {
        out.push(
            &K8S_IMAGE_UNPINNED,
            Severity::Medium,
            l,
            &format!("{}.image", c.path),
            format!("{who} image `{img}` {what}"),
            Some(format!("image: {img}")),
        );
    }

    for (i, e) in c
        .node
        .get("env")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(name) = e.get("name").and_then(Node::str) else {
            continue;
        };
        let Some((l, value)) = e.entry("value").and_then(|(l, n)| n.str().map(|s| (l, s))) else {
            continue;
        };
        if secret_name(name) && crate::dockerfile::credential_value(value) {
            out.push(
                &K8S_SECRET_IN_ENV,
                Severity::High,
                l,
                &format!("{}.env[{i}].value", c.path),
                format!("{who} sets {name} to a literal value"),
                Some(format!(
                    "{name}=<redacted, {} chars>",
                    value.chars().count()
                )),
            );
        }
    }
}

fn check_pod(out: &mut Sink, m: &Meta, v: &PodView) {
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if let Some((l, n)) = v.spec.entry(key)
            && n.bool() == Some(true)
        {
            out.push(
                &K8S_HOST_NAMESPACES,
                Severity::High,
                l,
                &format!("{}.{key}", v.path),
                format!("{} sets {key}: true", m.title()),
                None,
            );
        }
    }
    for (i, vol) in v
        .spec
        .get("volumes")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some((l, hp)) = vol.entry("hostPath") {
            let path = hp.get("path").and_then(Node::str).unwrap_or("?");
            let name = vol.get("name").and_then(Node::str).unwrap_or("?");
            out.push(
                &K8S_HOST_PATH,
                Severity::High,
                l,
                &format!("{}.volumes[{i}].hostPath", v.path),
                format!(
                    "{} mounts the node's `{path}` as volume `{name}`",
                    m.title()
                ),
                Some(format!("hostPath: {path}")),
            );
        }
    }
    for c in containers(v) {
        check_container(out, m, v, &c);
    }
}

fn check_inference_public(out: &mut Sink, m: &Meta) {
    let knative = m.group == "serving.knative.dev" && m.kind == "Service";
    if !(knative || (m.group == "serving.kserve.io" && m.kind == "InferenceService")) {
        return;
    }
    let local = m.labels.iter().any(|(k, v)| {
        matches!(
            *k,
            "networking.kserve.io/visibility"
                | "serving.knative.dev/visibility"
                | "networking.knative.dev/visibility"
        ) && *v == "cluster-local"
    });
    let auth = m
        .annotations
        .iter()
        .any(|(k, v)| k.ends_with("/enable-auth") && v.eq_ignore_ascii_case("true"));
    if !local && !auth {
        out.push(
            &K8S_INFERENCE_PUBLIC,
            Severity::High,
            m.line,
            "metadata.labels",
            format!(
                "{} is published on the ingress gateway without authentication",
                m.title()
            ),
            None,
        );
    }
}

fn selector_of(n: &Node, plain: bool) -> Selector {
    if plain {
        return Selector::labels(n.string_map());
    }
    let mut s = Selector::labels(
        n.get("matchLabels")
            .map(Node::string_map)
            .unwrap_or_default(),
    );
    for e in n
        .get("matchExpressions")
        .map(Node::items)
        .unwrap_or_default()
    {
        s.exprs.push((
            e.get("key").and_then(Node::str).unwrap_or("").to_owned(),
            e.get("operator")
                .and_then(Node::str)
                .unwrap_or("")
                .to_owned(),
            e.get("values")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .filter_map(Node::str)
                .map(str::to_owned)
                .collect(),
        ));
    }
    s
}

/// What a Service, NetworkPolicy, PDB or HPA selects, for the repository pass.
fn selecting(doc: &Node, m: &Meta, base: &Selecting) -> Option<Selecting> {
    let spec = doc.get("spec").unwrap_or(Node::null());
    let mut s = base.clone();
    match (m.group, m.kind) {
        ("", "Service") => {
            let (line, sel) = spec.entry("selector")?;
            s.line = line;
            s.kind = SelectingKind::Service;
            s.selector = selector_of(sel, true);
            if s.selector.is_empty() {
                return None;
            }
            let ty = spec
                .entry("type")
                .and_then(|(l, n)| n.str().map(|t| (l, t)));
            if let Some((l, t)) = ty {
                let internal = m.annotations.iter().any(|(k, v)| {
                    (k.contains("load-balancer-internal") && v.eq_ignore_ascii_case("true"))
                        || (k.ends_with("load-balancer-type") && v.eq_ignore_ascii_case("internal"))
                        || (*k == "service.beta.kubernetes.io/aws-load-balancer-scheme"
                            && *v == "internal")
                });
                let ranges = spec
                    .get("loadBalancerSourceRanges")
                    .is_some_and(|r| !r.items().is_empty());
                if t == "NodePort" || (t == "LoadBalancer" && !internal && !ranges) {
                    s.exposed = Some((t.to_owned(), l));
                }
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            let (line, sel) = spec.entry("podSelector")?;
            s.line = line;
            s.kind = SelectingKind::NetworkPolicy;
            s.selector = selector_of(sel, false);
        }
        ("policy", "PodDisruptionBudget") => {
            let (line, sel) = spec.entry("selector")?;
            s.line = line;
            s.kind = SelectingKind::Pdb;
            s.selector = selector_of(sel, false);
            if s.selector.is_empty() {
                return None;
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let (line, t) = spec.entry("scaleTargetRef")?;
            s.line = line;
            s.kind = SelectingKind::Hpa;
            s.target = Some((
                t.get("kind").and_then(Node::str).unwrap_or("").to_owned(),
                t.get("name").and_then(Node::str).unwrap_or("").to_owned(),
            ));
        }
        _ => return None,
    }
    Some(s)
}

/// Buckets, cloud roles and secrets named anywhere in a document.
fn resources(doc: &Node, namespace: Option<&str>, out: &mut Vec<(ResourceKind, String, u32)>) {
    doc.each_scalar(&mut |text, line| {
        let t = text.trim();
        for scheme in [
            "s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "wasb://",
            "wasbs://",
        ] {
            if let Some(rest) = t.strip_prefix(scheme) {
                let bucket = rest.split('/').next().unwrap_or("");
                if !bucket.is_empty() && !bucket.contains(['$', '{', '<']) {
                    let scheme = scheme.trim_end_matches("://").trim_end_matches('a');
                    out.push((ResourceKind::Bucket, format!("{scheme}://{bucket}"), line));
                }
            }
        }
        if let Some(rest) = t.strip_prefix("arn:aws:s3:::") {
            let bucket = rest.split('/').next().unwrap_or("");
            out.push((ResourceKind::Bucket, format!("s3://{bucket}"), line));
        } else if t.starts_with("arn:aws:iam::") && t.contains(":role/") {
            out.push((ResourceKind::Role, t.to_owned(), line));
        } else if t.starts_with("arn:aws:secretsmanager:") || t.starts_with("arn:aws:ssm:") {
            out.push((ResourceKind::Secret, t.to_owned(), line));
        } else if t.ends_with(".iam.gserviceaccount.com")
            && t.contains('@')
            && !t.contains(char::is_whitespace)
        {
            out.push((ResourceKind::Role, t.to_owned(), line));
        } else if t.starts_with("projects/") && t.contains("/secrets/") {
            out.push((ResourceKind::Secret, t.to_owned(), line));
        }
    });
    // Secrets referenced by name are shared only within one namespace.
    if let Some(ns) = namespace {
        let mut stack = vec![doc];
        while let Some(n) = stack.pop() {
            for (k, v) in n.entries() {
                let key = k.str().unwrap_or("");
                let name = match key {
                    "secretKeyRef" | "secretRef" => v.get("name").and_then(Node::str),
                    "secret" => v.get("secretName").and_then(Node::str),
                    _ => None,
                };
                if let Some(name) = name {
                    out.push((ResourceKind::Secret, format!("Secret {ns}/{name}"), k.line));
                }
                stack.push(v);
            }
            stack.extend(n.items());
        }
    }
    // ExternalSecrets: the remote key in the external store.
    if let Some(data) = doc.at(&["spec", "data"]) {
        for d in data.items() {
            if let Some((l, key)) = d.get("remoteRef").and_then(|r| r.entry("key"))
                && let Some(key) = key.str()
            {
                out.push((ResourceKind::Secret, format!("external secret {key}"), l));
            }
        }
    }
}

fn env_token(word: &str) -> Option<Env> {
    match word {
        "prod" | "production" | "prd" | "live" => Some(Env::Prod),
        "staging" | "stage" | "stg" | "preprod" | "uat" => Some(Env::Staging),
        "dev" | "development" | "sandbox" | "qa" | "test" => Some(Env::Dev),
        _ => None,
    }
}

fn env_of_words(s: &str) -> Option<Env> {
    let lower = s.to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find_map(env_token)
}

/// The environment a document belongs to: its namespace, then its labels, then its path.
pub fn environment(path: &str, m: Option<&Meta>) -> Option<Env> {
    if let Some(m) = m {
        if let Some(e) = m.namespace.and_then(env_of_words) {
            return Some(e);
        }
        for (k, v) in &m.labels {
            if matches!(
                *k,
                "env" | "environment" | "app.kubernetes.io/environment" | "stage" | "tier"
            ) && let Some(e) = env_of_words(v)
            {
                return Some(e);
            }
        }
    }
    env_of_words(path)
}

/// Scans one YAML file: per-object findings, and the facts for the repository pass.
pub fn scan_yaml(display: &str, src: &str) -> (Vec<Finding>, Vec<String>, FileFacts) {
    let supp = suppress::parse(src);
    let mut errors = Vec::new();
    for (line, id) in &supp.named {
        if !RULES.iter().any(|r| r.id == id) {
            errors.push(format!(
                "{display}:{line}: suppression names unknown rule `{id}` (see `mlsec rules`)"
            ));
        }
    }
    let parsed = yaml::parse(src);
    let mut facts = FileFacts {
        path: display.to_owned(),
        ..FileFacts::default()
    };
    let mut sink = Sink {
        display,
        supp: &supp,
        ignored: Vec::new(),
        fragment: false,
        findings: Vec::new(),
    };
    if let Some(e) = &parsed.error {
        let template = src.contains("{{");
        let (severity, message) = if template {
            (
                Severity::Info,
                format!(
                    "looks like a Helm/Go template and is not YAML until rendered ({}); render it (`helm template`) and scan the output",
                    e.message
                ),
            )
        } else {
            (
                Severity::Medium,
                format!(
                    "cannot parse YAML: {}; documents after this point were not checked",
                    e.message
                ),
            )
        };
        // A template fails wherever the parser trips; its first `{{` is the useful line.
        let line = if template {
            src.lines()
                .position(|l| l.contains("{{"))
                .map_or(1, |i| i as u32 + 1)
        } else {
            e.line.max(1)
        };
        sink.push(&YAML_UNPARSEABLE, severity, line, "", message, None);
    }
    // `kind: List` (kubectl's output, JSON or YAML) holds its objects under `items`.
    let docs: Vec<&Node> = parsed
        .docs
        .iter()
        .flat_map(|d| {
            let list =
                d.get("kind").and_then(Node::str) == Some("List") && d.get("items").is_some();
            if list {
                d.get("items")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .collect()
            } else {
                vec![d]
            }
        })
        .collect();
    for doc in docs {
        let meta = Meta::of(doc);
        let env = environment(display, meta.as_ref());
        let mut found = Vec::new();
        resources(doc, meta.as_ref().and_then(|m| m.namespace), &mut found);
        let ignored: Vec<String> = meta
            .as_ref()
            .map(|m| m.ignored().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        let suppressed_at = |line: u32| -> Vec<String> {
            supp.at(line)
                .map(str::to_owned)
                .chain(ignored.iter().cloned())
                .collect()
        };
        // Any document of a known environment counts, Kubernetes object or plain config.
        if let Some(env) = env {
            facts
                .resources
                .extend(found.into_iter().map(|(kind, name, line)| ResourceUse {
                    kind,
                    name,
                    env,
                    line,
                    suppressed: suppressed_at(line),
                }));
        }
        let Some(m) = meta else { continue };
        for id in &ignored {
            if !RULES.iter().any(|r| r.id == id) {
                errors.push(format!("{display}:{}: annotation {IGNORE_ANNOTATION}{id} names an unknown rule (see `mlsec rules`)", m.line));
            }
        }
        sink.ignored.clone_from(&ignored);
        check_inference_public(&mut sink, &m);
        let views = pod_views(doc, &m);
        sink.fragment = is_fragment(doc, &views);
        for v in &views {
            check_pod(&mut sink, &m, v);
        }
        // A runtime is a template for the InferenceServices that name it, and a patch is part
        // of a workload declared elsewhere: neither is a workload of its own.
        let template = matches!(m.kind, "ServingRuntime" | "ClusterServingRuntime");
        if !views.is_empty() && !template && !sink.fragment {
            let ml_kind = matches!(
                m.group,
                "serving.kserve.io"
                    | "machinelearning.seldon.io"
                    | "ray.io"
                    | "serving.knative.dev"
            ) || (m.group == "kubeflow.org" && m.kind == "Notebook");
            let mut w = Workload {
                kind: m.kind.to_owned(),
                name: m.name.to_owned(),
                namespace: m.namespace.map(str::to_owned),
                labels: Vec::new(),
                ports: ml_kind,
                ml_server: None,
                line: m.line,
                suppressed: suppressed_at(m.line),
            };
            for v in &views {
                w.labels.extend(v.labels.iter().cloned());
                for c in containers(v) {
                    w.ports |= c.node.get("ports").is_some_and(|p| !p.items().is_empty());
                    w.ml_server = w.ml_server.or_else(|| ml_server(c.node));
                }
            }
            if ml_kind && w.ml_server.is_none() {
                w.ml_server = Some(m.kind.to_owned());
            }
            facts.workloads.push(w);
        }
        let base = Selecting {
            kind: SelectingKind::Service,
            name: m.name.to_owned(),
            namespace: m.namespace.map(str::to_owned),
            selector: Selector::default(),
            target: None,
            exposed: None,
            line: m.line,
            suppressed: Vec::new(),
        };
        if let Some(mut s) = selecting(doc, &m, &base) {
            s.suppressed = suppressed_at(s.line);
            if let Some((_, l)) = &s.exposed {
                s.suppressed.extend(suppressed_at(*l));
            }
            facts.selecting.push(s);
        }
    }
    (sink.findings, errors, facts)
}

/// Whether a file is YAML the deployment scanner reads.
pub fn is_yaml(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

/// Whether a `.json` file is a Kubernetes manifest (`kubectl get -o json`, a rendered chart, a
/// Kubeflow pipeline's resources), judged by its first bytes: both `"apiVersion"` and `"kind"`.
/// JSON is YAML, so such a file is read and checked like one.
pub fn is_json_manifest(name: &str, head: &[u8]) -> bool {
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    name.to_ascii_lowercase().ends_with(".json") && has(b"\"apiVersion\"") && has(b"\"kind\"")
}
