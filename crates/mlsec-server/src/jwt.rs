//! OIDC / JWT bearer tokens, verified against each issuer's JWKS (a file, or a URL fetched at
//! start, refreshed on a timer and, at most every `min_refetch_secs` (30 by default), when a
//! token names a key id the cache does not hold). Issuer, audience, expiry and not-before are checked; HMAC
//! algorithms and `alg: none` are never accepted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// One JWT issuer, as a server's config declares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: Vec<String>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh")]
    pub refresh_secs: u64,
    /// Shortest time between two fetches caused by tokens naming an unknown key id.
    #[serde(default = "default_min_refetch")]
    pub min_refetch_secs: u64,
    /// The claim whose value (a string or an array of strings) picks the policy.
    #[serde(default = "default_policy_claim")]
    pub policy_claim: String,
    /// Claim value -> policy name. A token whose claim maps to nothing is refused.
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// Allowed signature algorithms (`RS256`, `ES256`, `EdDSA`, ...). HMAC ones are refused.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

fn default_jwks_refresh() -> u64 {
    300
}
fn default_min_refetch() -> u64 {
    30
}
fn default_policy_claim() -> String {
    "mlsec_policy".into()
}
fn default_algorithms() -> Vec<String> {
    [
        "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
    ]
    .map(String::from)
    .to_vec()
}

/// Largest token accepted.
pub const MAX_TOKEN_BYTES: usize = 16 << 10;
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// Clock skew tolerated on exp and nbf.
pub const LEEWAY_SECS: u64 = 30;

struct KeyEntry {
    kid: Option<String>,
    key: DecodingKey,
    alg: Option<Algorithm>,
}

/// One trusted issuer and its keys.
pub struct Issuer {
    pub config: JwtConfig,
    source: JwksSource,
    keys: ArcSwap<Vec<KeyEntry>>,
    algorithms: Vec<Algorithm>,
    last_fetch: Mutex<Option<Instant>>,
}

#[derive(Clone)]
pub enum JwksSource {
    /// JWKS text, read from a file when the config was loaded.
    Inline(String),
    Url(String),
}

/// A verified token: who, and which policy its claims map to.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtRefusal {
    #[error("malformed token")]
    Malformed,
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("untrusted issuer")]
    UnknownIssuer,
    #[error("no key for the token's key id")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("no policy for the token's claims")]
    NoPolicy,
    #[error("the issuer's keys could not be fetched: {0}")]
    Jwks(String),
}

/// Why an issuer's key set could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    #[error("JWKS larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS: {0}")]
    NotJwks(#[source] serde_json::Error),
    #[error("the JWKS holds no usable public key")]
    NoUsableKey,
    #[error("{url}: {reason}")]
    Fetch { url: String, reason: String },
}

/// Fetches a JWKS URL (the gateway passes its HTTP client; tests pass a closure).
pub type Fetch = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send>>
        + Send
        + Sync,
>;

impl Issuer {
    pub fn new(config: JwtConfig, source: &JwksSource) -> Result<Issuer, JwksError> {
        let algorithms = config
            .algorithms
            .iter()
            .filter_map(|a| a.parse::<Algorithm>().ok())
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect();
        let issuer = Issuer {
            config,
            source: source.clone(),
            keys: ArcSwap::from_pointee(Vec::new()),
            algorithms,
            last_fetch: Mutex::new(None),
        };
        if let JwksSource::Inline(text) = source {
            issuer.install(text)?;
        }
        Ok(issuer)
    }

    pub fn is_remote(&self) -> bool {
        matches!(self.source, JwksSource::Url(_))
    }

    /// Replaces the key set from JWKS text.
    pub fn install(&self, text: &str) -> Result<usize, JwksError> {
        if text.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let set: JwkSet = serde_json::from_str(text).map_err(JwksError::NotJwks)?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            keys.push(KeyEntry {
                kid: jwk.common.key_id.clone(),
                key,
                alg,
            });
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }

    /// Fetches the JWKS URL now (a no-op for file issuers).
    pub async fn refresh(&self, fetch: &Fetch) -> Result<usize, JwksError> {
        let JwksSource::Url(url) = &self.source else {
            return Ok(self.keys.load().len());
        };
        if let Ok(mut g) = self.last_fetch.lock() {
            *g = Some(Instant::now());
        }
        let text = fetch(url.clone())
            .await
            .map_err(|reason| JwksError::Fetch {
                url: url.clone(),
                reason,
            })?;
        self.install(&text)
    }

    fn may_refetch(&self) -> bool {
        self.is_remote()
            && self.last_fetch.lock().is_ok_and(|g| {
                g.is_none_or(|t| t.elapsed() >= Duration::from_secs(self.config.min_refetch_secs))
            })
    }

    fn verify_with_keys(
        &self,
        token: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Verified, JwtRefusal> {
        let keys = self.keys.load();
        let candidates: Vec<&KeyEntry> = keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .filter(|k| k.alg.is_none_or(|a| a == alg))
            .collect();
        if candidates.is_empty() {
            return Err(JwtRefusal::UnknownKey);
        }
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&self.config.audience);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECS;
        let mut last = JwtRefusal::UnknownKey;
        for k in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token, &k.key, &v,
            ) {
                Ok(data) => return self.map_policy(&data.claims),
                Err(e) => last = JwtRefusal::Invalid(e.to_string()),
            }
        }
        Err(last)
    }

    fn map_policy(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Verified, JwtRefusal> {
        let subject = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .chars()
            .take(256)
            .collect();
        let values: Vec<&str> = match claims.get(&self.config.policy_claim) {
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        values
            .iter()
            .find_map(|v| self.config.policies.get(*v))
            .map(|policy| Verified {
                subject,
                policy: policy.clone(),
            })
            .ok_or(JwtRefusal::NoPolicy)
    }
}

/// Every trusted issuer.
#[derive(Default)]
pub struct Verifier {
    pub issuers: Vec<Arc<Issuer>>,
}

impl Verifier {
    pub async fn verify(&self, token: &str, fetch: &Fetch) -> Result<Verified, JwtRefusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtRefusal::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRefusal::Malformed)?;
        let iss = unverified_issuer(token).ok_or(JwtRefusal::Malformed)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == iss)
            .ok_or(JwtRefusal::UnknownIssuer)?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(JwtRefusal::Invalid(format!(
                "algorithm {:?} not allowed",
                header.alg
            )));
        }
        match issuer.verify_with_keys(token, header.kid.as_deref(), header.alg) {
            Err(JwtRefusal::UnknownKey) if issuer.may_refetch() => {
                issuer
                    .refresh(fetch)
                    .await
                    .map_err(|e| JwtRefusal::Jwks(e.to_string()))?;
                issuer.verify_with_keys(token, header.kid.as_deref(), header.alg)
            }
            r => r,
        }
    }
}

/// The `iss` claim, read before verification only to pick the issuer's keys.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}
