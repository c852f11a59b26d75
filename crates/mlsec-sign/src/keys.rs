//! ECDSA keys on the curves model-signing accepts (P-256, P-384, P-521), with the hash tied to the
//! curve (SHA-256, SHA-384, SHA-512) and DER-encoded signatures.

use std::fmt;

use const_oid::ObjectIdentifier;
use ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode, Encode};
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::Error;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// PBKDF2 rounds for encrypted private keys written by `keygen` (OWASP's figure for SHA-256).
pub const PBKDF2_ROUNDS: u32 = 600_000;

/// A supported curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// The hash model-signing pairs with the curve.
    pub fn hash_name(self) -> &'static str {
        match self {
            Self::P256 => "sha256",
            Self::P384 => "sha384",
            Self::P521 => "sha512",
        }
    }

    /// The Sigstore `PublicKeyDetails` name.
    pub fn key_details(self) -> &'static str {
        match self {
            Self::P256 => "PKIX_ECDSA_P256_SHA_256",
            Self::P384 => "PKIX_ECDSA_P384_SHA_384",
            Self::P521 => "PKIX_ECDSA_P521_SHA_512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "p256" | "secp256r1" | "prime256v1" => Some(Self::P256),
            "p384" | "secp384r1" => Some(Self::P384),
            "p521" | "secp521r1" => Some(Self::P521),
            _ => None,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            SECP256R1 => Some(Self::P256),
            SECP384R1 => Some(Self::P384),
            SECP521R1 => Some(Self::P521),
            _ => None,
        }
    }

    /// Digest of `msg` with the curve's hash.
    pub fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::P256 => Sha256::digest(msg).to_vec(),
            Self::P384 => Sha384::digest(msg).to_vec(),
            Self::P521 => Sha512::digest(msg).to_vec(),
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Names the key type behind an unsupported algorithm, for the error message.
fn describe_algorithm(alg: ObjectIdentifier, params: Option<ObjectIdentifier>) -> String {
    let name = match alg.to_string().as_str() {
        "1.2.840.113549.1.1.1" => "RSA".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.2.840.10045.2.1" => match params.map(|p| p.to_string()).as_deref() {
            Some("1.3.132.0.10") => "ECDSA secp256k1".to_owned(),
            Some(other) => format!("ECDSA on curve {other}"),
            None => "ECDSA without a named curve".to_owned(),
        },
        other => format!("algorithm {other}"),
    };
    format!("unsupported key type: {name} (model signatures use ECDSA P-256, P-384 or P-521)")
}

/// A public key that can check signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(Box<ecdsa::VerifyingKey<p521::NistP521>>),
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo (DER).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Error> {
        let spki = spki_ref(der)?;
        let params = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(Error::new(describe_algorithm(spki.algorithm.oid, params)));
        }
        let curve = params
            .and_then(Curve::from_oid)
            .ok_or_else(|| Error::new(describe_algorithm(spki.algorithm.oid, params)))?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::new("public key bit string is not byte aligned"))?;
        let bad = |e: ecdsa::Error| Error::new(format!("invalid {curve} public key: {e}"));
        Ok(match curve {
            Curve::P256 => {
                Self::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?)
            }
            Curve::P384 => {
                Self::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?)
            }
            Curve::P521 => Self::P521(Box::new(
                ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
            )),
        })
    }

    /// Reads a PEM `PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| Error::new(format!("not a PEM public key: {e}")))?;
        match label {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "CERTIFICATE" => Err(Error::new(
                "this is a certificate, not a public key: verify certificate signatures with --cert-chain",
            )),
            other => Err(Error::new(format!(
                "expected a `PUBLIC KEY` PEM block, found `{other}`"
            ))),
        }
    }

    pub fn curve(&self) -> Curve {
        match self {
            Self::P256(_) => Curve::P256,
            Self::P384(_) => Curve::P384,
            Self::P521(_) => Curve::P521,
        }
    }

    pub fn to_spki_der(&self) -> Vec<u8> {
        let point = self.sec1_bytes();
        let oid = match self.curve() {
            Curve::P256 => SECP256R1,
            Curve::P384 => SECP384R1,
            Curve::P521 => SECP521R1,
        };
        let spki = spki::SubjectPublicKeyInfoRef {
            algorithm: spki::AlgorithmIdentifier {
                oid: ID_EC_PUBLIC_KEY,
                parameters: Some(der::asn1::AnyRef::from(&oid)),
            },
            subject_public_key: der::asn1::BitStringRef::from_bytes(&point)
                .expect("SEC1 point fits a bit string"),
        };
        spki.to_der().expect("SPKI encodes")
    }

    fn sec1_bytes(&self) -> Vec<u8> {
        match self {
            Self::P256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            Self::P384(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            Self::P521(k) => k.to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    /// The PEM text Python's `cryptography` writes (64-column lines, LF).
    pub fn to_pem(&self) -> String {
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.to_spki_der())
            .expect("PEM encodes")
    }

    /// model-signing's key hint: SHA-256 (hex) of the PEM encoding.
    pub fn hint(&self) -> String {
        crate::hex::encode(&Sha256::digest(self.to_pem().as_bytes()))
    }

    /// Checks a DER signature over `msg`, hashed with the curve's hash.
    pub fn verify(&self, msg: &[u8], der_sig: &[u8]) -> bool {
        self.verify_prehash(&self.curve().digest(msg), der_sig)
    }

    /// Checks a DER signature over an already computed digest (any length the curve accepts).
    pub fn verify_prehash(&self, digest: &[u8], der_sig: &[u8]) -> bool {
        match self {
            Self::P256(k) => p256::ecdsa::Signature::from_der(der_sig)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok()),
            Self::P384(k) => p384::ecdsa::Signature::from_der(der_sig)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok()),
            Self::P521(k) => p521::ecdsa::Signature::from_der(der_sig)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok()),
        }
    }
}

fn spki_ref(der: &[u8]) -> Result<spki::SubjectPublicKeyInfoRef<'_>, Error> {
    spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| Error::new(format!("not a SubjectPublicKeyInfo: {e}")))
}

/// A private key that can sign.
pub enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(Box<p521::ecdsa::SigningKey>),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.curve())
    }
}

impl PrivateKey {
    pub fn generate(curve: Curve) -> Self {
        let mut rng = rand_core::OsRng;
        match curve {
            Curve::P256 => Self::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            Curve::P384 => Self::P384(p384::ecdsa::SigningKey::random(&mut rng)),
            Curve::P521 => Self::P521(Box::new(p521::ecdsa::SigningKey::random(&mut rng))),
        }
    }

    /// Reads PEM: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, needs the
    /// password) or SEC1 (`EC PRIVATE KEY`, what `openssl ecparam -genkey` writes).
    pub fn from_pem(pem: &str, password: Option<&[u8]>) -> Result<Self, Error> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| Error::new(format!("not a PEM private key: {e}")))?;
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or_else(|| Error::new("the private key is encrypted: give its password (--password-file or MLSEC_KEY_PASSWORD)"))?;
                let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der)
                    .map_err(|e| Error::new(format!("damaged encrypted private key: {e}")))?;
                let doc = info.decrypt(password).map_err(|_| Error::new("could not decrypt the private key: wrong password or unsupported encryption"))?;
                Self::from_pkcs8_der(doc.as_bytes())
            }
            "EC PRIVATE KEY" => Self::from_sec1_der(&der),
            "PUBLIC KEY" => Err(Error::new(
                "this is a public key; signing needs the private key",
            )),
            other => Err(Error::new(format!(
                "expected a private key PEM block, found `{other}`"
            ))),
        }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let info = pkcs8::PrivateKeyInfo::from_der(der)
            .map_err(|e| Error::new(format!("damaged PKCS#8 private key: {e}")))?;
        let params = info
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if info.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(Error::new(describe_algorithm(info.algorithm.oid, params)));
        }
        let curve = params
            .and_then(Curve::from_oid)
            .ok_or_else(|| Error::new(describe_algorithm(info.algorithm.oid, params)))?;
        let bad = |e: pkcs8::Error| Error::new(format!("invalid {curve} private key: {e}"));
        Ok(match curve {
            Curve::P256 => Self::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?),
            Curve::P384 => Self::P384(p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(bad)?),
            Curve::P521 => {
                let sk = p521::SecretKey::from_pkcs8_der(der).map_err(bad)?;
                Self::P521(Box::new(
                    p521::ecdsa::SigningKey::from_bytes(&sk.to_bytes())
                        .map_err(|e| Error::new(format!("invalid P-521 private key: {e}")))?,
                ))
            }
        })
    }

    fn from_sec1_der(der: &[u8]) -> Result<Self, Error> {
        let key = sec1::EcPrivateKey::from_der(der)
            .map_err(|e| Error::new(format!("damaged SEC1 private key: {e}")))?;
        let curve = match key.parameters.and_then(sec1::EcParameters::named_curve) {
            Some(oid) => Curve::from_oid(oid)
                .ok_or_else(|| Error::new(describe_algorithm(ID_EC_PUBLIC_KEY, Some(oid))))?,
            None => match key.private_key.len() {
                32 => Curve::P256,
                48 => Curve::P384,
                66 => Curve::P521,
                n => {
                    return Err(Error::new(format!(
                        "SEC1 private key of {n} bytes names no curve"
                    )));
                }
            },
        };
        let bad = || Error::new(format!("invalid {curve} private key"));
        Ok(match curve {
            Curve::P256 => {
                Self::P256(p256::ecdsa::SigningKey::from_slice(key.private_key).map_err(|_| bad())?)
            }
            Curve::P384 => {
                Self::P384(p384::ecdsa::SigningKey::from_slice(key.private_key).map_err(|_| bad())?)
            }
            Curve::P521 => Self::P521(Box::new(
                p521::ecdsa::SigningKey::from_slice(key.private_key).map_err(|_| bad())?,
            )),
        })
    }

    pub fn curve(&self) -> Curve {
        match self {
            Self::P256(_) => Curve::P256,
            Self::P384(_) => Curve::P384,
            Self::P521(_) => Curve::P521,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::P256(k) => PublicKey::P256(*k.verifying_key()),
            Self::P384(k) => PublicKey::P384(*k.verifying_key()),
            Self::P521(k) => {
                let public = p521::PublicKey::from_secret_scalar(k.as_nonzero_scalar());
                PublicKey::P521(Box::new(
                    ecdsa::VerifyingKey::from_affine(*public.as_affine())
                        .expect("a secret key's public point is valid"),
                ))
            }
        }
    }

    /// Signs `msg` (hashed with the curve's hash); returns a DER signature.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let digest = self.curve().digest(msg);
        let failed = |e: ecdsa::Error| Error::new(format!("signing failed: {e}"));
        Ok(match self {
            Self::P256(k) => PrehashSigner::<p256::ecdsa::Signature>::sign_prehash(k, &digest)
                .map_err(failed)?
                .to_der()
                .as_bytes()
                .to_vec(),
            Self::P384(k) => PrehashSigner::<p384::ecdsa::Signature>::sign_prehash(k, &digest)
                .map_err(failed)?
                .to_der()
                .as_bytes()
                .to_vec(),
            Self::P521(k) => k
                .sign_prehash(&digest)
                .map_err(failed)?
                .to_der()
                .as_bytes()
                .to_vec(),
        })
    }

    /// PKCS#8 PEM, encrypted with PBES2 (PBKDF2-SHA256, AES-256-CBC) when a password is given.
    pub fn to_pkcs8_pem(&self, password: Option<&[u8]>) -> Result<String, Error> {
        let doc = match self {
            Self::P256(k) => k.to_pkcs8_der(),
            Self::P384(k) => k.to_pkcs8_der(),
            Self::P521(k) => p521::SecretKey::from_bytes(&k.to_bytes())
                .map_err(|e| Error::new(e.to_string()))?
                .to_pkcs8_der(),
        }
        .map_err(|e| Error::new(format!("could not encode the private key: {e}")))?;
        match password {
            None => Ok(doc
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| Error::new(e.to_string()))?
                .to_string()),
            Some(pw) => {
                let mut salt = [0u8; 16];
                let mut iv = [0u8; 16];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut iv);
                let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
                    PBKDF2_ROUNDS,
                    &salt,
                    &iv,
                )
                .map_err(|e| Error::new(e.to_string()))?;
                let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes())
                    .map_err(|e| Error::new(e.to_string()))?;
                let enc = info
                    .encrypt_with_params(params, pw)
                    .map_err(|e| Error::new(format!("could not encrypt the private key: {e}")))?;
                Ok(enc
                    .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| Error::new(e.to_string()))?
                    .to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_on_every_curve() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let k = PrivateKey::generate(curve);
            let sig = k.sign(b"payload").unwrap();
            let pubk = k.public_key();
            assert!(pubk.verify(b"payload", &sig), "{curve}");
            assert!(!pubk.verify(b"payloaD", &sig), "{curve}");
            let again = PublicKey::from_pem(&pubk.to_pem()).unwrap();
            assert_eq!(again, pubk);
            let pem = k.to_pkcs8_pem(None).unwrap();
            let k2 = PrivateKey::from_pem(&pem, None).unwrap();
            assert_eq!(k2.public_key(), pubk);
        }
    }

    #[test]
    fn encrypted_keys_need_the_right_password() {
        let k = PrivateKey::generate(Curve::P256);
        let pem = k.to_pkcs8_pem(Some(b"correct horse")).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(
            PrivateKey::from_pem(&pem, None)
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
        assert!(
            PrivateKey::from_pem(&pem, Some(b"wrong"))
                .unwrap_err()
                .to_string()
                .contains("wrong password")
        );
        assert_eq!(
            PrivateKey::from_pem(&pem, Some(b"correct horse"))
                .unwrap()
                .public_key(),
            k.public_key()
        );
    }
}
