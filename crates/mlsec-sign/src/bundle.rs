//! The Sigstore bundle (v0.3, JSON) around a DSSE envelope around an in-toto statement, read
//! strictly and written the way model-signing writes it.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::manifest::{
    HashAlgorithm, MAX_RESOURCES, Manifest, Method, Resource, ResourceKey, Serialization,
};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The same version under the media-type spelling newer Sigstore clients write.
pub const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The predicate model-signing 0.2 wrote: one subject per file, sha256 only.
pub const PREDICATE_TYPE_LEGACY: &str = "https://model_signing/Digests/v0.1";
/// Bundles bigger than this are refused before parsing.
pub const MAX_BUNDLE_BYTES: u64 = 64 << 20;

/// What the bundle offers to check its signature with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// Key mode. `hint` is SHA-256 of the public key PEM (model-signing 1.1+); bundles before 1.1
    /// carried the PEM itself in `raw_pem` instead.
    PublicKey {
        hint: Option<String>,
        raw_pem: Option<Vec<u8>>,
        key_details: Option<String>,
    },
    /// Certificate mode: DER certificates, signing certificate first.
    CertificateChain(Vec<Vec<u8>>),
    /// Sigstore keyless form (one certificate, transparency log entries). Not verified offline.
    Certificate(Vec<u8>),
}

/// A parsed bundle. `payload` holds the exact signed bytes.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub media_type: String,
    pub material: Material,
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    pub tlog_entries: usize,
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, Error> {
    // protobuf JSON accepts both alphabets, with or without padding.
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        if let Ok(v) = engine.decode(&clean) {
            return Ok(v);
        }
    }
    Err(Error::new(format!("{field}: not base64")))
}

fn get<'a>(obj: &'a Map<String, Value>, field: &str, path: &str) -> Result<&'a Value, Error> {
    obj.get(field)
        .ok_or_else(|| Error::new(format!("{path}.{field}: missing")))
}

fn get_str<'a>(obj: &'a Map<String, Value>, field: &str, path: &str) -> Result<&'a str, Error> {
    get(obj, field, path)?
        .as_str()
        .ok_or_else(|| Error::new(format!("{path}.{field}: not a string")))
}

/// The DSSE envelope and its signatures are closed structures (model-signing refuses anything
/// else in them): a field this parser does not know is an error, not something to ignore.
fn only_fields(obj: &Map<String, Value>, known: &[&str], path: &str) -> Result<(), Error> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Error::new(format!(
            "{path}: unknown field `{k}` (expected only {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn get_obj<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, Error> {
    get(obj, field, path)?
        .as_object()
        .ok_or_else(|| Error::new(format!("{path}.{field}: not an object")))
}

impl Bundle {
    /// Parses and checks the structure. Nothing cryptographic happens here.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(Error::new(format!(
                "bundle of {} bytes is larger than the {MAX_BUNDLE_BYTES} allowed",
                bytes.len()
            )));
        }
        let root: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::new(format!("bundle is not JSON: {e}")))?;
        let root = root
            .as_object()
            .ok_or_else(|| Error::new("bundle: not a JSON object"))?;
        let media_type = get_str(root, "mediaType", "bundle")?;
        if media_type != BUNDLE_MEDIA_TYPE && media_type != BUNDLE_MEDIA_TYPE_ALT {
            return Err(Error::new(format!(
                "bundle.mediaType: `{media_type}` is not a Sigstore bundle v0.3 (`{BUNDLE_MEDIA_TYPE}`)"
            )));
        }
        let vm = get_obj(root, "verificationMaterial", "bundle")?;
        let material = if let Some(pk) = vm.get("publicKey") {
            let pk = pk.as_object().ok_or_else(|| {
                Error::new("bundle.verificationMaterial.publicKey: not an object")
            })?;
            let hint = match pk.get("hint") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(Error::new(
                        "bundle.verificationMaterial.publicKey.hint: not a string",
                    ));
                }
            };
            let raw_pem = match pk.get("rawBytes") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => {
                    Some(b64("bundle.verificationMaterial.publicKey.rawBytes", s)?)
                }
                Some(_) => {
                    return Err(Error::new(
                        "bundle.verificationMaterial.publicKey.rawBytes: not a string",
                    ));
                }
            };
            let key_details = pk
                .get("keyDetails")
                .and_then(Value::as_str)
                .map(str::to_owned);
            Material::PublicKey {
                hint,
                raw_pem,
                key_details,
            }
        } else if let Some(chain) = vm.get("x509CertificateChain") {
            let chain = chain.as_object().ok_or_else(|| {
                Error::new("bundle.verificationMaterial.x509CertificateChain: not an object")
            })?;
            let certs = get(
                chain,
                "certificates",
                "bundle.verificationMaterial.x509CertificateChain",
            )?
            .as_array()
            .ok_or_else(|| {
                Error::new(
                    "bundle.verificationMaterial.x509CertificateChain.certificates: not an array",
                )
            })?;
            if certs.is_empty() {
                return Err(Error::new(
                    "bundle.verificationMaterial.x509CertificateChain.certificates: empty",
                ));
            }
            if certs.len() > crate::x509::MAX_CERTS {
                return Err(Error::new(format!(
                    "bundle.verificationMaterial.x509CertificateChain.certificates: more than {}",
                    crate::x509::MAX_CERTS
                )));
            }
            let mut out = Vec::with_capacity(certs.len());
            for (i, c) in certs.iter().enumerate() {
                let path =
                    format!("bundle.verificationMaterial.x509CertificateChain.certificates[{i}]");
                let c = c
                    .as_object()
                    .ok_or_else(|| Error::new(format!("{path}: not an object")))?;
                out.push(b64(
                    &format!("{path}.rawBytes"),
                    get_str(c, "rawBytes", &path)?,
                )?);
            }
            Material::CertificateChain(out)
        } else if let Some(cert) = vm.get("certificate") {
            let cert = cert.as_object().ok_or_else(|| {
                Error::new("bundle.verificationMaterial.certificate: not an object")
            })?;
            Material::Certificate(b64(
                "bundle.verificationMaterial.certificate.rawBytes",
                get_str(cert, "rawBytes", "bundle.verificationMaterial.certificate")?,
            )?)
        } else {
            return Err(Error::new(
                "bundle.verificationMaterial: no publicKey, x509CertificateChain or certificate",
            ));
        };
        let tlog_entries = vm
            .get("tlogEntries")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let env = get_obj(root, "dsseEnvelope", "bundle").map_err(|e| if root.contains_key("messageSignature") { Error::new("bundle holds a messageSignature, not a DSSE envelope: model signatures are DSSE") } else { e })?;
        only_fields(
            env,
            &["payload", "payloadType", "signatures"],
            "bundle.dsseEnvelope",
        )?;
        let payload_type = get_str(env, "payloadType", "bundle.dsseEnvelope")?.to_owned();
        let payload = b64(
            "bundle.dsseEnvelope.payload",
            get_str(env, "payload", "bundle.dsseEnvelope")?,
        )?;
        let sigs = get(env, "signatures", "bundle.dsseEnvelope")?
            .as_array()
            .ok_or_else(|| Error::new("bundle.dsseEnvelope.signatures: not an array"))?;
        let sig = match sigs.as_slice() {
            [] => {
                return Err(Error::new(
                    "bundle.dsseEnvelope.signatures: empty, the bundle is not signed",
                ));
            }
            [one] => one
                .as_object()
                .ok_or_else(|| Error::new("bundle.dsseEnvelope.signatures[0]: not an object"))?,
            more => {
                return Err(Error::new(format!(
                    "bundle.dsseEnvelope.signatures: {} signatures; model signatures carry exactly one",
                    more.len()
                )));
            }
        };
        only_fields(sig, &["sig", "keyid"], "bundle.dsseEnvelope.signatures[0]")?;
        let signature = b64(
            "bundle.dsseEnvelope.signatures[0].sig",
            get_str(sig, "sig", "bundle.dsseEnvelope.signatures[0]")?,
        )?;
        if signature.is_empty() {
            return Err(Error::new("bundle.dsseEnvelope.signatures[0].sig: empty"));
        }
        Ok(Self {
            media_type: media_type.to_owned(),
            material,
            payload_type,
            payload,
            signature,
            tlog_entries,
        })
    }

    /// Serializes the way model-signing does (camelCase protobuf JSON, standard base64).
    pub fn to_json(&self) -> Vec<u8> {
        let material = match &self.material {
            Material::PublicKey { hint, .. } => {
                json!({"publicKey": {"hint": hint}, "tlogEntries": []})
            }
            Material::CertificateChain(certs) => {
                json!({"x509CertificateChain": {"certificates": certs.iter().map(|c| json!({"rawBytes": STANDARD.encode(c)})).collect::<Vec<_>>()}, "tlogEntries": []})
            }
            Material::Certificate(c) => {
                json!({"certificate": {"rawBytes": STANDARD.encode(c)}, "tlogEntries": []})
            }
        };
        let bundle = json!({
            "mediaType": self.media_type,
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": STANDARD.encode(&self.payload),
                "payloadType": self.payload_type,
                "signatures": [{"sig": STANDARD.encode(&self.signature), "keyid": ""}],
            },
        });
        serde_json::to_vec(&bundle).expect("bundle serializes")
    }
}

/// DSSE pre-authentication encoding (DSSE v1).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The encoding model-signing 0.2 signed by mistake: `DSSEV1`, and the payload as Python's
/// `repr(bytes)` (`b'...'` with escapes). Verification accepts it for bundles of that era.
pub fn pae_legacy(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    format!(
        "DSSEV1 {} {payload_type} {} {}",
        payload_type.len(),
        payload.len(),
        python_bytes_repr(payload)
    )
    .into_bytes()
}

fn python_bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut s = String::with_capacity(b.len() + 3);
    s.push('b');
    s.push(quote as char);
    for &c in b {
        match c {
            _ if c == quote || c == b'\\' => {
                s.push('\\');
                s.push(c as char);
            }
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push(quote as char);
    s
}

/// What the signed statement says.
#[derive(Debug, Clone)]
pub struct Statement {
    pub manifest: Manifest,
    pub predicate_type: String,
    /// The subject's root digest (v1.0 predicate only).
    pub root_digest: Option<[u8; 32]>,
}

/// The in-toto statement for a manifest, as JSON bytes (these are what gets signed).
pub fn statement_json(m: &Manifest) -> Vec<u8> {
    let resources: Vec<Value> = m.resources.iter().map(|r| json!({"name": r.key.to_string(), "algorithm": r.algorithm, "digest": crate::hex::encode(&r.digest)})).collect();
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": m.model_name, "digest": {"sha256": crate::hex::encode(&m.root_digest())}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"serialization": m.serialization.to_json(), "resources": resources},
    });
    serde_json::to_vec_pretty(&statement).expect("statement serializes")
}

fn digest_field(s: &str, path: &str, alg: HashAlgorithm) -> Result<Vec<u8>, Error> {
    let d =
        crate::hex::decode(s).ok_or_else(|| Error::new(format!("{path}: digest is not hex")))?;
    if d.len() != alg.len() {
        return Err(Error::new(format!(
            "{path}: {} digest of {} bytes (expected {})",
            alg.name(),
            d.len(),
            alg.len()
        )));
    }
    Ok(d)
}

/// Reads a signed payload. The bytes are parsed as they were signed; nothing is re-serialized.
pub fn parse_statement(payload: &[u8]) -> Result<Statement, Error> {
    let root: Value = serde_json::from_slice(payload)
        .map_err(|e| Error::new(format!("statement is not JSON: {e}")))?;
    let root = root
        .as_object()
        .ok_or_else(|| Error::new("statement: not an object"))?;
    let ty = get_str(root, "_type", "statement")?;
    if ty != STATEMENT_TYPE {
        return Err(Error::new(format!(
            "statement._type: `{ty}` is not an in-toto v1 statement"
        )));
    }
    let predicate_type = get_str(root, "predicateType", "statement")?.to_owned();
    let subjects = get(root, "subject", "statement")?
        .as_array()
        .ok_or_else(|| Error::new("statement.subject: not an array"))?;
    if subjects.len() > MAX_RESOURCES {
        return Err(Error::new(format!(
            "statement.subject: more than {MAX_RESOURCES} entries"
        )));
    }
    match predicate_type.as_str() {
        PREDICATE_TYPE => {
            let [subject] = subjects.as_slice() else {
                return Err(Error::new(format!(
                    "statement.subject: expected one subject, found {}",
                    subjects.len()
                )));
            };
            let subject = subject
                .as_object()
                .ok_or_else(|| Error::new("statement.subject[0]: not an object"))?;
            let name = subject
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let root_hex = get_str(
                get_obj(subject, "digest", "statement.subject[0]")?,
                "sha256",
                "statement.subject[0].digest",
            )?;
            let root_digest: [u8; 32] = digest_field(
                root_hex,
                "statement.subject[0].digest.sha256",
                HashAlgorithm::Sha256,
            )?
            .try_into()
            .expect("length checked");
            let predicate = get_obj(root, "predicate", "statement")?;
            let serialization =
                Serialization::from_json(get(predicate, "serialization", "predicate")?)?;
            let list = get(predicate, "resources", "predicate")?
                .as_array()
                .ok_or_else(|| Error::new("predicate.resources: not an array"))?;
            if list.is_empty() {
                return Err(Error::new(
                    "predicate.resources: empty, the signature covers no file",
                ));
            }
            if list.len() > MAX_RESOURCES {
                return Err(Error::new(format!(
                    "predicate.resources: more than {MAX_RESOURCES} entries"
                )));
            }
            let expected_alg = serialization.resource_algorithm();
            let mut resources = Vec::with_capacity(list.len());
            for (i, r) in list.iter().enumerate() {
                let path = format!("predicate.resources[{i}]");
                let r = r
                    .as_object()
                    .ok_or_else(|| Error::new(format!("{path}: not an object")))?;
                let name = get_str(r, "name", &path)?;
                let algorithm = get_str(r, "algorithm", &path)?;
                if algorithm != expected_alg && algorithm != serialization.hash.name() {
                    return Err(Error::new(format!(
                        "{path}.algorithm: `{algorithm}` does not match the serialization (`{expected_alg}`)"
                    )));
                }
                let digest = digest_field(
                    get_str(r, "digest", &path)?,
                    &format!("{path}.digest"),
                    serialization.hash,
                )?;
                let key = ResourceKey::parse(name, serialization.method)
                    .map_err(|e| Error::new(format!("{path}.name: {e}")))?;
                resources.push(Resource {
                    key,
                    algorithm: algorithm.to_owned(),
                    digest,
                });
            }
            // The root digest covers the resources in the order they were signed.
            let computed =
                crate::manifest::root_digest(resources.iter().map(|r| r.digest.as_slice()));
            if computed != root_digest {
                return Err(Error::new(format!(
                    "statement is inconsistent: subject digest {root_hex} but the resources hash to {}",
                    crate::hex::encode(&computed)
                )));
            }
            let single_file = resources.iter().any(|r| r.key.path == ".");
            if single_file && resources.iter().any(|r| r.key.path != ".") {
                return Err(Error::new(
                    "predicate.resources: `.` (a single-file model) mixed with other paths",
                ));
            }
            if let Method::Shards { shard_size } = serialization.method
                && let Some(r) = resources
                    .iter()
                    .find(|r| r.key.range.is_some_and(|(s, e)| e - s > shard_size))
            {
                return Err(Error::new(format!(
                    "predicate.resources: shard `{}` is longer than shard_size {shard_size}",
                    r.key
                )));
            }
            let manifest = Manifest::new(name, serialization, resources)?;
            Ok(Statement {
                manifest,
                predicate_type,
                root_digest: Some(root_digest),
            })
        }
        PREDICATE_TYPE_LEGACY => {
            if subjects.is_empty() {
                return Err(Error::new(
                    "statement.subject: empty, the signature covers no file",
                ));
            }
            let mut resources = Vec::with_capacity(subjects.len());
            for (i, s) in subjects.iter().enumerate() {
                let path = format!("statement.subject[{i}]");
                let s = s
                    .as_object()
                    .ok_or_else(|| Error::new(format!("{path}: not an object")))?;
                let name = get_str(s, "name", &path)?;
                let digest = digest_field(
                    get_str(
                        get_obj(s, "digest", &path)?,
                        "sha256",
                        &format!("{path}.digest"),
                    )?,
                    &format!("{path}.digest.sha256"),
                    HashAlgorithm::Sha256,
                )?;
                let key = ResourceKey::parse(name, Method::Files)
                    .map_err(|e| Error::new(format!("{path}.name: {e}")))?;
                resources.push(Resource {
                    key,
                    algorithm: "sha256".into(),
                    digest,
                });
            }
            let manifest = Manifest::new(
                String::new(),
                Serialization::files(HashAlgorithm::Sha256),
                resources,
            )?;
            Ok(Statement {
                manifest,
                predicate_type,
                root_digest: None,
            })
        }
        other => Err(Error::new(format!(
            "statement.predicateType: `{other}` is not a model signature (`{PREDICATE_TYPE}`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn legacy_pae_reproduces_python_repr() {
        assert_eq!(
            pae_legacy("t", b"{\n \"a\": 'x'\\\x01}"),
            b"DSSEV1 1 t 14 b'{\\n \"a\": \\'x\\'\\\\\\x01}'".to_vec()
        );
        assert_eq!(python_bytes_repr(b"it's"), "b\"it's\"");
    }
}
