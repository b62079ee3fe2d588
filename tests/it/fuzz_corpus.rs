//! Stable-toolchain smoke test of the `/query` fuzz target: replays `fuzz/corpus/query/`
//! (nasty inputs kept in the repository, plus anything `cargo fuzz` added there) and every
//! example request, whole and cut short at many points, through the same entry point the
//! fuzzer uses (`tests/it/common/fuzz_entry.rs`). See docs/fuzzing.md.

use crate::common::fuzz_entry;

use std::path::Path;

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_file())
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/query");
    let corpus = files(&dir);
    assert!(corpus.len() >= 30, "the corpus is there: {}", corpus.len());
    let failures: Vec<String> = corpus
        .iter()
        .filter_map(|(name, body)| {
            fuzz_entry::query(body)
                .err()
                .map(|e| format!("{name}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn examples_whole_and_truncated_replay_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, body) in files(&dir) {
        if !name.ends_with(".json") {
            continue;
        }
        // The whole request, then cut at every 13th byte: broken JSON at every depth.
        let cuts = (0..body.len()).step_by(13).chain([body.len()]);
        for cut in cuts {
            replayed += 1;
            if let Err(e) = fuzz_entry::query(&body[..cut]) {
                failures.push(format!("{name}[..{cut}]: {e}"));
            }
        }
    }
    assert!(replayed > 100, "{replayed}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
