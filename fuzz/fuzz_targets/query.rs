//! cargo-fuzz target: arbitrary bytes as a `POST /query` body, through the whole router in
//! front of the fake DomainTools API (the entry point is shared with the stable replay test,
//! tests/it/fuzz_corpus.rs, and builds its server with the tests' harness). Any panic, 5xx,
//! non-JSON reply or leaked key is a finding.
#![no_main]

#[path = "../../tests/it/common/fuzz_entry.rs"]
mod fuzz_entry;
#[path = "../../tests/it/common/server.rs"]
mod server;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = fuzz_entry::query(data) {
        panic!("{finding}");
    }
});
