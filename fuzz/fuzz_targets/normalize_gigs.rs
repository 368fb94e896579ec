#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hooknorm::fuzzing::normalize_gigs(data));
