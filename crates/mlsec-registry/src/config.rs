//! The registry's configuration (TOML). Every field has an embedded default: with no file at
//! all, `mlsec registry serve` keeps SQLite, objects, its key and its audit log in
//! `./mlsec-registry` and listens on 127.0.0.1:5000.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub policy: Policy,
    pub audit: Audit,
    /// Environments versions are promoted into, each with its own key and trust.
    pub environments: Vec<Environment>,
    /// OIDC/JWT issuers whose tokens are accepted beside the registry's own (`[[jwt]]`, the
    /// gateway's format: `policies` maps a claim value to a name in `jwt_scopes`).
    pub jwt: Vec<mlsec_server::jwt::JwtConfig>,
    /// Scope sets for JWT principals: name -> scopes.
    pub jwt_scopes: std::collections::BTreeMap<String, Vec<String>>,
    pub limits: Limits,
}

/// Requests per principal (token id or JWT subject), GCRA with a burst; shared across replicas
/// through Redis when `backend = "redis"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// 0 turns the limit off.
    pub requests_per_minute: u32,
    pub burst: u32,
    /// `memory` (one replica) or `redis`.
    pub backend: String,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            requests_per_minute: 6000,
            burst: 600,
            backend: "memory".into(),
            redis_url: None,
            redis_prefix: "mlsec:registry:".into(),
        }
    }
}

/// An environment: its own key-encryption key, the keys its signatures must come from, and the
/// aliases that may point only at versions promoted into it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: String,
    /// Its local key file (default `<data_dir>/kek-<name>`, created on first start).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// With `[storage.transit]`: its transit key (default `<transit key>-<name>`).
    #[serde(default)]
    pub transit_key: Option<String>,
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    #[serde(default)]
    pub require_signature: bool,
    #[serde(default = "yes")]
    pub require_clean_scan: bool,
    /// Aliases that point only at versions in this environment (`prod`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Environment {
    /// The policy its versions are checked under.
    pub fn policy(&self, base: &Policy) -> Policy {
        Policy {
            env: self.name.clone(),
            trusted_keys: if self.trusted_keys.is_empty() {
                base.trusted_keys.clone()
            } else {
                self.trusted_keys.clone()
            },
            require_signature: self.require_signature,
            require_clean_scan: self.require_clean_scan,
            ..base.clone()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Where the embedded defaults live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; default `sqlite://<data_dir>/registry.db`.
    pub metadata: Option<String>,
    /// Where objects go: a local folder (default `<data_dir>/objects`) or
    /// `s3://BUCKET[/PREFIX]` on any S3-compatible store (see `[storage.s3]`; credentials come
    /// from the usual `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment, never from
    /// this file).
    pub artifacts: Option<String>,
    pub s3: S3,
    /// Wrap data keys with an OpenBao/Vault transit key instead of the local key file.
    pub transit: Option<TransitConfig>,
    /// The key-encryption key (64 hex characters); default `<data_dir>/kek`, created on first
    /// start, readable by the owner only.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitConfig {
    /// `http://127.0.0.1:8200`
    pub address: String,
    /// The transit key's name.
    pub key: String,
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The environment variable holding the token (never the token itself).
    #[serde(default = "default_token_env")]
    pub token_env: String,
}

fn default_mount() -> String {
    "transit".into()
}

fn default_token_env() -> String {
    "BAO_TOKEN".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3 {
    /// An S3-compatible endpoint (MinIO, Ceph, moto); default AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow a plain-http endpoint (loopback test stores).
    pub allow_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// The environment new versions are registered in.
    pub env: String,
    /// Aliases that move only with an `alias/NAME` grant, and only onto versions that pass
    /// the checks below.
    pub protected_aliases: Vec<String>,
    /// A protected alias may point only at a version whose scan found nothing at or above
    /// `fail_on`.
    pub require_clean_scan: bool,
    /// A protected alias may point only at a version signed by one of `trusted_keys`.
    pub require_signature: bool,
    /// PEM public keys (OMS / model-signing) trusted for signatures.
    pub trusted_keys: Vec<PathBuf>,
    /// `low`, `medium`, `high` or `critical`.
    pub fail_on: String,
    /// The signature file looked for in a version's files (model-signing's default name).
    pub signature_file: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// Default `<data_dir>/audit.jsonl`.
    pub file: Option<PathBuf>,
}

impl Default for Server {
    fn default() -> Server {
        Server {
            listen: "127.0.0.1:5000".into(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for Storage {
    fn default() -> Storage {
        Storage {
            data_dir: PathBuf::from("mlsec-registry"),
            metadata: None,
            artifacts: None,
            s3: S3::default(),
            transit: None,
            key_file: None,
        }
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            env: "dev".into(),
            protected_aliases: vec!["prod".into(), "production".into(), "champion".into()],
            require_clean_scan: true,
            require_signature: false,
            trusted_keys: Vec::new(),
            fail_on: "high".into(),
            signature_file: "model.sig".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("{field}: {detail}")]
    Field { field: &'static str, detail: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let c: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        // Relative paths in a file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(c.rebase(base))
    }

    fn rebase(mut self, base: &Path) -> Config {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.storage.data_dir);
        if let Some(a) = &self.storage.artifacts
            && !a.starts_with("s3://")
            && Path::new(a).is_relative()
        {
            self.storage.artifacts = Some(base.join(a).display().to_string());
        }
        for p in [&mut self.storage.key_file, &mut self.audit.file]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        for k in &mut self.policy.trusted_keys {
            fix(k);
        }
        for j in &mut self.jwt {
            if let Some(f) = j.jwks_file.as_mut() {
                fix(f);
            }
        }
        for e in &mut self.environments {
            for k in e.trusted_keys.iter_mut().chain(e.key_file.as_mut()) {
                fix(k);
            }
        }
        for p in [&mut self.server.tls_cert, &mut self.server.tls_key]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        if let Some(m) = &self.storage.metadata
            && let Some(rest) = m.strip_prefix("sqlite://")
            && Path::new(rest).is_relative()
        {
            self.storage.metadata = Some(format!("sqlite://{}", base.join(rest).display()));
        }
        self
    }

    /// Checks what can be checked without touching the services.
    pub fn validate(&self) -> Result<(), ConfigError> {
        mlsec_server::listen::parse_addr("server.listen", &self.server.listen).map_err(|e| {
            ConfigError::Field {
                field: "server.listen",
                detail: e.to_string(),
            }
        })?;
        if !["low", "medium", "high", "critical"].contains(&self.policy.fail_on.as_str()) {
            return Err(ConfigError::Field {
                field: "policy.fail_on",
                detail: format!(
                    "{:?}: expected low, medium, high or critical",
                    self.policy.fail_on
                ),
            });
        }
        if self.policy.require_signature && self.policy.trusted_keys.is_empty() {
            return Err(ConfigError::Field {
                field: "policy.trusted_keys",
                detail: "require_signature is on but no key is trusted".into(),
            });
        }
        for j in &self.jwt {
            if j.jwks_file.is_none() && j.jwks_url.is_none() {
                return Err(ConfigError::Field {
                    field: "jwt.jwks_file",
                    detail: format!("issuer {}: jwks_file or jwks_url is needed", j.issuer),
                });
            }
            for name in j.policies.values() {
                let Some(scopes) = self.jwt_scopes.get(name) else {
                    return Err(ConfigError::Field {
                        field: "jwt.policies",
                        detail: format!("issuer {}: no jwt_scopes entry named {name:?}", j.issuer),
                    });
                };
                for sc in scopes {
                    sc.parse::<crate::auth::Scope>()
                        .map_err(|e| ConfigError::Field {
                            field: "jwt_scopes",
                            detail: format!("{name}: {e}"),
                        })?;
                }
            }
        }
        match (self.limits.backend.as_str(), &self.limits.redis_url) {
            ("memory", _) | ("redis", Some(_)) => {}
            ("redis", None) => {
                return Err(ConfigError::Field {
                    field: "limits.redis_url",
                    detail: "backend = \"redis\" needs redis_url".into(),
                });
            }
            (other, _) => {
                return Err(ConfigError::Field {
                    field: "limits.backend",
                    detail: format!("{other:?}: expected memory or redis"),
                });
            }
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.environments {
            if e.name.is_empty()
                || !e
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::Field {
                    field: "environments.name",
                    detail: format!("{:?}: letters, digits, '-' and '_'", e.name),
                });
            }
            if !seen.insert(e.name.as_str()) {
                return Err(ConfigError::Field {
                    field: "environments.name",
                    detail: format!("{:?} is listed twice", e.name),
                });
            }
            if e.require_signature
                && e.trusted_keys.is_empty()
                && self.policy.trusted_keys.is_empty()
            {
                return Err(ConfigError::Field {
                    field: "environments.trusted_keys",
                    detail: format!("{}: require_signature is on but no key is trusted", e.name),
                });
            }
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(ConfigError::Field {
                field: "server.tls_cert",
                detail: "tls_cert and tls_key go together".into(),
            });
        }
        if let Some(m) = &self.storage.metadata
            && !m.starts_with("sqlite://")
            && !m.starts_with("postgres://")
            && !m.starts_with("postgresql://")
        {
            return Err(ConfigError::Field {
                field: "storage.metadata",
                detail: format!("{m:?}: expected sqlite://PATH or postgres://..."),
            });
        }
        Ok(())
    }

    pub fn metadata_url(&self) -> String {
        self.storage.metadata.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.storage.data_dir.join("registry.db").display()
            )
        })
    }

    /// `s3://...` or a local folder.
    pub fn artifacts_location(&self) -> String {
        self.storage
            .artifacts
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("objects").display().to_string())
    }

    pub fn key_file(&self) -> PathBuf {
        self.storage
            .key_file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("kek"))
    }

    pub fn audit_file(&self) -> PathBuf {
        self.audit
            .file
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("audit.jsonl"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded_and_local() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:5000");
        assert_eq!(c.metadata_url(), "sqlite://mlsec-registry/registry.db");
        assert!(c.policy.protected_aliases.contains(&"prod".to_owned()));
    }

    #[test]
    fn errors_name_the_file_or_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, "[policy]\nfail_on = 3\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("r.toml") && e.contains("fail_on"), "{e}");
        std::fs::write(&p, "[storage]\nbucket = 'x'\n").unwrap();
        assert!(Config::load(&p).unwrap_err().to_string().contains("bucket"));
        std::fs::write(&p, "[policy]\nrequire_signature = true\n").unwrap();
        let e = Config::load(&p)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("policy.trusted_keys"), "{e}");
        std::fs::write(&p, "[storage]\nmetadata = 'mysql://x'\n").unwrap();
        let e = Config::load(&p)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("storage.metadata"), "{e}");
        std::fs::write(&p, "[storage]\ndata_dir = 'd'\n").unwrap();
        assert_eq!(
            Config::load(&p).unwrap().storage.data_dir,
            dir.path().join("d")
        );
    }
}
