//! Replays the fuzzers' corpus (fuzz/corpus/) through the same entry points the
//! fuzz targets call, so every `cargo test` on stable checks what fuzzing found.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn packet_corpus_replays() {
    let files = corpus("packet");
    assert!(files.len() >= 25, "seed corpus present: {}", files.len());
    for (name, data) in &files {
        pinradius::fuzz::packet(data);
        let valid = pinradius::protocol::validate(data).is_ok();
        // The seeds named for a malformation must be refused; the RFC vectors accepted.
        if name.starts_with("rfc2865")
            || name == "packet-4096"
            || name == "vsa-mikrotik"
            || name == "pap-accept"
        {
            assert!(valid, "{name} should validate");
        } else if !name.starts_with("length-smaller") && !name.starts_with("vsa-") {
            assert!(!valid, "{name} should be refused");
        }
    }
}

#[test]
fn request_path_corpus_replays() {
    let files = corpus("request_path");
    assert!(files.len() >= 20, "seed corpus present: {}", files.len());
    let server = pinradius::fuzz::RequestPath::new();
    let mut answered = 0;
    for (name, data) in &files {
        let answer = server.run(data);
        answered += usize::from(answer.is_some());
        if name == "pap-accept" || name == "chap-challenge" || name == "status-server" {
            let code = answer.as_ref().unwrap_or_else(|| panic!("{name} answered"))[0];
            assert_eq!(code, 2, "{name}: Access-Accept");
        }
        if name == "bad-message-authenticator" {
            assert!(answer.is_none(), "{name} dropped");
        }
    }
    assert!(answered >= 10, "{answered} answers");
}
