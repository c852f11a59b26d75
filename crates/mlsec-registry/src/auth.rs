//! Tokens and what they allow.
//!
//! A token is shown once, when created: `mlsr_<id>_<secret>`. The store keeps its id, a salt
//! and SHA-256(salt || secret), its scopes and its expiry. Clients send it as
//! `Authorization: Bearer <token>` (`MLFLOW_TRACKING_TOKEN`) or as the password of Basic
//! authentication (`MLFLOW_TRACKING_PASSWORD`, for older setups; the user name is ignored).
//!
//! A scope is `[!]ACTION[@ENV][:KIND/GLOB]`:
//! * `ACTION` is `read`, `write` (which includes read) or `admin` (everything);
//! * `@ENV` limits it to model versions in one environment (no `@` means every environment);
//! * `KIND/GLOB` limits it to models (`model/fraud-*`), experiments by name
//!   (`experiment/team-a/*`) or aliases (`alias/prod`); no target means everything;
//! * a leading `!` denies instead: a deny always wins, and denying an action denies the actions
//!   that include it (`!read:model/hr-*` also forbids writing those models).
//!
//! Protected aliases (`policy.protected_aliases`) move only with an `alias/NAME` grant
//! (`write:alias/prod`) or `admin`, on top of write access to the model.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use mlsec_server::keys::unhex;

use crate::store::{Store, TokenRow, now_ms};

/// Every registry token starts with this, so secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "mlsr_";
/// Longest scope string accepted.
pub const MAX_SCOPE_BYTES: usize = 256;
/// Most scopes on one token.
pub const MAX_SCOPES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Read,
    Write,
    Admin,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model,
    Experiment,
    Alias,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Experiment => "experiment",
            Kind::Alias => "alias",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub deny: bool,
    pub action: Action,
    pub env: Option<String>,
    /// (kind, glob); `None` is everything.
    pub target: Option<(Kind, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("scope {scope:?}: {problem}")]
pub struct ScopeError {
    pub scope: String,
    pub problem: String,
}

impl std::str::FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Scope, ScopeError> {
        let err = |problem: &str| ScopeError {
            scope: s.to_owned(),
            problem: problem.to_owned(),
        };
        if s.len() > MAX_SCOPE_BYTES {
            return Err(err("longer than 256 bytes"));
        }
        let (deny, rest) = match s.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (head, target) = match rest.split_once(':') {
            Some((h, t)) => (h, Some(t)),
            None => (rest, None),
        };
        let (action, env) = match head.split_once('@') {
            Some((a, e)) => (a, Some(e)),
            None => (head, None),
        };
        let action = match action {
            "read" => Action::Read,
            "write" => Action::Write,
            "admin" => Action::Admin,
            _ => return Err(err("the action must be read, write or admin")),
        };
        if let Some(e) = env
            && (e.is_empty()
                || !e
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(err("an environment name is letters, digits, '-' and '_'"));
        }
        let target = match target {
            None => None,
            Some(t) => {
                let (kind, glob) = t
                    .split_once('/')
                    .ok_or_else(|| err("a target is KIND/GLOB, e.g. model/fraud-*"))?;
                let kind = match kind {
                    "model" => Kind::Model,
                    "experiment" => Kind::Experiment,
                    "alias" => Kind::Alias,
                    _ => return Err(err("the target kind must be model, experiment or alias")),
                };
                if glob.is_empty() {
                    return Err(err("empty glob (use * for everything)"));
                }
                Some((kind, glob.to_owned()))
            }
        };
        Ok(Scope {
            deny,
            action,
            env: env.map(str::to_owned),
            target,
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.deny {
            f.write_str("!")?;
        }
        f.write_str(self.action.as_str())?;
        if let Some(e) = &self.env {
            write!(f, "@{e}")?;
        }
        if let Some((k, g)) = &self.target {
            write!(f, ":{}/{g}", k.as_str())?;
        }
        Ok(())
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_match(glob: &str, text: &str) -> bool {
    let (g, t) = (glob.as_bytes(), text.as_bytes());
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ti));
            gi += 1;
        } else if gi < g.len() && g[gi] == t[ti] {
            gi += 1;
            ti += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}

/// What a request touches.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub kind: Kind,
    pub name: &'a str,
    /// The environment of the version touched, if a version is.
    pub env: Option<&'a str>,
}

impl Scope {
    fn covers(&self, r: &Resource<'_>) -> bool {
        let env_ok = match (&self.env, r.env) {
            (None, _) => true,
            // A grant for one environment lets its holder see the model it belongs to; a deny
            // for one environment touches only what is in it.
            (Some(_), None) => !self.deny,
            (Some(want), Some(have)) => want == have,
        };
        let target_ok = match &self.target {
            None => true,
            Some((k, g)) => *k == r.kind && glob_match(g, r.name),
        };
        env_ok && target_ok
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token id (or `jwt:<subject>`); never a secret.
    pub id: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Whether `action` on `r` is allowed: some grant covers it and no deny does.
    pub fn allows(&self, action: Action, r: &Resource<'_>) -> bool {
        let denied = self
            .scopes
            .iter()
            .any(|s| s.deny && s.action <= action && s.covers(r));
        if denied {
            return false;
        }
        self.scopes
            .iter()
            .any(|s| !s.deny && s.action >= action && s.covers(r))
    }

    /// Whether the principal may use administrative routes (tokens, rollback of others' moves).
    pub fn is_admin(&self) -> bool {
        !self
            .scopes
            .iter()
            .any(|s| s.deny && s.action == Action::Admin && s.target.is_none())
            && self.scopes.iter().any(|s| {
                !s.deny && s.action == Action::Admin && s.target.is_none() && s.env.is_none()
            })
    }
}

fn digest(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

/// A new token: the row to store and the token to show once.
pub fn new_token(name: &str, scopes: &[Scope], expires: Option<i64>) -> (TokenRow, String) {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    OsRng.fill_bytes(&mut secret);
    OsRng.fill_bytes(&mut salt);
    let id = mlsec_server::keys::hex(&id);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let row = TokenRow {
        id: id.clone(),
        name: name.to_owned(),
        salt: mlsec_server::keys::hex(&salt),
        hash: mlsec_server::keys::hex(&digest(&salt, secret.as_bytes())),
        scopes: scopes.iter().map(ToString::to_string).collect(),
        created: now_ms(),
        expires,
        revoked: false,
    };
    (row, format!("{TOKEN_PREFIX}{id}_{secret}"))
}

/// Why a request is not authenticated. The message is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send Authorization: Bearer <token> (MLFLOW_TRACKING_TOKEN)")]
    Missing,
    #[error("unsupported Authorization scheme (use Bearer, or Basic with the token as password)")]
    Scheme,
    #[error("invalid token")]
    Invalid,
    #[error("token {0} has expired")]
    Expired(String),
    #[error("token {0} has been revoked")]
    Revoked(String),
    #[error("token store unavailable")]
    Store,
    #[error("JWT refused: {0}")]
    Jwt(String),
}

/// The token carried by an `Authorization` header value.
pub fn token_from_header(value: &str) -> Result<String, AuthError> {
    let value = value.trim();
    if let Some(t) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Ok(t.trim().to_owned());
    }
    if let Some(b) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|_| AuthError::Invalid)?;
        let text = String::from_utf8(raw).map_err(|_| AuthError::Invalid)?;
        let (_, password) = text.split_once(':').ok_or(AuthError::Invalid)?;
        return Ok(password.to_owned());
    }
    Err(AuthError::Scheme)
}

/// Checks a presented token against the store.
pub async fn authenticate(store: &Store, token: &str) -> Result<Principal, AuthError> {
    let rest = token.strip_prefix(TOKEN_PREFIX).ok_or(AuthError::Invalid)?;
    let (id, secret) = rest.split_once('_').ok_or(AuthError::Invalid)?;
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.len() > 256 {
        return Err(AuthError::Invalid);
    }
    let row = store
        .token(id)
        .await
        .map_err(|_| AuthError::Store)?
        .ok_or(AuthError::Invalid)?;
    let salt = unhex(&row.salt).ok_or(AuthError::Invalid)?;
    let want = unhex(&row.hash).ok_or(AuthError::Invalid)?;
    let got = digest(&salt, secret.as_bytes());
    if !bool::from(got.as_slice().ct_eq(&want)) {
        return Err(AuthError::Invalid);
    }
    if row.revoked {
        return Err(AuthError::Revoked(row.id));
    }
    if row.expires.is_some_and(|e| e <= now_ms()) {
        return Err(AuthError::Expired(row.id));
    }
    // Scopes were checked when the token was made; one that no longer parses grants nothing.
    let scopes = row.scopes.iter().filter_map(|s| s.parse().ok()).collect();
    Ok(Principal { id: row.id, scopes })
}

/// Parses a duration like `30d`, `12h`, `90m` or `3600s` into milliseconds.
pub fn parse_ttl(s: &str) -> Option<i64> {
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(scopes: &[&str]) -> Principal {
        Principal {
            id: "t".into(),
            scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn model<'a>(name: &'a str, env: Option<&'a str>) -> Resource<'a> {
        Resource {
            kind: Kind::Model,
            name,
            env,
        }
    }

    #[test]
    fn scopes_parse_print_and_refuse_junk_by_name() {
        for s in [
            "read",
            "write:model/fraud-*",
            "!read@prod:model/hr-*",
            "admin",
            "write:alias/prod",
            "read:experiment/team-a/*",
        ] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        for (s, why) in [
            ("delete", "action"),
            ("read:model", "KIND/GLOB"),
            ("read:bucket/x", "kind"),
            ("read@:model/x", "environment"),
            ("read:model/", "empty glob"),
        ] {
            let e = s.parse::<Scope>().unwrap_err().to_string();
            assert!(e.contains(s) && e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn grants_match_by_action_target_and_environment_and_denies_win() {
        let dev = p(&[
            "write@dev:model/fraud-*",
            "read:model/*",
            "!read:model/hr-*",
        ]);
        assert!(dev.allows(Action::Write, &model("fraud-a", Some("dev"))));
        assert!(!dev.allows(Action::Write, &model("fraud-a", Some("prod"))));
        assert!(dev.allows(Action::Read, &model("fraud-a", Some("prod"))));
        assert!(!dev.allows(Action::Write, &model("churn", Some("dev"))));
        assert!(!dev.allows(Action::Read, &model("hr-salaries", None)));
        assert!(!dev.allows(Action::Write, &model("hr-salaries", None)));
        assert!(!dev.allows(Action::Admin, &model("fraud-a", None)));
        let exp = Resource {
            kind: Kind::Experiment,
            name: "fraud-a",
            env: None,
        };
        assert!(
            !dev.allows(Action::Read, &exp),
            "a model grant is not an experiment grant"
        );
        let admin = p(&["admin", "!write@prod"]);
        assert!(admin.allows(Action::Admin, &exp));
        assert!(!admin.allows(Action::Write, &model("x", Some("prod"))));
        assert!(admin.allows(Action::Read, &model("x", Some("prod"))));
        assert!(admin.is_admin());
        assert!(!p(&["admin:model/*"]).is_admin());
        assert!(!p(&[]).allows(Action::Read, &model("x", None)));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("fraud-*", "fraud-"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("team/*/x", "team/a/b/x"));
        assert!(!glob_match("prod", "prod2"));
    }

    #[test]
    fn authorization_headers() {
        assert_eq!(token_from_header("Bearer abc").unwrap(), "abc");
        let basic = base64::engine::general_purpose::STANDARD.encode("user:mlsr_x");
        assert_eq!(
            token_from_header(&format!("Basic {basic}")).unwrap(),
            "mlsr_x"
        );
        assert_eq!(token_from_header("Digest x"), Err(AuthError::Scheme));
        assert_eq!(token_from_header("Basic %%%"), Err(AuthError::Invalid));
        assert_eq!(parse_ttl("30d"), Some(30 * 86_400_000));
        assert_eq!(parse_ttl("0d"), None);
        assert_eq!(parse_ttl("d"), None);
        assert_eq!(parse_ttl("5w"), None);
    }
}
