//! Helpers shared by the integration tests that read the frame files in `tests/frames/`
//! (format in `tests/frames/README.md`).

// Each test crate uses its own subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The bytes written as hex digit pairs in `text`, whitespace anywhere between pairs
/// (`"65 00 04"`, `"650004"`). Panics on anything else: a malformed frame file is a test
/// failure, not input to tolerate.
pub fn hex_bytes(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len() % 2 == 0,
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).unwrap_or("??");
            u8::from_str_radix(pair, 16)
                .unwrap_or_else(|_| panic!("{pair:?} is not a hex byte in {text:?}"))
        })
        .collect()
}

/// Lower-case hex of `bytes`, no separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `tests/frames/<dir>/*.hex` file.
pub struct HexFile {
    /// The file name without `.hex`.
    pub name: String,
    /// The comment lines, without their `#`.
    pub comments: Vec<String>,
    /// The frame.
    pub bytes: Vec<u8>,
}

impl HexFile {
    /// The text after `# <tag>:` on each comment line that has it (`tag` e.g. `"what"`).
    pub fn tagged<'s>(&'s self, tag: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.comments.iter().filter_map(move |c| {
            c.trim_start()
                .strip_prefix(tag)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(str::trim)
        })
    }
}

/// Every `.hex` file in `tests/frames/<dir>`, sorted by name.
pub fn hex_files(dir: &str) -> Vec<HexFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/frames")
        .join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut comments = Vec::new();
            let mut digits = String::new();
            for line in text.lines() {
                match line.strip_prefix('#') {
                    Some(comment) => comments.push(comment.to_string()),
                    None => {
                        digits.push_str(line);
                        digits.push(' ');
                    }
                }
            }
            HexFile {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                comments,
                bytes: hex_bytes(&digits),
            }
        })
        .collect()
}
