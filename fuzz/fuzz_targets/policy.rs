//! Arbitrary text as a policy file: it loads, or fails with an error that says why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portier::policy::PolicySet;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match PolicySet::from_yaml("fuzz.yaml", text) {
            Ok(_) => {}
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
});
