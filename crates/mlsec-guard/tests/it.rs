//! Never-panic properties of the detector on arbitrary text and on soups of the tokens its
//! layers react to.
use proptest::prelude::*;

proptest! {
    #[test]
    fn never_panics_on_text(s in "\\PC{0,400}") {
        let v = mlsec_guard::Detector::builtin().check(&s, mlsec_guard::Source::User);
        prop_assert!((0.0..=1.0).contains(&v.score));
    }

    #[test]
    fn never_panics_on_token_soup(parts in proptest::collection::vec(proptest::sample::select(vec![
        "ignore", " ", "previous", "instructions", "\u{200B}", "\u{E0041}", "\u{0456}", "1", "0", "@", "$", "|",
        "i g n o r e", ".", "-", "%20", "%", "aWdub3Jl", "==", "rot13", "<|im_start|>", "[INST]", "](http", "?q={",
        "忽略", "指令", "игнорируй", "инструкции", "\u{FF29}", "\n", "\r", "\t", "\u{202E}", "é", "\u{0301}",
    ]), 0..80)) {
        let s = parts.concat();
        let v = mlsec_guard::Detector::builtin().check(&s, mlsec_guard::Source::Retrieved);
        prop_assert!((0.0..=1.0).contains(&v.score));
    }
}
