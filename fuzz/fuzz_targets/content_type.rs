#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hooknorm::fuzzing::content_type(data));
