//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mlsec",
    version,
    about = "Secure the life of a machine-learning model",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan model files, ML code and notebooks, Dockerfiles and Kubernetes/KServe/Seldon/Ray
    /// manifests, and secrets (in files, or in git history with --git).
    Scan(ScanArgs),
    /// List every rule with its documentation.
    Rules(RulesArgs),
    /// Generate an ECDSA key pair (PKCS#8 PEM) for signing models.
    Keygen(KeygenArgs),
    /// Sign a model folder or file: writes a Sigstore bundle that OpenSSF model-signing verifies.
    Sign(SignArgs),
    /// Verify a model against its signature (exit 0 verified, 1 invalid or changed, 2 could not verify).
    Verify(VerifyArgs),
    /// Print a model's manifest: the digest of every file (or shard) a signature would cover.
    Hash(HashArgs),
    /// Run the secure gateway in front of model servers, or manage its config, keys and audit log.
    Gateway(GatewayArgs),
    /// Prompt-injection detection: judge prompts or retrieved content, one verdict per line.
    Guard(GuardArgs),
    /// The secure model registry that speaks MLflow's API: serve it, manage its tokens, roll
    /// an alias back.
    Registry(RegistryArgs),
    /// Data drift between a reference dataset and the current one (CSV, TSV, JSON Lines, Parquet):
    /// distributions, missing values, new categories, type and schema changes, per column.
    Drift(DriftArgs),
    /// Training-data checks: `mlsec data audit DATASET --label COL`.
    Data(DataArgs),
    /// Red-team a model: black-box adversarial attacks on an ONNX classifier, a
    /// membership-inference audit, probes against an LLM endpoint.
    Redteam(RedteamArgs),
    /// OMS conformance adapter: sign (the form the model-signing conformance suite drives).
    #[command(name = "sign-model", hide = true)]
    SignModel(SignModelArgs),
    /// OMS conformance adapter: verify.
    #[command(name = "verify-model", hide = true)]
    VerifyModel(VerifyModelArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
    /// Never fail on findings.
    Never,
}

/// A severity threshold for what is shown (no `never`: that only makes sense for failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MinSeverityArg {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// `mlsec rules` prints a catalogue, not findings: no SARIF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RulesFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files and directories to scan (directories recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Exit with 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = SeverityArg::High)]
    pub fail_on: SeverityArg,

    /// Only report findings at or above this severity.
    #[arg(long, value_enum, default_value_t = MinSeverityArg::Info)]
    pub min_severity: MinSeverityArg,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,

    /// Colour in text output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Do not print the summary line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Leave out findings recorded in FILE (written by --write-baseline): only new ones count.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// With --baseline: rewrite FILE with the current findings (new ones accepted, stale ones
    /// dropped).
    #[arg(long, requires = "baseline")]
    pub update_baseline: bool,

    /// Report suppressions that suppress nothing (IGN001): baseline entries that match no
    /// finding, and secret allow comments on lines where nothing was found.
    #[arg(long)]
    pub report_unused_ignores: bool,

    /// Record every current finding in FILE, to pass later as --baseline.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Leave out files git ignores (.gitignore files in and above the scanned directories,
    /// .git/info/exclude, the global excludes file).
    #[arg(long)]
    pub gitignore: bool,

    /// Scanners to run (comma-separated): `models` (model files), `code` (Python and notebooks),
    /// `deploy` (Dockerfiles, Kubernetes and serving manifests, cross-file rules), `secrets`
    /// (hardcoded credentials in any text file, notebooks and dotfiles included).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Scanner::Models, Scanner::Code, Scanner::Deploy, Scanner::Secrets])]
    pub only: Vec<Scanner>,

    /// Scan a git repository's history for secrets instead of the files on disk: every commit
    /// reachable from HEAD, each blob once, findings naming the commit that introduced them.
    /// Runs the secrets scanner only.
    #[arg(long)]
    pub git: bool,

    /// With --git: leave out commits reachable from REV (e.g. `origin/main` in a pull request).
    #[arg(long, value_name = "REV", requires = "git")]
    pub since: Option<String>,

    /// With --git: scan only what is staged (new or changed blobs in the index), as a
    /// pre-commit hook does.
    #[arg(long, requires = "git", conflicts_with = "since")]
    pub staged: bool,

    /// Print secrets in full in findings (they are redacted by default: a prefix, the length
    /// and a digest).
    #[arg(long)]
    pub show_secrets: bool,

    /// Add the secret rules in FILE (mlsec's TOML format or a gitleaks configuration) to the
    /// built-in ones; a rule with the same id replaces the built-in one. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub secrets_config: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scanner {
    /// Model files: pickle, PyTorch, safetensors, GGUF, ONNX, Keras, archives...
    Models,
    /// Python files and Jupyter notebooks.
    Code,
    /// Deployment files: Dockerfiles, Kubernetes, KServe, Seldon, Ray and Kubeflow manifests.
    Deploy,
    /// Hardcoded secrets in text files, notebooks and dotfiles.
    Secrets,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// Show one rule in full.
    pub id: Option<String>,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = RulesFormat::Text)]
    pub format: RulesFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CurveArg {
    P256,
    P384,
    P521,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    Sha256,
    #[value(alias = "blake2")]
    Blake2b,
    Blake3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PasswordArgs {
    /// Read the private key's password from FILE (first line). Also: the MLSEC_KEY_PASSWORD variable.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Curve (the signature hash follows it: SHA-256, SHA-384, SHA-512).
    #[arg(long, value_enum, default_value_t = CurveArg::P256)]
    pub curve: CurveArg,

    /// Writes PREFIX.key (private, mode 0600) and PREFIX.pub.
    #[arg(
        long,
        short = 'o',
        value_name = "PREFIX",
        default_value = "mlsec-signing"
    )]
    pub out: PathBuf,

    /// Encrypt the private key (PBES2: PBKDF2-SHA256, AES-256-CBC) with the password from
    /// --password-file or MLSEC_KEY_PASSWORD.
    #[arg(long)]
    pub encrypt: bool,

    /// Replace existing files.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Which files of the model are taken.
#[derive(Debug, clap::Args)]
pub struct WalkArgs {
    /// Leave PATH out (repeatable). A relative path is taken from the current directory, as
    /// model-signing does, or else from the model directory.
    #[arg(long = "ignore-paths", visible_alias = "ignore-path", value_name = "PATH", action = clap::ArgAction::Append)]
    pub ignore_paths: Vec<PathBuf>,

    /// Take .git, .gitattributes, .github and .gitignore too.
    #[arg(long)]
    pub no_ignore_git_paths: bool,

    /// Follow symbolic links that stay inside the model.
    #[arg(long, alias = "allow_symlinks")]
    pub allow_symlinks: bool,
}

#[derive(Debug, clap::Args)]
pub struct HashingArgs {
    /// Hash for each file or shard. blake3 hashes one big file on every core.
    #[arg(long = "hash", value_enum, default_value_t = HashArg::Sha256)]
    pub hash: HashArg,

    /// Cut files into shards of BYTES and hash them in parallel (not with blake3, which needs no shards).
    #[arg(long, value_name = "BYTES")]
    pub shard_size: Option<u64>,

    #[command(flatten)]
    pub walk: WalkArgs,

    /// Keep digests in FILE and re-hash only files whose identity (device, inode, size, mtime,
    /// ctime) changed. Opt-in: see `docs/signing.md` for what it trusts.
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Model directory or file.
    #[arg(value_name = "MODEL_PATH")]
    pub model: PathBuf,

    /// Private key (PEM: PKCS#8, encrypted PKCS#8 or SEC1).
    #[arg(
        long,
        visible_alias = "private-key",
        alias = "private_key",
        value_name = "FILE"
    )]
    pub key: PathBuf,

    /// Signing certificate (PEM) for certificate mode.
    #[arg(
        long,
        visible_alias = "signing-cert",
        alias = "signing_certificate",
        value_name = "FILE"
    )]
    pub cert: Option<PathBuf>,

    /// Intermediate (and root) certificates to ship in the bundle, leaf to root (repeatable).
    #[arg(long, alias = "certificate_chain", value_name = "FILE", action = clap::ArgAction::Append, requires = "cert")]
    pub cert_chain: Vec<PathBuf>,

    /// Where to write the signature [default: next to the model, MODEL_PATH.sig].
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,

    /// Replace an existing signature file.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub hashing: HashingArgs,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// Summary format on stdout.
    #[arg(long, short = 'f', value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Model directory or file.
    #[arg(value_name = "MODEL_PATH")]
    pub model: PathBuf,

    /// Public key (PEM) for key-mode signatures.
    #[arg(
        long,
        visible_alias = "public-key",
        alias = "public_key",
        value_name = "FILE",
        required_unless_present = "cert_chain",
        conflicts_with = "cert_chain"
    )]
    pub key: Option<PathBuf>,

    /// Trust anchors (PEM certificates) for certificate-mode signatures (repeatable). Nothing else
    /// is trusted: there is no default store.
    #[arg(long, alias = "certificate_chain", value_name = "FILE", action = clap::ArgAction::Append)]
    pub cert_chain: Vec<PathBuf>,

    /// The signature to check [default: MODEL_PATH.sig next to the model, or else model.sig in
    /// the current directory, where model-signing writes it].
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,

    #[command(flatten)]
    pub walk: WalkArgs,

    /// Files on disk that the signature does not list are not an error.
    #[arg(long, alias = "ignore_unsigned_files")]
    pub ignore_unsigned_files: bool,

    /// Stop at the first file that differs.
    #[arg(long)]
    pub fail_fast: bool,

    /// Refuse signatures whose ignore_paths leave weight files unsigned (default: warn).
    #[arg(long)]
    pub refuse_ignored_weights: bool,

    /// Re-hash only files whose identity changed since FILE was written (see `mlsec sign --cache`).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,

    /// Result format. JSON records what was checked, by which key or identity, and which files.
    #[arg(long, short = 'f', value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    /// Write the result to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// Model directory or file.
    #[arg(value_name = "MODEL_PATH")]
    pub model: PathBuf,

    #[command(flatten)]
    pub hashing: HashingArgs,

    /// Output format: text (digest and name per line) or json (the in-toto statement).
    #[arg(long, short = 'f', value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    pub command: GuardCommand,
}

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Judge each input line: prints one verdict per line, in order. Exit 0 when none is an
    /// injection, 1 when one is, 2 when an input could not be read.
    Check(GuardCheckArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuardInput {
    /// One prompt per line.
    Text,
    /// One JSON object per line with a `text` field (and optionally `source`: user|retrieved).
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuardSource {
    /// A user turn (direct injection).
    User,
    /// Retrieved documents, web pages or tool results (indirect injection; lower threshold).
    Retrieved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuardFormat {
    /// `INJECTION 0.97 override,prompt_leak` or `ok 0.00`, one line per input.
    Text,
    /// `{"injection": bool, "score": float, "reasons": [...]}`, one line per input.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GuardCheckArgs {
    /// Files to read (standard input when none, or `-`).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// How inputs are written.
    #[arg(long, value_enum, default_value_t = GuardInput::Text)]
    pub input: GuardInput,

    /// Where the texts come from, unless a JSONL line says otherwise.
    #[arg(long, value_enum, default_value_t = GuardSource::User)]
    pub source: GuardSource,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = GuardFormat::Json)]
    pub format: GuardFormat,

    /// A second tier for the grey zone: a text classifier in ONNX (a fine-tuned BERT-family
    /// model exported with optimum, say), run in process. Needs --tokenizer.
    #[arg(long, value_name = "MODEL.onnx", requires = "tokenizer")]
    pub onnx: Option<PathBuf>,

    /// The second tier's Hugging Face `tokenizer.json`.
    #[arg(long, value_name = "tokenizer.json", requires = "onnx")]
    pub tokenizer: Option<PathBuf>,

    /// The output index of the injection class (default: from a config.json beside the
    /// model, else 1).
    #[arg(long, requires = "onnx")]
    pub onnx_label: Option<usize>,

    /// First-tier scores the second tier decides, as LOW,HIGH.
    #[arg(long, value_name = "LOW,HIGH", default_value = "0.2,0.9", value_parser = parse_grey)]
    pub grey: (f32, f32),
}

fn parse_grey(s: &str) -> Result<(f32, f32), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: expected LOW,HIGH (0.2,0.9)"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<f32>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| format!("{x:?} is not a score between 0 and 1"))
    };
    let (lo, hi) = (num(a)?, num(b)?);
    if lo > hi {
        return Err(format!("{s:?}: LOW is above HIGH"));
    }
    Ok((lo, hi))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConformanceMethod {
    Key,
    Certificate,
    Sigstore,
}

#[derive(Debug, clap::Args)]
pub struct SignModelArgs {
    #[arg(long, value_enum)]
    pub method: ConformanceMethod,
    #[arg(long)]
    pub model_path: PathBuf,
    #[arg(long, alias = "bundle")]
    pub output_bundle: PathBuf,
    #[arg(long)]
    pub private_key: Option<PathBuf>,
    #[arg(long)]
    pub signing_cert: Option<PathBuf>,
    #[arg(long, action = clap::ArgAction::Append)]
    pub cert_chain: Vec<PathBuf>,
    #[arg(long, action = clap::ArgAction::Append)]
    pub ignore_paths: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyModelArgs {
    #[arg(long, value_enum)]
    pub method: ConformanceMethod,
    #[arg(long)]
    pub model_path: PathBuf,
    #[arg(long)]
    pub bundle: PathBuf,
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    #[arg(long, action = clap::ArgAction::Append)]
    pub cert_chain: Vec<PathBuf>,
    #[arg(long, action = clap::ArgAction::Append)]
    pub ignore_paths: Vec<PathBuf>,
    #[arg(long)]
    pub ignore_unsigned_files: bool,
}

#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// The gateway's configuration file.
    #[arg(long, short = 'c', global = true, default_value = "gateway.toml")]
    pub config: PathBuf,

    /// Log format on stderr.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Serve (the default when no subcommand is given). SIGHUP reloads, SIGTERM drains and stops.
    Run,
    /// Check the configuration and report every error with its location (exit 0 valid, 2 not).
    CheckConfig,
    /// Manage API keys (stored as salted hashes in auth.keys_file).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with the hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key: prints it once on stdout; only its salted hash is stored.
    Create {
        /// A label for people (the key id is what logs show).
        #[arg(long)]
        name: String,
        /// The policy (from the config's [policies]) the key gets.
        #[arg(long)]
        policy: String,
    },
    /// List keys: id, name, policy, created, revoked.
    List,
    /// Revoke a key by id (takes effect on the gateway's next reload: SIGHUP or POST /admin/reload).
    Revoke {
        /// The key id (the 12 hex digits after `mlsk_`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record's hash and its link to the record before, and, given a checkpoint
    /// kept off the host, that no record it covers was cut or rewritten (exit 0 intact, 1
    /// broken, truncated or empty).
    Verify {
        /// The audit log (JSON lines).
        file: PathBuf,
        /// A checkpoint the gateway exported (audit.checkpoint_file or audit.checkpoint_url).
        #[arg(long, requires = "public_key")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint key's public half (the `.pub` file `audit keygen` wrote: base64).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Make an Ed25519 key for signed checkpoints: the private key (PKCS#8 PEM, mode 0600) for
    /// audit.checkpoint_key, and its public half in `<out>.pub` for `audit verify`.
    Keygen {
        /// Where to write the private key (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftFormat {
    Text,
    Json,
    Sarif,
    Html,
    /// Prometheus text exposition (for node_exporter's textfile collector).
    Prometheus,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DriftArgs {
    #[command(subcommand)]
    pub command: Option<DriftCommand>,
    /// The data the model was trained or validated on, or its saved profile
    /// (`*.profile.json`).
    #[arg(required = true)]
    pub reference: Option<PathBuf>,
    /// The data to check against it (`-`: JSON Lines on stdin).
    #[arg(required = true)]
    pub current: Option<PathBuf>,
    /// text: a table and findings; json: every statistic (docs/drift-report.schema.json);
    /// sarif: the findings; html: a self-contained page with a plot per column; prometheus:
    /// gauges per column.
    #[arg(long, value_enum, default_value_t = DriftFormat::Text)]
    pub format: DriftFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Family-wise false-alarm rate across columns (Bonferroni).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Compare consecutive windows of N rows of the current data, one verdict per window
    /// (text, or JSON Lines with --format json).
    #[arg(long, value_name = "N")]
    pub window: Option<u64>,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = SeverityArg::Medium)]
    pub fail_on: SeverityArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    Sarif,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DataCommand {
    /// Audit a training dataset (CSV, TSV, JSON Lines, Parquet): duplicates and conflicting labels,
    /// label-flip suspects, backdoor-trigger candidates, outliers, class balance and schema
    /// against a reference, and a content fingerprint.
    Audit {
        dataset: PathBuf,
        /// The label column.
        #[arg(long)]
        label: String,
        /// A reference dataset (an earlier, trusted version) for schema and class balance.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// A declared schema (JSON: columns with type, required, min, max, allowed,
        /// max_missing; docs/data-audit.md).
        #[arg(long)]
        schema: Option<PathBuf>,
        /// text: findings; json: every result; sarif: findings; html: a page with the tables.
        #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
        format: AuditFormat,
        /// Write the report here instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Exit 1 when a finding is at or above this severity.
        #[arg(long, value_enum, default_value_t = SeverityArg::Medium)]
        fail_on: SeverityArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum DriftCommand {
    /// Save a reference profile (order statistics and category counts per column) that later
    /// runs and the gateway use in place of the reference data.
    Profile {
        /// CSV, TSV, JSON Lines or Parquet.
        data: PathBuf,
        /// Where to write it (name it *.profile.json); stdout without.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// The registry's configuration file (TOML). Without one, everything lives in
    /// ./mlsec-registry (SQLite, encrypted objects, key, audit log) and it listens on
    /// 127.0.0.1:5000.
    #[arg(long, short = 'c', global = true)]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the MLflow-compatible API until SIGINT or SIGTERM.
    Serve,
    /// Manage access tokens (stored as salted hashes in the metadata store).
    Token {
        #[command(subcommand)]
        command: RegistryTokenCommand,
    },
    /// Compare what the registry holds with what runs: Kubernetes/KServe/Seldon manifests and
    /// the gateway's models. Exit 1 on findings at or above --fail-on, 2 when a file could not
    /// be read.
    Inventory {
        /// Manifest files or folders.
        paths: Vec<PathBuf>,
        /// A gateway config whose models (with `registry` and `owner`) are endpoints too.
        #[arg(long)]
        gateway: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write the report here instead of stdout.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = SeverityArg::High)]
        fail_on: SeverityArg,
    },
    /// Rewrap every stored data key under the current key-encryption key; with --rotate, make
    /// a new key first (local key file: a new first line, the old keys kept below to unwrap;
    /// transit: a new key version in OpenBao). Contents are not re-encrypted. Safe while the
    /// registry serves.
    Rewrap {
        #[arg(long)]
        rotate: bool,
        /// After a full rewrap, drop the old keys from the local key file.
        #[arg(long)]
        prune: bool,
    },
    /// Write a consistent backup into a new folder: every table (one snapshot) and every object
    /// as stored (encrypted). The key-encryption key is not included: keep it apart.
    Backup {
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into an empty registry (any stores; the same key-encryption key).
    Restore {
        #[arg(long)]
        from: PathBuf,
    },
    /// Promote a version (MODEL/VERSION) into an environment, through the running registry: a
    /// new version there, re-encrypted under its key and checked against its trusted keys. The
    /// token comes from MLSEC_REGISTRY_TOKEN.
    Promote {
        /// MODEL/VERSION
        target: String,
        /// The environment (from [[environments]]).
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        url: String,
    },
    /// Undo the last move of an alias (MODEL@ALIAS), through the running registry so that the
    /// move is authorised and audited. The token comes from MLSEC_REGISTRY_TOKEN.
    Rollback {
        /// MODEL@ALIAS
        target: String,
        /// The registry's address.
        #[arg(long, default_value = "http://127.0.0.1:5000")]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryTokenCommand {
    /// Create a token: printed once on stdout, stored as a salted hash.
    Create {
        /// A label for people (the token id is what the audit log shows).
        #[arg(long)]
        name: String,
        /// `[!]read|write|admin[@ENV][:model|experiment|alias/GLOB]`, repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime: 90m, 12h, 30d ...
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens: id, state, expiry, scopes, name.
    List,
    /// Revoke a token by id (takes effect on the next request).
    Revoke { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RedteamFormat {
    Text,
    Json,
    Sarif,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct RedteamArgs {
    #[command(subcommand)]
    pub command: RedteamCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RedteamCommand {
    /// Attack an ONNX classifier (run in process) with noise, worst-of-k noise, the Square
    /// attack, HopSkipJump and, for tables, feature-wise changes: accuracy per attack and budget.
    Classifier(RedteamClassifierArgs),
    /// Membership-inference audit: can an attacker tell the training records from unseen ones?
    Membership(RedteamMembershipArgs),
    /// Probe an OpenAI-compatible chat endpoint (directly or through mlsec gateway): prompt
    /// injection, system-prompt extraction, jailbreaks, encodings, exfiltration links, secret
    /// and PII leakage, tool-call forging.
    Llm(RedteamLlmArgs),
    /// Compare two `redteam llm --format json` reports probe by probe (before and after a
    /// guard or model change): fixed, regressed, still vulnerable.
    Compare(RedteamCompareArgs),
}

#[derive(Debug, clap::Args)]
pub struct RedteamLlmArgs {
    /// The API base, as OpenAI clients take it (http://127.0.0.1:8000/v1).
    #[arg(long)]
    pub url: String,
    /// The model name to send.
    #[arg(long)]
    pub model: String,
    /// The API key (sent as a bearer token). Default: the MLSEC_PROBE_API_KEY environment
    /// variable; prefer it, a flag shows in the process list.
    #[arg(long, env = "MLSEC_PROBE_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Probe families to run (default: all): direct-injection, indirect-injection,
    /// prompt-extraction, jailbreak, encoding, exfiltration, leakage, tool-forging.
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// At most this many requests per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Retries of a request that got 429, 5xx or no answer.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Seed of the planted values (same seed, same probes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Append each result to this file and skip probes it already decided (resume a run).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    #[command(flatten)]
    pub out: RedteamOutput,
}

#[derive(Debug, clap::Args)]
pub struct RedteamCompareArgs {
    /// The earlier run's JSON report.
    pub before: PathBuf,
    /// The later run's JSON report.
    pub after: PathBuf,
    /// text or json.
    #[arg(long, value_enum, default_value_t = RedteamFormat::Text)]
    pub format: RedteamFormat,
}

/// Options every red-team report shares.
#[derive(Debug, clap::Args)]
pub struct RedteamOutput {
    /// text: tables and findings; json: every result (docs/redteam-report.schema.json); sarif:
    /// the findings; html: a self-contained page with plots.
    #[arg(long, value_enum, default_value_t = RedteamFormat::Text)]
    pub format: RedteamFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = SeverityArg::Medium)]
    pub fail_on: SeverityArg,
}

#[derive(Debug, clap::Args)]
pub struct RedteamClassifierArgs {
    /// The classifier (ONNX; one input of rows, a [batch, classes] output of scores).
    pub model: PathBuf,
    /// Labelled samples to attack (CSV, TSV, JSON Lines, Parquet): feature columns in the
    /// model's input order and a label column.
    #[arg(long)]
    pub data: PathBuf,
    /// The label column (default: `label`, else the last column).
    #[arg(long)]
    pub labels: Option<String>,
    /// Class names in the model's output order, for text labels.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Attack budgets, L-inf: input units for images, the share of each feature's range for
    /// tables.
    #[arg(long, value_delimiter = ',', default_value = "0.02,0.05,0.1")]
    pub budget: Vec<f32>,
    /// Attacks to run (noise, worst-of-k, square, hop-skip-jump, features).
    #[arg(long, value_delimiter = ',')]
    pub attacks: Vec<String>,
    /// Model queries per sample for the Square attack and HopSkipJump.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Draws per sample for worst-of-k noise.
    #[arg(long, default_value_t = 20)]
    pub noise_draws: usize,
    /// Attack at most the first N usable rows.
    #[arg(long, value_name = "N")]
    pub max_samples: Option<usize>,
    /// The image layout of a flat input, HxW or CxHxW (an image-shaped input needs none).
    #[arg(long, value_name = "HxW")]
    pub image: Option<String>,
    /// Valid pixel range for images, MIN:MAX (default: the data's minimum and maximum).
    #[arg(long, value_name = "MIN:MAX")]
    pub input_range: Option<String>,
    /// A feature's valid range, COL=MIN:MAX (tables; default: the data's range). Repeatable.
    #[arg(long = "range", value_name = "COL=MIN:MAX")]
    pub ranges: Vec<String>,
    /// Features an attacker cannot change (tables). Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub frozen: Vec<String>,
    /// Treat an image-shaped input as a table.
    #[arg(long)]
    pub tabular: bool,
    /// Seed for every random draw (same seed, same queries).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A finding (RTM001) for each attack and budget whose accuracy falls below this.
    #[arg(long, default_value_t = 0.5)]
    pub min_accuracy: f64,
    /// Write the adversarial examples found (adversarial.npy in the model's input shape,
    /// labels.npy, adversarial.csv) to this directory.
    #[arg(long, value_name = "DIR")]
    pub save_examples: Option<PathBuf>,
    #[command(flatten)]
    pub out: RedteamOutput,
}

#[derive(Debug, clap::Args)]
pub struct RedteamMembershipArgs {
    /// The classifier (ONNX).
    pub model: PathBuf,
    /// The records it was trained on (members).
    #[arg(long)]
    pub train: PathBuf,
    /// Records from the same distribution it never saw (non-members).
    #[arg(long)]
    pub holdout: PathBuf,
    /// More unseen records (shadow data), to calibrate the loss per class.
    #[arg(long)]
    pub population: Option<PathBuf>,
    /// A reference model trained like the target on shadow data (never on --train).
    /// Repeatable; two or more give the calibrated reference attack.
    #[arg(long = "reference", value_name = "MODEL")]
    pub references: Vec<PathBuf>,
    /// The label column (default: `label`, else the last column).
    #[arg(long)]
    pub labels: Option<String>,
    /// Class names in the model's output order, for text labels.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// A finding (RTM002) when the strongest attack's AUC is above this.
    #[arg(long, default_value_t = 0.6)]
    pub max_auc: f64,
    /// A finding when the strongest attack finds more than this share of members at 1% false
    /// positives.
    #[arg(long, default_value_t = 0.05)]
    pub max_tpr: f64,
    #[command(flatten)]
    pub out: RedteamOutput,
}
