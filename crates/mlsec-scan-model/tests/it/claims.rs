//! Files that are not what their name or first bytes claim: never silently clean, never low
//! when a loader would parse them; and text that only starts like a pickle is not one.

use mlsec_diagnostics::Severity;

use crate::writer::Zip;
use crate::{assert_caught, dump, scan};

#[test]
fn a_pickle_named_file_that_is_no_pickle_is_at_least_medium() {
    // Random bytes come from a fixed generator (the test must not depend on luck).
    let mut x: u32 = 0x1234_5678;
    let random: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    for (data, name, needle) in [
        (&b""[..], "model.pkl", "empty"),
        (&b""[..], "model.pt", "empty"),
        (&b""[..], "model.joblib", "empty"),
        (&b"\xfftrash"[..], "model.pkl", "not a valid pickle stream"),
        (&random[..], "model.pt", ""),
        (&random[..], "weights.pth", ""),
    ] {
        let f = scan(data, name);
        assert_caught(&f, "GEN001", Severity::Medium, needle);
    }
    // Other model extensions are not parsed as pickle, but are never silently clean.
    let f = scan(&random, "model.onnx");
    assert!(!f.is_empty(), "random bytes named .onnx came out clean");
}

#[test]
fn text_that_starts_like_protocol_0_is_not_a_pickle() {
    // NLTK's punkt_tab abbreviations and a .gitignore: `c` + two identifier lines is a GLOBAL.
    for (text, name) in [
        (&b"ca\ncal\ncap\ncapt\ncf\n"[..], "abbrev_types.txt"),
        (&b"cache\n__pycache__\n*.o\ndist/\n"[..], ".gitignore"),
        (&b"(dp0\nthis is prose, not a pickle\n"[..], "notes.txt"),
    ] {
        let f = scan(text, name);
        assert!(f.is_empty(), "{name}: {}", dump(&f));
    }
    // The same header-less opcodes that do call something are reported whatever the name.
    let f = scan(b"cos\nsystem\n(S'echo MLSEC_MARKER'\ntR", "notes.txt");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
    let f = scan(b"cos\nsystem\n(S'echo MLSEC_MARKER'\ntR.", "readme.txt");
    assert_caught(&f, "PKL001", Severity::Critical, "os.system");
}

#[test]
fn a_pytorch_zip_without_data_pkl_is_reported() {
    let z = Zip::new()
        .add("archive/version", b"3\n", false, None)
        .add("archive/byteorder", b"little", false, None)
        .add("archive/data/0", &[0u8; 16], false, None)
        .finish();
    assert_caught(
        &scan(&z, "model.pt"),
        "GEN001",
        Severity::Medium,
        "without data.pkl",
    );
    // An ordinary zip of data files is not a PyTorch archive.
    let z = Zip::new()
        .add("docs/version", b"3\n", false, None)
        .add("docs/readme.txt", b"hi", false, None)
        .finish();
    assert!(scan(&z, "bundle.zip").is_empty());
}

#[test]
fn a_truncated_config_still_reports_its_auto_map() {
    let full = br#"{"architectures": ["Evil"], "auto_map": {"AutoModel": "modeling_evil.EvilModel"}, "model_type": "x"}"#;
    assert_caught(
        &scan(full, "config.json"),
        "HF001",
        Severity::High,
        "modeling_evil",
    );
    let cut = &full[..70];
    let f = scan(cut, "config.json");
    assert_caught(&f, "HF004", Severity::Medium, "not valid JSON");
    assert_caught(&f, "HF001", Severity::High, "modeling_evil");
    // A truncated config without auto_map is still not clean.
    let f = scan(br#"{"architectures": ["Bert"#, "config.json");
    assert_caught(&f, "HF004", Severity::Medium, "not valid JSON");
}

#[test]
fn chat_templates_outside_gguf_are_checked() {
    let evil = "{{ cycler.__init__.__globals__.os.popen('id').read() }}";
    let benign =
        "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] | trim }}{% endfor %}";
    let cfg = serde_json::json!({ "chat_template": evil, "model_max_length": 512 }).to_string();
    assert_caught(
        &scan(cfg.as_bytes(), "tokenizer_config.json"),
        "HF003",
        Severity::High,
        "__globals__",
    );
    let named = serde_json::json!({
        "chat_template": [{"name": "default", "template": benign}, {"name": "tool_use", "template": evil}]
    })
    .to_string();
    let f = scan(named.as_bytes(), "tokenizer_config.json");
    assert_caught(&f, "HF003", Severity::High, "__globals__");
    assert!(
        f.iter()
            .all(|f| f.location.to_string().contains("/chat_template/1/template")),
        "{}",
        dump(&f)
    );
    assert_caught(
        &scan(evil.as_bytes(), "chat_template.jinja"),
        "HF003",
        Severity::High,
        "__globals__",
    );
    // Ordinary templates are clean.
    let cfg = serde_json::json!({ "chat_template": benign }).to_string();
    assert!(scan(cfg.as_bytes(), "tokenizer_config.json").is_empty());
    assert!(scan(benign.as_bytes(), "chat_template.jinja").is_empty());
}

#[test]
fn data_formats_that_share_model_extensions_are_not_models() {
    // IDL save files (plain and compressed), SPSS and MATLAB data: readers that run no code.
    for (head, name) in [
        (&b"SR\x00\x04\x00\x00\x00\x0a"[..], "array.sav"),
        (&b"SR\x00\x06\x00\x00\x00\x0a"[..], "compressed.sav"),
        (&b"$FL2@(#) SPSS DATA FILE"[..], "survey.sav"),
    ] {
        let f = scan(head, name);
        assert!(f.is_empty(), "{name}: {}", dump(&f));
    }
    // A .sav that is none of them is still read as the pickle scikit-learn tutorials write.
    assert_caught(
        &scan(b"\x80\x04\x95junk", "model.sav"),
        "PKL006",
        Severity::Medium,
        "",
    );
}

#[test]
fn joblib_zfiles_from_python_2_and_3_are_opened() {
    use std::io::Write as _;
    let payload = crate::hostile::payload();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&payload).unwrap();
    let body = z.finish().unwrap();
    // `hex(len)` padded to len(hex(2**64)): 19 bytes in Python 3, 20 (with `L`) in Python 2.
    for header in [
        format!("{:<19}", format!("0x{:x}", payload.len())),
        format!("{:<20}", format!("0x{:x}L", payload.len())),
    ] {
        let mut f = b"ZF".to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(&body);
        assert_caught(
            &scan(&f, "model.pkl"),
            "PKL001",
            Severity::Critical,
            "system",
        );
    }
}
