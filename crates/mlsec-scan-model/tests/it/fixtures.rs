//! Every committed fixture (see fixtures/README.md) against its expectation.

use std::path::{Path, PathBuf};

use mlsec_diagnostics::Severity;

use crate::dump;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn scan_dir(sub: &str) -> mlsec_diagnostics::Report {
    mlsec_scan_model::scan_paths(&[root().join(sub)], None)
}

fn files(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir(&root().join(sub));
    v.sort();
    v
}

fn walkdir(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walkdir(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn benign_models_are_clean() {
    let r = scan_dir("benign");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(
        r.findings.is_empty(),
        "false positives on ordinary models:\n{}",
        dump(&r.findings)
    );
    // Every benign model file was recognised, not skipped.
    assert!(r.stats.files_scanned >= 38, "{:?}", r.stats);
}

/// (file under fixtures/, rule, minimum severity, text the message or evidence must contain)
const EXPECTED: &[(&str, &str, Severity, &str)] = &[
    // TensorFlow Lite.
    (
        "malicious/tflite_custom_op.tflite",
        "TFL001",
        Severity::Medium,
        "MlsecMarkerOp",
    ),
    (
        "malicious/tflite_flex_writefile.tflite",
        "TFL001",
        Severity::High,
        "FlexWriteFile",
    ),
    (
        "malformed/tflite_truncated.tflite",
        "TFL002",
        Severity::Medium,
        "cannot be parsed",
    ),
    (
        "malicious/joblib_0.11_payload.joblib",
        "PKL001",
        Severity::Critical,
        "system(\"echo MLSEC_MARKER\")",
    ),
    // Resource exhaustion from a few bytes.
    (
        "malicious/dos_reference_expansion.pkl",
        "PKL008",
        Severity::Medium,
        "expands to more than",
    ),
    (
        "malicious/dos_bytearray.pkl",
        "PKL008",
        Severity::Medium,
        "builtins.bytearray",
    ),
    (
        "malicious/dos_list_range.pkl",
        "PKL008",
        Severity::Medium,
        "builtins.list",
    ),
    // joblib's LZ4 compression and its pre-0.10 zfile container.
    (
        "malicious/joblib_payload.lz4.joblib",
        "PKL001",
        Severity::Critical,
        "system(\"echo MLSEC_MARKER\")",
    ),
    (
        "malicious/joblib_payload_zfile.pkl",
        "PKL001",
        Severity::Critical,
        "system(\"echo MLSEC_MARKER\")",
    ),
    (
        "malformed/torch_zip_without_data_pkl.pt",
        "GEN001",
        Severity::Medium,
        "without data.pkl",
    ),
    // Standard-library functions that reach a process or a file (the derived table).
    (
        "malicious/gadget_osx_support.pkl",
        "PKL001",
        Severity::Critical,
        "_osx_support._read_output(\"echo MLSEC_MARKER\")",
    ),
    (
        "malicious/gadget_find_build_tool.pkl",
        "PKL001",
        Severity::Critical,
        "_osx_support._find_build_tool",
    ),
    (
        "malicious/gadget_file_handler.pkl",
        "PKL001",
        Severity::High,
        "logging.FileHandler(\"/tmp/mlsec-marker\"",
    ),
    (
        "malicious/gadget_script_helper.pkl",
        "PKL001",
        Severity::High,
        "test.support.script_helper.assert_python_ok",
    ),
    (
        "malicious/system_p0.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system(\"echo MLSEC_MARKER\")",
    ),
    (
        "malicious/system_p1.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/system_p2.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/system_p3.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/system_p4.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/system_p5.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/concatenated.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/torch_zip.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/torch_legacy.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/joblib_payload.joblib",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/joblib_payload.zlib.joblib",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/joblib_payload.gzip.joblib",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/joblib_payload.bz2.joblib",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/joblib_payload.xz.joblib",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/joblib_payload.lzma.joblib",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/joblib_object_array.joblib",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/dill_lambda.pkl",
        "PKL001",
        Severity::Critical,
        "dill._dill._create_code",
    ),
    (
        "malicious/cloudpickle_lambda.pkl",
        "PKL001",
        Severity::Critical,
        "cloudpickle",
    ),
    (
        "malicious/object_array.npy",
        "NPY001",
        Severity::Medium,
        "objects",
    ),
    (
        "malicious/object_array.npy",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/object_array.npz",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/keras_lambda.keras",
        "KER001",
        Severity::Critical,
        "bytecode",
    ),
    (
        "malicious/keras_lambda.h5",
        "KER001",
        Severity::Critical,
        "bytecode",
    ),
    (
        "malicious/savedmodel_readfile/saved_model.pb",
        "TF001",
        Severity::High,
        "ReadFile",
    ),
    (
        "malicious/onnx_custom_op.onnx",
        "ONNX001",
        Severity::Medium,
        "com.example.custom",
    ),
    (
        "malicious/gguf_template_injection.gguf",
        "GGUF002",
        Severity::Critical,
        "__class__",
    ),
    (
        "malicious/hf_remote_code/config.json",
        "HF001",
        Severity::High,
        "modeling_evil.EvilModel",
    ),
    (
        "malicious/hf_remote_code/modeling_evil.py",
        "HF002",
        Severity::Medium,
        "Python file",
    ),
    (
        "evasive/torch_bad_crc.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torch_bad_crc.pt",
        "ARC004",
        Severity::Medium,
        "CRC",
    ),
    (
        "evasive/torch_encrypted_flag.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torch_encrypted_flag.pt",
        "ARC005",
        Severity::Medium,
        "encryption",
    ),
    (
        "evasive/torch_name_mismatch.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torch_name_mismatch.pt",
        "ARC001",
        Severity::High,
        "local header",
    ),
    (
        "evasive/torch_pickle_nonstd_ext.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torch_unreadable_first.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torch_unreadable_first.pt",
        "ARC008",
        Severity::Medium,
        "method 99",
    ),
    (
        "evasive/raw_pickle.bin",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/raw_pickle.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/zip_in_zip.zip",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torch_legacy_tar.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torchscript_payload.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malicious/frozen_graph_readfile.pb",
        "TF001",
        Severity::High,
        "ReadFile",
    ),
    (
        "malicious/torchscript_custom_op.pt",
        "TS001",
        Severity::Medium,
        "mlsec_fixture::marker",
    ),
    (
        "evasive/model.tar.gz",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/torch_7z.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/zip_duplicate.pt",
        "ARC002",
        Severity::High,
        "more than once",
    ),
    (
        "evasive/zip_duplicate.pt",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "evasive/keras_module_os.keras",
        "KER002",
        Severity::Critical,
        "os.system",
    ),
    (
        "evasive/gguf_template_attr_obfuscated.gguf",
        "GGUF002",
        Severity::High,
        "attr filter",
    ),
    (
        "evasive/gguf_template_attr_obfuscated.gguf",
        "GGUF002",
        Severity::High,
        "\\x5f",
    ),
    (
        "evasive/onnx_external_traversal.onnx",
        "ONNX002",
        Severity::High,
        "../../../../etc/passwd",
    ),
    (
        "evasive/onnx_external_absolute.onnx",
        "ONNX002",
        Severity::High,
        "/etc/passwd",
    ),
    (
        "malformed/truncated_torch.pt",
        "ARC009",
        Severity::Medium,
        "cannot be read",
    ),
    (
        "malformed/truncated.pkl",
        "PKL006",
        Severity::Medium,
        "truncated",
    ),
    (
        "malformed/system_then_garbage.pkl",
        "PKL001",
        Severity::Critical,
        "posix.system",
    ),
    (
        "malformed/safetensors_overlap.safetensors",
        "ST001",
        Severity::High,
        "overlap",
    ),
    (
        "malformed/safetensors_bad_dtype.safetensors",
        "ST001",
        Severity::High,
        "unknown dtype",
    ),
    (
        "malformed/safetensors_size_mismatch.safetensors",
        "ST001",
        Severity::High,
        "need 16",
    ),
    (
        "malformed/safetensors_out_of_bounds.safetensors",
        "ST001",
        Severity::High,
        "past the",
    ),
    (
        "malformed/safetensors_huge_header.safetensors",
        "ST001",
        Severity::High,
        "MAX_HEADER",
    ),
    (
        "malformed/safetensors_trailing.safetensors",
        "ST001",
        Severity::Medium,
        "not referenced",
    ),
    (
        "malformed/truncated.npy",
        "NPY002",
        Severity::Medium,
        "truncated",
    ),
    (
        "malformed/truncated.gguf",
        "GGUF001",
        Severity::High,
        "truncated",
    ),
    (
        "malformed/huge_tensor_count.gguf",
        "GGUF001",
        Severity::High,
        "MAX_TENSORS",
    ),
    (
        "malformed/truncated.onnx",
        "ONNX003",
        Severity::Medium,
        "truncated",
    ),
    (
        "malformed/zip_bomb.zip",
        "ARC006",
        Severity::High,
        "inflates past",
    ),
    (
        "malformed/zip_overlap.pt",
        "ARC003",
        Severity::High,
        "overlap",
    ),
    (
        "malformed/unknown_content.pt",
        "GEN001",
        Severity::Medium,
        "not a valid pickle stream",
    ),
];

#[test]
fn malicious_evasive_and_malformed_are_caught() {
    let mut failures = Vec::new();
    for (file, rule, sev, needle) in EXPECTED {
        let path = root().join(file);
        let r = mlsec_scan_model::scan_paths(std::slice::from_ref(&path), None);
        let ok = r.findings.iter().any(|f| {
            f.rule.id == *rule
                && f.severity >= *sev
                && (f.message.contains(needle)
                    || f.evidence.as_deref().is_some_and(|e| e.contains(needle)))
        });
        if !ok {
            failures.push(format!(
                "{file}: expected {rule} >= {sev} with {needle:?}, got:\n{}",
                dump(&r.findings)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_non_benign_fixture_has_an_expectation() {
    // Support files of a model folder (SavedModel variables, fingerprint) hold no model content.
    let support = |rel: &str| rel.ends_with("fingerprint.pb") || rel.contains("/variables/");
    let mut missing = Vec::new();
    for sub in ["malicious", "evasive", "malformed"] {
        for f in files(sub) {
            let rel = f
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if !support(&rel) && !EXPECTED.iter().any(|(p, ..)| *p == rel) {
                missing.push(rel);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fixtures without an expectation in EXPECTED: {missing:#?}"
    );
}

#[test]
fn truncated_benign_files_are_never_clean() {
    // Cut every single-file benign model in half: the scanner must say something, never "clean".
    let mut failures = Vec::new();
    for f in files("benign") {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.contains("savedmodel") || rel.contains("hf_model") {
            continue;
        }
        // Legacy torch stores raw tensor bytes after its pickles; they are not read, by design
        // (cost follows metadata), so a cut inside them is not seen. Cuts inside the pickles are.
        let legacy = rel.ends_with("torch_legacy.pt");
        let data = std::fs::read(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let cuts = if legacy {
            vec![data.len() / 2]
        } else {
            vec![data.len() / 2, data.len() * 9 / 10]
        };
        for cut in cuts {
            let findings = mlsec_scan_model::scan_bytes(&data[..cut], &name);
            if findings.is_empty() {
                failures.push(format!("{rel} cut at {cut}/{}", data.len()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "truncated files scanned clean:\n{}",
        failures.join("\n")
    );
}

#[test]
fn json_evidence_names_the_resolved_global() {
    let r = mlsec_scan_model::scan_paths(&[root().join("malicious/torch_zip.pt")], None);
    let f = r.findings.iter().find(|f| f.rule.id == "PKL001").unwrap();
    assert_eq!(f.location.members.len(), 1, "{:?}", f.location);
    assert!(f.location.members[0].ends_with("data.pkl"));
    assert!(f.location.offset.is_some() && f.location.opcode.is_some());
    assert_eq!(
        f.evidence.as_deref(),
        Some("posix.system(\"echo MLSEC_MARKER\")")
    );
}

#[test]
fn hdf5_root_attributes_are_read_structurally() {
    // h5py writes model_config as a variable-length string in the global heap; the reader walks
    // superblock -> root object header -> attribute message -> heap, not a byte search.
    for f in ["benign/keras_mlp.h5", "malicious/keras_lambda.h5"] {
        let file =
            mlsec_formats::source::FileSource::new(std::fs::File::open(root().join(f)).unwrap())
                .unwrap();
        let attrs = mlsec_formats::hdf5::root_attributes(&file).unwrap();
        let cfg = attrs
            .iter()
            .find(|(n, _)| n == "model_config")
            .unwrap_or_else(|| panic!("{f}: {attrs:?}"));
        match &cfg.1 {
            mlsec_formats::hdf5::Value::Str(s) => assert!(
                s.starts_with('{') && s.contains("\"class_name\""),
                "{f}: {s}"
            ),
            other @ mlsec_formats::hdf5::Value::Other => panic!("{f}: {other:?}"),
        }
    }
}

#[test]
fn fixture_set_matches_sha256sums() {
    // Every committed fixture is listed (with its origin documented in fixtures/README.md), and
    // nothing else has crept in (a fuzzer writing new inputs into a seed folder, say).
    let listed: std::collections::BTreeSet<String> =
        std::fs::read_to_string(root().join("SHA256SUMS"))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once("  ").map(|(_, p)| p.to_owned()))
            .collect();
    let mut present = std::collections::BTreeSet::new();
    for sub in ["benign", "malicious", "evasive", "malformed"] {
        for f in files(sub) {
            present.insert(
                f.strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
    let extra: Vec<_> = present.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&present).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "not in SHA256SUMS: {extra:?}\nlisted but missing: {missing:?}"
    );
}
