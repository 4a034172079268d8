//! Helpers shared by the integration tests that read the frame files in `tests/frames/`.

// Each test crate uses its own subset.
#![allow(dead_code)]

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
