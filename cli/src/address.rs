//! cpppo's `-a/--address [iface][:port]` syntax.
//!
//! `""` or `":"` means every interface on the default port; `:1502` every interface on
//! port 1502; `localhost` or `127.0.0.1` that interface on the default port;
//! `[::1]:44818` an IPv6 interface. A host name resolves to all its addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// Why an `--address` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// The part after the last ':' is not a port number.
    #[error("bad port {port:?} in address {address:?}: expected a number 0-65535")]
    Port {
        /// The whole address given.
        address: String,
        /// The port text.
        port: String,
    },
    /// The interface name or address could not be resolved.
    #[error("cannot resolve interface {iface:?} in address {address:?}: {reason}")]
    Resolve {
        /// The whole address given.
        address: String,
        /// The interface part.
        iface: String,
        /// What the resolver said.
        reason: String,
    },
}

/// Parse `[iface][:port]` into the socket addresses to bind (or connect to).
pub fn parse_address(address: &str, default_port: u16) -> Result<Vec<SocketAddr>, AddressError> {
    let text = address.trim();
    let (iface, port_text) = split_port(text);
    let port = match port_text {
        None | Some("") => default_port,
        Some(p) => p.parse::<u16>().map_err(|_| AddressError::Port {
            address: address.to_string(),
            port: p.to_string(),
        })?,
    };
    let iface = iface.trim_start_matches('[').trim_end_matches(']');
    if iface.is_empty() || iface == "*" {
        return Ok(vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )]);
    }
    if let Ok(ip) = iface.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolved: Vec<SocketAddr> = (iface, port)
        .to_socket_addrs()
        .map_err(|e| AddressError::Resolve {
            address: address.to_string(),
            iface: iface.to_string(),
            reason: e.to_string(),
        })?
        .collect();
    if resolved.is_empty() {
        return Err(AddressError::Resolve {
            address: address.to_string(),
            iface: iface.to_string(),
            reason: "no addresses".to_string(),
        });
    }
    // Prefer IPv4 first, as cpppo (and most PLC tools) do, keeping each family's order.
    let (mut v4, v6): (Vec<_>, Vec<_>) = resolved.into_iter().partition(SocketAddr::is_ipv4);
    v4.extend(v6);
    v4.dedup();
    Ok(v4)
}

/// Split off the port: the text after the last ':' unless the address is a bare IPv6
/// address (more than one ':' and no brackets).
fn split_port(text: &str) -> (&str, Option<&str>) {
    if let Some(rest) = text.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => (text, None),
        };
    }
    if text.matches(':').count() > 1 {
        return (text, None);
    }
    match text.rsplit_once(':') {
        Some((iface, port)) => (iface, Some(port)),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> SocketAddr {
        let v = parse_address(s, 44818).unwrap();
        assert_eq!(v.len(), 1, "{s}: {v:?}");
        v[0]
    }

    #[test]
    fn cpppo_forms() {
        assert_eq!(one(""), "0.0.0.0:44818".parse().unwrap());
        assert_eq!(one(":"), "0.0.0.0:44818".parse().unwrap());
        assert_eq!(one(":1502"), "0.0.0.0:1502".parse().unwrap());
        assert_eq!(one("127.0.0.1"), "127.0.0.1:44818".parse().unwrap());
        assert_eq!(one("127.0.0.1:2222"), "127.0.0.1:2222".parse().unwrap());
        assert_eq!(one("[::1]:502"), "[::1]:502".parse().unwrap());
        assert_eq!(one("::1"), "[::1]:44818".parse().unwrap());
        assert_eq!(one("*:0"), "0.0.0.0:0".parse().unwrap());
        let local = parse_address("localhost:1502", 44818).unwrap();
        assert!(local
            .iter()
            .all(|a| a.port() == 1502 && a.ip().is_loopback()));
        assert!(local[0].is_ipv4() || local.iter().all(|a| a.is_ipv6()));
    }

    #[test]
    fn errors_name_the_part() {
        assert_eq!(
            parse_address("localhost:http", 1),
            Err(AddressError::Port {
                address: "localhost:http".into(),
                port: "http".into()
            })
        );
        assert!(matches!(
            parse_address(":70000", 1),
            Err(AddressError::Port { port, .. }) if port == "70000"
        ));
        let err = parse_address("no-such-host.invalid:1", 1).unwrap_err();
        assert!(
            matches!(err, AddressError::Resolve { ref iface, .. } if iface == "no-such-host.invalid")
        );
        assert!(err.to_string().contains("no-such-host.invalid"));
    }
}
