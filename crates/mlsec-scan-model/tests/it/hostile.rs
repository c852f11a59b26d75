//! Hostile input built in the test: bombs, huge declared lengths, broken structure.

use std::io::Write;

use mlsec_diagnostics::Severity;

use crate::writer::Zip;
use crate::{assert_caught, dump, scan};

pub fn payload() -> Vec<u8> {
    b"\x80\x02cposix\nsystem\nX\x11\x00\x00\x00echo MLSEC_MARKER\x85R.".to_vec()
}

#[test]
fn zip_bomb_lying_about_its_size() {
    let mut z = Zip::new()
        .add("archive/data.pkl", &vec![0u8; 50 * 1024 * 1024], true, None)
        .finish();
    assert!(z.len() < 200_000);
    // Declare 1 KiB uncompressed in both headers.
    let cen = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    z[cen + 24..cen + 28].copy_from_slice(&1024u32.to_le_bytes());
    z[22..26].copy_from_slice(&1024u32.to_le_bytes());
    assert_caught(
        &scan(&z, "bomb.pt"),
        "ARC006",
        Severity::High,
        "inflates past",
    );
}

#[test]
fn small_lie_about_size_is_reported() {
    let mut z = Zip::new()
        .add("archive/data.pkl", &payload(), true, None)
        .finish();
    let cen = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    z[cen + 24..cen + 28].copy_from_slice(&3u32.to_le_bytes());
    let f = scan(&z, "m.pt");
    assert_caught(&f, "ARC009", Severity::Medium, "declares 3");
}

#[test]
fn honest_large_zero_member_is_not_a_bomb() {
    // np.savez_compressed of a large zero array: 1000:1, declared honestly, not code.
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (8000000,), }";
    npy.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend(std::iter::repeat_n(0u8, 64_000_000));
    let z = Zip::new().add("a.npy", &npy, true, None).finish();
    let f = scan(&z, "weights.npz");
    assert!(f.is_empty(), "{}", dump(&f));
}

#[test]
fn nested_zip_depth_limit() {
    let mut inner = payload();
    let mut name = "data.pkl".to_owned();
    for i in 0..12 {
        inner = Zip::new().add(&name, &inner, false, None).finish();
        name = format!("level{i}.zip");
    }
    let f = scan(&inner, "deep.zip");
    assert_caught(&f, "ARC006", Severity::High, "MAX_NESTING");
}

#[test]
fn zip_name_mismatch_and_payload() {
    let z = Zip::new()
        .add(
            "archive/data.pkl",
            &payload(),
            false,
            Some("archive/data.txt"),
        )
        .finish();
    let f = scan(&z, "m.pt");
    assert_caught(&f, "ARC001", Severity::High, "archive/data.txt");
    assert_caught(&f, "PKL001", Severity::Critical, "posix.system");
}

#[test]
fn zip_unsafe_member_path() {
    let z = Zip::new()
        .add("../../.bashrc", b"echo hi", false, None)
        .finish();
    assert_caught(
        &scan(&z, "m.zip"),
        "ARC007",
        Severity::High,
        "../../.bashrc",
    );
}

#[test]
fn zip_member_past_end() {
    let mut z = Zip::new()
        .add("archive/data.pkl", &payload(), false, None)
        .finish();
    // Declare a compressed size far beyond the file in the central directory.
    let cen = z.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    z[cen + 20..cen + 24].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let f = scan(&z, "m.pt");
    assert!(!f.is_empty(), "scanned clean");
    assert_caught(&f, "ARC009", Severity::Medium, "past the end");
}

#[test]
fn pickle_huge_declared_lengths() {
    for op in [
        &b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f"[..],
        b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x80\x04X\xff\xff\xff\xff",
        b"\x80\x02\x8b\xff\xff\xff\x7f",
    ] {
        let f = scan(op, "m.pkl");
        assert!(
            f.iter().any(|x| matches!(x.rule.id, "PKL006" | "PKL007")),
            "{}",
            dump(&f)
        );
    }
}

#[test]
fn safetensors_huge_header_length() {
    let mut d = u64::MAX.to_le_bytes().to_vec();
    d.extend_from_slice(b"{}");
    assert_caught(
        &scan(&d, "m.safetensors"),
        "ST001",
        Severity::High,
        "MAX_HEADER",
    );
}

#[test]
fn gguf_huge_string_length() {
    let mut d = b"GGUF\x03\x00\x00\x00".to_vec();
    d.extend_from_slice(&0u64.to_le_bytes());
    d.extend_from_slice(&1u64.to_le_bytes());
    d.extend_from_slice(&u64::MAX.to_le_bytes());
    assert_caught(&scan(&d, "m.gguf"), "GGUF001", Severity::High, "MAX_STRING");
}

#[test]
fn compressed_bomb() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..1100 {
        e.write_all(&zeros).unwrap();
    }
    let gz = e.finish().unwrap();
    assert_caught(
        &scan(&gz, "model.pkl.gz"),
        "ARC006",
        Severity::High,
        "MAX_STREAM_INFLATED",
    );
}

#[test]
fn npy_object_array_payload() {
    let header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }";
    let mut d = b"\x93NUMPY\x01\x00".to_vec();
    d.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    d.extend_from_slice(header.as_bytes());
    d.extend_from_slice(&payload());
    let f = scan(&d, "a.npy");
    assert_caught(&f, "NPY001", Severity::Medium, "objects");
    assert_caught(&f, "PKL001", Severity::Critical, "posix.system");
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 512, ..Default::default() })]

    #[test]
    fn scan_bytes_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048), ext in proptest::sample::select(vec!["pkl", "pt", "npy", "gguf", "safetensors", "onnx", "h5", "keras", "zip", "joblib", "bin"])) {
        let _ = mlsec_scan_model::scan_bytes(&data, &format!("m.{ext}"));
    }

    #[test]
    fn scan_never_panics_on_mutated_zip(flips in proptest::collection::vec((0usize..400, proptest::num::u8::ANY), 1..8)) {
        let mut z = Zip::new().add("archive/data.pkl", &payload(), false, None).add("archive/version", b"3", true, None).finish();
        for (i, b) in flips {
            let n = z.len();
            z[i % n] = b;
        }
        let _ = mlsec_scan_model::scan_bytes(&z, "m.pt");
    }
}

#[test]
fn fuzz_regressions_never_panic() {
    // Inputs that once crashed a fuzz target (fuzz/regressions/), replayed through every parser.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        let _ = mlsec_formats::hdf5::root_attributes(&data);
        for name in [
            "m.h5",
            "m.pkl",
            "m.pt",
            "m.onnx",
            "m.gguf",
            "m.safetensors",
            "m.npy",
        ] {
            let _ = mlsec_scan_model::scan_bytes(&data, name);
        }
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn zip_with_prepended_data_is_still_scanned() {
    // Python's zipfile (and so Keras) reads an archive with bytes in front of it; offsets in the
    // archive are relative to its own start.
    let config = br#"{"module": "os", "class_name": "function", "config": "system"}"#;
    let z = Zip::new()
        .add("metadata.json", b"{}", false, None)
        .add("config.json", config, true, None)
        .finish();
    let mut prefixed = b"#!/bin/sh\nthis is not a zip\n".to_vec();
    prefixed.extend_from_slice(&z);
    let f = scan(&prefixed, "model.keras");
    assert_caught(&f, "KER002", Severity::Critical, "os.system");
    assert_caught(&f, "ARC009", Severity::Medium, "precede the zip archive");
}

/// A raw deflate stream of `mib` MiB of zeros, built from one full-flushed MiB repeated (a
/// full flush resets the window, so the pieces do not refer to each other) and a final empty
/// block: gigabytes in milliseconds.
fn zeros_deflated(mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::best(), false);
    let mut piece = Vec::with_capacity(8192);
    c.compress_vec(&vec![0u8; 1 << 20], &mut piece, FlushCompress::Full)
        .unwrap();
    let mut out = Vec::with_capacity(piece.len() * mib + 8);
    for _ in 0..mib {
        out.extend_from_slice(&piece);
    }
    // BFINAL=1, BTYPE=01 (fixed Huffman), end-of-block: 0b011 then seven zero bits.
    out.extend_from_slice(&[0x03, 0x00]);
    out
}

/// A zip whose members are deflated runs of zeros with honest sizes (CRC left 0: the scanner
/// does not inflate members it can identify from their first bytes).
fn flat_bomb(members: usize, mib_each: usize) -> Vec<u8> {
    let body = zeros_deflated(mib_each);
    let size = (mib_each as u64) << 20;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for i in 0..members {
        let name = format!("archive/data/{i}");
        let offset = out.len() as u32;
        let header = |sig: &[u8], central: bool| {
            let mut h = sig.to_vec();
            if central {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&8u16.to_le_bytes()); // deflate
            h.extend_from_slice(&[0; 4]); // time, date
            h.extend_from_slice(&0u32.to_le_bytes()); // crc
            h.extend_from_slice(&(body.len() as u32).to_le_bytes());
            h.extend_from_slice(&(size as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&[0; 8]); // comment, disk, internal attrs
                h.extend_from_slice(&0u32.to_le_bytes()); // external attrs
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(b"PK\x03\x04", false));
        out.extend_from_slice(&body);
        central.extend(header(b"PK\x01\x02", true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(members as u16).to_le_bytes());
    out.extend_from_slice(&(members as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn a_flat_zip_bomb_is_reported_by_its_ratio() {
    let z = flat_bomb(4, 1024);
    assert!(z.len() < 8 << 20, "{} bytes", z.len());
    assert_caught(&scan(&z, "bomb.zip"), "ARC006", Severity::High, ":1");
    // A quarter of it is still a bomb, at medium.
    let z = flat_bomb(1, 300);
    assert_caught(&scan(&z, "bomb.zip"), "ARC006", Severity::Medium, ":1");
    // Compressible data of ordinary size is not.
    let z = flat_bomb(1, 8);
    let f = scan(&z, "weights.zip");
    assert!(f.iter().all(|f| f.rule.id != "ARC006"), "{}", dump(&f));
}

#[test]
fn reference_expansion_through_dup_and_memo_is_reported() {
    // DUP only: x, then 30 times (DUP, TUPLE2): 2^30 leaves in 62 bytes.
    let mut p = b"\x80\x02]".to_vec();
    for _ in 0..30 {
        p.extend_from_slice(b"2\x86");
    }
    p.push(b'.');
    assert_caught(
        &scan(&p, "m.pkl"),
        "PKL008",
        Severity::Medium,
        "expands to more than",
    );
    // A list filled after it was memoised is seen full by later GETs (as Python's memo does).
    let mut p = b"\x80\x04]\x94".to_vec(); // L0 = [], memo 0
    for i in 0u8..28 {
        // Li+1 = [Li, Li]: EMPTY_LIST, MEMOIZE, MARK, GET i, GET i, APPENDS
        p.extend_from_slice(b"]\x94(h");
        p.push(i);
        p.push(b'h');
        p.push(i);
        p.push(b'e');
    }
    p.push(b'.');
    let f = scan(&p, "m.pkl");
    assert_caught(&f, "PKL008", Severity::Medium, "expands to more than");
}

#[test]
fn plain_large_data_and_allocations_are_not_bombs() {
    // One memoised value referenced 2^20 times: large, but one reference per opcode.
    let mut p = b"\x80\x04\x8c\x01x\x94](".to_vec();
    for _ in 0..(1 << 20) {
        p.extend_from_slice(b"h\x00");
    }
    p.extend_from_slice(b"e.");
    let f = scan(&p, "big.pkl");
    assert!(f.iter().all(|f| f.rule.id != "PKL008"), "{}", dump(&f));
    // Modest allocations are ordinary.
    let p = b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x10\x00\x85R.";
    assert!(scan(p, "m.pkl").is_empty(), "{}", dump(&scan(p, "m.pkl")));
    let p = b"\x80\x02c__builtin__\nbytearray\n\x8a\x05\x00\x00\x00\x00\x01\x85R.";
    assert_caught(&scan(p, "m.pkl"), "PKL008", Severity::Medium, "bytearray");
}
