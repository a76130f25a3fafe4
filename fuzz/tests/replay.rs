//! Replays every saved input — the corpus the fuzzer grew and the regressions it found — through
//! the targets on a normal build. Fast (no fuzzing); this is what CI runs.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 8] = [
    ("client_frame", herald_fuzz::client_frame),
    ("channel_name", herald_fuzz::channel_name),
    ("user_data", herald_fuzz::user_data),
    ("api_request", herald_fuzz::api_request),
    ("trigger_body", herald_fuzz::trigger_body),
    ("config", herald_fuzz::config),
    ("redis_envelope", herald_fuzz::redis_envelope),
    ("webhook_event", herald_fuzz::webhook_event),
];

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(|e| Some(e.ok()?.path())).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn every_saved_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, target) in TARGETS {
        let mut files = inputs(&root.join("corpus").join(name));
        assert!(
            !files.is_empty(),
            "fuzz/corpus/{name} is empty: seed it with fuzz/seed.sh"
        );
        files.extend(inputs(&root.join("regressions").join(name)));
        for file in &files {
            // A fuzzer running beside this test may replace corpus files as it minimises them.
            let data = match std::fs::read(file) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", file.display()),
            };
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} fails on {}", file.display());
        }
        eprintln!("{name}: {} inputs", files.len());
    }
}
