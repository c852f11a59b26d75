//! A test identity provider: an Ed25519 key made at test time, its JWKS, and signed tokens
//! (`EdDSA` JWTs built by hand, so tests need no signing library of their own).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

pub struct Idp {
    key: Ed25519KeyPair,
    /// The key set to trust (`{"keys": [...]}`), key id `ed1`.
    pub jwks: Value,
}

impl Default for Idp {
    fn default() -> Idp {
        Idp::new()
    }
}

impl Idp {
    pub fn new() -> Idp {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key");
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
        let jwks = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": B64.encode(key.public_key().as_ref()), "kid": "ed1", "alg": "EdDSA", "use": "sig"},
        ]});
        Idp { key, jwks }
    }

    /// A token with these claims, signed with the key (`kid` `ed1`).
    pub fn token(&self, claims: &Value) -> String {
        let header = B64.encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": "ed1"}).to_string());
        let body = B64.encode(claims.to_string());
        let signing_input = format!("{header}.{body}");
        let sig = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(sig.as_ref()))
    }

    /// Seconds since the Unix epoch, for `exp` and `iat`.
    pub fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
