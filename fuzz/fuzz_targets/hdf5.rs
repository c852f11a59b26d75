#![no_main]
//! HDF5 superblock, object headers, attribute messages and the global heap.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::hdf5;

fuzz_target!(|data: &[u8]| {
    let _ = hdf5::superblock(&data);
    let _ = hdf5::root_attributes(&data);
});
