//! The listener's HTTP/1 framing watcher on arbitrary connection bytes, fed whole and split
//! at a fuzzer-chosen point: it never panics and the split never changes whether the
//! connection is marked. (On bytes hyper refuses, a split may only defer the moment the watcher
//! gives up to the next line end: a stream the whole watch still follows, the split one does.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_server::conn::{ConnMarks, Framing};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let whole = ConnMarks::default();
    let mut f = Framing::new(whole.clone());
    f.feed(bytes);
    let split = ConnMarks::default();
    let mut g = Framing::new(split.clone());
    let cut = usize::from(cut).min(bytes.len());
    g.feed(&bytes[..cut]);
    g.feed(&bytes[cut..]);
    assert_eq!(whole.ambiguous(), split.ambiguous());
    if f.following() {
        assert!(g.following());
    }
});
