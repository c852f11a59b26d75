//! Python source and Jupyter notebooks through the code scanner: parse, resolve, analyse.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mlsec_scan_code::scan_notebook("f.ipynb", data);
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = mlsec_scan_code::scan_python("f.py", src);
    }
});
