//! Attacks on PyTorch's `weights_only` loader that use only the globals it allows: storages that
//! declare more than they hold, tensor views past their storage, and tensors mutated by BUILD or
//! SETITEM while loading. Built as opcodes: `torch.save` never writes them.

use mlsec_diagnostics::Severity;

use crate::writer::Zip;
use crate::{assert_caught, dump, scan};

fn s(text: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(text.len() as u32).to_le_bytes());
    v.extend_from_slice(text.as_bytes());
    v
}

fn int(n: i32) -> Vec<u8> {
    let mut v = vec![b'J'];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

/// `{"weight": _rebuild_tensor_v2(storage(numel), offset, (size,), (stride,), False, OrderedDict())}`
/// followed by `extra` opcodes applied to the tensor before it is stored.
fn state_dict(numel: i32, offset: i32, size: i32, stride: i32, extra: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02}".to_vec();
    p.extend(s("weight"));
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.push(b'(');
    p.extend(s("storage"));
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    p.extend(s("0"));
    p.extend(s("cpu"));
    p.extend(int(numel));
    p.extend_from_slice(b"tQ");
    p.extend(int(offset));
    p.extend(int(size));
    p.push(0x85);
    p.extend(int(stride));
    p.push(0x85);
    p.push(0x89);
    p.extend_from_slice(b"ccollections\nOrderedDict\n)RtR");
    p.extend_from_slice(extra);
    p.extend_from_slice(b"s.");
    p
}

fn archive(pickle: &[u8], data_bytes: usize) -> Vec<u8> {
    Zip::new()
        .add("archive/data.pkl", pickle, false, None)
        .add("archive/data/0", &vec![0u8; data_bytes], false, None)
        .add("archive/version", b"3\n", false, None)
        .finish()
}

#[test]
fn a_consistent_checkpoint_is_clean() {
    let f = scan(&archive(&state_dict(4, 0, 4, 1, b""), 16), "model.pt");
    assert!(f.is_empty(), "{}", dump(&f));
    // A view of part of the storage, and an empty tensor, are fine too.
    let f = scan(&archive(&state_dict(4, 2, 2, 1, b""), 16), "model.pt");
    assert!(f.is_empty(), "{}", dump(&f));
    let f = scan(&archive(&state_dict(4, 9, 0, 1, b""), 16), "model.pt");
    assert!(f.is_empty(), "{}", dump(&f));
}

#[test]
fn a_storage_that_declares_more_than_its_member_holds() {
    let f = scan(
        &archive(&state_dict(1_000_000, 0, 4, 1, b""), 16),
        "model.pt",
    );
    assert_caught(&f, "PT001", Severity::High, "declares 1000000 elements");
    // The member named by the storage key is missing altogether.
    let z = Zip::new()
        .add(
            "archive/data.pkl",
            &state_dict(4, 0, 4, 1, b""),
            false,
            None,
        )
        .add("archive/version", b"3\n", false, None)
        .finish();
    assert_caught(
        &scan(&z, "model.pt"),
        "PT001",
        Severity::Medium,
        "no data/0 member",
    );
}

#[test]
fn a_view_past_its_storage() {
    for (offset, size, stride, needle) in [
        (0, 1_000_000, 1, "reaches element 999999"),
        (3, 2, 1, "reaches element 4"),
        (0, 4, 1_000, "reaches element 3000"),
        (-1, 4, 1, "negative"),
        (0, 4, -1, "negative"),
    ] {
        let f = scan(
            &archive(&state_dict(4, offset, size, stride, b""), 16),
            "model.pt",
        );
        assert_caught(&f, "PT001", Severity::High, needle);
    }
}

#[test]
fn tensors_mutated_while_loading() {
    // BUILD: the weights_only loader runs Tensor.set_(*state).
    let mut build = b"(".to_vec();
    build.extend(int(0));
    build.extend_from_slice(b"tb");
    let f = scan(&archive(&state_dict(4, 0, 4, 1, &build), 16), "model.pt");
    assert_caught(&f, "PT001", Severity::High, "BUILD applied to a tensor");
    // SETITEM: tensor[0] = 1.
    let mut setitem = int(0);
    setitem.extend(int(1));
    setitem.push(b's');
    let f = scan(&archive(&state_dict(4, 0, 4, 1, &setitem), 16), "model.pt");
    assert_caught(&f, "PT001", Severity::High, "SETITEM applied to a tensor");
}
