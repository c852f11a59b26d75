//! Format detection and the per-format checks. Detection reads content (magic bytes, structure);
//! file names only break ties and decide whether an unrecognised file is worth a finding.

use std::io::{self, Read};
use std::path::Path;

use mlsec_diagnostics::{Finding, Location, Rule, Severity};
use mlsec_formats::protobuf::{onnx, saved_model};
use mlsec_formats::source::{ReadAt, Slice};
use mlsec_formats::{gguf, hdf5, npy, pickle as pk, safetensors, tflite, zip};

use crate::pickle::{self, StreamMode};
use crate::{keras, rules, template};

/// Deepest nesting of containers (zip in zip in tar.gz ...).
pub const MAX_NESTING: u32 = 8;
/// Most bytes inflated from all containers of one top-level file.
pub const MAX_TOTAL_INFLATED: u64 = 4 * 1024 * 1024 * 1024;
/// Largest compressed stream (gzip, bz2, xz, lzma, zlib) inflated into memory.
pub const MAX_STREAM_INFLATED: u64 = 1024 * 1024 * 1024;
/// Deflated zip members larger than this are identified from their first bytes before being
/// inflated in full.
pub const LAZY_INFLATE: u64 = 16 * 1024 * 1024;
/// A zip is a bomb (medium) when its compressed members declare at least this much data at
/// [`BOMB_RATIO`] or more; high from [`BOMB_HIGH_BYTES`] at [`BOMB_HIGH_RATIO`] (deflate's
/// ceiling is about 1032:1, reached only by runs of one byte).
pub const BOMB_BYTES: u64 = 256 * 1024 * 1024;
/// See [`BOMB_BYTES`].
pub const BOMB_RATIO: u64 = 100;
/// See [`BOMB_BYTES`].
pub const BOMB_HIGH_BYTES: u64 = 1024 * 1024 * 1024;
/// See [`BOMB_BYTES`].
pub const BOMB_HIGH_RATIO: u64 = 500;
/// Largest JSON config read (Keras config.json, HF config.json).
pub const MAX_JSON: u64 = 64 * 1024 * 1024;
/// How far into an HDF5 file the Keras model_config is searched for.
pub const MAX_H5_SCAN: u64 = 256 * 1024 * 1024;

/// Extensions that mean "this is a model"; an unrecognised file with one is reported. `.bin`
/// and `.model` are read as pickle when they are one but not reported otherwise: they are also
/// raw weights (OpenVINO, ONNX external data) and sentencepiece tokenizers.
pub const MODEL_EXTENSIONS: &[&str] = &[
    "pkl",
    "pickle",
    "pt",
    "pth",
    "ckpt",
    "joblib",
    "dill",
    "sav",
    "p",
    "npy",
    "npz",
    "h5",
    "hdf5",
    "keras",
    "onnx",
    "tflite",
    "safetensors",
    "gguf",
    "ggml",
    "pdparams",
    "mar",
    "tar",
    "zip",
];

/// Extensions that are read as pickle even without a protocol-2+ header.
const PICKLE_EXTENSIONS: &[&str] = &[
    "pkl", "pickle", "pt", "pth", "bin", "ckpt", "joblib", "dill", "sav", "model", "p", "data",
];

/// What a source turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pickle,
    LegacyTorch,
    Zip,
    TorchZip,
    TorchScript,
    Keras,
    Npz,
    Tar,
    Compressed,
    SevenZip,
    Npy,
    Safetensors,
    Gguf,
    Hdf5,
    Onnx,
    Tflite,
    SavedModel,
    KerasMetadata,
    HfConfig,
    PythonInModelDir,
    /// Not a model format: nothing was checked.
    Other,
}

/// Scans one source and collects findings. One per top-level file.
pub struct Scanner {
    pub findings: Vec<Finding>,
    inflated: u64,
    /// PyTorch storages named by the pickles scanned so far, checked against the archive that
    /// holds them.
    storages: Vec<pickle::StorageRef>,
}

fn ext(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((_, e)) => e.to_ascii_lowercase(),
        None => String::new(),
    }
}

fn basename(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

const LEGACY_TORCH_MAGIC: &[u8] = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
const SEVEN_ZIP_MAGIC: &[u8] = b"7z\xbc\xaf\x27\x1c";
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            findings: Vec::new(),
            inflated: 0,
            storages: Vec::new(),
        }
    }

    fn add(
        &mut self,
        rule: &'static Rule,
        loc: &Location,
        message: impl Into<String>,
    ) -> &mut Finding {
        self.findings.push(Finding::new(rule, loc.clone(), message));
        let last = self.findings.len() - 1;
        &mut self.findings[last]
    }

    /// Scans `src`, named `name` (a file name or member name), at `loc`. `dir` is the directory
    /// holding the file on disk, when there is one (for ONNX external data).
    pub fn scan(
        &mut self,
        src: &dyn ReadAt,
        loc: &Location,
        name: &str,
        dir: Option<&Path>,
        depth: u32,
    ) -> Kind {
        if depth > MAX_NESTING {
            self.add(&rules::ARCHIVE_LIMIT, loc, format!("containers nested deeper than MAX_NESTING ({MAX_NESTING}); inner content not scanned"));
            return Kind::Other;
        }
        let head = match src.read_prefix(0, 512) {
            Ok(h) => h,
            Err(e) => {
                self.add(&rules::ARCHIVE_MALFORMED, loc, format!("cannot read: {e}"));
                return Kind::Other;
            }
        };
        let e = ext(name);
        let base = basename(name);
        if zip::is_zip(&head) {
            return self.scan_zip(src, loc, dir, depth);
        }
        if head.starts_with(SEVEN_ZIP_MAGIC) {
            self.scan_7z(src, loc, dir, depth);
            return Kind::SevenZip;
        }
        if let Some(kind) = compression(&head) {
            // `None`: the weak LZMA check matched but the data does not decode; keep detecting.
            if let Some(found) = self.scan_compressed(src, loc, name, dir, depth, kind) {
                return found;
            }
        }
        if head.get(257..262) == Some(b"ustar") {
            return self.scan_tar(src, loc, dir, depth);
        }
        if npy::sniff(&head) {
            self.scan_npy(src, loc, depth);
            return Kind::Npy;
        }
        if gguf::sniff(&head) {
            self.scan_gguf(src, loc);
            return Kind::Gguf;
        }
        if tflite::sniff(&head) || e == "tflite" {
            self.scan_tflite(src, loc);
            return Kind::Tflite;
        }
        if head.starts_with(HDF5_MAGIC) {
            self.scan_h5(src, loc);
            return Kind::Hdf5;
        }
        if safetensors::sniff(&head, src.len()) || (e == "safetensors" && !head.is_empty()) {
            self.scan_safetensors(src, loc);
            return Kind::Safetensors;
        }
        if head.starts_with(LEGACY_TORCH_MAGIC) {
            self.scan_pickle(src, loc, StreamMode::Upto(5), depth);
            return Kind::LegacyTorch;
        }
        if head.first() == Some(&0x80) && pk::looks_like_pickle(&head) {
            self.scan_pickle(src, loc, StreamMode::All, depth);
            return Kind::Pickle;
        }
        if pk::looks_like_pickle(&head) {
            // Protocol 0/1 has no header, and text can start like it (`ca\ncal\n` is a GLOBAL).
            // It is a pickle when it is named one, when a stream completes, or when a loader
            // would make a call before it failed.
            let a = pickle::analyze(src, StreamMode::All);
            if PICKLE_EXTENSIONS.contains(&e.as_str()) || a.streams > 0 || a.calls > 0 {
                self.pickle_hits(a, loc, depth, src);
                return Kind::Pickle;
            }
        }
        if e == "onnx" || (onnx::sniff(&head) && e != "pb") {
            self.scan_onnx(src, loc, dir);
            return Kind::Onnx;
        }
        if base == "saved_model.pb" {
            self.scan_saved_model(src, loc);
            return Kind::SavedModel;
        }
        if e == "pb" && base != "keras_metadata.pb" && self.scan_graph_def(src, loc) {
            return Kind::SavedModel;
        }
        if base == "keras_metadata.pb" {
            self.scan_keras_metadata(src, loc);
            return Kind::KerasMetadata;
        }
        if base == "config.json" || base == "tokenizer_config.json" {
            self.scan_hf_config(src, loc);
            return Kind::HfConfig;
        }
        if e == "jinja" || e == "j2" {
            self.scan_jinja(src, loc);
            return Kind::HfConfig;
        }
        if known_data_format(&head).is_some() {
            // IDL and SPSS `.sav`, MATLAB `.mat`: data formats whose readers run no code.
            return Kind::Other;
        }
        let model_named =
            MODEL_EXTENSIONS.contains(&e.as_str()) || PICKLE_EXTENSIONS.contains(&e.as_str());
        if model_named {
            // A zip with data in front of it: not a zip by its first bytes, but Python reads it.
            if let Ok(archive) = zip::Archive::open(src, zip::Limits::default())
                && !archive.entries.is_empty()
            {
                return self.scan_zip_archive(src, &archive, loc, dir, depth);
            }
        }
        let mut not_pickle = None;
        if PICKLE_EXTENSIONS.contains(&e.as_str()) && !head.is_empty() {
            // Protocol 0/1 pickles have no header; try before giving up.
            let a = pickle::analyze(src, StreamMode::All);
            if a.streams > 0 || a.imports > 0 || a.calls > 0 {
                self.pickle_hits(a, loc, depth, src);
                return Kind::Pickle;
            }
            not_pickle = a.error;
        }
        if MODEL_EXTENSIONS.contains(&e.as_str()) {
            // What `pickle.load`, `torch.load` and `joblib.load` open: they parse whatever is
            // there as a pickle, so a file that is not one is not what it claims to be.
            let loaded_as_pickle = PICKLE_EXTENSIONS.contains(&e.as_str());
            let message = match (&not_pickle, head.is_empty()) {
                (_, true) => format!("named like a model (.{e}) but empty"),
                (Some(err), _) if loaded_as_pickle => format!(
                    "named like a pickle (.{e}) but not a valid pickle stream ({err}) and no other known model format"
                ),
                _ => format!(
                    "named like a model (.{e}) but its content matches no known model format"
                ),
            };
            let severity = if loaded_as_pickle {
                Severity::Medium
            } else {
                rules::UNRECOGNIZED_MODEL.severity
            };
            let preview: String = head
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ");
            let f = self.add(&rules::UNRECOGNIZED_MODEL, loc, message);
            f.severity = severity;
            f.set_evidence(format!("first bytes: {preview}"));
            return Kind::Other;
        }
        Kind::Other
    }

    fn scan_pickle(&mut self, src: &dyn ReadAt, loc: &Location, mode: StreamMode, depth: u32) {
        let a = pickle::analyze(src, mode);
        self.pickle_hits(a, loc, depth, src);
    }

    fn pickle_hits(
        &mut self,
        mut a: pickle::Analysis,
        loc: &Location,
        depth: u32,
        src: &dyn ReadAt,
    ) {
        self.storages.append(&mut a.storages);
        for h in a.hits {
            let mut l = loc.clone().at(h.offset);
            if !h.opcode.is_empty() {
                l = l.opcode(h.opcode);
            }
            let mut f = Finding::new(h.rule, l, h.message).severity(h.severity);
            f.evidence = h.evidence;
            self.findings.push(f);
        }
        for emb in a.embedded {
            let decoded;
            let slice;
            let source: &dyn ReadAt = if let Some(bytes) = &emb.decoded {
                decoded = bytes.as_slice();
                &decoded
            } else {
                slice = Slice::new(src, emb.data_offset, emb.len);
                &slice
            };
            let inner_loc = loc.clone().member(format!("bytes@{}", emb.opcode_offset));
            let before = self.findings.len();
            let kind = self.scan(source, &inner_loc, "", None, depth + 1);
            // Bytes that merely start like a pickle are data unless they parse as one or hold imports.
            if kind == Kind::Pickle {
                let nested = &self.findings[before..];
                let only_malformed = nested
                    .iter()
                    .all(|f| f.rule.id == rules::PICKLE_MALFORMED.id);
                if only_malformed {
                    let a2 = pickle::analyze(source, StreamMode::One);
                    if a2.streams == 0 && a2.imports == 0 {
                        self.findings.truncate(before);
                    }
                }
            }
        }
    }

    fn scan_zip(
        &mut self,
        src: &dyn ReadAt,
        loc: &Location,
        dir: Option<&Path>,
        depth: u32,
    ) -> Kind {
        match zip::Archive::open(src, zip::Limits::default()) {
            Ok(archive) => self.scan_zip_archive(src, &archive, loc, dir, depth),
            Err(e) => {
                let rule = if matches!(e, zip::ZipError::Limit { .. }) {
                    &rules::ARCHIVE_LIMIT
                } else {
                    &rules::ARCHIVE_MALFORMED
                };
                self.add(rule, loc, format!("zip archive cannot be read: {e}"));
                Kind::Zip
            }
        }
    }

    /// A zip whose members declare far more data than the archive holds (a flat zip bomb): the
    /// scanner reads such members lazily, but a loader or tool that extracts them does not.
    fn expansion_ratio(&mut self, archive: &zip::Archive, loc: &Location) {
        let (packed, unpacked) =
            archive
                .entries
                .iter()
                .filter(|e| e.method != 0)
                .fold((0u64, 0u64), |(p, u), e| {
                    (
                        p.saturating_add(e.compressed_size),
                        u.saturating_add(e.uncompressed_size),
                    )
                });
        let ratio = unpacked / packed.max(1);
        let severity = if unpacked >= BOMB_HIGH_BYTES && ratio >= BOMB_HIGH_RATIO {
            Severity::High
        } else if unpacked >= BOMB_BYTES && ratio >= BOMB_RATIO {
            Severity::Medium
        } else {
            return;
        };
        let f = self.add(
            &rules::ARCHIVE_LIMIT,
            loc,
            format!(
                "compressed members declare {unpacked} bytes from {packed} stored ({ratio}:1): a \
                 zip bomb for anything that extracts them; the scanner reads them lazily"
            ),
        );
        f.severity = severity;
        f.set_evidence(format!("ratio {ratio}:1, {unpacked} bytes declared"));
    }

    /// Reports where a member could not be read, with the rule its error calls for.
    fn member_error(&mut self, loc: &Location, err: &zip::ZipError) {
        match err {
            zip::ZipError::Limit { .. } => {
                self.add(
                    &rules::ARCHIVE_LIMIT,
                    loc,
                    format!("member not scanned: {err}"),
                );
            }
            zip::ZipError::UnsupportedMethod { .. } => {
                self.add(
                    &rules::ARCHIVE_UNSCANNABLE,
                    loc,
                    format!("member not scanned: {err}"),
                );
            }
            _ => {
                self.add(
                    &rules::ARCHIVE_MALFORMED,
                    loc,
                    format!("member cannot be read: {err}; the other members are still scanned"),
                );
            }
        }
    }

    fn scan_zip_archive(
        &mut self,
        src: &dyn ReadAt,
        archive: &zip::Archive,
        loc: &Location,
        dir: Option<&Path>,
        depth: u32,
    ) -> Kind {
        for a in &archive.anomalies {
            match a {
                zip::Anomaly::DuplicateName(n) => {
                    self.add(
                        &rules::ARCHIVE_DUPLICATE_ENTRY,
                        &loc.clone().member(n),
                        format!("member {n:?} appears more than once; every copy is scanned"),
                    );
                }
                zip::Anomaly::Overlap(x, y) => {
                    self.add(
                        &rules::ARCHIVE_OVERLAP,
                        &loc.clone().member(y),
                        format!("members {x:?} and {y:?} overlap in the archive"),
                    );
                }
                zip::Anomaly::NameMismatch { central, local } => {
                    self.add(&rules::ARCHIVE_NAME_MISMATCH, &loc.clone().member(central), format!("central directory names {central:?} but the local header names {local:?}"))
                        .set_evidence(format!("central={central:?} local={local:?}"));
                }
                zip::Anomaly::EncryptedFlag(n) => {
                    self.add(&rules::ARCHIVE_ENCRYPTED_FLAG, &loc.clone().member(n), "encryption flag is set; the member is scanned as plain data, as PyTorch reads it");
                }
                zip::Anomaly::BadLocalHeader { name: n, reason } => {
                    self.add(
                        &rules::ARCHIVE_MALFORMED,
                        &loc.clone().member(n),
                        format!(
                            "member cannot be read: {reason}; the other members are still scanned"
                        ),
                    );
                }
                zip::Anomaly::EntryCountMismatch { declared, found } => {
                    self.add(&rules::ARCHIVE_MALFORMED, loc, format!("end record declares {declared} entries but the central directory holds {found}"));
                }
                zip::Anomaly::PrependedData(n) => {
                    self.add(&rules::ARCHIVE_MALFORMED, loc, format!("{n} bytes precede the zip archive; Python's zipfile (and Keras) read it anyway, other readers and scanners may not"))
                        .set_evidence(format!("archive offsets shifted by {n}"));
                }
                zip::Anomaly::UnsafePath(n) => {
                    self.add(
                        &rules::ARCHIVE_UNSAFE_PATH,
                        &loc.clone().member(n),
                        format!("member path {n:?} is absolute or escapes with '..'"),
                    );
                }
            }
        }
        let names: Vec<&str> = archive.entries.iter().map(|e| e.name.as_str()).collect();
        let has = |suffix: &str| {
            names
                .iter()
                .any(|n| *n == suffix || n.ends_with(&format!("/{suffix}")))
        };
        let kind = if has("code")
            || names.iter().any(|n| n.contains("/code/__torch__"))
            || has("constants.pkl")
        {
            Kind::TorchScript
        } else if has("data.pkl") {
            Kind::TorchZip
        } else if names.contains(&"config.json")
            && (names.contains(&"metadata.json")
                || names.iter().any(|n| n.ends_with(".weights.h5")))
        {
            Kind::Keras
        } else if !names.is_empty()
            && names
                .iter()
                .all(|n| n.ends_with(".npy") || n.ends_with('/'))
        {
            Kind::Npz
        } else {
            Kind::Zip
        };
        // PyTorch's layout (`version`, `byteorder`, `data/N` storages) without the pickle that
        // `torch.load` reads: nothing here says what the file would do, so it is not clean.
        let torch_layout =
            has("version") && (has("byteorder") || names.iter().any(|n| n.contains("/data/")));
        if kind == Kind::Zip && torch_layout {
            let f = self.add(
                &rules::UNRECOGNIZED_MODEL,
                loc,
                "a PyTorch archive (version, byteorder, data/ storages) without data.pkl: \
                 torch.load cannot load it as written, and what it was meant to load is unknown",
            );
            f.severity = Severity::Medium;
            f.set_evidence(format!(
                "members: {}",
                names.iter().take(8).copied().collect::<Vec<_>>().join(", ")
            ));
        }
        self.expansion_ratio(archive, loc);
        let first_storage = self.storages.len();
        let limits = zip::Limits::default();
        for entry in &archive.entries {
            if entry.is_dir() {
                continue;
            }
            let mloc = loc.clone().member(&entry.name);
            let e = ext(&entry.name);
            // Tensor storages of PyTorch archives are raw data referenced from data.pkl.
            if matches!(kind, Kind::TorchZip | Kind::TorchScript) && is_storage_blob(&entry.name) {
                continue;
            }
            if kind == Kind::Keras && entry.name.ends_with(".weights.h5") {
                continue;
            }
            // Large deflated members: identify them from their first bytes, and inflate them in
            // full only if they can hold code (pickles, archives, object arrays).
            if entry.method == 8 && entry.uncompressed_size > LAZY_INFLATE {
                match zip::member_prefix(src, entry, 64 * 1024) {
                    Ok(head) if !self.needs_full_member(&head, &mloc, entry.uncompressed_size) => {
                        continue;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        self.member_error(&mloc, &err);
                        continue;
                    }
                }
            }
            if entry.method == 8 {
                self.inflated = self.inflated.saturating_add(entry.uncompressed_size);
                if self.inflated > MAX_TOTAL_INFLATED {
                    self.add(&rules::ARCHIVE_LIMIT, &mloc, format!("more than MAX_TOTAL_INFLATED ({MAX_TOTAL_INFLATED} bytes) inflated from this file; the rest is not scanned"));
                    break;
                }
            }
            let data = match zip::member(src, entry, limits) {
                Ok(d) => d,
                Err(err) => {
                    self.member_error(&mloc, &err);
                    continue;
                }
            };
            let rd = data.as_read_at();
            let is_pickle_name = matches!(e.as_str(), "pkl" | "pickle");
            let is_config = kind == Kind::Keras && entry.name == "config.json";
            if is_pickle_name || is_config || rd.len() <= 16 * 1024 * 1024 {
                match zip::crc_matches(rd, entry.crc32) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.add(&rules::ARCHIVE_CRC, &mloc, "CRC-32 does not match the data; Python's zipfile refuses this member, PyTorch loads it; scanned anyway");
                    }
                    Err(err) => {
                        self.add(
                            &rules::ARCHIVE_MALFORMED,
                            &mloc,
                            format!("member cannot be read: {err}"),
                        );
                        continue;
                    }
                }
            }
            if is_config {
                self.scan_keras_config(rd, &mloc);
                continue;
            }
            if kind == Kind::TorchScript
                && entry.name.ends_with(".py")
                && entry.name.contains("/code/")
            {
                self.scan_torchscript_code(rd, &mloc);
                continue;
            }
            if is_pickle_name {
                let head = rd.read_prefix(0, 512).unwrap_or_default();
                if !pk::looks_like_pickle(&head)
                    && !zip::is_zip(&head)
                    && compression(&head).is_none()
                {
                    self.scan_pickle(rd, &mloc, StreamMode::All, depth + 1);
                    continue;
                }
            }
            self.scan(rd, &mloc, &entry.name, dir, depth + 1);
        }
        if kind == Kind::TorchZip {
            let storages = self
                .storages
                .split_off(first_storage.min(self.storages.len()));
            self.check_storages(archive, &storages, loc);
        }
        kind
    }

    /// Each storage `data.pkl` names must be a `data/<key>` member holding at least the bytes
    /// its element count declares: `torch.load(weights_only=True)` trusts the count.
    fn check_storages(
        &mut self,
        archive: &zip::Archive,
        storages: &[pickle::StorageRef],
        loc: &Location,
    ) {
        let by_key: std::collections::HashMap<&str, &zip::Entry> = archive
            .entries
            .iter()
            .filter_map(|e| {
                let (dir, key) = e.name.rsplit_once('/')?;
                (dir == "data" || dir.ends_with("/data")).then_some((key, e))
            })
            .collect();
        let mut reported = 0;
        for st in storages {
            if reported >= 20 {
                break;
            }
            let Some(entry) = by_key.get(st.key.as_str()) else {
                reported += 1;
                let f = self.add(
                    &rules::TORCH_TENSOR_BOUNDS,
                    loc,
                    format!(
                        "data.pkl names storage {:?}, but the archive has no data/{} member",
                        st.key, st.key
                    ),
                );
                f.severity = Severity::Medium;
                f.set_evidence(format!(
                    "('storage', {}, {:?}, ..., {})",
                    st.kind, st.key, st.numel
                ));
                continue;
            };
            let Some(size) = st.element_size() else {
                continue;
            };
            let needed = st.numel.saturating_mul(size);
            if needed > entry.uncompressed_size {
                reported += 1;
                self.add(&rules::TORCH_TENSOR_BOUNDS, &loc.clone().member(&entry.name), format!(
                    "storage {:?} declares {} elements of {} ({needed} bytes) but its member holds {} bytes",
                    st.key, st.numel, st.kind, entry.uncompressed_size
                ))
                .set_evidence(format!("('storage', {}, {:?}, ..., {}) over {} bytes", st.kind, st.key, st.numel, entry.uncompressed_size));
            }
        }
    }

    /// Decides from a large member's first bytes whether it must be inflated in full. Plain
    /// numeric `.npy` arrays are checked from their header alone.
    fn needs_full_member(&mut self, head: &[u8], loc: &Location, size: u64) -> bool {
        if npy::sniff(head) {
            return match npy::parse(&head) {
                Ok(h) if !h.has_object() => {
                    if let Some(need) = h.data_len() {
                        let have = size.saturating_sub(h.data_offset);
                        if have < need {
                            self.add(&rules::NUMPY_MALFORMED, loc, format!("header declares {need} bytes of data but only {have} follow (truncated)"));
                        }
                    }
                    false
                }
                // Object arrays, and headers that need more than the prefix: read it all.
                _ => true,
            };
        }
        pk::looks_like_pickle(head)
            || zip::is_zip(head)
            || compression(head).is_some()
            || head.starts_with(SEVEN_ZIP_MAGIC)
            || head.get(257..262) == Some(b"ustar")
            || gguf::sniff(head)
            || head.starts_with(HDF5_MAGIC)
            || safetensors::sniff(head, size)
            || head.first() == Some(&b'{')
    }

    fn scan_compressed(
        &mut self,
        src: &dyn ReadAt,
        loc: &Location,
        name: &str,
        dir: Option<&Path>,
        depth: u32,
        kind: Compression,
    ) -> Option<Kind> {
        let remaining = MAX_TOTAL_INFLATED.saturating_sub(self.inflated);
        let cap = MAX_STREAM_INFLATED.min(remaining);
        let reader = ReadAtReader { src, pos: 0 };
        let result = inflate(kind, reader, cap);
        let data = match result {
            Ok(d) => d,
            Err(InflateError::Limit) => {
                self.add(&rules::ARCHIVE_LIMIT, loc, format!("{} stream inflates past {cap} bytes (MAX_STREAM_INFLATED / MAX_TOTAL_INFLATED); content not scanned", kind.name()));
                return Some(Kind::Compressed);
            }
            Err(InflateError::Corrupt(msg)) => {
                if kind == Compression::Lzma {
                    // The LZMA check is weak (no magic); a failed decode means "not LZMA".
                    return None;
                }
                self.add(
                    &rules::ARCHIVE_MALFORMED,
                    loc,
                    format!("{} stream is corrupt or truncated: {msg}", kind.name()),
                );
                return Some(Kind::Compressed);
            }
        };
        self.inflated += data.len() as u64;
        let inner_name = strip_compression_ext(name);
        let inner_loc = loc
            .clone()
            .member(format!("{}:{}", kind.name(), basename(&inner_name)));
        let inner = self.scan(&data, &inner_loc, &inner_name, dir, depth + 1);
        if inner == Kind::Other {
            // A compressed stream of unknown content inside a model-named file (joblib): read it as pickle.
            let e = ext(&inner_name);
            if PICKLE_EXTENSIONS.contains(&e.as_str())
                || PICKLE_EXTENSIONS.contains(&ext(name).as_str())
            {
                self.scan_pickle(&data, &inner_loc, StreamMode::All, depth + 1);
                return Some(Kind::Pickle);
            }
        }
        Some(Kind::Compressed)
    }

    fn scan_7z(&mut self, src: &dyn ReadAt, loc: &Location, dir: Option<&Path>, depth: u32) {
        // A third-party decoder on hostile input: contain a panic as a finding.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sevenz_rust2::ArchiveReader::new(
                ReadAtReader { src, pos: 0 },
                sevenz_rust2::Password::empty(),
            )
        }));
        let mut ar = match opened {
            Ok(Ok(ar)) => ar,
            Ok(Err(e)) => {
                self.add(
                    &rules::ARCHIVE_UNSCANNABLE,
                    loc,
                    format!("7z archive cannot be opened ({e}); its content is not inspected"),
                )
                .set_evidence("7z signature 37 7a bc af 27 1c");
                return;
            }
            Err(_) => {
                self.add(
                    &rules::ARCHIVE_MALFORMED,
                    loc,
                    "7z archive crashed the 7z decoder; its content is not inspected",
                );
                return;
            }
        };
        let entries = ar.archive().files.len();
        if entries > zip::MAX_ENTRIES {
            self.add(
                &rules::ARCHIVE_LIMIT,
                loc,
                format!(
                    "7z archive lists {entries} entries, more than MAX_ENTRIES ({})",
                    zip::MAX_ENTRIES
                ),
            );
            return;
        }
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        let mut over: Vec<String> = Vec::new();
        let budget = MAX_TOTAL_INFLATED.saturating_sub(self.inflated);
        let cap = MAX_STREAM_INFLATED.min(budget);
        let mut used = 0u64;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ar.for_each_entries(|entry, rd| {
                if entry.is_directory() {
                    return Ok(true);
                }
                let mut buf = Vec::new();
                let left = cap.saturating_sub(used);
                rd.take(left + 1).read_to_end(&mut buf)?;
                if buf.len() as u64 > left {
                    over.push(entry.name().to_owned());
                    return Ok(false);
                }
                used += buf.len() as u64;
                members.push((entry.name().to_owned(), buf));
                Ok(true)
            })
        }));
        self.inflated += used;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.add(
                    &rules::ARCHIVE_UNSCANNABLE,
                    loc,
                    format!("7z content cannot be decoded ({e}); the rest is not inspected"),
                );
            }
            Err(_) => {
                self.add(
                    &rules::ARCHIVE_MALFORMED,
                    loc,
                    "7z archive crashed the 7z decoder; the rest is not inspected",
                );
            }
        }
        for name in over {
            self.add(
                &rules::ARCHIVE_LIMIT,
                &loc.clone().member(&name),
                format!("7z member inflates past {cap} bytes; not scanned"),
            );
        }
        for (name, data) in members {
            let mloc = loc.clone().member(&name);
            if zip::is_unsafe_path(&name) {
                self.add(
                    &rules::ARCHIVE_UNSAFE_PATH,
                    &mloc,
                    format!("member path {name:?} is absolute or escapes with '..'"),
                );
            }
            self.scan(&data, &mloc, &name, dir, depth + 1);
        }
    }

    fn scan_tar(
        &mut self,
        src: &dyn ReadAt,
        loc: &Location,
        dir: Option<&Path>,
        depth: u32,
    ) -> Kind {
        let mut ar = tar::Archive::new(ReadAtReader { src, pos: 0 });
        let entries = match ar.entries() {
            Ok(e) => e,
            Err(err) => {
                self.add(
                    &rules::ARCHIVE_MALFORMED,
                    loc,
                    format!("tar archive cannot be read: {err}"),
                );
                return Kind::Tar;
            }
        };
        let mut members = Vec::new();
        for (count, entry) in entries.enumerate() {
            if count >= zip::MAX_ENTRIES {
                self.add(
                    &rules::ARCHIVE_LIMIT,
                    loc,
                    format!(
                        "more than MAX_ENTRIES ({}) tar members; the rest are not scanned",
                        zip::MAX_ENTRIES
                    ),
                );
                break;
            }
            let entry = match entry {
                Ok(e) => e,
                Err(err) => {
                    self.add(
                        &rules::ARCHIVE_MALFORMED,
                        loc,
                        format!("tar archive is corrupt or truncated: {err}"),
                    );
                    break;
                }
            };
            let name = entry
                .path_bytes()
                .iter()
                .map(|&b| char::from(b))
                .collect::<String>();
            let is_file = entry.header().entry_type().is_file();
            let link = entry.header().entry_type().is_symlink()
                || entry.header().entry_type().is_hard_link();
            members.push((name, entry.raw_file_position(), entry.size(), is_file, link));
        }
        let legacy = members.iter().any(|(n, ..)| n == "pickle")
            && members.iter().any(|(n, ..)| n == "storages");
        for (name, pos, size, is_file, link) in members {
            let mloc = loc.clone().member(&name);
            if zip::is_unsafe_path(&name) {
                self.add(
                    &rules::ARCHIVE_UNSAFE_PATH,
                    &mloc,
                    format!("member path {name:?} is absolute or escapes with '..'"),
                );
            }
            if link {
                continue;
            }
            if !is_file {
                continue;
            }
            if pos.checked_add(size).is_none_or(|end| end > src.len()) {
                self.add(
                    &rules::ARCHIVE_MALFORMED,
                    &mloc,
                    "tar member runs past the end of the archive",
                );
                continue;
            }
            let slice = Slice::new(src, pos, size);
            if legacy && (name == "storages" || name == "tensors") {
                // Legacy torch: a count pickle and per-storage pickles interleaved with raw data.
                self.scan_pickle(&slice, &mloc, StreamMode::One, depth + 1);
                continue;
            }
            self.scan(&slice, &mloc, &name, dir, depth + 1);
        }
        if legacy { Kind::LegacyTorch } else { Kind::Tar }
    }

    fn scan_npy(&mut self, src: &dyn ReadAt, loc: &Location, depth: u32) {
        match npy::parse(src) {
            Ok(h) => {
                if h.has_object() {
                    let marker = self.findings.len();
                    self.add(&rules::NUMPY_OBJECT_ARRAY, loc, "array dtype holds Python objects; numpy.load(allow_pickle=True) unpickles the data")
                        .set_evidence(format!("descr={:?}", h.descr));
                    let body =
                        Slice::new(src, h.data_offset, src.len().saturating_sub(h.data_offset));
                    let a = pickle::analyze(&body, StreamMode::One);
                    let base = h.data_offset;
                    let before = self.findings.len();
                    self.pickle_hits(a, loc, depth, &body);
                    for f in &mut self.findings[before..] {
                        if f.location.members == loc.members {
                            f.location.offset = f.location.offset.map(|o| o + base);
                        }
                    }
                    // The embedded pickle was analysed in full: when it holds nothing above
                    // low, the object dtype is worth knowing (the loader must opt in with
                    // allow_pickle=True) but is not a risk by itself.
                    if self.findings[before..]
                        .iter()
                        .all(|f| f.severity <= Severity::Low)
                    {
                        self.findings[marker].severity = Severity::Low;
                        self.findings[marker]
                            .message
                            .push_str("; its pickle was analysed and holds nothing above low");
                    }
                } else if let Some(need) = h.data_len() {
                    let have = src.len().saturating_sub(h.data_offset);
                    if have < need {
                        self.add(&rules::NUMPY_MALFORMED, loc, format!("header declares {need} bytes of data but only {have} follow (truncated)"));
                    } else if have > need {
                        self.add(
                            &rules::NUMPY_MALFORMED,
                            loc,
                            format!(
                                "{} bytes follow the array data that the header does not declare",
                                have - need
                            ),
                        )
                        .severity = Severity::Low;
                    }
                }
            }
            Err(e) => {
                self.add(
                    &rules::NUMPY_MALFORMED,
                    loc,
                    format!(".npy header is invalid: {e}"),
                );
            }
        }
    }

    fn scan_safetensors(&mut self, src: &dyn ReadAt, loc: &Location) {
        match safetensors::parse(src) {
            Ok(h) => {
                for issue in safetensors::validate(&h, src.len()) {
                    let sev = match issue {
                        safetensors::Issue::TrailingData { .. }
                        | safetensors::Issue::Gap { .. } => Severity::Medium,
                        _ => Severity::High,
                    };
                    self.add(&rules::SAFETENSORS_INVALID, loc, issue.to_string())
                        .severity = sev;
                }
            }
            Err(e) => {
                self.add(
                    &rules::SAFETENSORS_INVALID,
                    loc,
                    format!("header is invalid: {e}"),
                );
            }
        }
    }

    fn scan_gguf(&mut self, src: &dyn ReadAt, loc: &Location) {
        match gguf::parse(src) {
            Ok(g) => {
                for issue in gguf::validate(&g, src.len()) {
                    self.add(&rules::GGUF_MALFORMED, loc, issue.to_string());
                }
                for (k, v) in &g.metadata {
                    if let gguf::Value::Str(s) = v
                        && k.starts_with("tokenizer.chat_template")
                    {
                        for risk in template::risks(s) {
                            self.add(
                                &rules::GGUF_TEMPLATE_INJECTION,
                                &loc.clone().field(k),
                                risk.message,
                            )
                            .severity = risk.severity;
                            let last = self.findings.len() - 1;
                            self.findings[last].evidence = Some(risk.evidence);
                        }
                    }
                }
            }
            Err(e) => {
                self.add(
                    &rules::GGUF_MALFORMED,
                    loc,
                    format!("GGUF cannot be parsed: {e}"),
                );
            }
        }
    }

    fn scan_tflite(&mut self, src: &dyn ReadAt, loc: &Location) {
        let m = match tflite::parse(src) {
            Ok(m) => m,
            Err(e) => {
                self.add(
                    &rules::TFLITE_MALFORMED,
                    loc,
                    format!("TensorFlow Lite model cannot be parsed: {e}"),
                );
                return;
            }
        };
        for (i, oc) in m
            .operator_codes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.is_custom())
        {
            let name = oc.custom.as_deref().unwrap_or("");
            let field = loc.clone().field(format!("operator_codes/{i}"));
            let flex = name.strip_prefix("Flex");
            match flex.and_then(dangerous_tf_op) {
                Some(what) => {
                    let f = self.add(
                        &rules::TFLITE_CUSTOM_OPERATOR,
                        &field,
                        format!(
                            "Flex operator {name:?} runs TensorFlow's {} op, which {what}",
                            flex.unwrap_or_default()
                        ),
                    );
                    f.severity = Severity::High;
                    f.set_evidence(name.to_owned());
                }
                None if name.is_empty() => {
                    self.add(&rules::TFLITE_CUSTOM_OPERATOR, &field, "custom operator without a name: the interpreter cannot resolve it, and what it was meant to run is unknown");
                }
                None => {
                    let kind = if flex.is_some() {
                        "Flex (TensorFlow) operator"
                    } else {
                        "custom operator"
                    };
                    self.add(&rules::TFLITE_CUSTOM_OPERATOR, &field, format!("{kind} {name:?}: runs a kernel the loading application registers under that name"))
                        .set_evidence(name.to_owned());
                }
            }
        }
    }

    fn scan_onnx(&mut self, src: &dyn ReadAt, loc: &Location, dir: Option<&Path>) {
        let m = match onnx::parse(src) {
            Ok(m) => m,
            Err(e) => {
                self.add(
                    &rules::ONNX_MALFORMED,
                    loc,
                    format!("ONNX protobuf cannot be parsed: {e}"),
                );
                return;
            }
        };
        if !m.has_graph && m.ir_version.is_none() {
            self.add(
                &rules::ONNX_MALFORMED,
                loc,
                "no ir_version and no graph: not an ONNX model",
            );
            return;
        }
        let local: Vec<&str> = m.functions.iter().map(|(d, _)| d.as_str()).collect();
        let mut seen = Vec::new();
        for (domain, op, node) in &m.nodes {
            if !is_standard_onnx_domain(domain)
                && !local.contains(&domain.as_str())
                && !seen.contains(&(domain, op))
            {
                seen.push((domain, op));
                self.add(&rules::ONNX_CUSTOM_OPERATOR, &loc.clone().field(format!("node {node}")), format!("operator {op} from custom domain {domain:?} needs a native library outside the model"))
                    .set_evidence(format!("{domain}::{op}"));
            }
        }
        for (tensor, location) in &m.external {
            let l = loc.clone().field(format!("tensor {tensor}"));
            if location.is_empty() {
                self.add(
                    &rules::ONNX_MALFORMED,
                    &l,
                    "tensor marked as external data has no location",
                )
                .severity = Severity::Low;
                continue;
            }
            if zip::is_unsafe_path(location) {
                self.add(&rules::ONNX_EXTERNAL_TRAVERSAL, &l, format!("external data location {location:?} is absolute or escapes the model directory"))
                    .set_evidence(location.clone());
                continue;
            }
            if let Some(d) = dir {
                let p = d.join(location);
                if let (Ok(real), Ok(base)) = (p.canonicalize(), d.canonicalize())
                    && !real.starts_with(&base)
                {
                    self.add(&rules::ONNX_EXTERNAL_TRAVERSAL, &l, format!("external data {location:?} resolves outside the model directory through a symlink"))
                            .set_evidence(real.display().to_string());
                }
            }
        }
    }

    fn scan_saved_model(&mut self, src: &dyn ReadAt, loc: &Location) {
        match saved_model::parse(src) {
            Ok(sm) => {
                let mut seen: Vec<(&str, &str)> = Vec::new();
                for (op, node, func) in &sm.nodes {
                    if let Some(what) = dangerous_tf_op(op) {
                        if seen.contains(&(op.as_str(), func.as_str())) {
                            continue;
                        }
                        seen.push((op.as_str(), func.as_str()));
                        let place = if func.is_empty() {
                            format!("node {node}")
                        } else {
                            format!("function {func} node {node}")
                        };
                        self.add(
                            &rules::TF_DANGEROUS_OP,
                            &loc.clone().field(place),
                            format!("graph uses op {op}: {what}"),
                        )
                        .set_evidence(op.clone());
                    }
                }
            }
            Err(e) => {
                self.add(
                    &rules::TF_MALFORMED,
                    loc,
                    format!("saved_model.pb cannot be parsed: {e}"),
                );
            }
        }
    }

    /// A TensorFlow 1 frozen graph. Returns false (and reports nothing) when the bytes do not
    /// decode as a GraphDef with plausible op names: many `.pb` files are other messages.
    fn scan_graph_def(&mut self, src: &dyn ReadAt, loc: &Location) -> bool {
        let g = match saved_model::parse_graph_def(src) {
            Ok(g) => g,
            Err(e) => {
                // A GraphDef that starts with a well-formed node but breaks later is a damaged
                // frozen graph; anything else is some other protobuf.
                if starts_like_graph_def(src) {
                    self.add(
                        &rules::TF_MALFORMED,
                        loc,
                        format!("frozen graph cannot be parsed: {e}"),
                    );
                    return true;
                }
                return false;
            }
        };
        let plausible = !g.nodes.is_empty()
            && g.nodes.iter().all(|(op, _, _)| {
                !op.is_empty() && op.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !plausible {
            return false;
        }
        let mut seen: Vec<&str> = Vec::new();
        for (op, node, _) in &g.nodes {
            if let Some(what) = dangerous_tf_op(op) {
                if seen.contains(&op.as_str()) {
                    continue;
                }
                seen.push(op);
                self.add(
                    &rules::TF_DANGEROUS_OP,
                    &loc.clone().field(format!("node {node}")),
                    format!("graph uses op {op}: {what}"),
                )
                .set_evidence(op.clone());
            }
        }
        true
    }

    /// TorchScript source: `ops.<ns>.<op>` calls into namespaces PyTorch does not provide.
    fn scan_torchscript_code(&mut self, src: &dyn ReadAt, loc: &Location) {
        let Ok(code) = src.read_prefix(0, MAX_JSON as usize) else {
            return;
        };
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut seen: Vec<String> = Vec::new();
        let mut from = 0;
        while let Some(p) = memchr::memmem::find(&code[from..], b"ops.") {
            let at = from + p;
            from = at + 4;
            // `torch.ops.ns` or a bare `ops.ns`, not `myops.ns`.
            if at > 0 && ident(code[at - 1]) {
                continue;
            }
            let ns_end = code[from..]
                .iter()
                .position(|&b| !ident(b))
                .map_or(code.len(), |n| from + n);
            if code.get(ns_end) != Some(&b'.') || ns_end == from {
                continue;
            }
            let ns = String::from_utf8_lossy(&code[from..ns_end]).into_owned();
            let op_end = code[ns_end + 1..]
                .iter()
                .position(|&b| !ident(b))
                .map_or(code.len(), |n| ns_end + 1 + n);
            let op = String::from_utf8_lossy(&code[ns_end + 1..op_end]).into_owned();
            if is_torch_op_namespace(&ns) || seen.contains(&ns) {
                continue;
            }
            self.add(&rules::TORCHSCRIPT_CUSTOM_OPERATOR, loc, format!("TorchScript calls operator {ns}::{op}, which needs a native library outside the model"))
                .set_evidence(format!("ops.{ns}.{op}"));
            seen.push(ns);
        }
    }

    fn scan_keras_metadata(&mut self, src: &dyn ReadAt, loc: &Location) {
        let Ok(data) = src.read_prefix(0, MAX_JSON as usize) else {
            return;
        };
        for needle in [
            &b"\"class_name\": \"Lambda\""[..],
            b"\"class_name\":\"Lambda\"",
        ] {
            if memchr::memmem::find(&data, needle).is_some() {
                self.add(
                    &rules::KERAS_LAMBDA,
                    loc,
                    "Keras metadata declares a Lambda layer, whose Python code runs on load",
                )
                .set_evidence("class_name: Lambda");
                return;
            }
        }
    }

    fn scan_keras_config(&mut self, src: &dyn ReadAt, loc: &Location) {
        if src.len() > MAX_JSON {
            self.add(
                &rules::KERAS_MALFORMED,
                loc,
                format!("config larger than MAX_JSON ({MAX_JSON} bytes)"),
            );
            return;
        }
        let data = match src.read_vec(0, src.len() as usize) {
            Ok(d) => d,
            Err(e) => {
                self.add(
                    &rules::KERAS_MALFORMED,
                    loc,
                    format!("config cannot be read: {e}"),
                );
                return;
            }
        };
        self.keras_json(&data, loc);
    }

    fn keras_json(&mut self, data: &[u8], loc: &Location) {
        match serde_json::from_slice::<serde_json::Value>(data) {
            Ok(v) => {
                for risk in keras::risks(&v) {
                    let mut f =
                        Finding::new(risk.rule, loc.clone().field(risk.pointer), risk.message)
                            .severity(risk.severity);
                    f.evidence = Some(risk.evidence);
                    self.findings.push(f);
                }
            }
            Err(e) => {
                self.add(
                    &rules::KERAS_MALFORMED,
                    loc,
                    format!("model config is not valid JSON: {e}"),
                );
            }
        }
    }

    fn scan_h5(&mut self, src: &dyn ReadAt, loc: &Location) {
        match hdf5::superblock(src) {
            Ok(sb) if sb.eof != u64::MAX && sb.eof > src.len() => {
                self.add(
                    &rules::HDF5_MALFORMED,
                    loc,
                    format!(
                        "superblock declares {} bytes but the file has {} (truncated)",
                        sb.eof,
                        src.len()
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                self.add(
                    &rules::HDF5_MALFORMED,
                    loc,
                    format!("superblock is invalid: {e}"),
                );
                return;
            }
        }
        match hdf5::root_attributes(src) {
            Ok(attrs) => {
                for (name, value) in attrs {
                    if let (true, hdf5::Value::Str(json)) =
                        (name == "model_config" || name == "training_config", value)
                    {
                        self.keras_json(json.as_bytes(), &loc.clone().field(name));
                    }
                }
            }
            Err(hdf5::Error::Unsupported(why)) => {
                // Layouts this reader does not walk (dense attribute storage): find the config by content.
                self.h5_search_config(src, loc, &why);
            }
            Err(e) => {
                self.add(
                    &rules::HDF5_MALFORMED,
                    loc,
                    format!("root attributes cannot be read: {e}"),
                );
                self.h5_search_config(src, loc, "unreadable header");
            }
        }
    }

    /// Fallback: Keras writes model_config as JSON; look for it in the first MAX_H5_SCAN bytes.
    fn h5_search_config(&mut self, src: &dyn ReadAt, loc: &Location, why: &str) {
        let limit = src.len().min(MAX_H5_SCAN);
        let chunk = 8 * 1024 * 1024u64;
        let mut off = 0u64;
        let needles: [&[u8]; 2] = [b"{\"class_name\": \"", b"{\"module\": \""];
        while off < limit {
            let len = chunk.min(limit - off) + 64;
            let Ok(buf) = src.read_prefix(off, len as usize) else {
                return;
            };
            let hit = needles
                .iter()
                .filter_map(|n| memchr::memmem::find(&buf, n))
                .min();
            if let Some(i) = hit {
                let start = off + i as u64;
                let Ok(json) = src.read_prefix(start, MAX_JSON as usize) else {
                    return;
                };
                match json_object_end(&json) {
                    Some(end) => self.keras_json(&json[..end], &loc.clone().field("model_config")),
                    None => {
                        self.add(
                            &rules::KERAS_MALFORMED,
                            &loc.clone().field("model_config"),
                            format!(
                                "model_config JSON ({why}) is truncated or larger than MAX_JSON"
                            ),
                        );
                    }
                }
                return;
            }
            off += chunk;
        }
    }

    fn scan_hf_config(&mut self, src: &dyn ReadAt, loc: &Location) {
        let data = match src.read_prefix(0, MAX_JSON as usize) {
            Ok(d) => d,
            Err(e) => {
                self.add(
                    &rules::HF_CONFIG_MALFORMED,
                    loc,
                    format!("cannot read: {e}"),
                );
                return;
            }
        };
        let parsed = if src.len() > MAX_JSON {
            Err(format!(
                "larger than MAX_JSON ({MAX_JSON} bytes); the first {MAX_JSON} bytes are searched as text"
            ))
        } else {
            serde_json::from_slice::<serde_json::Value>(&data)
                .map_err(|e| format!("not valid JSON: {e}"))
        };
        let v = match parsed {
            Ok(v) => v,
            Err(why) => {
                self.add(&rules::HF_CONFIG_MALFORMED, loc, why);
                self.scan_raw_config(&data, loc);
                return;
            }
        };
        if let Some(map) = v.get("auto_map") {
            let refs: Vec<String> = match map {
                serde_json::Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            }
                        )
                    })
                    .collect(),
                other => vec![other.to_string()],
            };
            self.add(&rules::HF_TRUST_REMOTE_CODE, &loc.clone().field("/auto_map"), "auto_map makes transformers import Python code from the model repository (trust_remote_code=True)")
                .set_evidence(clip(refs.join(", "), 300));
        }
        // tokenizer_config.json: one template, or a list of named ones.
        match v.get("chat_template") {
            Some(serde_json::Value::String(t)) => {
                self.check_template(t, &loc.clone().field("/chat_template"));
            }
            Some(serde_json::Value::Array(list)) => {
                for (i, item) in list.iter().enumerate() {
                    if let Some(t) = item.get("template").and_then(serde_json::Value::as_str) {
                        self.check_template(
                            t,
                            &loc.clone().field(format!("/chat_template/{i}/template")),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// A config that does not parse: what it would have said, found in the raw text.
    fn scan_raw_config(&mut self, data: &[u8], loc: &Location) {
        if let Some(at) = memchr::memmem::find(data, b"\"auto_map\"") {
            let tail = String::from_utf8_lossy(&data[at..data.len().min(at + 300)]).into_owned();
            self.add(&rules::HF_TRUST_REMOTE_CODE, &loc.clone().field("/auto_map"), "auto_map (in a config that does not parse) makes transformers import Python code from the model repository (trust_remote_code=True)")
                .set_evidence(clip(tail, 300));
        }
        if let Some(at) = memchr::memmem::find(data, b"\"chat_template\"") {
            let text = String::from_utf8_lossy(&data[at..]);
            self.check_template(&text, &loc.clone().field("/chat_template"));
        }
    }

    /// A Jinja chat template (tokenizer_config.json, chat_template.jinja).
    fn check_template(&mut self, t: &str, loc: &Location) {
        for risk in template::risks(t) {
            let f = self.add(&rules::HF_TEMPLATE_INJECTION, loc, risk.message);
            f.severity = risk.severity;
            f.evidence = Some(risk.evidence);
        }
    }

    fn scan_jinja(&mut self, src: &dyn ReadAt, loc: &Location) {
        match src.read_prefix(0, template::MAX_TEMPLATE) {
            Ok(data) => {
                if src.len() > template::MAX_TEMPLATE as u64 {
                    self.add(
                        &rules::HF_CONFIG_MALFORMED,
                        loc,
                        format!(
                            "template larger than MAX_TEMPLATE ({} bytes); the rest is not checked",
                            template::MAX_TEMPLATE
                        ),
                    );
                }
                self.check_template(&String::from_utf8_lossy(&data), loc);
            }
            Err(e) => {
                self.add(
                    &rules::HF_CONFIG_MALFORMED,
                    loc,
                    format!("cannot read: {e}"),
                );
            }
        }
    }

    /// A `.py` file in a folder that holds a Hugging Face config.json.
    pub fn python_in_model_dir(&mut self, loc: &Location) {
        self.add(&rules::HF_CUSTOM_CODE_FILE, loc, "Python file inside a model folder; it runs with trust_remote_code=True or when imported");
    }
}

/// Is the first field a GraphDef `node` whose name and op are identifiers?
fn starts_like_graph_def(src: &dyn ReadAt) -> bool {
    use mlsec_formats::protobuf::{Fields, Wire, read_string};
    let mut f = Fields::whole(src);
    let Ok(Some((1, Wire::Len { offset, len }))) = f.next_field() else {
        return false;
    };
    let mut node = Fields::new(src, offset, offset + len);
    let (mut name, mut op) = (String::new(), String::new());
    while let Ok(Some((no, w))) = node.next_field() {
        match no {
            1 => name = read_string(src, w).unwrap_or_default(),
            2 => op = read_string(src, w).unwrap_or_default(),
            _ => {}
        }
    }
    let ident = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/' || b == b'.')
    };
    ident(&name) && ident(&op)
}

fn is_storage_blob(name: &str) -> bool {
    let mut parts = name.rsplit('/');
    let last = parts.next().unwrap_or("");
    let parent = parts.next().unwrap_or("");
    (parent == "data" || parent == "constants")
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
        || name.contains("/.data/") && !name.ends_with(".pkl")
}

/// Operator namespaces PyTorch itself registers.
fn is_torch_op_namespace(ns: &str) -> bool {
    matches!(
        ns,
        "aten"
            | "prim"
            | "prims"
            | "quantized"
            | "_quantized"
            | "quantized_decomposed"
            | "profiler"
            | "_caffe2"
            | "cuda"
            | "mkldnn"
            | "mkldnn_prepacked"
            | "_c10d_functional"
            | "c10d"
            | "c10d_functional"
            | "_nnapi"
            | "xnnpack"
            | "cudnn"
            | "higher_order"
            | "inductor"
            | "_inductor_test"
            | "debugprims"
            | "rngprims"
            | "sparse"
            | "fbgemm"
            | "onednn"
            | "image"
            | "torchvision"
    )
}

fn is_standard_onnx_domain(d: &str) -> bool {
    matches!(
        d,
        "" | "ai.onnx"
            | "ai.onnx.ml"
            | "ai.onnx.training"
            | "ai.onnx.preview"
            | "ai.onnx.preview.training"
            | "com.microsoft"
            | "com.microsoft.nchwc"
            | "com.microsoft.experimental"
            | "com.ms.internal.nhwc"
            | "org.pytorch.aten"
    )
}

fn dangerous_tf_op(op: &str) -> Option<&'static str> {
    Some(match op {
        "ReadFile" => "reads any file into a tensor",
        "WriteFile" => "writes a tensor to any file",
        "MatchingFiles" => "lists files by glob pattern",
        "PyFunc" | "PyFuncStateless" | "EagerPyFunc" => {
            "calls a Python function of the serving process"
        }
        "ImmutableConst" => "memory-maps a file named in the graph",
        "DebugIdentityV2" | "DebugIdentityV3" => "dumps tensors to a directory named in the graph",
        "LoadAndRemapMatrix" => "reads a checkpoint file named in the graph",
        _ => return None,
    })
}

/// Byte length of the JSON object at the start of `b`, by brace matching outside strings.
fn json_object_end(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Bzip2,
    Xz,
    Lzma,
    Zlib,
    /// The LZ4 frame format (joblib `compress="lz4"`).
    Lz4,
    /// joblib before 0.10: `ZF`, the length in hex padded to 19 bytes, then a zlib stream.
    JoblibZf,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bz2",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Zlib => "zlib",
            Compression::Lz4 => "lz4",
            Compression::JoblibZf => "joblib-zfile",
        }
    }
}

/// Data formats that share model extensions (`.sav`) and whose readers execute nothing.
fn known_data_format(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"SR\x00\x04") || head.starts_with(b"SR\x00\x06") {
        Some("IDL save file")
    } else if head.starts_with(b"$FL2") || head.starts_with(b"$FL3") {
        Some("SPSS data file")
    } else if head.starts_with(b"MATLAB 5.0 MAT-file") || head.starts_with(b"MATLAB 7.3 MAT-file") {
        Some("MATLAB data file")
    } else {
        None
    }
}

/// `s` cut to at most `max` bytes at a character boundary, with "..." when cut.
fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let at = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(at);
        s.push_str("...");
    }
    s
}

/// Where the zlib stream of joblib's old zfile starts: after `ZF`, the length in hex (`0x1f`,
/// with an `L` when Python 2 wrote it) and the spaces that pad it to `len(hex(2**64))`, which
/// is 19 in Python 3 and 20 in Python 2.
fn joblib_zf_start(head: &[u8]) -> Option<usize> {
    let rest = head.strip_prefix(b"ZF0x")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let mut at = digits + usize::from(rest.get(digits) == Some(&b'L'));
    at += rest[at..].iter().take_while(|&&b| b == b' ').count();
    let start = 4 + at;
    (digits > 0 && (21..=22).contains(&start) && head.get(start) == Some(&0x78)).then_some(start)
}

fn compression(head: &[u8]) -> Option<Compression> {
    match head {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [
            b'B',
            b'Z',
            b'h',
            b'1'..=b'9',
            0x31,
            0x41,
            0x59,
            0x26,
            0x53,
            0x59,
            ..,
        ] => Some(Compression::Bzip2),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Compression::Xz),
        [0x04, 0x22, 0x4d, 0x18, ..] => Some(Compression::Lz4),
        [b'Z', b'F', b'0', b'x', ..] if joblib_zf_start(head).is_some() => {
            Some(Compression::JoblibZf)
        }
        // LZMA "alone": properties byte 0x5d and a dictionary size that is a power of two.
        [0x5d, d0, d1, d2, d3, ..]
            if u32::from_le_bytes([*d0, *d1, *d2, *d3]).is_power_of_two() =>
        {
            Some(Compression::Lzma)
        }
        [0x78, flg, ..]
            if matches!(flg, 0x01 | 0x5e | 0x9c | 0xda)
                && (u16::from(head[0]) << 8 | u16::from(*flg)) % 31 == 0 =>
        {
            Some(Compression::Zlib)
        }
        _ => None,
    }
}

fn strip_compression_ext(name: &str) -> String {
    for suf in [".gz", ".bz2", ".xz", ".lzma", ".lz4", ".z", ".tgz"] {
        if let Some(s) = name.strip_suffix(suf) {
            return if suf == ".tgz" {
                format!("{s}.tar")
            } else {
                s.to_owned()
            };
        }
    }
    name.to_owned()
}

enum InflateError {
    Limit,
    Corrupt(String),
}

/// A `Write` that refuses to grow past a cap.
struct CappedVec {
    buf: Vec<u8>,
    cap: u64,
}

impl io::Write for CappedVec {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.len() as u64 + b.len() as u64 > self.cap {
            return Err(io::Error::other("MLSEC_CAP"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn inflate(kind: Compression, reader: ReadAtReader<'_>, cap: u64) -> Result<Vec<u8>, InflateError> {
    let mut out = CappedVec {
        buf: Vec::new(),
        cap,
    };
    let res: io::Result<()> = match kind {
        Compression::Gzip => {
            io::copy(&mut flate2::read::MultiGzDecoder::new(reader), &mut out).map(|_| ())
        }
        Compression::Zlib => {
            io::copy(&mut flate2::read::ZlibDecoder::new(reader), &mut out).map(|_| ())
        }
        Compression::Bzip2 => {
            io::copy(&mut bzip2::read::MultiBzDecoder::new(reader), &mut out).map(|_| ())
        }
        Compression::Xz => {
            let mut r = io::BufReader::new(reader);
            lzma_rs::xz_decompress(&mut r, &mut out).map_err(|e| io::Error::other(e.to_string()))
        }
        Compression::Lzma => {
            let mut r = io::BufReader::new(reader);
            lzma_rs::lzma_decompress(&mut r, &mut out).map_err(|e| io::Error::other(e.to_string()))
        }
        Compression::Lz4 => {
            io::copy(&mut lz4_flex::frame::FrameDecoder::new(reader), &mut out).map(|_| ())
        }
        Compression::JoblibZf => {
            let head = reader.src.read_prefix(reader.pos, 32).unwrap_or_default();
            let start = joblib_zf_start(&head).unwrap_or(head.len());
            let reader = ReadAtReader {
                src: reader.src,
                pos: reader.pos + start as u64,
            };
            io::copy(&mut flate2::read::ZlibDecoder::new(reader), &mut out).map(|_| ())
        }
    };
    match res {
        Ok(()) => Ok(out.buf),
        Err(e) if e.to_string().contains("MLSEC_CAP") || out.buf.len() as u64 >= cap => {
            Err(InflateError::Limit)
        }
        Err(e) => Err(InflateError::Corrupt(e.to_string())),
    }
}

/// `Read` over a [`ReadAt`].
pub struct ReadAtReader<'a> {
    pub src: &'a dyn ReadAt,
    pub pos: u64,
}

impl Read for ReadAtReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for ReadAtReader<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let new = match pos {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::End(d) => self.src.len().checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}
