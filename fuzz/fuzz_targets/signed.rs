//! Any payload: verifying a signature returns a typed answer, never panics,
//! and accepts only what the key sealed; sealing what decodes gives a
//! message that verifies and still decodes the same.
#![no_main]

use aci_core::wire::{decode, Limits, MessageKey, Signer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = MessageKey::new(b"fuzzing-key-fuzzing-key").expect("valid key");
    let signer = Signer::new(&[key]).expect("one key");
    // An arbitrary payload is refused unless it is a sealed message: the
    // fuzzer cannot forge a tag, so acceptance means a bug.
    assert!(signer.verify(data).is_err(), "accepted an unsealed payload");
    let limits = Limits { max_bytes: 1 << 16, max_keys: 1024 };
    if decode(data, limits).is_err() {
        return;
    }
    let mut sealed: heapless::Vec<u8, 70_000> = heapless::Vec::new();
    if sealed.extend_from_slice(data).is_err() || signer.seal(&mut sealed, 0).is_err() {
        return;
    }
    assert!(signer.verify(&sealed).is_ok(), "a sealed message did not verify");
    assert!(decode(&sealed, Limits { max_bytes: 1 << 17, max_keys: 1024 }).is_ok(), "sealing broke the JSON");
});
