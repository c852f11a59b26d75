//! A labelled ML repository, generated: real secrets' shapes where teams leak them (`.env`,
//! notebooks' code and outputs, `.kaggle/kaggle.json`, `.streamlit/secrets.toml`, Kubernetes
//! Secrets, configs, CI files) next to what scanners mistake for them (lockfile and DVC hashes,
//! LFS oids, commit pins, MLflow run ids, image digests, widget ids, base64 images,
//! placeholders, documentation keys, look-alikes that fail validation). The test scores the
//! scanner on it; the benchmark scores other tools on the same files.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::templates::expand;

/// An expected finding: path, notebook cell, line (in the cell for notebooks), rule id.
pub type Label = (String, Option<u32>, u32, String);

struct Writer {
    seed: u64,
    files: Vec<(String, String)>,
    labels: Vec<Label>,
    /// The text of each labelled line, as generated.
    texts: Vec<String>,
}

/// A line and the rule it must raise (`None`: it must raise nothing).
type Line = (String, Option<&'static str>);

fn l(t: &str) -> Line {
    (t.to_owned(), None)
}

fn s(t: &str, rule: &'static str) -> Line {
    (t.to_owned(), Some(rule))
}

impl Writer {
    fn fill(&mut self, t: &str) -> String {
        self.seed += 1;
        expand(t, self.seed * 7_919)
    }

    /// Records an expected finding and the generated text of its line.
    fn label(&mut self, path: &str, cell: Option<u32>, line: usize, rule: &str, text: &str) {
        self.labels
            .push((path.to_owned(), cell, line as u32 + 1, rule.to_owned()));
        self.texts.push(text.to_owned());
    }

    fn text(&mut self, path: &str, lines: &[Line]) {
        let mut out = String::new();
        for (i, (t, rule)) in lines.iter().enumerate() {
            let v = self.fill(t);
            out.push_str(&v);
            out.push('\n');
            if let Some(r) = rule {
                self.label(path, None, i, r, &v);
            }
        }
        self.files.push((path.to_owned(), out));
    }

    /// A notebook: cells of (source lines, output lines), each line maybe labelled.
    fn notebook(&mut self, path: &str, cells: &[(&[Line], &[Line])]) {
        let mut json_cells = Vec::new();
        for (c, (source, outputs)) in cells.iter().enumerate() {
            let mut src = Vec::new();
            for (i, (t, rule)) in source.iter().enumerate() {
                let mut v = self.fill(t);
                if let Some(r) = rule {
                    self.label(path, Some(c as u32), i, r, &v);
                }
                if i + 1 < source.len() {
                    v.push('\n');
                }
                src.push(v);
            }
            let mut outs = Vec::new();
            if !outputs.is_empty() {
                let mut text = Vec::new();
                for (i, (t, rule)) in outputs.iter().enumerate() {
                    let v = self.fill(t);
                    if let Some(r) = rule {
                        self.label(path, Some(c as u32), i, r, &v);
                    }
                    text.push(format!("{v}\n"));
                }
                outs.push(
                    serde_json::json!({"name": "stdout", "output_type": "stream", "text": text}),
                );
            }
            // A plot: a base64 PNG that entropy rules love.
            let png = STANDARD.encode(self.fill("${alnum:3000}"));
            outs.push(
                serde_json::json!({"output_type": "display_data", "metadata": {},
                "data": {"image/png": png, "text/plain": ["<Figure size 640x480 with 1 Axes>"]}}),
            );
            json_cells.push(
                serde_json::json!({"cell_type": "code", "execution_count": c + 1,
                "id": self.fill("${hex:8}"), "metadata": {}, "outputs": outs, "source": src}),
            );
        }
        let widget = self.fill("${hex:32}");
        let nb = serde_json::json!({
            "cells": json_cells,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {widget.clone(): {
                    "model_module": "@jupyter-widgets/controls", "model_name": "HBoxModel", "model_id": widget}}}}},
            "nbformat": 4, "nbformat_minor": 5
        });
        let text = serde_json::to_string_pretty(&nb).unwrap_or_default() + "\n";
        self.files.push((path.to_owned(), text));
    }
}

/// The corpus: files (relative path, text), the expected findings, and the generated text of
/// each expected finding's line.
pub fn generate() -> (Vec<(String, String)>, Vec<Label>, Vec<String>) {
    let mut w = Writer {
        seed: 0,
        files: Vec::new(),
        labels: Vec::new(),
        texts: Vec::new(),
    };
    w.text(".env", &[
        l("# local settings: never commit (but people do)"),
        s("HF_TOKEN=hf_${alpha:34}", "huggingface-token"),
        s("OPENAI_API_KEY=sk-proj-${alnum:74}T3BlbkFJ${alnum:74}", "openai-project-key"),
        s("WANDB_API_KEY=${hex:40}", "wandb-key"),
        s("ANTHROPIC_API_KEY=\"sk-ant-api03-${b64url:93}AA\"", "anthropic-api-key"),
        s("COHERE_API_KEY=${alnum:40}", "cohere-key"),
        s("MISTRAL_API_KEY=${alnum:32}", "mistral-key"),
        s("GROQ_API_KEY=gsk_${alnum:52}", "groq-key"),
        s("LANGCHAIN_API_KEY=lsv2_pt_${hex:32}_${hex:10}", "langsmith-key"),
        s("PINECONE_API_KEY=pcsk_${alnum:5}_${alnum:64}", "pinecone-key"),
        s("REPLICATE_API_TOKEN=r8_${alnum:37}", "replicate-token"),
        s("DATABASE_URL=postgresql://ml_app:${alnum:22}@features.db.internal:5432/features", "database-url"),
        // Random base64 is not DER: a look-alike of an escaped PEM, not a key.
        l("SIGNING_KEY=\"-----BEGIN EC PRIVATE KEY-----\\n${b64:64}\\n-----END EC PRIVATE KEY-----\""),
        l("TOKENIZERS_PARALLELISM=false"),
        l("HF_HOME=/data/hf-cache"),
        l("MLFLOW_TRACKING_URI=http://mlflow.internal:5000"),
        l("WANDB_PROJECT=ranking"),
        l("REDIS_URL=redis://localhost:6379/0"),
    ]);
    w.text(
        ".env.example",
        &[
            l("HF_TOKEN=hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            l("OPENAI_API_KEY=sk-proj-<your-key>"),
            l("WANDB_API_KEY=<your-wandb-key>"),
            l("DATABASE_URL=postgresql://user:password@localhost:5432/app"),
        ],
    );
    w.text(
        ".kaggle/kaggle.json",
        &[s(
            "{\"username\":\"mlteam\",\"key\":\"${hex:32}\"}",
            "kaggle-key",
        )],
    );
    w.text(
        ".streamlit/secrets.toml",
        &[
            l("[connections.features]"),
            s(
                "url = \"postgresql://reader:${alnum:18}@db.acme.io:5432/features\"",
                "database-url",
            ),
            l("[llm]"),
            s(
                "anthropic_key = \"sk-ant-api03-${b64url:93}AA\"",
                "anthropic-api-key",
            ),
        ],
    );
    w.text(
        ".aws/credentials",
        &[
            l("[default]"),
            s("aws_access_key_id = AKIA${base32:16}", "aws-access-key-id"),
            s("aws_secret_access_key = ${b64:40}", "aws-secret-access-key"),
            l("[docs]"),
            l("aws_access_key_id = AKIA${lit:IOSFODNN7}EXAMPLE"),
        ],
    );
    w.text(
        "keys/training-sa.json",
        &[
            l("{"),
            l("  \"type\": \"service_account\","),
            l("  \"project_id\": \"acme-ml\","),
            s(
                "  \"private_key_id\": \"${hex:40}\",",
                "gcp-service-account",
            ),
            l("  \"private_key\": \"${pem-escaped:PRIVATE}\","),
            l("  \"client_email\": \"trainer@acme-ml.iam.gserviceaccount.com\""),
            l("}"),
        ],
    );
    w.notebook("notebooks/finetune.ipynb", &[
        (&[l("import os"), s("os.environ[\"WANDB_API_KEY\"] = \"${hex:40}\"", "wandb-key"), l("from huggingface_hub import login"), s("login(token=\"hf_${alpha:34}\")", "huggingface-token")], &[l("Token is valid (permission: write).")]),
        (&[l("from transformers import AutoModelForCausalLM"), l("m = AutoModelForCausalLM.from_pretrained(\"acme/llm\", revision=\"${hex:40}\")")], &[]),
        (&[l("print(os.environ[\"OPENAI_API_KEY\"])")], &[s("sk-proj-${alnum:74}T3BlbkFJ${alnum:74}", "openai-project-key")]),
        (&[l("import mlflow"), l("model = mlflow.pyfunc.load_model(\"runs:/${hex:32}/model\")"), l("client = OpenAI(api_key=os.environ[\"OPENAI_API_KEY\"])")], &[]),
        (&[s("!wandb login ${hex:40}", "wandb-key")], &[l("wandb: Appending key for api.wandb.ai to your netrc file")]),
    ]);
    w.text("src/serve.py", &[
        l("import os"),
        l("import cohere"),
        s("co = cohere.Client(api_key=\"${alnum:40}\")", "cohere-key"),
        l("hf_token = os.environ[\"HF_TOKEN\"]"),
        s("client = Together(api_key=\"tgp_v1_${b64url:43}\")", "together-key"),
        s("GITHUB_TOKEN = \"${github:ghp}\"", "github-token"),
        l("OLD_TOKEN = \"ghp_${alnum:36}\"  # a look-alike: the checksum is wrong"),
        l("STRIPE_PUBLISHABLE = \"pk_live_${alnum:99}\""),
        s("STRIPE_SECRET = \"sk_live_${alnum:99}\"", "stripe-secret-key"),
        l("ID = \"${hex:8}-${hex:4}-4${hex:3}-a${hex:3}-${hex:12}\""),
        l("API_KEY = os.getenv(\"API_KEY\", \"\")"),
        s("SLACK = \"https://hooks.slack.com/services/T${upper:10}/B${upper:10}/${alnum:24}\"", "slack-webhook"),
        s("TOKEN = \"${jwt}\"", "jwt"),
    ]);
    w.text(
        "configs/train.yaml",
        &[
            l("model:"),
            l("  name: acme/llm"),
            l("  revision: ${hex:40}"),
            l("data:"),
            l("  uri: s3://acme-datasets/ranking/v3"),
            l("tracking:"),
            s(
                "  uri: https://trainer:${alnum:20}@mlflow.acme.io",
                "url-basic-auth",
            ),
            l("  image: ghcr.io/acme/trainer@sha256:${hex:64}"),
        ],
    );
    let db = w.fill("mongodb+srv://app:${alnum:16}@cluster0.abcde.mongodb.net/features");
    w.text(
        "k8s/db-secret.yaml",
        &[
            l("apiVersion: v1"),
            l("kind: Secret"),
            l("metadata: {name: features-db}"),
            l("data:"),
            s(
                &format!("  MONGO_URI: {}", STANDARD.encode(db)),
                "database-url",
            ),
            l(&format!("  MONGO_USER: {}", STANDARD.encode("app"))),
        ],
    );
    w.text(
        "k8s/sealed.yaml",
        &[
            l("apiVersion: bitnami.com/v1alpha1"),
            l("kind: SealedSecret"),
            l("metadata: {name: hf}"),
            l("spec:"),
            l("  encryptedData:"),
            l("    HF_TOKEN: AgB${b64:300}"),
        ],
    );
    w.text(
        "requirements.txt",
        &[
            l("torch==2.3.0 \\"),
            l("    --hash=sha256:${hex:64}"),
            l("transformers==4.41.2 --hash=sha256:${hex:64}"),
        ],
    );
    w.text(
        "poetry.lock",
        &[
            l("[[package]]"),
            l("name = \"torch\""),
            l("files = [{file = \"torch-2.3.0.whl\", hash = \"sha256:${hex:64}\"}]"),
            l("[metadata]"),
            l("content-hash = \"${hex:64}\""),
        ],
    );
    w.text(
        "data/train.csv.dvc",
        &[
            l("outs:"),
            l("- md5: ${hex:32}"),
            l("  size: 104857600"),
            l("  path: train.csv"),
        ],
    );
    w.text(
        "models/model.safetensors.lfs",
        &[
            l("version https://git-lfs.github.com/spec/v1"),
            l("oid sha256:${hex:64}"),
            l("size 4967229440"),
        ],
    );
    w.text(
        "models/config.json",
        &[
            l("{"),
            l("  \"_commit_hash\": \"${hex:40}\","),
            l("  \"architectures\": [\"LlamaForCausalLM\"]"),
            l("}"),
        ],
    );
    w.text(
        ".npmrc",
        &[s("//registry.npmjs.org/:_authToken=${npm}", "npm-token")],
    );
    w.text(
        ".docker/config.json",
        &[
            l("{\"auths\": {"),
            s(
                "  \"registry.acme.io\": {\"auth\": \"${docker-auth}\"}",
                "docker-registry-auth",
            ),
            l("}}"),
        ],
    );
    w.text(
        ".github/workflows/train.yml",
        &[
            l("env:"),
            l("  HF_TOKEN: ${{ secrets.HF_TOKEN }}"),
            s("  WANDB_API_KEY: ${hex:40}", "wandb-key"),
            l("  DOCKER_TAG: ${{ github.sha }}"),
        ],
    );
    w.text(
        "README.md",
        &[
            l("Set `OPENAI_API_KEY=sk-...` and `HF_TOKEN=hf_...` before running."),
            l("Example: `export WANDB_API_KEY=<your key>`"),
            l("See https://wandb.ai/authorize for your key."),
        ],
    );
    w.text(
        "scripts/upload.sh",
        &[
            l("#!/bin/sh"),
            s(
                "export AWS_BEARER_TOKEN_BEDROCK=ABSK${b64:120}",
                "aws-bedrock-key",
            ),
            s(
                "curl -H \"Authorization: Bearer xai-${alnum:80}\" https://api.x.ai/v1/models",
                "xai-key",
            ),
            l("curl -H \"Authorization: Bearer $OPENAI_API_KEY\" https://api.openai.com/v1/models"),
        ],
    );
    (w.files, w.labels, w.texts)
}

/// The 1-based line of `files[path]` where each label's secret sits in the file as written (for
/// notebooks, the raw JSON line): how line-oriented tools are scored on the same corpus.
pub fn file_lines(files: &[(String, String)], labels: &[Label], secrets: &[String]) -> Vec<u32> {
    labels
        .iter()
        .zip(secrets)
        .map(|(label, secret)| {
            let text = files
                .iter()
                .find(|(p, _)| *p == label.0)
                .map_or("", |(_, t)| t.as_str());
            if label.1.is_none() {
                return label.2;
            }
            let probe = serde_json::to_string(secret).unwrap_or_default();
            let probe = probe.trim_matches('"');
            text.lines()
                .position(|l| l.contains(probe))
                .map_or(0, |i| i as u32 + 1)
        })
        .collect()
}

/// Writes the corpus under `dir`; returns the labels.
pub fn write(dir: &Path) -> std::io::Result<Vec<Label>> {
    let (files, labels, _) = generate();
    for (path, text) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)?;
    }
    Ok(labels)
}
