//! Certificate chains for certificate-mode signatures: from the signing certificate in the
//! bundle, through the bundle's intermediates, to a trust anchor the verifier named explicitly.
//! There is no default trust store: without anchors nothing is trusted.

use std::time::{SystemTime, UNIX_EPOCH};

use const_oid::ObjectIdentifier;
use der::{Decode, Encode, Reader, SliceReader};
use sha2::{Digest as _, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName, name::GeneralName,
};

use crate::keys::PublicKey;

/// Longest chain followed, leaf and anchor included.
pub const MAX_CHAIN: usize = 10;
/// Most certificates read from a bundle or an anchors file.
pub const MAX_CERTS: usize = 100;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// DER contents of the SHA-2 hash OIDs (2.16.840.1.101.3.4.2.{1,2,3}), found in RSASSA-PSS
/// parameters.
const SHA256_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const SHA384_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const SHA512_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const EXT_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EXT_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const EXT_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const EXT_SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const EXT_AKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const EKU_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const EKU_ANY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

/// Why a chain was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain is well formed but does not earn trust (expired, wrong anchor, bad usage...).
    #[error("{0}")]
    Untrusted(String),
    /// Something in it cannot be checked here (algorithm, encoding).
    #[error("{0}")]
    Unsupported(String),
    /// Not a certificate (or PEM text) at all: damaged, truncated or empty.
    #[error("{0}")]
    Malformed(String),
}

/// A parsed certificate with its original bytes.
#[derive(Debug, Clone)]
pub struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Self, ChainError> {
        let cert = Certificate::from_der(der)
            .map_err(|e| ChainError::Malformed(format!("not a DER X.509 certificate: {e}")))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    pub fn fingerprint(&self) -> String {
        crate::hex::encode(&Sha256::digest(&self.der))
    }

    pub fn public_key(&self) -> Result<PublicKey, ChainError> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| ChainError::Malformed(e.to_string()))?;
        PublicKey::from_spki_der(&spki).map_err(|e| ChainError::Unsupported(e.to_string()))
    }

    /// The signed part, exactly as encoded (never re-encoded).
    fn tbs_bytes(&self) -> Result<&[u8], String> {
        let mut r = SliceReader::new(&self.der).map_err(|e| e.to_string())?;
        let header = der::Header::decode(&mut r).map_err(|e| e.to_string())?;
        if header.tag != der::Tag::Sequence {
            return Err("certificate is not a SEQUENCE".into());
        }
        r.tlv_bytes().map_err(|e| e.to_string())
    }

    fn ext<'a, T: Decode<'a>>(&'a self, oid: ObjectIdentifier) -> Result<Option<T>, String> {
        let Some(exts) = &self.cert.tbs_certificate.extensions else {
            return Ok(None);
        };
        let mut found = exts.iter().filter(|e| e.extn_id == oid);
        let Some(e) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(format!(
                "certificate `{}` repeats extension {oid}",
                self.subject()
            ));
        }
        T::from_der(e.extn_value.as_bytes())
            .map(Some)
            .map_err(|err| {
                format!(
                    "certificate `{}`: damaged extension {oid}: {err}",
                    self.subject()
                )
            })
    }

    /// Emails, URIs and DNS names from the subject alternative names.
    pub fn san(&self) -> Vec<String> {
        let Ok(Some(SubjectAltName(names))) = self.ext::<SubjectAltName>(EXT_SAN) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| match n {
                GeneralName::Rfc822Name(s) => Some(format!("email:{}", s.as_str())),
                GeneralName::UniformResourceIdentifier(s) => Some(format!("uri:{}", s.as_str())),
                GeneralName::DnsName(s) => Some(format!("dns:{}", s.as_str())),
                _ => None,
            })
            .collect()
    }

    fn check_time(&self, now: SystemTime) -> Result<(), ChainError> {
        let v = &self.cert.tbs_certificate.validity;
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let nb = v.not_before.to_unix_duration().as_secs();
        let na = v.not_after.to_unix_duration().as_secs();
        if now_s < nb {
            return Err(ChainError::Untrusted(format!(
                "certificate `{}` is not valid yet (valid from {})",
                self.subject(),
                v.not_before
            )));
        }
        if now_s > na {
            return Err(ChainError::Untrusted(format!(
                "certificate `{}` expired on {}",
                self.subject(),
                v.not_after
            )));
        }
        Ok(())
    }

    /// Refuses critical extensions this verifier does not enforce.
    fn check_critical(&self) -> Result<(), ChainError> {
        for e in self.cert.tbs_certificate.extensions.iter().flatten() {
            let known = [
                EXT_BASIC_CONSTRAINTS,
                EXT_KEY_USAGE,
                EXT_EXT_KEY_USAGE,
                EXT_SAN,
                EXT_SKI,
                EXT_AKI,
            ]
            .contains(&e.extn_id);
            if e.critical && !known {
                return Err(ChainError::Unsupported(format!(
                    "certificate `{}` has critical extension {} which this verifier does not enforce",
                    self.subject(),
                    e.extn_id
                )));
            }
        }
        Ok(())
    }

    fn is_ca(&self) -> Result<Option<BasicConstraints>, ChainError> {
        self.ext::<BasicConstraints>(EXT_BASIC_CONSTRAINTS)
            .map_err(ChainError::Untrusted)
    }

    /// Chain signatures by RSA (PKCS#1 v1.5 or PSS, SHA-256/384/512, 2048 to 8192 bits) and
    /// Ed25519 issuers, through ring; `None` for the ECDSA algorithms handled by the caller.
    fn signed_by_rsa_or_eddsa(
        &self,
        issuer: &Cert,
        alg: ObjectIdentifier,
        tbs: &[u8],
    ) -> Result<Option<bool>, ChainError> {
        use ring::signature as rs;
        let params: &dyn rs::VerificationAlgorithm = match alg {
            RSA_SHA256 => &rs::RSA_PKCS1_2048_8192_SHA256,
            RSA_SHA384 => &rs::RSA_PKCS1_2048_8192_SHA384,
            RSA_SHA512 => &rs::RSA_PKCS1_2048_8192_SHA512,
            ED25519 => &rs::ED25519,
            RSA_PSS => {
                let p = self
                    .cert
                    .signature_algorithm
                    .parameters
                    .as_ref()
                    .map(|a| a.value().to_vec())
                    .unwrap_or_default();
                let has = |oid: &[u8]| p.windows(oid.len()).any(|w| w == oid);
                // The hash named first (hashAlgorithm) also names MGF1's hash in every
                // profile ring supports; SHA-1, the default when absent, is refused.
                if has(SHA256_OID) {
                    &rs::RSA_PSS_2048_8192_SHA256
                } else if has(SHA384_OID) {
                    &rs::RSA_PSS_2048_8192_SHA384
                } else if has(SHA512_OID) {
                    &rs::RSA_PSS_2048_8192_SHA512
                } else {
                    return Err(ChainError::Unsupported(format!(
                        "certificate `{}` is signed with RSASSA-PSS over SHA-1 (or unreadable parameters); only SHA-256/384/512 are supported",
                        self.subject()
                    )));
                }
            }
            _ => return Ok(None),
        };
        let spki = &issuer.cert.tbs_certificate.subject_public_key_info;
        let key = spki.subject_public_key.as_bytes().ok_or_else(|| {
            ChainError::Untrusted(format!(
                "issuer `{}`: public key is not byte aligned",
                issuer.subject()
            ))
        })?;
        let sig = self.cert.signature.as_bytes().ok_or_else(|| {
            ChainError::Untrusted(format!(
                "certificate `{}`: signature is not byte aligned",
                self.subject()
            ))
        })?;
        Ok(Some(
            rs::UnparsedPublicKey::new(params, key)
                .verify(tbs, sig)
                .is_ok(),
        ))
    }

    /// Whether `issuer` signed this certificate.
    fn signed_by(&self, issuer: &Cert) -> Result<bool, ChainError> {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Ok(false);
        }
        let alg = self.cert.signature_algorithm.oid;
        let tbs = self.tbs_bytes().map_err(ChainError::Unsupported)?;
        if let Some(verified) = self.signed_by_rsa_or_eddsa(issuer, alg, tbs)? {
            return Ok(verified);
        }
        let digest = match alg {
            ECDSA_SHA256 => Sha256::digest(tbs).to_vec(),
            ECDSA_SHA384 => Sha384::digest(tbs).to_vec(),
            ECDSA_SHA512 => Sha512::digest(tbs).to_vec(),
            other => {
                return Err(ChainError::Unsupported(format!(
                    "certificate `{}` is signed with algorithm {other}; supported: ECDSA, RSA (PKCS#1 v1.5 and PSS) with SHA-256/384/512, and Ed25519",
                    self.subject()
                )));
            }
        };
        let key = issuer
            .public_key()
            .map_err(|e| ChainError::Unsupported(format!("issuer `{}`: {e}", issuer.subject())))?;
        let sig = self.cert.signature.as_bytes().ok_or_else(|| {
            ChainError::Untrusted(format!(
                "certificate `{}`: signature is not byte aligned",
                self.subject()
            ))
        })?;
        Ok(key.verify_prehash(&digest, sig))
    }
}

/// Reads every `CERTIFICATE` block of a PEM text.
pub fn certs_from_pem(text: &str) -> Result<Vec<Cert>, ChainError> {
    let bad = |m: String| ChainError::Malformed(m);
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let end_marker = rest[start..]
            .find("-----END ")
            .map(|e| start + e + "-----END ".len());
        let end = end_marker.and_then(|m| rest[m..].find("-----").map(|f| m + f + 5));
        let Some(end) = end else {
            return Err(bad("unterminated PEM block".into()));
        };
        let (label, der) = der::pem::decode_vec(rest[start..end].trim().as_bytes())
            .map_err(|e| bad(format!("damaged PEM block: {e}")))?;
        if label == "CERTIFICATE" {
            out.push(Cert::from_der(&der)?);
            if out.len() > MAX_CERTS {
                return Err(bad(format!("more than {MAX_CERTS} certificates")));
            }
        }
        rest = &rest[end..];
    }
    if out.is_empty() {
        return Err(bad("no PEM `CERTIFICATE` block".into()));
    }
    Ok(out)
}

/// What a successful chain check found.
#[derive(Debug, Clone)]
pub struct ValidChain {
    /// Leaf first, anchor last.
    pub path: Vec<Cert>,
}

/// Which usage the leaf carried that allows signing.
fn check_leaf_usage(leaf: &Cert) -> Result<(), ChainError> {
    let ku = leaf
        .ext::<KeyUsage>(EXT_KEY_USAGE)
        .map_err(ChainError::Untrusted)?;
    if ku.is_some_and(|k| k.digital_signature()) {
        return Ok(());
    }
    let eku = leaf
        .ext::<ExtendedKeyUsage>(EXT_EXT_KEY_USAGE)
        .map_err(ChainError::Untrusted)?;
    if eku.is_some_and(|e| e.0.contains(&EKU_CODE_SIGNING)) {
        return Ok(());
    }
    Err(ChainError::Untrusted(format!(
        "signing certificate `{}` allows neither digitalSignature key usage nor codeSigning extended key usage",
        leaf.subject()
    )))
}

/// A CA certificate must say so, and may sign certificates.
fn check_issuer(ca: &Cert, below: usize) -> Result<(), ChainError> {
    let bc = ca.is_ca()?;
    let Some(bc) = bc.filter(|b| b.ca) else {
        return Err(ChainError::Untrusted(format!(
            "`{}` issued a certificate but is not a CA (basicConstraints)",
            ca.subject()
        )));
    };
    if let Some(limit) = bc.path_len_constraint
        && below > usize::from(limit)
    {
        return Err(ChainError::Untrusted(format!(
            "`{}` allows {limit} intermediate CA(s) below it; the chain has {below}",
            ca.subject()
        )));
    }
    if let Some(ku) = ca
        .ext::<KeyUsage>(EXT_KEY_USAGE)
        .map_err(ChainError::Untrusted)?
        && !ku.key_cert_sign()
    {
        return Err(ChainError::Untrusted(format!(
            "`{}` may not sign certificates (keyUsage lacks keyCertSign)",
            ca.subject()
        )));
    }
    if let Some(eku) = ca
        .ext::<ExtendedKeyUsage>(EXT_EXT_KEY_USAGE)
        .map_err(ChainError::Untrusted)?
        && !eku.0.contains(&EKU_CODE_SIGNING)
        && !eku.0.contains(&EKU_ANY)
    {
        return Err(ChainError::Untrusted(format!(
            "`{}` restricts its extended key usage and excludes codeSigning",
            ca.subject()
        )));
    }
    Ok(())
}

/// Builds and checks a path from `leaf` through `intermediates` to one of `anchors`, at `now`.
pub fn verify_chain(
    leaf: &Cert,
    intermediates: &[Cert],
    anchors: &[Cert],
    now: SystemTime,
) -> Result<ValidChain, ChainError> {
    if anchors.is_empty() {
        return Err(ChainError::Untrusted(
            "no trust anchors given: a certificate chain is never trusted on its own".into(),
        ));
    }
    leaf.check_critical()?;
    check_leaf_usage(leaf)?;
    leaf.check_time(now)?;
    let mut path = vec![leaf.clone()];
    let mut unsupported = None;
    loop {
        let current = path.last().expect("path starts with the leaf");
        if anchors.iter().any(|a| a.der == current.der) {
            return Ok(ValidChain { path });
        }
        if path.len() >= MAX_CHAIN {
            return Err(ChainError::Untrusted(format!(
                "no trusted path within {MAX_CHAIN} certificates"
            )));
        }
        // Prefer an anchor as the issuer, then an intermediate from the bundle.
        let mut next = None;
        for candidate in anchors.iter().chain(intermediates) {
            if path.iter().any(|p| p.der == candidate.der) {
                continue;
            }
            match current.signed_by(candidate) {
                Ok(true) => {
                    next = Some(candidate.clone());
                    break;
                }
                Ok(false) => {}
                Err(ChainError::Unsupported(e)) => unsupported = Some(e),
                Err(e) => return Err(e),
            }
        }
        let Some(issuer) = next else {
            if let Some(e) = unsupported {
                return Err(ChainError::Unsupported(e));
            }
            return Err(ChainError::Untrusted(format!(
                "certificate `{}` (issued by `{}`) does not chain to any of the {} trust anchor(s) given",
                current.subject(),
                current.issuer(),
                anchors.len()
            )));
        };
        // Intermediates counted below this issuer (the leaf is not counted).
        check_issuer(&issuer, path.len() - 1)?;
        issuer.check_critical()?;
        issuer.check_time(now)?;
        path.push(issuer);
    }
}
