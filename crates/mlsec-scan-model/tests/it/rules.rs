//! Rules test themselves: every rule in the catalogue has a positive example here that raises it,
//! and the benign fixtures (tests/it/fixtures.rs) are the negative examples for all of them.

use std::collections::BTreeMap;
use std::path::Path;

use mlsec_diagnostics::Finding;

use crate::hostile::payload;
use crate::writer::{P, Zip};
use crate::{dump, scan};

fn fixture(rel: &str) -> Vec<Finding> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(rel);
    mlsec_scan_model::scan_paths(&[p], None).findings
}

fn gguf_with_template(t: &str) -> Vec<u8> {
    let mut d = b"GGUF\x03\x00\x00\x00".to_vec();
    d.extend_from_slice(&0u64.to_le_bytes());
    d.extend_from_slice(&1u64.to_le_bytes());
    let key = b"tokenizer.chat_template";
    d.extend_from_slice(&(key.len() as u64).to_le_bytes());
    d.extend_from_slice(key);
    d.extend_from_slice(&8u32.to_le_bytes());
    d.extend_from_slice(&(t.len() as u64).to_le_bytes());
    d.extend_from_slice(t.as_bytes());
    d
}

fn keras(config: &str) -> Vec<u8> {
    Zip::new()
        .add("metadata.json", b"{}", false, None)
        .add("config.json", config.as_bytes(), true, None)
        .finish()
}

fn examples() -> BTreeMap<&'static str, Vec<Finding>> {
    let mut m = BTreeMap::new();
    let os_system = P::proto(2).global("os", "system").call1("id").stop();
    m.insert("PKL001", scan(&os_system, "m.pkl"));
    m.insert(
        "PKL002",
        scan(
            &P::proto(2)
                .global("mypkg.layers", "Thing")
                .raw(b")R")
                .stop(),
            "m.pkl",
        ),
    );
    m.insert(
        "PKL003",
        scan(
            &P::proto(4)
                .global("mypkg", "name")
                .raw(b")R")
                .s("x")
                .stack_global()
                .stop(),
            "m.pkl",
        ),
    );
    m.insert("PKL004", scan(&P::proto(2).raw(&[0x82, 7]).stop(), "m.pkl"));
    m.insert(
        "PKL005",
        scan(
            &P::proto(2)
                .global("numpy", "load")
                .empty_dict()
                .build()
                .stop(),
            "m.pkl",
        ),
    );
    m.insert("PKL006", scan(&os_system[..os_system.len() - 3], "m.pkl"));
    let mut deep = P::proto(2).0;
    deep.extend(std::iter::repeat_n(b'N', (1 << 20) + 1));
    m.insert("PKL007", scan(&deep, "m.pkl"));
    m.insert("PKL008", fixture("malicious/dos_reference_expansion.pkl"));
    m.insert(
        "ARC001",
        scan(
            &Zip::new()
                .add("a/data.pkl", &payload(), false, Some("a/data.pkx"))
                .finish(),
            "m.pt",
        ),
    );
    m.insert(
        "ARC002",
        scan(
            &Zip::new()
                .add("a/data.pkl", b"\x80\x02K\x01.", false, None)
                .add("a/data.pkl", b"\x80\x02K\x01.", false, None)
                .finish(),
            "m.pt",
        ),
    );
    m.insert("ARC003", fixture("malformed/zip_overlap.pt"));
    let mut crc = Zip::new()
        .add("a/data.pkl", b"\x80\x02K\x01.", false, None)
        .finish();
    let cen = crc.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    crc[cen + 16] ^= 0xff;
    m.insert("ARC004", scan(&crc, "m.pt"));
    let mut enc = Zip::new()
        .add("a/data.pkl", b"\x80\x02K\x01.", false, None)
        .finish();
    let cen = enc.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    enc[cen + 8] |= 1;
    m.insert("ARC005", scan(&enc, "m.pt"));
    m.insert("ARC006", fixture("malformed/zip_bomb.zip"));
    m.insert(
        "ARC007",
        scan(
            &Zip::new().add("/etc/cron.d/x", b"x", false, None).finish(),
            "m.zip",
        ),
    );
    m.insert("ARC008", scan(b"7z\xbc\xaf\x27\x1c\x00\x04", "m.pt"));
    m.insert("ARC008", {
        let mut f = scan(b"7z\xbc\xaf\x27\x1c\x00\x04", "m.pt");
        f.extend(fixture("evasive/torch_unreadable_first.pt"));
        f
    });
    m.insert(
        "ARC009",
        scan(b"PK\x03\x04 then nothing useful at all", "m.pt"),
    );
    let npy = |h: &str, body: &[u8]| {
        let mut d = b"\x93NUMPY\x01\x00".to_vec();
        d.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
        d.extend_from_slice(h.as_bytes());
        d.extend_from_slice(body);
        d
    };
    m.insert(
        "NPY001",
        scan(
            &npy(
                "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                b"\x80\x02K\x01.",
            ),
            "a.npy",
        ),
    );
    m.insert(
        "NPY002",
        scan(
            &npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (100,), }",
                b"",
            ),
            "a.npy",
        ),
    );
    m.insert(
        "ST001",
        fixture("malformed/safetensors_overlap.safetensors"),
    );
    m.insert("GGUF001", fixture("malformed/truncated.gguf"));
    m.insert(
        "GGUF002",
        scan(
            &gguf_with_template("{{ self.__init__.__globals__ }}"),
            "m.gguf",
        ),
    );
    m.insert("ONNX001", fixture("malicious/onnx_custom_op.onnx"));
    m.insert("ONNX002", fixture("evasive/onnx_external_traversal.onnx"));
    m.insert("ONNX003", fixture("malformed/truncated.onnx"));
    m.insert(
        "KER001",
        scan(
            &keras(r#"{"class_name":"Lambda","config":{"name":"l","function":"f"}}"#),
            "m.keras",
        ),
    );
    m.insert(
        "KER002",
        scan(
            &keras(r#"{"module":"subprocess","class_name":"Popen"}"#),
            "m.keras",
        ),
    );
    m.insert(
        "KER003",
        scan(
            &keras(r#"{"module":"my_layers","class_name":"Attention"}"#),
            "m.keras",
        ),
    );
    m.insert("KER004", scan(&keras("{not json"), "m.keras"));
    let h5 = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/benign/keras_mlp.h5"),
    )
    .unwrap();
    m.insert("H5001", scan(&h5[..h5.len() / 2], "m.h5"));
    m.insert(
        "TF001",
        fixture("malicious/savedmodel_readfile/saved_model.pb"),
    );
    m.insert("TF002", scan(b"\x12\xff\xff\xff\x0f", "saved_model.pb"));
    m.insert(
        "HF001",
        scan(br#"{"auto_map": {"AutoModel": "x.Y"}}"#, "config.json"),
    );
    m.insert(
        "HF002",
        fixture("malicious/hf_remote_code/modeling_evil.py"),
    );
    m.insert(
        "HF003",
        scan(
            br#"{"chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"}"#,
            "tokenizer_config.json",
        ),
    );
    m.insert(
        "HF004",
        scan(br#"{"auto_map": {"AutoModel": "#, "config.json"),
    );
    m.insert("TS001", fixture("malicious/torchscript_custom_op.pt"));
    m.insert("TFL001", fixture("malicious/tflite_custom_op.tflite"));
    m.insert("TFL002", fixture("malformed/tflite_truncated.tflite"));
    m.insert(
        "PT001",
        scan(
            b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQK\x00J\x00\x00\x01\x00\x85K\x01\x85\x89)tR.",
            "m.pkl",
        ),
    );
    m.insert("GEN001", scan(b"\x00\x01not a model", "weights.pt"));
    m
}

#[test]
fn every_rule_has_a_positive_example() {
    let ex = examples();
    let mut missing = Vec::new();
    for rule in mlsec_scan_model::rules::ALL {
        match ex.get(rule.id) {
            None => missing.push(format!("{}: no example", rule.id)),
            Some(f) if !f.iter().any(|x| x.rule.id == rule.id) => missing.push(format!(
                "{}: example does not raise it:\n{}",
                rule.id,
                dump(f)
            )),
            Some(_) => {}
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    assert_eq!(
        ex.len(),
        mlsec_scan_model::rules::ALL.len(),
        "an example names a rule that is not in ALL"
    );
    let mut ids: Vec<&str> = mlsec_scan_model::rules::ALL.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        mlsec_scan_model::rules::ALL.len(),
        "a rule is listed twice in ALL"
    );
}

#[test]
fn rule_catalogue_is_well_formed() {
    let mut ids = std::collections::HashSet::new();
    for r in mlsec_scan_model::rules::ALL {
        assert!(ids.insert(r.id), "duplicate id {}", r.id);
        assert!(
            r.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}",
            r.name
        );
        assert!(
            !r.what.is_empty() && !r.why.is_empty() && !r.remediation.is_empty(),
            "{} lacks docs",
            r.id
        );
        assert!(
            !r.cwe.is_empty() && r.cwe.iter().all(|c| c.starts_with("CWE-")),
            "{}",
            r.id
        );
        assert!(!r.owasp.is_empty(), "{}", r.id);
    }
}
