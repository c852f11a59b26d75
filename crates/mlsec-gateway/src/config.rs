//! `gateway.toml`: parsed with serde, then checked as a whole. Every problem is collected with
//! its location (`line:col` and the dotted path of the field), so `mlsec gateway check-config`
//! reports all of them at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Routes a policy can grant. Also the `route` label of every metric (a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    Chat,
    Completions,
    Embeddings,
    Models,
    Responses,
    Infer,
    Predict,
    Template,
}

impl RouteKind {
    pub const ALL: [RouteKind; 8] = [
        RouteKind::Chat,
        RouteKind::Completions,
        RouteKind::Embeddings,
        RouteKind::Models,
        RouteKind::Responses,
        RouteKind::Infer,
        RouteKind::Predict,
        RouteKind::Template,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Chat => "chat",
            RouteKind::Completions => "completions",
            RouteKind::Embeddings => "embeddings",
            RouteKind::Models => "models",
            RouteKind::Responses => "responses",
            RouteKind::Infer => "infer",
            RouteKind::Predict => "predict",
            RouteKind::Template => "template",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub templates: Vec<TemplateConfig>,
    /// The `injection` guard's optional second tier.
    pub guard: Option<GuardConfig>,
    /// Where monitoring alerts go, and how they escalate.
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// The folder relative paths are resolved against (the config file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[guard]`: a second tier for the `injection` guard's grey zone, a text classifier the
/// operator supplies (never downloaded).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// The classifier, in ONNX.
    pub onnx_model: PathBuf,
    /// Its Hugging Face `tokenizer.json`.
    pub onnx_tokenizer: PathBuf,
    /// The output index of the injection class (default: from `config.json` beside the model,
    /// else 1).
    pub onnx_label: Option<usize>,
    /// First-tier scores the second tier decides, `[low, high]`.
    #[serde(default = "default_grey")]
    pub grey: [f32; 2],
}

fn default_grey() -> [f32; 2] {
    [mlsec_guard::DEFAULT_GREY.0, mlsec_guard::DEFAULT_GREY.1]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Metrics, health and reload. A separate listener: keep it on loopback or a private network.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// Environment variable holding the admin bearer token. Required when `admin_listen` is not
    /// a loopback address; never has a default value.
    pub admin_token_env: Option<String>,
    pub tls: Option<TlsConfig>,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// Non-streamed upstream responses are read whole (for usage and, later, output checks).
    #[serde(default = "default_max_response")]
    pub max_response_bytes: usize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_health_interval")]
    pub health_interval_secs: u64,
    /// Worker threads, each with its own event loop and upstream pool (default: one per core).
    pub workers: Option<usize>,
    /// A connection must send its first byte, and each request head, within this time.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// A request body must arrive whole within this time (a body sent a byte at a time is cut
    /// off with 408).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_secs: u64,
    /// Most client connections open at once on the public listener (default: half the
    /// process's descriptor limit, at most 10,000).
    pub max_connections: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            admin_token_env: None,
            tls: None,
            max_body_bytes: default_max_body(),
            max_header_bytes: default_max_header(),
            max_response_bytes: default_max_response(),
            connect_timeout_secs: default_connect_timeout(),
            health_interval_secs: default_health_interval(),
            workers: None,
            header_timeout_secs: default_header_timeout(),
            body_timeout_secs: default_body_timeout(),
            max_connections: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_max_body() -> usize {
    1 << 20
}
fn default_max_header() -> usize {
    16 << 10
}
fn default_max_response() -> usize {
    32 << 20
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_health_interval() -> u64 {
    10
}
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// API keys made by `mlsec gateway keys create` (salted hashes only).
    pub keys_file: Option<PathBuf>,
    #[serde(default)]
    pub jwt: Vec<JwtConfig>,
}

pub use mlsec_server::jwt::JwtConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitBackendKind {
    #[default]
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Refuse requests (503) while the shared store is unreachable.
    #[default]
    Closed,
    /// Serve requests unlimited while the shared store is unreachable.
    Open,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default)]
    pub backend: LimitBackendKind,
    pub redis_url: Option<String>,
    #[serde(default)]
    pub on_backend_error: FailMode,
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            backend: LimitBackendKind::Memory,
            redis_url: None,
            on_backend_error: FailMode::Closed,
            key_prefix: default_prefix(),
        }
    }
}

fn default_prefix() -> String {
    "mlsec:gw:".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON lines, chained by hash. Relative to the config file.
    #[serde(default = "default_audit_path")]
    pub path: PathBuf,
    /// Record prompts and outputs (secrets and PII redacted). Off by default.
    #[serde(default)]
    pub include_bodies: bool,
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints of the chain; checkpoints are off
    /// without it. `mlsec gateway audit keygen` makes one.
    pub checkpoint_key: Option<PathBuf>,
    /// Sign a checkpoint after this many records...
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// ...or this many seconds after the last one (when records were written since).
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_secs: u64,
    /// Where the latest checkpoint is written (default: the log's path + `.checkpoint.json`).
    pub checkpoint_file: Option<PathBuf>,
    /// A URL each checkpoint is POSTed to (JSON), to keep a copy off the host.
    pub checkpoint_url: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: default_audit_path(),
            include_bodies: false,
            checkpoint_key: None,
            checkpoint_every: default_checkpoint_every(),
            checkpoint_secs: default_checkpoint_secs(),
            checkpoint_file: None,
            checkpoint_url: None,
        }
    }
}

fn default_checkpoint_every() -> u64 {
    1000
}
fn default_checkpoint_secs() -> u64 {
    60
}

fn default_audit_path() -> PathBuf {
    PathBuf::from("mlsec-gateway-audit.jsonl")
}

/// What a key or a token's claims may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Model names, or `"*"` for every configured model.
    pub models: Vec<String>,
    /// Route kinds; every kind when absent.
    pub routes: Option<Vec<RouteKind>>,
    pub requests_per_second: Option<f64>,
    pub requests_per_minute: Option<f64>,
    /// Requests allowed at once above the steady rate.
    pub burst: Option<u32>,
    /// Requests in flight at once.
    pub concurrency: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    /// Ceiling for max_tokens (and the value used when a request sets none).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub allow_logprobs: bool,
    #[serde(default = "one")]
    pub max_n: u32,
    #[serde(default)]
    pub allow_tools: bool,
    #[serde(default = "yes")]
    pub allow_system_messages: bool,
    /// The guard profile requests under this policy get: `default` (no content checks) or
    /// `injection` (prompt-injection detection on user turns and tool results).
    #[serde(default = "default_guard")]
    pub guard: String,
    /// What responses are checked for: secrets, personal data, system-prompt leakage.
    pub output: Option<crate::output::OutputConfig>,
    /// Abuse and extraction detection per principal, and what a signal leads to.
    pub abuse: Option<crate::abuse::AbuseConfig>,
}

fn default_max_tokens() -> u32 {
    4096
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_guard() -> String {
    "default".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OpenAI-compatible (vLLM, Ollama, llama.cpp server, TGI, LiteLLM, OpenAI itself).
    #[default]
    Openai,
    /// KServe / Triton Open Inference Protocol v2.
    Oip,
    /// Generic JSON prediction (MLflow `models serve`, custom servers).
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    /// The registry model this endpoint serves (`models:/NAME@ALIAS`), for
    /// `mlsec registry inventory`.
    #[serde(default)]
    pub registry: Option<String>,
    /// Who owns this endpoint (team or person), for `mlsec registry inventory`.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    pub upstreams: Vec<String>,
    /// The model name the upstream knows (rewritten in the request body).
    pub upstream_model: Option<String>,
    /// Environment variable holding the upstream's own credential, sent as a bearer token.
    pub upstream_api_key_env: Option<String>,
    /// Polled on every upstream; an upstream failing it is taken out of rotation.
    pub health_path: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Extra attempts on other upstreams, for idempotent calls and connections that failed.
    #[serde(default = "one")]
    pub retries: u32,
    /// The upstream serves `/v1/responses`.
    #[serde(default)]
    pub responses: bool,
    /// OIP: the declared input tensors.
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    /// Generic JSON: the route path (default `/v1/predict/{name}`).
    pub path: Option<String>,
    /// Generic JSON: the upstream path (default: the route path).
    pub upstream_path: Option<String>,
    /// Generic JSON: a JSON Schema file every request body must match.
    pub schema: Option<PathBuf>,
    /// `[models.monitor]`: drift, out-of-distribution inputs, output confidence, errors and
    /// latency of this model.
    pub monitor: Option<ModelMonitorConfig>,
}

/// `[monitor]`: where the model monitors' alerts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Alerts are posted here as JSON (they are always logged and counted in metrics).
    pub webhook: Option<String>,
    /// Who is told, after how long, at which level. Default: one `warning` step at once.
    #[serde(default)]
    pub escalation: Vec<mlsec_drift::monitor::Escalation>,
    /// How often open conditions are re-checked against the escalation steps.
    #[serde(default = "default_tick")]
    pub tick_secs: u64,
}

fn default_tick() -> u64 {
    10
}

impl Default for MonitorConfig {
    fn default() -> MonitorConfig {
        MonitorConfig {
            webhook: None,
            escalation: Vec::new(),
            tick_secs: default_tick(),
        }
    }
}

/// `[models.monitor]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMonitorConfig {
    /// A reference profile (`mlsec drift profile DATA`) holding the features' columns.
    pub profile: Option<PathBuf>,
    /// Feature name (a numeric column of the profile) to where its value is read: a JSON
    /// pointer into the request (`/amount`, `/instances/*/0`), an OIP input tensor column
    /// (`input:x:0`), or one of `prompt_chars`, `prompt_tokens`, `messages`, `max_tokens`.
    #[serde(default)]
    pub features: BTreeMap<String, String>,
    /// Where the response's class probabilities are: a JSON pointer (`/probabilities`,
    /// `/predictions/*`), an OIP output tensor (`output:probs`), or `logprobs`.
    pub probabilities: Option<String>,
    #[serde(default = "default_monitor_window")]
    pub window: usize,
    /// A request is out of distribution when its score reaches this.
    #[serde(default = "default_ood_score")]
    pub ood_score: f64,
    /// A response whose top probability is below this is low-confidence.
    #[serde(default = "default_low_confidence")]
    pub low_confidence: f64,
    /// Alert when a window's share of out-of-distribution requests passes this.
    #[serde(default = "default_max_ood_rate")]
    pub max_ood_rate: f64,
    /// Alert when a window's share of low-confidence responses passes this.
    #[serde(default = "default_max_low_confidence_rate")]
    pub max_low_confidence_rate: f64,
    /// Alert when a window's share of failed calls (5xx and upstream errors) passes this.
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Alert when a window's 99th-percentile latency passes this many milliseconds.
    pub max_latency_ms: Option<u64>,
    /// Appends each request's feature values here as JSON Lines (numbers only, never the
    /// request), for a baseline: `mlsec drift profile FILE` makes the profile from it.
    pub record: Option<PathBuf>,
    /// Rows recorded at most; past it recording stops (and says so once in the log).
    #[serde(default = "default_record_rows")]
    pub record_rows: u64,
}

fn default_record_rows() -> u64 {
    100_000
}

fn default_monitor_window() -> usize {
    mlsec_drift::monitor::MonitorSettings::default().window
}
fn default_ood_score() -> f64 {
    mlsec_drift::monitor::MonitorSettings::default().ood_score
}
fn default_low_confidence() -> f64 {
    mlsec_drift::monitor::MonitorSettings::default().low_confidence
}
fn default_max_ood_rate() -> f64 {
    0.05
}
fn default_max_low_confidence_rate() -> f64 {
    0.2
}
fn default_max_error_rate() -> f64 {
    0.05
}

fn default_timeout() -> u64 {
    120
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: String,
    /// `-1` for a free dimension.
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub name: String,
    pub model: String,
    pub system: String,
    /// Text with `{{variable}}` slots.
    pub template: String,
    pub variables: Vec<String>,
    #[serde(default = "default_var_bytes")]
    pub max_variable_bytes: usize,
}

fn default_var_bytes() -> usize {
    32 << 10
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the field could be found in the file.
    pub line_col: Option<(usize, usize)>,
    /// Dotted path of the field, such as `models[1].upstreams[0]`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((l, c)) = self.line_col {
            write!(f, ":{l}:{c}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the problems of one config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The largest config file read (a config is a few kilobytes).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let one = |message: String| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line_col: None,
                path: String::new(),
                message,
            }])
        };
        let meta = fs_err::metadata(path).map_err(|e| one(e.to_string()))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(one(format!(
                "larger than the {MAX_CONFIG_BYTES}-byte limit for a config file"
            )));
        }
        let text = fs_err::read_to_string(path).map_err(|e| one(e.to_string()))?;
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Config::parse(&text, path, &base)
    }

    /// Parses and checks config text; `file` names it in errors, `base_dir` resolves paths.
    pub fn parse(text: &str, file: &Path, base_dir: &Path) -> Result<Config, ConfigErrors> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let first = ConfigError {
                file: file.to_path_buf(),
                line_col: e.span().map(|s| line_col(text, s.start)),
                path: String::new(),
                message: e.message().trim().to_string(),
            };
            ConfigErrors(every_shape_error(text, file, first))
        })?;
        config.base_dir = base_dir.to_path_buf();
        let problems = config.check();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(
                problems
                    .into_iter()
                    .map(|(path, message)| ConfigError {
                        file: file.to_path_buf(),
                        line_col: locate(text, &path).map(|at| line_col(text, at)),
                        path,
                        message,
                    })
                    .collect(),
            ))
        }
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Semantic checks: (dotted path, message) for each problem.
    fn check(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |path: String, msg: String| errs.push((path, msg));

        let listen = self.server.listen.parse::<SocketAddr>();
        if let Err(e) = &listen {
            err("server.listen".into(), format!("not an address: {e}"));
        }
        match self.server.admin_listen.parse::<SocketAddr>() {
            Err(e) => err("server.admin_listen".into(), format!("not an address: {e}")),
            Ok(a) => {
                if listen.as_ref().is_ok_and(|l| *l == a) {
                    err(
                        "server.admin_listen".into(),
                        "must differ from server.listen: admin endpoints get their own listener"
                            .into(),
                    );
                }
                if !a.ip().is_loopback() && self.server.admin_token_env.is_none() {
                    err(
                        "server.admin_listen".into(),
                        "not a loopback address, so server.admin_token_env must name the admin token's environment variable".into(),
                    );
                }
            }
        }
        if self.server.workers.is_some_and(|w| w == 0 || w > 256) {
            err("server.workers".into(), "must be 1 to 256".into());
        }
        for (field, v) in [
            (
                "server.header_timeout_secs",
                self.server.header_timeout_secs,
            ),
            ("server.body_timeout_secs", self.server.body_timeout_secs),
        ] {
            if v == 0 || v > 3600 {
                err(field.into(), "must be 1 to 3600 seconds".into());
            }
        }
        if self.audit.checkpoint_every == 0 {
            err("audit.checkpoint_every".into(), "must be positive".into());
        }
        if self.audit.checkpoint_secs == 0 {
            err("audit.checkpoint_secs".into(), "must be positive".into());
        }
        if let Some(u) = &self.audit.checkpoint_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            err(
                "audit.checkpoint_url".into(),
                format!("{u:?} is not an http:// or https:// URL"),
            );
        }
        if self.server.max_connections.is_some_and(|n| n == 0) {
            err("server.max_connections".into(), "must be positive".into());
        }
        if self.server.max_body_bytes == 0 {
            err("server.max_body_bytes".into(), "must be positive".into());
        }
        if self.server.max_header_bytes < 1024 {
            err(
                "server.max_header_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if self.server.max_header_bytes > 1 << 20 {
            err(
                "server.max_header_bytes".into(),
                "must be at most 1 MiB".into(),
            );
        }
        if let Some(tls) = &self.server.tls {
            for (field, p) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !self.resolve(p).is_file() {
                    err(
                        format!("server.tls.{field}"),
                        format!("no such file: {}", self.resolve(p).display()),
                    );
                }
            }
        }

        if self.auth.keys_file.is_none() && self.auth.jwt.is_empty() {
            err(
                "auth".into(),
                "no way to authenticate: set auth.keys_file, an [[auth.jwt]] issuer, or both (the gateway denies by default)".into(),
            );
        }
        for (i, j) in self.auth.jwt.iter().enumerate() {
            let at = format!("auth.jwt[{i}]");
            match (&j.jwks_file, &j.jwks_url) {
                (None, None) | (Some(_), Some(_)) => err(
                    at.clone(),
                    "exactly one of jwks_file and jwks_url is required".into(),
                ),
                (Some(f), None) if !self.resolve(f).is_file() => err(
                    format!("{at}.jwks_file"),
                    format!("no such file: {}", self.resolve(f).display()),
                ),
                (None, Some(u)) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                    err(format!("{at}.jwks_url"), "must be an http(s) URL".into());
                }
                _ => {}
            }
            if j.audience.is_empty() {
                err(
                    format!("{at}.audience"),
                    "at least one audience is required".into(),
                );
            }
            if j.issuer.is_empty() {
                err(format!("{at}.issuer"), "must not be empty".into());
            }
            for (k, a) in j.algorithms.iter().enumerate() {
                match a.parse::<jsonwebtoken::Algorithm>() {
                    Ok(
                        jsonwebtoken::Algorithm::HS256
                        | jsonwebtoken::Algorithm::HS384
                        | jsonwebtoken::Algorithm::HS512,
                    ) => err(
                        format!("{at}.algorithms[{k}]"),
                        "HMAC algorithms need a shared secret; use an asymmetric algorithm".into(),
                    ),
                    Ok(_) => {}
                    Err(_) => err(
                        format!("{at}.algorithms[{k}]"),
                        format!("unknown algorithm {a:?}"),
                    ),
                }
            }
            for (claim, policy) in &j.policies {
                if !self.policies.contains_key(policy) {
                    err(
                        format!("{at}.policies.{claim}"),
                        format!("no policy named {policy:?}"),
                    );
                }
            }
        }

        if self.limits.backend == LimitBackendKind::Redis && self.limits.redis_url.is_none() {
            err(
                "limits.redis_url".into(),
                "required when limits.backend = \"redis\"".into(),
            );
        }
        if let Some(u) = &self.limits.redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            err(
                "limits.redis_url".into(),
                "must be a redis:// or rediss:// URL".into(),
            );
        }

        let names: BTreeSet<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("models[{i}]");
            if m.name.is_empty() || m.name.len() > 200 || m.name.chars().any(char::is_control) {
                err(
                    format!("{at}.name"),
                    "must be 1-200 printable characters".into(),
                );
            }
            if !seen.insert(m.name.as_str()) {
                err(
                    format!("{at}.name"),
                    format!("model {:?} is declared twice", m.name),
                );
            }
            if m.upstreams.is_empty() {
                err(
                    format!("{at}.upstreams"),
                    "at least one upstream is required".into(),
                );
            }
            for (k, u) in m.upstreams.iter().enumerate() {
                if let Err(e) = check_upstream(u) {
                    err(format!("{at}.upstreams[{k}]"), e);
                }
            }
            if m.timeout_secs == 0 {
                err(format!("{at}.timeout_secs"), "must be positive".into());
            }
            if let Some(h) = &m.health_path
                && !h.starts_with('/')
            {
                err(format!("{at}.health_path"), "must start with '/'".into());
            }
            match m.protocol {
                Protocol::Oip => {
                    if m.inputs.is_empty() {
                        err(
                            format!("{at}.inputs"),
                            "an OIP model declares its input tensors".into(),
                        );
                    }
                    for (k, t) in m.inputs.iter().enumerate() {
                        if crate::oip::dtype_size(&t.datatype).is_none() {
                            err(
                                format!("{at}.inputs[{k}].datatype"),
                                format!("unknown datatype {:?}", t.datatype),
                            );
                        }
                        if t.shape.iter().any(|&d| d < -1) {
                            err(
                                format!("{at}.inputs[{k}].shape"),
                                "dimensions are -1 (free) or non-negative".into(),
                            );
                        }
                    }
                }
                Protocol::Json => {
                    if let Some(p) = &m.path
                        && (!p.starts_with('/') || p.contains("..") || p.contains("//"))
                    {
                        err(
                            format!("{at}.path"),
                            "must be an absolute path without '..' or '//'".into(),
                        );
                    }
                    match &m.schema {
                        None => err(
                            format!("{at}.schema"),
                            "a JSON prediction route needs a JSON Schema file".into(),
                        ),
                        Some(s) => {
                            if let Err(e) = crate::validate::load_schema(&self.resolve(s)) {
                                err(format!("{at}.schema"), e.to_string());
                            }
                        }
                    }
                }
                Protocol::Openai => {}
            }
            if let Some(mc) = &m.monitor {
                for (field, problem) in crate::monitor::problems(mc, m.protocol, self) {
                    err(format!("{at}.monitor.{field}"), problem);
                }
            }
        }
        for (field, problem) in crate::monitor::global_problems(&self.monitor) {
            err(format!("monitor.{field}"), problem);
        }

        if self.policies.is_empty() {
            err(
                "policies".into(),
                "no policies: keys and tokens map to a policy, so at least one is required".into(),
            );
        }
        for (name, p) in &self.policies {
            let at = format!("policies.{name}");
            for (k, m) in p.models.iter().enumerate() {
                if m != "*" && !names.contains(m.as_str()) {
                    err(format!("{at}.models[{k}]"), format!("no model named {m:?}"));
                }
            }
            if p.requests_per_second.is_some() && p.requests_per_minute.is_some() {
                err(
                    at.clone(),
                    "set requests_per_second or requests_per_minute, not both".into(),
                );
            }
            for (f, v) in [
                ("requests_per_second", p.requests_per_second),
                ("requests_per_minute", p.requests_per_minute),
            ] {
                if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                    err(format!("{at}.{f}"), "must be a positive number".into());
                }
            }
            if p.burst == Some(0) {
                err(format!("{at}.burst"), "must be at least 1".into());
            }
            if p.concurrency == Some(0) {
                err(format!("{at}.concurrency"), "must be at least 1".into());
            }
            if p.max_n == 0 {
                err(format!("{at}.max_n"), "must be at least 1".into());
            }
            if p.max_tokens == 0 {
                err(format!("{at}.max_tokens"), "must be at least 1".into());
            }
            if let Some(a) = &p.abuse {
                for (field, problem) in a.problems() {
                    err(format!("{at}.abuse.{field}"), problem.clone());
                }
            }
            if let Some(o) = &p.output {
                for (field, problem) in o.problems() {
                    err(format!("{at}.output.{field}"), problem.clone());
                }
            }
            if !crate::guard::PROFILES.contains(&p.guard.as_str()) {
                err(
                    format!("{at}.guard"),
                    format!(
                        "unknown guard profile {:?} (known: {})",
                        p.guard,
                        crate::guard::PROFILES.join(", ")
                    ),
                );
            }
        }

        if let Some(g) = &self.guard {
            let [lo, hi] = g.grey;
            if !((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo <= hi) {
                err(
                    "guard.grey".into(),
                    format!("[{lo}, {hi}] is not a range of scores within [0, 1]"),
                );
            }
        }

        let mut tseen = BTreeSet::new();
        for (i, t) in self.templates.iter().enumerate() {
            let at = format!("templates[{i}]");
            if !tseen.insert(t.name.as_str()) {
                err(
                    format!("{at}.name"),
                    format!("template {:?} is declared twice", t.name),
                );
            }
            if !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || t.name.is_empty()
            {
                err(
                    format!("{at}.name"),
                    "letters, digits, '-' and '_' only".into(),
                );
            }
            match self.model(&t.model) {
                None => err(
                    format!("{at}.model"),
                    format!("no model named {:?}", t.model),
                ),
                Some(m) if m.protocol != Protocol::Openai => err(
                    format!("{at}.model"),
                    "templates render chat requests: the model must use the openai protocol".into(),
                ),
                Some(_) => {}
            }
            match crate::template::slots(&t.template) {
                Err(e) => err(format!("{at}.template"), e.0),
                Ok(slots) => {
                    let declared: BTreeSet<&str> = t.variables.iter().map(String::as_str).collect();
                    for s in &slots {
                        if !declared.contains(s.as_str()) {
                            err(
                                format!("{at}.template"),
                                format!("slot {{{{{s}}}}} is not in variables"),
                            );
                        }
                    }
                    for v in &t.variables {
                        if !slots.iter().any(|s| s == v) {
                            err(
                                format!("{at}.variables"),
                                format!("variable {v:?} has no slot in the template"),
                            );
                        }
                    }
                }
            }
        }
        errs
    }
}

fn check_upstream(u: &str) -> Result<(), String> {
    let uri: hyper::Uri = u.parse().map_err(|e| format!("not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must be an http:// or https:// URL".into()),
    }
    if uri.host().is_none() {
        return Err("has no host".into());
    }
    if uri.query().is_some() {
        return Err("must not have a query".into());
    }
    Ok(())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line, col)
}

/// The byte offset of a dotted path (`a.b[2].c`) in TOML text, as deep as it can be followed.
/// When a config does not deserialize: every section and array element that does not, each
/// with its own error (serde stops at the first, which `first` is, with its exact position; the
/// others are located at their section). Only `first` when the text is not TOML at all.
fn every_shape_error(text: &str, file: &Path, first: ConfigError) -> Vec<ConfigError> {
    use serde::Deserialize as _;
    let Ok(table) = text.parse::<toml::Table>() else {
        return vec![first];
    };
    let mut out = Vec::new();
    let mut try_part = |path: String, key: &str, value: toml::Value| {
        let mut t = toml::Table::new();
        t.insert(key.to_string(), value);
        if let Err(e) = Config::deserialize(toml::Value::Table(t)) {
            out.push(ConfigError {
                file: file.to_path_buf(),
                line_col: locate(text, &path).map(|at| line_col(text, at)),
                path,
                message: e.message().trim().to_string(),
            });
        }
    };
    for (key, value) in &table {
        match value {
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for (i, item) in items.iter().enumerate() {
                    try_part(
                        format!("{key}[{i}]"),
                        key,
                        toml::Value::Array(vec![item.clone()]),
                    );
                }
            }
            toml::Value::Table(t) if key == "policies" => {
                for (name, p) in t {
                    let mut one = toml::Table::new();
                    one.insert(name.clone(), p.clone());
                    try_part(format!("{key}.{name}"), key, toml::Value::Table(one));
                }
            }
            _ => try_part(key.clone(), key, value.clone()),
        }
    }
    // The part serde stopped at is reported once, at the exact position it gave.
    let mut first = first;
    if let Some(i) = out.iter().position(|e| e.message == first.message) {
        first.path = out.remove(i).path;
    }
    out.push(first);
    out.sort_by_key(|e| e.line_col);
    out
}

fn locate(text: &str, path: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut best = None;
    let mut cur: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    for seg in path.split('.') {
        let (key, indices) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        let t = match (table, cur) {
            (Some(t), _) => t,
            (None, Some(DeValue::Table(t))) => t,
            _ => break,
        };
        let Some((k, v)) = t.get_key_value(key) else {
            break;
        };
        best = Some(
            if matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_)) {
                k.span().start
            } else {
                v.span().start
            },
        );
        let mut v = v;
        let mut ok = true;
        for idx in indices
            .split(['[', ']'])
            .filter(|s| !s.is_empty())
            .map(str::parse::<usize>)
        {
            let next = match (idx, v.get_ref()) {
                (Ok(n), DeValue::Array(a)) => a.get(n),
                _ => None,
            };
            let Some(x) = next else {
                ok = false;
                break;
            };
            v = x;
            best = Some(x.span().start);
        }
        if !ok {
            break;
        }
        cur = Some(v.get_ref());
        table = None;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_fields() {
        let text =
            "[server]\nlisten = \"x\"\n\n[[models]]\nname = \"a\"\nupstreams = [\"ftp://h\"]\n";
        let at = locate(text, "models[0].upstreams[0]").expect("found");
        assert_eq!(line_col(text, at), (6, 14));
        let at = locate(text, "server.listen").expect("found");
        assert_eq!(line_col(text, at).0, 2);
    }
}
