//! Reading frames typed or pasted as hex: `6f 00 16 00`, `6f:00:16:00`, `6f-00`,
//! `0x6f, 0x00`, `6f001600`, or any mix of them.

/// Why some text is not hex bytes. `column` counts characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hex at column {column}: {token:?} {reason}")]
pub struct HexError {
    /// 1-based character column of the offending token in its input.
    pub column: usize,
    /// The offending token.
    pub token: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ':' | '-' | ',')
}

/// Parse `text` into bytes. Tokens are split at whitespace, `:`, `-` and `,`; each token
/// is an optional `0x`/`0X` prefix and an even number of hex digits (a prefixed token
/// may have a single digit: `0x5` is `05`).
pub fn parse(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::new();
    let mut column = 1;
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(|c: char| !is_separator(c)).unwrap_or(rest.len());
        column += rest.get(..start).map_or(0, |s| s.chars().count());
        rest = rest.get(start..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let end = rest.find(is_separator).unwrap_or(rest.len());
        let token = rest.get(..end).unwrap_or_default();
        let error = |reason| HexError {
            column,
            token: token.to_string(),
            reason,
        };
        let (prefixed, digits) = match token.strip_prefix("0x").or(token.strip_prefix("0X")) {
            Some(d) => (true, d),
            None => (false, token),
        };
        if digits.is_empty() {
            return Err(error("has no hex digits"));
        }
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(error("is not hex digits"));
        }
        if digits.len() % 2 == 1 && !(prefixed && digits.len() == 1) {
            return Err(error("has an odd number of hex digits"));
        }
        let padded;
        let digits = if digits.len() == 1 {
            padded = format!("0{digits}");
            padded.as_str()
        } else {
            digits
        };
        for pair in digits.as_bytes().chunks(2) {
            let pair = std::str::from_utf8(pair).map_err(|_| error("is not hex digits"))?;
            out.push(u8::from_str_radix(pair, 16).map_err(|_| error("is not hex digits"))?);
        }
        column += token.chars().count();
        rest = rest.get(end..).unwrap_or_default();
    }
    Ok(out)
}

/// Lower-case hex, no separators.
pub fn encode(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_prefixes() {
        assert_eq!(parse("6f 00:16-00").unwrap(), [0x6f, 0, 0x16, 0]);
        assert_eq!(parse("0x6f, 0x00, 0x5").unwrap(), [0x6f, 0, 5]);
        assert_eq!(parse("  6F0016\t00\n").unwrap(), [0x6f, 0, 0x16, 0]);
        assert_eq!(parse("").unwrap(), Vec::<u8>::new());
        assert_eq!(encode(&[0x6f, 0, 0xAB]), "6f00ab");
    }

    #[test]
    fn errors_name_the_column() {
        let e = parse("6f 0g").unwrap_err();
        assert_eq!((e.column, e.token.as_str()), (4, "0g"));
        let e = parse("6f 123").unwrap_err();
        assert_eq!(e.reason, "has an odd number of hex digits");
        assert_eq!(parse("0x").unwrap_err().reason, "has no hex digits");
    }
}
