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
    summary: "The final image is built on a heavy -devel base",
    what: "Flags a final stage based on a CUDA or framework -devel image (compilers, headers, package managers).",
    why: "Development images are several GB larger and carry toolchains an attacker can use; serving needs only the runtime.",
    example: "`FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04` as the only stage",
    fix: "Build in a -devel stage, then copy the artefacts into a -runtime or distroless final stage.",
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

/// Every rule of this scanner.
pub static RULES: &[&Rule] = &[
    &ROOT_USER,
    &BASE_UNPINNED,
    &DEVEL_BASE,
    &ADD_URL,
    &SECRET_IN_ENV,
    &DASHBOARD_CMD,
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
            "FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04\nUSER 1000\n",
            "FROM pytorch/pytorch:2.3.0-cuda12.1-cudnn8-devel\nUSER 1000\n",
        ],
        &[
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
