//! cpppo's configuration file (`cpppo.cfg`: an INI file in Python `configparser` style)
//! applied to a [`ControllerConfig`]: the `[Identity]` and `[TCPIP]` sections, with the
//! option names cpppo uses. Finding the files (`/etc/cpppo.cfg`, `~/.cpppo.cfg`,
//! `./cpppo.cfg`, later ones overriding) is the caller's: core reads no files.
//!
//! Syntax accepted: `[Section]` headers; `Option = value` (or `:`); option names are
//! case-insensitive and their inner whitespace is not significant; `#` and `;` comment
//! lines, and trailing `#` comments (no value may contain `#`, as in cpppo); indented
//! lines continue the previous value (so JSON may span lines). Interpolation
//! (`${section:option}`) is not supported: such a value is an error, never silently
//! kept. Sections and options this simulator does not use are ignored.

use crate::cip::epath::{parse_connection_path, parse_number};
use crate::cip::objects::Revision;

use super::ControllerConfig;

/// Why a cpppo.cfg text was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A line that is neither a section, an option, a comment nor a continuation.
    #[error("line {line}: {reason}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An option whose value does not fit the attribute.
    #[error("[{section}] {option}: {reason}")]
    Value {
        /// The section.
        section: String,
        /// The option.
        option: String,
        /// What is wrong.
        reason: String,
    },
}

/// One `section, option, value` of an INI text, in order.
fn parse_ini(text: &str) -> Result<Vec<(String, String, String)>, ConfigError> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut section: Option<String> = None;
    let mut continuing = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or_default();
        if content.trim().is_empty() {
            // A comment line does not end a multi-line value; a blank line does.
            continuing = continuing && !raw.trim().is_empty();
            continue;
        }
        if raw.trim_start().starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) && continuing {
            if let Some(last) = out.last_mut() {
                last.2.push('\n');
                last.2.push_str(content.trim());
            }
            continue;
        }
        let trimmed = content.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            continuing = false;
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err(ConfigError::Syntax {
                line,
                reason: format!("expected '[Section]' or 'Option = value', found {trimmed:?}"),
            });
        };
        let Some(section) = &section else {
            return Err(ConfigError::Syntax {
                line,
                reason: "an option before any [Section]".into(),
            });
        };
        let option = trimmed.get(..split).unwrap_or_default();
        let value = trimmed.get(split + 1..).unwrap_or_default();
        out.push((section.clone(), normalize(option), value.trim().to_string()));
        continuing = true;
    }
    Ok(out)
}

/// An option name compared case- and space-insensitively.
fn normalize(option: &str) -> String {
    option
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// The string and number members of a flat JSON object (`{"ip_address": "10.0.0.4"}`).
fn flat_json_object(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut chars = text.trim().chars().peekable();
    let ws = |c: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while c.peek().is_some_and(|x| x.is_whitespace()) {
            c.next();
        }
    };
    let string = |c: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Result<String, String> {
        if c.next() != Some('"') {
            return Err("expected a string".into());
        }
        let mut s = String::new();
        loop {
            match c.next() {
                Some('"') => return Ok(s),
                Some('\\') => match c.next() {
                    Some(e @ ('"' | '\\' | '/')) => s.push(e),
                    _ => return Err("unsupported escape".into()),
                },
                Some(ch) => s.push(ch),
                None => return Err("unterminated string".into()),
            }
        }
    };
    if chars.next() != Some('{') {
        return Err("expected a JSON object".into());
    }
    let mut out = Vec::new();
    ws(&mut chars);
    if chars.peek() == Some(&'}') {
        chars.next();
    } else {
        loop {
            ws(&mut chars);
            let key = string(&mut chars)?;
            ws(&mut chars);
            if chars.next() != Some(':') {
                return Err(format!("expected ':' after {key:?}"));
            }
            ws(&mut chars);
            let value = if chars.peek() == Some(&'"') {
                string(&mut chars)?
            } else {
                let mut v = String::new();
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
                {
                    v.extend(chars.next());
                }
                if v.is_empty() {
                    return Err(format!("expected a value for {key:?}"));
                }
                v
            };
            out.push((key, value));
            ws(&mut chars);
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                _ => return Err("expected ',' or '}'".into()),
            }
        }
    }
    ws(&mut chars);
    match chars.next() {
        None => Ok(out),
        Some(_) => Err("text after the object".into()),
    }
}

fn ipv4(text: &str) -> Result<[u8; 4], String> {
    text.parse::<std::net::Ipv4Addr>()
        .map(|a| a.octets())
        .map_err(|_| format!("{text:?} is not an IPv4 address"))
}

impl ControllerConfig {
    /// Apply the `[Identity]` and `[TCPIP]` options of a cpppo.cfg text on top of the
    /// current values (call once per file found, in cpppo's order).
    pub fn apply_cpppo_cfg(&mut self, text: &str) -> Result<(), ConfigError> {
        for (section, option, value) in parse_ini(text)? {
            let bad = |reason: String| ConfigError::Value {
                section: section.clone(),
                option: option.clone(),
                reason,
            };
            if value.contains("${") {
                return Err(bad("interpolation is not supported".into()));
            }
            let int = |max: u64| -> Result<u64, ConfigError> {
                parse_number(&value)
                    .filter(|v| *v <= max)
                    .ok_or_else(|| bad(format!("{value:?} is not a number up to {max}")))
            };
            let id = &mut self.identity;
            let tcpip = &mut self.tcpip;
            match (section.to_ascii_lowercase().as_str(), option.as_str()) {
                ("identity", "vendor number") => id.vendor_id = int(0xFFFF)? as u16,
                ("identity", "device type") => id.device_type = int(0xFFFF)? as u16,
                ("identity", "product code number") => id.product_code = int(0xFFFF)? as u16,
                // An INT whose low byte is the major revision (2836 = 0x0B14 is 20.11).
                ("identity", "product revision") => {
                    let [major, minor] = (int(0xFFFF)? as u16).to_le_bytes();
                    id.revision = Revision { major, minor };
                }
                ("identity", "status word") => id.status = int(0xFFFF)? as u16,
                ("identity", "serial number") => id.serial_number = int(0xFFFF_FFFF)? as u32,
                ("identity", "product name") => {
                    if value.len() > 255 {
                        return Err(bad("longer than a SHORT_STRING".into()));
                    }
                    id.product_name = value.clone();
                }
                ("identity", "state") => id.state = int(0xFF)? as u8,
                ("tcpip", "interface status") => tcpip.interface_status = int(0xFFFF_FFFF)? as u32,
                ("tcpip", "configuration capability") => {
                    tcpip.configuration_capability = int(0xFFFF_FFFF)? as u32
                }
                ("tcpip", "configuration control") => {
                    tcpip.configuration_control = int(0xFFFF_FFFF)? as u32
                }
                ("tcpip", "host name") => tcpip.host_name = value.clone(),
                ("tcpip", "path to physical link") => {
                    let path = parse_connection_path(&value).map_err(|e| bad(e.to_string()))?;
                    tcpip.physical_link = path.map(|p| p.as_bytes().to_vec()).unwrap_or_default();
                }
                ("tcpip", "interface configuration") => {
                    for (key, v) in flat_json_object(&value).map_err(bad)? {
                        match key.as_str() {
                            "ip_address" => tcpip.ip_address = ipv4(&v).map_err(bad)?,
                            "network_mask" => tcpip.network_mask = ipv4(&v).map_err(bad)?,
                            "gateway_address" => tcpip.gateway = ipv4(&v).map_err(bad)?,
                            "dns_primary" => tcpip.name_server = ipv4(&v).map_err(bad)?,
                            "dns_secondary" => tcpip.name_server_2 = ipv4(&v).map_err(bad)?,
                            "domain_name" => tcpip.domain_name = v,
                            other => return Err(bad(format!("unknown member {other:?}"))),
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "\
# A site's simulator settings
[Originator]
Serial Number = 99

[Identity]
Vendor Number         = 1
Product   Code Number = 0x5A   # hex is fine
Product Revision      = 2836
Serial Number         = 0x00C0FFEE
Product Name          = 1769-L33ER/A LOGIX5333ER
state                 = 3

[TCPIP]
Host Name             = line7
Path to Physical Link = [
        { \"class\":    246 },
        { \"instance\":   1 }
    ]
Interface Configuration = {
        \"ip_address\":      \"192.168.7.10\",
        \"network_mask\":    \"255.255.255.0\",
        \"gateway_address\": \"192.168.7.1\",
        \"domain_name\":     \"plant.local\"
    }
";

    #[test]
    fn applies_identity_and_tcpip() {
        let mut c = ControllerConfig::default();
        c.apply_cpppo_cfg(CFG).unwrap();
        let id = &c.identity;
        assert_eq!((id.vendor_id, id.product_code), (1, 0x5A));
        assert_eq!(
            id.revision,
            Revision {
                major: 20,
                minor: 11
            }
        );
        assert_eq!(id.serial_number, 0x00C0_FFEE);
        assert_eq!(id.product_name, "1769-L33ER/A LOGIX5333ER");
        assert_eq!(id.state, 3);
        // Options not given keep their values.
        assert_eq!(id.status, ControllerConfig::default().identity.status);
        let t = &c.tcpip;
        assert_eq!(t.host_name, "line7");
        assert_eq!(t.physical_link, vec![0x20, 0xF6, 0x24, 0x01]);
        assert_eq!(t.ip_address, [192, 168, 7, 10]);
        assert_eq!(t.network_mask, [255, 255, 255, 0]);
        assert_eq!(t.gateway, [192, 168, 7, 1]);
        assert_eq!(t.domain_name, "plant.local");
        assert_eq!(t.name_server, [0; 4]);
    }

    #[test]
    fn errors_name_the_line_or_option() {
        let mut c = ControllerConfig::default();
        assert_eq!(
            c.apply_cpppo_cfg("Vendor Number = 1"),
            Err(ConfigError::Syntax {
                line: 1,
                reason: "an option before any [Section]".into()
            })
        );
        assert!(matches!(
            c.apply_cpppo_cfg("[Identity]\nnonsense"),
            Err(ConfigError::Syntax { line: 2, .. })
        ));
        let e = c
            .apply_cpppo_cfg("[Identity]\nVendor Number = 70000")
            .unwrap_err();
        assert!(matches!(&e, ConfigError::Value { option, .. } if option == "vendor number"));
        assert!(c
            .apply_cpppo_cfg("[Identity]\nProduct Name = ${Other:name}")
            .is_err());
        assert!(c
            .apply_cpppo_cfg("[TCPIP]\nInterface Configuration = {\"ip_address\": \"1.2.3\"}")
            .is_err());
        assert!(c
            .apply_cpppo_cfg("[TCPIP]\nInterface Configuration = {\"mtu\": 1500}")
            .is_err());
        assert!(c
            .apply_cpppo_cfg("[TCPIP]\nInterface Configuration = {\"domain_name\": \"x\"} y")
            .is_err());
        // A failed apply may have applied earlier options; a good one still works.
        c.apply_cpppo_cfg("[TCPIP]\nInterface Configuration = {}")
            .unwrap();
    }

    #[test]
    fn flat_json() {
        assert_eq!(
            flat_json_object(r#"{ "a": "x\"y", "b": 12 }"#).unwrap(),
            vec![("a".into(), "x\"y".into()), ("b".into(), "12".into())]
        );
        assert!(flat_json_object(r#"{"a": }"#).is_err());
        assert!(flat_json_object(r#"{"a": "b""#).is_err());
        assert!(flat_json_object("[]").is_err());
    }
}
