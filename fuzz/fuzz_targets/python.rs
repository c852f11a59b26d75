//! Python source and Jupyter notebooks through the code scanner: parse, resolve, analyse.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // ruff's parser has known `unreachable!`s on malformed IPython input. mlsec catches
        // them (the file becomes a PY900 finding); here they must not count as crashes, while
        // a panic anywhere else still aborts, as libFuzzer expects.
        std::panic::set_hook(Box::new(|info| {
            if info.location().is_some_and(|l| l.file().contains("ruff_python_parser")) {
                return;
            }
            eprintln!("{info}");
            std::process::abort();
        }));
    },
    |data: &[u8]| {
        let _ = mlsec_scan_code::scan_notebook("f.ipynb", data);
        if let Ok(src) = std::str::from_utf8(data) {
            let _ = mlsec_scan_code::scan_python("f.py", src);
        }
    }
);
