//! The rules of the deployment scanner. Ids are stable: never renumber, never reuse.

use mlsec_diagnostics::{Rule, RuleExamples, rule};

const ML06: &[&str] = &["ML06"];
const ML05: &[&str] = &["ML05"];

rule!(ROOT_USER, "DF001", "dockerfile-root-user", Medium, &["CWE-250"], ML06,
    summary: "The image's final stage runs as root",
    what: "Follows the stages of a multi-stage Dockerfile and reports when the effective USER of the final stage is root: set explicitly (high), or never set in this file (medium).",
    why: "A model server that runs as root turns any deserialization or dependency bug into root in the container, and often on the node.",
    example: "`FROM python:3.11-slim` ... `CMD [\"python\", \"serve.py\"]` with no USER",
    fix: "Add a user and switch to it in the final stage: `RUN useradd -u 10001 app` then `USER 10001`.",
    refs: &["https://docs.docker.com/build/building/best-practices/#user"]);

rule!(BASE_UNPINNED, "DF002", "dockerfile-base-unpinned", Medium, &["CWE-494", "CWE-1357"], ML06,
    summary: "A base image is untagged or uses `latest`",
    what: "Flags FROM lines whose image has no tag and no digest, or the `latest` tag. Images named by a build argument are not judged.",
    why: "The image changes under you: builds are not reproducible and a compromised upstream push lands in your next build.",
    example: "`FROM pytorch/pytorch` or `FROM python:latest`",
    fix: "Pin a version tag, and preferably a digest: `FROM python:3.11-slim@sha256:...`.",
    refs: &[]);

rule!(DEVEL_BASE, "DF003", "dockerfile-devel-base", Low, &["CWE-1104"], ML06,
    summary: "The final image is built on a heavy base (-devel, a full distribution or the full python image)",
    what: "Flags a final stage based on a CUDA or framework -devel image, a full distribution (ubuntu, debian, centos, ... without a slim tag), the full python image, Anaconda or a Jupyter notebook image. Build stages are left alone.",
    why: "Such images are hundreds of MB to several GB larger and carry compilers, package managers and hundreds of packages with their CVEs; serving needs only the runtime.",
    example: "`FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04` as the only stage",
    fix: "Build in a full or -devel stage, then copy the artefacts into a -slim, -runtime or distroless final stage.",
    refs: &[]);

rule!(ADD_URL, "DF004", "dockerfile-add-url", Medium, &["CWE-494"], ML06,
    summary: "ADD downloads a remote file without a checksum",
    what: "Flags ADD instructions whose source is an http(s) URL and that have no --checksum.",
    why: "Whatever the server returns at build time (a swapped model, a script) goes into the image unverified.",
    example: "`ADD https://example.com/model.bin /models/`",
    fix: "Use `ADD --checksum=sha256:...`, or download in a RUN step and verify the hash.",
    refs: &["https://docs.docker.com/reference/dockerfile/#add---checksum"]);

rule!(SECRET_IN_ENV, "DF005", "dockerfile-secret-in-env", High, &["CWE-798", "CWE-538"], ML06,
    summary: "A secret is baked into the image through ENV or ARG",
    what: "Flags ENV and ARG entries whose name has a whole token like PASSWORD, SECRET, TOKEN or API_KEY and that set a literal value. Known non-secrets (TOKENIZERS_PARALLELISM, MAX_TOKENS, ...) are allowed. Values are never printed.",
    why: "ENV values are stored in the image config and ARG values in its history: anyone who can pull the image reads them.",
    example: "`ENV HF_TOKEN=...` or `ARG OPENAI_API_KEY=...`",
    fix: "Pass secrets at run time (orchestrator secrets), or use BuildKit `RUN --mount=type=secret` during the build.",
    refs: &["https://docs.docker.com/build/building/secrets/"]);

rule!(DASHBOARD_CMD, "DF006", "dockerfile-exposed-dashboard", High, &["CWE-306"], ML05,
    summary: "The container starts Jupyter, MLflow, TensorBoard or Ray on every interface without auth",
    what: "Flags CMD, ENTRYPOINT and RUN lines that start jupyter with an empty token or password, or mlflow, tensorboard or a Ray head with --host/--ip 0.0.0.0.",
    why: "These servers run code or serve models and artefacts to anyone who reaches the port.",
    example: "`CMD jupyter lab --ip=0.0.0.0 --NotebookApp.token=''`",
    fix: "Keep auth on (token, password or an authenticating proxy) and bind to localhost behind it.",
    refs: &["https://jupyter-server.readthedocs.io/en/latest/operators/security.html"]);

const ML05_06: &[&str] = &["ML05", "ML06"];

rule!(K8S_PRIVILEGED, "K8S001", "k8s-privileged-container", High, &["CWE-250"], ML06,
    summary: "A container runs privileged",
    what: "Flags containers (including init and ephemeral containers, and KServe, Seldon, Ray and Kubeflow pod templates) whose securityContext sets privileged: true.",
    why: "A privileged container has every capability and all host devices: escaping to the node is a matter of minutes.",
    example: "`securityContext: {privileged: true}` on a model server container",
    fix: "Remove privileged. GPU access needs the device plugin's resource (`nvidia.com/gpu`), not privileged mode.",
    refs: &["https://kubernetes.io/docs/concepts/security/pod-security-standards/"]);

rule!(K8S_ESCALATION, "K8S002", "k8s-privilege-escalation", Medium, &["CWE-269"], ML06,
    summary: "A container may gain more privileges than its parent process",
    what: "Flags containers whose effective allowPrivilegeEscalation is true: set explicitly (high), or not set to false (low; Kubernetes then allows setuid binaries to escalate).",
    why: "setuid binaries or file capabilities inside the image turn a code-execution bug into root in the container.",
    example: "a container without `allowPrivilegeEscalation: false`",
    fix: "Set `securityContext.allowPrivilegeEscalation: false` on every container.",
    refs: &["https://kubernetes.io/docs/tasks/configure-pod-container/security-context/"]);

rule!(K8S_CAPABILITIES, "K8S003", "k8s-capabilities", High, &["CWE-250"], ML06,
    summary: "A container adds dangerous capabilities, or keeps the default set",
    what: "Flags capabilities.add with ALL, SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, SYS_RAWIO, DAC_READ_SEARCH, BPF or PERFMON (high), and containers that do not drop ALL (low).",
    why: "These capabilities are container escapes or host-wide network and process control; the default set still includes NET_RAW and CHOWN.",
    example: "`capabilities: {add: [SYS_ADMIN]}`",
    fix: "Drop ALL and add back only what the process needs: `capabilities: {drop: [ALL]}`.",
    refs: &["https://kubernetes.io/docs/concepts/security/pod-security-standards/"]);

rule!(K8S_ROOT, "K8S004", "k8s-runs-as-root", Medium, &["CWE-250"], ML06,
    summary: "A container runs, or may run, as root",
    what: "Computes the effective runAsUser and runAsNonRoot (container over pod securityContext) and flags uid 0 (high), or neither a non-zero runAsUser nor runAsNonRoot: true (medium: the image's USER decides).",
    why: "A model server running as root turns any deserialization or dependency bug into root in the container and a short step from the node.",
    example: "a Deployment with no securityContext",
    fix: "Set `runAsNonRoot: true` and a non-zero `runAsUser` in the pod securityContext.",
    refs: &["https://kubernetes.io/docs/concepts/security/pod-security-standards/"]);

rule!(K8S_WRITABLE_ROOT, "K8S005", "k8s-writable-root-filesystem", Low, &["CWE-732"], ML06,
    summary: "A container's root filesystem is writable",
    what: "Flags containers without readOnlyRootFilesystem: true.",
    why: "An attacker who gets code execution can drop tools, modify the served model or the server code, and persist until the pod is replaced.",
    example: "a container with no `readOnlyRootFilesystem`",
    fix: "Set `readOnlyRootFilesystem: true` and mount an emptyDir where the server needs scratch space (caches, /tmp).",
    refs: &[]);

rule!(K8S_HOST_PATH, "K8S006", "k8s-host-path", High, &["CWE-668"], ML06,
    summary: "A pod mounts a directory of the node",
    what: "Flags hostPath volumes; the evidence names the path (the container runtime socket and / are the worst).",
    why: "hostPath exposes the node's files to the pod: credentials, other pods' data, the container runtime.",
    example: "`volumes: [{name: models, hostPath: {path: /mnt/models}}]`",
    fix: "Use a PersistentVolumeClaim, a CSI driver or an init container that downloads the model.",
    refs: &["https://kubernetes.io/docs/concepts/storage/volumes/#hostpath"]);

rule!(K8S_HOST_NAMESPACES, "K8S007", "k8s-host-namespaces", High, &["CWE-668"], ML06,
    summary: "A pod shares the node's network, process or IPC namespace",
    what: "Flags hostNetwork, hostPID and hostIPC set to true.",
    why: "hostNetwork bypasses NetworkPolicies and exposes node-local services (kubelet, metadata); hostPID lets the pod see and signal every process on the node.",
    example: "`hostNetwork: true` on a Ray worker for NCCL performance",
    fix: "Remove them; for multi-node GPU traffic use the CNI's RDMA/SR-IOV support instead of hostNetwork.",
    refs: &[]);

rule!(K8S_NO_MEMORY_LIMIT, "K8S008", "k8s-no-memory-limit", Medium, &["CWE-770"], ML06,
    summary: "A container has no memory limit",
    what: "Flags containers without resources.limits.memory. KServe framework containers are left out (KServe's webhook sets defaults).",
    why: "A large prompt batch or a crafted input can grow an ML process until the node runs out of memory and evicts its neighbours.",
    example: "`resources: {requests: {memory: 8Gi}}` with no limits",
    fix: "Set `resources.limits.memory` (and a GPU count in limits for GPU workloads).",
    refs: &["https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"]);

rule!(K8S_UNCONFINED, "K8S009", "k8s-unconfined-profile", Low, &["CWE-693"], ML06,
    summary: "A container runs without a seccomp or AppArmor profile",
    what: "Flags an effective seccompProfile of Unconfined or an AppArmor profile (field or annotation) of unconfined (medium), and no seccomp profile at all (low: kubelets without SeccompDefault run unconfined).",
    why: "Seccomp blocks the syscalls most kernel exploits use to leave the container.",
    example: "`seccompProfile: {type: Unconfined}`",
    fix: "Set `securityContext.seccompProfile.type: RuntimeDefault` in the pod securityContext.",
    refs: &["https://kubernetes.io/docs/tutorials/security/seccomp/"]);

rule!(K8S_IMAGE_UNPINNED, "K8S010", "k8s-image-unpinned", Medium, &["CWE-494", "CWE-1357"], ML06,
    summary: "A container image is untagged or uses `latest`",
    what: "Flags container images with no tag and no digest, or the `latest` tag. Templated images (`${...}`, `{{...}}`) are not judged.",
    why: "Every pod restart may pull different code; a compromised upstream push reaches production without a deploy.",
    example: "`image: vllm/vllm-openai:latest`",
    fix: "Pin a version tag and preferably a digest: `image: vllm/vllm-openai:v0.6.3@sha256:...`.",
    refs: &[]);

rule!(K8S_SECRET_IN_ENV, "K8S011", "k8s-secret-in-env", High, &["CWE-798", "CWE-312"], ML06,
    summary: "A secret is written as a literal env value in a manifest",
    what: "Flags env entries whose name has a whole token like PASSWORD, SECRET, TOKEN or API_KEY and that set a literal value instead of valueFrom. Known non-secrets are allowed. Values are never printed.",
    why: "The manifest is in Git, in the API server and in every `kubectl get -o yaml`: anyone with read access has the key.",
    example: "`env: [{name: HF_TOKEN, value: ...}]`",
    fix: "Store it in a Secret (or an external secret store) and use `valueFrom.secretKeyRef`.",
    refs: &["https://kubernetes.io/docs/concepts/configuration/secret/"]);

rule!(K8S_EXPOSED_DASHBOARD, "K8S012", "k8s-exposed-dashboard", High, &["CWE-306"], ML05,
    summary: "A pod starts Jupyter without a token, or MLflow, TensorBoard or Ray on every interface",
    what: "Flags containers whose command and args start jupyter with an empty token or password (--ServerApp.token='', --NotebookApp.password=''), or mlflow, tensorboard or a Ray head with --host/--ip 0.0.0.0, also inside `sh -c` strings.",
    why: "Anyone who reaches the pod (any other pod, without a NetworkPolicy) gets a Python shell or the models and artefacts.",
    example: "`args: [jupyter, lab, --ip=0.0.0.0, --ServerApp.token=]`",
    fix: "Keep Jupyter's token or password (from a Secret), bind servers to localhost behind an authenticating proxy.",
    refs: &["https://jupyter-server.readthedocs.io/en/latest/operators/security.html"]);

rule!(K8S_SERVICE_EXPOSED, "K8S020", "k8s-service-exposed", Medium, &["CWE-306", "CWE-668"], ML05_06,
    summary: "A Service exposes pods outside the cluster",
    what: "Flags Services of type LoadBalancer (unless marked internal or limited by loadBalancerSourceRanges) or NodePort. High when the selected pods run an ML server, notebook or dashboard (vLLM, Triton, TorchServe, TF Serving, Ollama, MLflow, Jupyter, Ray, Gradio, ...), which have no authentication of their own.",
    why: "Inference servers and ML dashboards answer anyone who reaches them: model extraction, prompt abuse, cost abuse and, for Jupyter and Ray, code execution.",
    example: "`type: LoadBalancer` in front of a vLLM Deployment",
    fix: "Keep the Service ClusterIP and expose it through an authenticating gateway (`mlsec gateway`, an Ingress with auth), or restrict loadBalancerSourceRanges.",
    refs: &["https://kubernetes.io/docs/concepts/services-networking/service/"]);

rule!(K8S_INFERENCE_PUBLIC, "K8S021", "k8s-inference-public", High, &["CWE-306"], ML05_06,
    summary: "A KServe InferenceService or Knative Service is published on the ingress gateway",
    what: "Flags serving.kserve.io InferenceServices and serving.knative.dev Services without the cluster-local visibility label and without an enable-auth annotation.",
    why: "KServe publishes every InferenceService on the external ingress gateway by default, with no authentication: anyone who can reach it can query and probe the model.",
    example: "an InferenceService without `networking.kserve.io/visibility: cluster-local`",
    fix: "Label it `networking.kserve.io/visibility: cluster-local` and expose it through an authenticating gateway, or enable auth (`security.opendatahub.io/enable-auth: \"true\"` on OpenShift AI).",
    refs: &["https://kserve.github.io/website/latest/modelserving/v1beta1/serving_runtime/"]);

rule!(K8S_NO_NETWORK_POLICY, "K8S030", "k8s-no-network-policy", Medium, &["CWE-923"], ML05_06,
    summary: "No NetworkPolicy in the scanned manifests selects a serving workload",
    what: "For workloads that serve (they declare ports, a Service selects them, or they are InferenceServices, Seldon, Ray or notebooks), checks that a NetworkPolicy in the same namespace selects their pods (matchLabels and matchExpressions are evaluated).",
    why: "Without a policy every pod in the cluster, including a compromised one, can reach the model server and its admin ports directly, bypassing any gateway.",
    example: "a Deployment and Service for Triton, and no NetworkPolicy",
    fix: "Add a NetworkPolicy that selects the pods and allows ingress only from the gateway or ingress controller.",
    refs: &["https://kubernetes.io/docs/concepts/services-networking/network-policies/"]);

rule!(K8S_ORPHAN, "K8S031", "k8s-orphan-selector", Low, &["CWE-1164"], ML06,
    summary: "A Service, HPA, NetworkPolicy or PodDisruptionBudget selects no workload",
    what: "Across all scanned manifests, flags Services, NetworkPolicies and PodDisruptionBudgets whose selector matches no pod template in their namespace, and HorizontalPodAutoscalers whose target does not exist. Only namespaces with at least one scanned workload are judged.",
    why: "Orphans are what is left of removed deployments: a policy that protects nothing gives false assurance, and an orphaned Service starts routing to whatever later matches its labels.",
    example: "a NetworkPolicy for `app: triton-v1` after the Deployment was relabelled `triton-v2`",
    fix: "Fix the selector or delete the object.",
    refs: &[]);

rule!(ENV_SHARED, "K8S040", "env-shared-resource", High, &["CWE-653"], ML06,
    summary: "Two environments (dev, staging, prod) share a bucket, a secret or a cloud role",
    what: "Assigns each manifest and config to an environment from its namespace, labels and path (overlays/prod, values-dev.yaml, ...), collects the buckets (s3://, gs://, Azure), cloud roles (IAM role ARNs, GCP service accounts, Azure client ids) and secrets (secret manager ids, ExternalSecret keys, Secrets in one namespace) each uses, and flags those used by more than one environment. High when production is one of them.",
    why: "A dev workload with the production model bucket or role can overwrite or poison production models, and its weaker controls become production's.",
    example: "`storageUri: s3://models-prod/llm` in `overlays/dev/isvc.yaml`",
    fix: "Give each environment its own buckets, roles and secrets, and grant cross-environment reads explicitly and read-only.",
    refs: &[]);

rule!(YAML_UNPARSEABLE, "K8S900", "yaml-unparseable", Medium, &["CWE-20"], ML06,
    summary: "A YAML file could not be parsed, so it was not (fully) checked",
    what: "Reports YAML files that fail to parse or exceed the limits (size, nesting, alias expansion), with the line. Documents before the error are still checked. Helm and Go templates are reported as info: render them (`helm template`) and scan the output.",
    why: "A file that is skipped silently looks clean.",
    example: "`key: [unclosed`",
    fix: "Fix the syntax, or scan the rendered manifests.",
    refs: &[]);

/// Every rule of this scanner.
pub static RULES: &[&Rule] = &[
    &ROOT_USER,
    &BASE_UNPINNED,
    &DEVEL_BASE,
    &ADD_URL,
    &SECRET_IN_ENV,
    &DASHBOARD_CMD,
    &K8S_PRIVILEGED,
    &K8S_ESCALATION,
    &K8S_CAPABILITIES,
    &K8S_ROOT,
    &K8S_WRITABLE_ROOT,
    &K8S_HOST_PATH,
    &K8S_HOST_NAMESPACES,
    &K8S_NO_MEMORY_LIMIT,
    &K8S_UNCONFINED,
    &K8S_IMAGE_UNPINNED,
    &K8S_SECRET_IN_ENV,
    &K8S_EXPOSED_DASHBOARD,
    &K8S_SERVICE_EXPOSED,
    &K8S_INFERENCE_PUBLIC,
    &K8S_NO_NETWORK_POLICY,
    &K8S_ORPHAN,
    &ENV_SHARED,
    &YAML_UNPARSEABLE,
];

/// Positive (must fire) and negative (must stay quiet) Dockerfiles for each rule.
pub static EXAMPLES: &[RuleExamples] = &[
    (
        &ROOT_USER,
        &[
            "FROM python:3.11-slim\nCMD [\"python\", \"serve.py\"]\n",
            "FROM python:3.11-slim\nUSER app\nUSER root\nCMD serve\n",
            "FROM python:3.11-slim AS base\nUSER 0\nFROM base\nCMD serve\n",
        ],
        &[
            "FROM python:3.11-slim\nRUN useradd -u 10001 app\nUSER 10001\nCMD serve\n",
            "FROM python:3.11-slim AS base\nUSER app\nFROM base\nCMD serve\n",
            "FROM python:3.11 AS build\nRUN make\nFROM gcr.io/distroless/python3-debian12:nonroot\nCOPY --from=build /app /app\n",
        ],
    ),
    (
        &BASE_UNPINNED,
        &[
            "FROM pytorch/pytorch\nUSER 1000\n",
            "FROM python:latest\nUSER 1000\n",
            "FROM --platform=linux/amd64 ubuntu AS b\nUSER 1000\n",
        ],
        &[
            "FROM python:3.11-slim\nUSER 1000\n",
            "FROM python@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nUSER 1000\n",
            "ARG BASE=python:3.11\nFROM ${BASE}\nUSER 1000\n",
            "FROM python:3.11 AS b\nFROM b\nUSER 1000\n",
            "FROM scratch\nUSER 1000\n",
        ],
    ),
    (
        &DEVEL_BASE,
        &[
            "FROM python:3.11\nUSER 1000\n",
            "FROM docker.io/library/ubuntu:22.04\nUSER 1000\n",
            "FROM continuumio/anaconda3:2024.06-1\nUSER 1000\n",
            "FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04\nUSER 1000\n",
            "FROM pytorch/pytorch:2.3.0-cuda12.1-cudnn8-devel\nUSER 1000\n",
        ],
        &[
            "FROM python:3.11-slim\nUSER 1000\n",
            "FROM ubuntu:22.04 AS build\nRUN make\nFROM gcr.io/distroless/cc-debian12\nUSER 1000\n",
            "FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04\nUSER 1000\n",
            "FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04 AS build\nRUN make\nFROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04\nUSER 1000\n",
        ],
    ),
    (
        &ADD_URL,
        &["FROM python:3.11\nADD https://example.com/model.bin /models/\nUSER 1000\n"],
        &[
            "FROM python:3.11\nADD --checksum=sha256:0123 https://example.com/model.bin /models/\nUSER 1000\n",
            "FROM python:3.11\nADD model.bin /models/\nUSER 1000\n",
        ],
    ),
    (
        &SECRET_IN_ENV,
        &[
            "FROM python:3.11\nENV HF_TOKEN=hf_abc\nUSER 1000\n",
            "FROM python:3.11\nARG OPENAI_API_KEY=sk-123\nUSER 1000\n",
            "FROM python:3.11\nENV DB_PASSWORD secretvalue\nUSER 1000\n",
            "FROM python:3.11\nENV A=1 WANDB_API_KEY=abc\nUSER 1000\n",
        ],
        &[
            "FROM python:3.11\nENV TOKENIZERS_PARALLELISM=false\nUSER 1000\n",
            "FROM python:3.11\nENV MAX_NEW_TOKENS=512\nUSER 1000\n",
            "FROM python:3.11\nARG HF_TOKEN\nUSER 1000\n",
            "FROM python:3.11\nENV HF_TOKEN=$HF_TOKEN\nUSER 1000\n",
            "FROM python:3.11\nENV KEYBOARD=us\nUSER 1000\n",
        ],
    ),
    (
        &DASHBOARD_CMD,
        &[
            "FROM python:3.11\nUSER 1000\nCMD jupyter lab --ip=0.0.0.0 --NotebookApp.token=''\n",
            "FROM python:3.11\nUSER 1000\nCMD [\"jupyter\", \"notebook\", \"--ip\", \"0.0.0.0\", \"--ServerApp.token=\"]\n",
            "FROM python:3.11\nUSER 1000\nENTRYPOINT [\"mlflow\", \"server\", \"--host\", \"0.0.0.0\"]\n",
            "FROM python:3.11\nUSER 1000\nCMD tensorboard --logdir /logs --bind_all\n",
        ],
        &[
            "FROM python:3.11\nUSER 1000\nCMD jupyter lab --ip=0.0.0.0\n",
            "FROM python:3.11\nUSER 1000\nCMD mlflow server --host 127.0.0.1\n",
            "FROM python:3.11\nUSER 1000\nCMD [\"uvicorn\", \"app:app\", \"--host\", \"0.0.0.0\"]\n",
        ],
    ),
];

/// Positive and negative manifests for each Kubernetes and repository rule. Each is one YAML
/// stream, scanned as the whole repository (so the cross-object rules see every document).
pub static K8S_EXAMPLES: &[RuleExamples] = &[
    (
        &K8S_PRIVILEGED,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    securityContext: {privileged: true}\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      initContainers:\n      - {name: fix, image: busybox:1, securityContext: {privileged: yes}}\n      containers: [{name: c, image: x:1}]\n",
            "apiVersion: ray.io/v1\nkind: RayCluster\nmetadata: {name: r}\nspec:\n  headGroupSpec:\n    template:\n      spec:\n        containers: [{name: head, image: rayproject/ray:2.9.0}]\n  workerGroupSpecs:\n  - template:\n      spec:\n        containers: [{name: w, image: rayproject/ray:2.9.0, securityContext: {privileged: true}}]\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    securityContext: {privileged: false}\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {privileged: \"true\"}\n",
        ],
    ),
    (
        &K8S_ESCALATION,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1, securityContext: {allowPrivilegeEscalation: true}}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1}]\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1, securityContext: {allowPrivilegeEscalation: false}}]\n",
        ],
    ),
    (
        &K8S_CAPABILITIES,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1, securityContext: {capabilities: {add: [SYS_ADMIN], drop: [ALL]}}}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1}]\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1, securityContext: {capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}}]\n",
        ],
    ),
    (
        &K8S_ROOT,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true, runAsGroup: 0}\n  containers: [{name: c, image: x:1}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true, fsGroup: 0}\n  containers: [{name: c, image: x:1}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers: [{name: c, image: x:1, securityContext: {runAsUser: 0}}]\n",
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\nspec:\n  predictor:\n    model: {modelFormat: {name: sklearn}, storageUri: gs://b/m}\n",
        ],
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        args: [--v=2]\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      $setElementOrder/containers: [{name: c}]\n      containers:\n      - {name: c, image: x:2}\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true, runAsGroup: 1000, fsGroup: 1000}\n  containers: [{name: c, image: x:1}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers: [{name: c, image: x:1}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {runAsUser: 0}\n  containers: [{name: c, image: x:1, securityContext: {runAsUser: 1000}}]\n",
        ],
    ),
    (
        &K8S_WRITABLE_ROOT,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1}]\n",
        ],
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        args: [--v=2]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1, securityContext: {readOnlyRootFilesystem: true}}]\n",
        ],
    ),
    (
        &K8S_HOST_PATH,
        &[
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: j}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          volumes: [{name: sock, hostPath: {path: /var/run/docker.sock}}]\n          containers: [{name: c, image: x:1}]\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes: [{name: m, persistentVolumeClaim: {claimName: models}}]\n  containers: [{name: c, image: x:1}]\n",
        ],
    ),
    (
        &K8S_HOST_NAMESPACES,
        &[
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{name: c, image: x:1}]\n",
        ],
        &[
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      hostNetwork: false\n      containers: [{name: c, image: x:1}]\n",
        ],
    ),
    (
        &K8S_NO_MEMORY_LIMIT,
        &[
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\nspec:\n  predictor:\n    model: {modelFormat: {name: sklearn}, storageUri: gs://b/m}\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1, resources: {requests: {memory: 8Gi}}}]\n",
            "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: s}\nspec:\n  predictors:\n  - componentSpecs:\n    - spec:\n        containers: [{name: classifier, image: seldonio/mlserver:1.3.5}]\n",
        ],
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        args: [--v=2]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1, resources: {limits: {memory: 8Gi}}}]\n",
        ],
    ),
    (
        &K8S_UNCONFINED,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x:1}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers: [{name: c, image: x:1, securityContext: {seccompProfile: {type: Unconfined}}}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {container.apparmor.security.beta.kubernetes.io/c: unconfined}\nspec:\n  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers: [{name: c, image: x:1}]\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  securityContext: {seccompProfile: {type: RuntimeDefault}}\n  containers: [{name: c, image: x:1}]\n",
        ],
    ),
    (
        &K8S_IMAGE_UNPINNED,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: vllm/vllm-openai:latest}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: ollama/ollama}]\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: \"vllm/vllm-openai:v0.6.3\"}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: \"registry.local:5000/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]\n",
        ],
    ),
    (
        &K8S_SECRET_IN_ENV,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    env:\n    - {name: HF_TOKEN, value: not-a-real-value}\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    env:\n    - {name: HF_TOKEN, valueFrom: {secretKeyRef: {name: hf, key: token}}}\n    - {name: TOKENIZERS_PARALLELISM, value: \"false\"}\n    - {name: MAX_TOKENS, value: \"512\"}\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x:1\n    env:\n    - {name: SECRET_NAME, value: kserve-webhook-server-cert}\n    - {name: WEBHOOK_SECRET, value: kserve-webhook-server-secret}\n    - {name: ENABLE_TOKEN_AUTH, value: \"true\"}\n    - {name: USE_API_KEY, value: \"false\"}\n    - {name: HF_TOKEN_PATH, value: /var/run/secrets/hf}\n    - {name: DB_PASSWORD, value: \"https://vault.local/db\"}\n",
        ],
    ),
    (
        &K8S_EXPOSED_DASHBOARD,
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: nb}\nspec:\n  containers: [{name: c, image: jupyter/base-notebook:2024-05-27, args: [jupyter, lab, --ip=0.0.0.0, \"--ServerApp.token=\"]}]\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nb}\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: x:1\n        command: [sh, -c]\n        args: [\"jupyter notebook --NotebookApp.token='' --NotebookApp.password=''\"]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: ml}\nspec:\n  containers: [{name: c, image: x:1, command: [mlflow, server, --host, 0.0.0.0]}]\n",
        ],
        &[
            "apiVersion: v1\nkind: Pod\nmetadata: {name: nb}\nspec:\n  containers: [{name: c, image: x:1, args: [jupyter, lab, --ip=0.0.0.0]}]\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: ml}\nspec:\n  containers: [{name: c, image: x:1, command: [mlflow, server, --host, 127.0.0.1]}]\n",
        ],
    ),
    (
        &K8S_SERVICE_EXPOSED,
        &[
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  selector: {app: vllm}\n",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: NodePort\n  selector: {app: jupyter}\n",
        ],
        &[
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: vllm}\n",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations: {service.beta.kubernetes.io/aws-load-balancer-internal: \"true\"}\nspec:\n  type: LoadBalancer\n  selector: {app: vllm}\n",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  loadBalancerSourceRanges: [10.0.0.0/8]\n  selector: {app: vllm}\n",
        ],
    ),
    (
        &K8S_INFERENCE_PUBLIC,
        &[
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m}\nspec:\n  predictor:\n    model: {modelFormat: {name: sklearn}, storageUri: gs://b/m}\n",
        ],
        &[
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n  labels: {networking.kserve.io/visibility: cluster-local}\nspec:\n  predictor:\n    model: {modelFormat: {name: sklearn}, storageUri: gs://b/m}\n",
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: m\n  annotations: {security.opendatahub.io/enable-auth: \"true\"}\nspec:\n  predictor:\n    model: {modelFormat: {name: sklearn}, storageUri: gs://b/m}\n",
        ],
    ),
    (
        &K8S_NO_NETWORK_POLICY,
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: triton, namespace: ml}\nspec:\n  template:\n    metadata: {labels: {app: triton}}\n    spec:\n      containers: [{name: c, image: nvcr.io/nvidia/tritonserver:24.05-py3, ports: [{containerPort: 8000}]}]\n",
        ],
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        args: [--v=2]\n",
            "apiVersion: serving.kserve.io/v1alpha1\nkind: ClusterServingRuntime\nmetadata: {name: kserve-sklearnserver}\nspec:\n  supportedModelFormats: [{name: sklearn, version: \"1\"}]\n  containers: [{name: kserve-container, image: kserve/sklearnserver:v0.14.1, args: [--model_name={{.Name}}]}]\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: triton, namespace: ml}\nspec:\n  template:\n    metadata: {labels: {app: triton}}\n    spec:\n      containers: [{name: c, image: nvcr.io/nvidia/tritonserver:24.05-py3, ports: [{containerPort: 8000}]}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: triton, namespace: ml}\nspec:\n  podSelector:\n    matchExpressions: [{key: app, operator: In, values: [triton]}]\n",
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: train}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: trainer:1}]\n",
        ],
    ),
    (
        &K8S_ORPHAN,
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: triton-v2}\nspec:\n  template:\n    metadata: {labels: {app: triton-v2}}\n    spec:\n      containers: [{name: c, image: x:1}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: old}\nspec:\n  podSelector: {matchLabels: {app: triton-v1}}\n",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    metadata: {labels: {app: a}}\n    spec:\n      containers: [{name: c, image: x:1}]\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: b}\n",
        ],
        &[
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  template:\n    metadata: {labels: {app: a}}\n    spec:\n      containers: [{name: c, image: x:1}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: {app: a}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: a}\n",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: elsewhere}\n",
        ],
    ),
    (
        &ENV_SHARED,
        &[
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m, namespace: ml-prod}\nspec:\n  predictor:\n    model: {storageUri: s3://models-prod/llm}\n---\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m, namespace: ml-dev}\nspec:\n  predictor:\n    model: {storageUri: s3://models-prod/llm-next}\n",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: staging\n  annotations: {eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/ml\"}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: dev\n  annotations: {eks.amazonaws.com/role-arn: \"arn:aws:iam::123456789012:role/ml\"}\n",
        ],
        &[
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m, namespace: ml-prod}\nspec:\n  predictor:\n    model: {storageUri: s3://models-prod/llm}\n---\napiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: m, namespace: ml-dev}\nspec:\n  predictor:\n    model: {storageUri: s3://models-dev/llm}\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: s3://shared/x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: prod}\ndata: {a: s3://shared/x}\n",
        ],
    ),
    (
        &YAML_UNPARSEABLE,
        &["apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n"],
        &["apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"],
    ),
];
