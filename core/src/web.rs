//! cpppo's web API for the simulated controller, as pure code: a request path
//! (`/api/<group>/<match>/<command>/<value>`) parsed into an [`ApiRequest`], applied to a
//! live [`Server<Controller>`] by [`apply`], and answered as an [`ApiReply`], the JSON
//! shape cpppo answers (`{alarm, command, data, since, until}`). No sockets, no clock
//! (the reply's `until` time is passed in): an adapter (the blocking runtime's `web`
//! module) serves it over HTTP.
//!
//! ## The grammar
//!
//! ```text
//! /api[/<group>[/<match>[/<command>[/<value>]]]][?group=&match=&command=&value=&since=]
//! ```
//!
//! - `group`: `options`, `server`, `tags` or `connections`; `match`: an entity of the
//!   group (`delay`; `control`; a tag's name, `Program:X.NAME` for program tags; a
//!   connection's `ip_port` name such as `127_0_0_1_52590`). Both are globs (`*` any
//!   run, `?` one character, case-sensitive); missing or empty ones are `*`.
//! - `command`: an attribute of the matched entities; without a value it is read, with
//!   one it is assigned. `command=value` as the last term is the same as
//!   `command/value` (an empty value means none). The last term may end in `.json`.
//! - Each term is URL-decoded (`%5B3%5D` is `[3]`); query parameters (`+` is a space)
//!   override the path's terms. `since` is echoed back.
//!
//! | group / match | command | value |
//! |---|---|---|
//! | `options/delay` | `value` | seconds (`0` for none): every reply waits this long |
//! | `options/delay` | `range` | `min-max` seconds: each reply waits a random time in it |
//! | `server/control` | `disable` | `true`/`false` (`yes`/`no`, or a number): refuse service |
//! | `server/control` | `done` | `true`: stop the server |
//! | `server/control` | `latency` | seconds: how soon idle connections notice changes |
//! | `server/control` | `timeout` | seconds: how long the API waits for them to |
//! | `tags/<name>` | `error` | a general status (`8`, `0x08`), optionally `,extended`... words; `0` clears |
//! | `tags/<name>` | `attribute` | values (`1,2,3` or `[1,2,3]`) written from element 0 |
//! | `tags/<name>` | `attribute[i]` | the value(s) written from element `i` (read without) |
//! | `connections/<ip_port>` | `eof` | `true`: close the connection as if the peer hung up |
//! | `connections/<ip_port>` | `interface`, `port`, `received`, `requests` | read-only |
//!
//! A string tag takes the whole value as one string. Errors are typed ([`ApiError`]):
//! a path that is not the API's, bad URL encoding, an unknown group or command, a bad
//! or read-only value (HTTP 400), nothing matching a command (404).
//!
//! ```
//! use cpppo_core::controller::{Controller, ControllerConfig};
//! use cpppo_core::enip::server::{Server, ServerOptions};
//! use cpppo_core::web::{apply, parse_request};
//!
//! let mut plc = Controller::new(ControllerConfig::default());
//! plc.tags_mut().add_str("SCADA=INT[1000]").unwrap();
//! let mut server = Server::new(plc, ServerOptions::default());
//!
//! let request = parse_request("/api/tags/SCADA/attribute[3]=4").unwrap();
//! let reply = apply(&mut server, &request, 1371734234.5).unwrap();
//! assert_eq!(reply.command.success, Some(true));
//! assert_eq!(reply.data.tags["SCADA"].value[3], 4.into());
//!
//! let reply = apply(&mut server, &parse_request("/api/tags/SCADA/attribute[3]").unwrap(), 0.0);
//! assert_eq!(reply.unwrap().command.message.as_deref(), Some("tags.SCADA.attribute[3]: 4"));
//!
//! let error = parse_request("/api/options/delay/value=soon").unwrap_err();
//! assert_eq!(error.http_status(), 400);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cip::data::{Count, DataType, TagType, Values};
use crate::cip::epath::parse_number;
use crate::controller::{Controller, ElementType, ForcedError};
use crate::enip::server::{ReplyDelay, Server};
use crate::wire::Reader;

/// The first term of every API path.
pub const API_ROOT: &str = "api";
/// Elements of a tag shown in its `attribute` text and `value` list (the first ones).
pub const VIEW_ELEMENTS: usize = 100;
/// Elements of a tag's `attribute` text before it is elided with `...`.
pub const ATTRIBUTE_TEXT_ELEMENTS: usize = 10;
/// The only entity of the `options` group.
pub const DELAY: &str = "delay";
/// The only entity of the `server` group.
pub const CONTROL: &str = "control";
/// HTTP status of a request that cannot be understood or a value that is refused.
pub const HTTP_BAD_REQUEST: u16 = 400;
/// HTTP status of a path outside the API, or of a command that matches nothing.
pub const HTTP_NOT_FOUND: u16 = 404;

/// The groups of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// `options`: the reply delay.
    Options,
    /// `server`: control of the server (disable, done, latency, timeout).
    Server,
    /// `tags`: the controller's tags.
    Tags,
    /// `connections`: the open TCP connections.
    Connections,
}

impl Group {
    /// Every group, in the order replies list them.
    pub const ALL: [Group; 4] = [
        Group::Options,
        Group::Server,
        Group::Tags,
        Group::Connections,
    ];

    /// The group's name in paths.
    pub fn name(self) -> &'static str {
        match self {
            Group::Options => "options",
            Group::Server => "server",
            Group::Tags => "tags",
            Group::Connections => "connections",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A glob over names: `*` matches any run of characters, `?` any one; everything else
/// is itself (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pattern(pub String);

impl Pattern {
    /// `*`: everything.
    pub fn any() -> Self {
        Pattern("*".into())
    }

    /// Whether it has wildcards (else it names one thing).
    pub fn is_glob(&self) -> bool {
        self.0.contains(['*', '?'])
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Glob matching with one backtrack point per `*` (linear in practice, never recursive).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == b'?' || Some(c) == name.get(n) => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == b'*')
}

/// An attribute of an entity: what a command reads or assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// `options.delay.value`: the fixed reply delay, seconds.
    DelayValue,
    /// `options.delay.range`: the random reply delay range, `min-max` seconds.
    DelayRange,
    /// `server.control.disable`.
    Disable,
    /// `server.control.done`.
    Done,
    /// `server.control.latency`, seconds.
    Latency,
    /// `server.control.timeout`, seconds.
    Timeout,
    /// `tags.<name>.error`: the forced reply status.
    Error,
    /// `tags.<name>.attribute`, or `attribute[index]`: the tag's value(s).
    Value {
        /// The element addressed (flat index), `None` for the tag as a whole.
        index: Option<usize>,
    },
    /// `connections.<name>.eof`.
    Eof,
    /// `connections.<name>.interface`: the peer's IP address.
    Interface,
    /// `connections.<name>.port`: the peer's port.
    Port,
    /// `connections.<name>.received`: bytes received.
    Received,
    /// `connections.<name>.requests`: encapsulation requests handled.
    Requests,
}

impl Attribute {
    /// The group whose entities have this attribute.
    pub fn group(self) -> Group {
        match self {
            Attribute::DelayValue | Attribute::DelayRange => Group::Options,
            Attribute::Disable | Attribute::Done | Attribute::Latency | Attribute::Timeout => {
                Group::Server
            }
            Attribute::Error | Attribute::Value { .. } => Group::Tags,
            Attribute::Eof
            | Attribute::Interface
            | Attribute::Port
            | Attribute::Received
            | Attribute::Requests => Group::Connections,
        }
    }

    /// Whether a command may assign it.
    pub fn is_writable(self) -> bool {
        !matches!(
            self,
            Attribute::Interface | Attribute::Port | Attribute::Received | Attribute::Requests
        )
    }

    /// Parse a command's name (`value`, `attribute[3]`, `eof`...).
    pub fn parse(text: &str) -> Result<Attribute, ApiError> {
        let unknown = || ApiError::UnknownCommand {
            command: text.to_string(),
        };
        Ok(match text {
            "value" => Attribute::DelayValue,
            "range" => Attribute::DelayRange,
            "disable" => Attribute::Disable,
            "done" => Attribute::Done,
            "latency" => Attribute::Latency,
            "timeout" => Attribute::Timeout,
            "error" => Attribute::Error,
            "attribute" => Attribute::Value { index: None },
            "eof" => Attribute::Eof,
            "interface" => Attribute::Interface,
            "port" => Attribute::Port,
            "received" => Attribute::Received,
            "requests" => Attribute::Requests,
            _ => {
                let index = text
                    .strip_prefix("attribute[")
                    .and_then(|rest| rest.strip_suffix(']'))
                    .ok_or_else(unknown)?;
                let index = parse_number(index.trim())
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or_else(|| ApiError::BadValue {
                        command: text.to_string(),
                        value: index.to_string(),
                        reason: "the index is not a number".into(),
                    })?;
                Attribute::Value { index: Some(index) }
            }
        })
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::DelayValue => f.write_str("value"),
            Attribute::DelayRange => f.write_str("range"),
            Attribute::Disable => f.write_str("disable"),
            Attribute::Done => f.write_str("done"),
            Attribute::Latency => f.write_str("latency"),
            Attribute::Timeout => f.write_str("timeout"),
            Attribute::Error => f.write_str("error"),
            Attribute::Value { index: None } => f.write_str("attribute"),
            Attribute::Value { index: Some(i) } => write!(f, "attribute[{i}]"),
            Attribute::Eof => f.write_str("eof"),
            Attribute::Interface => f.write_str("interface"),
            Attribute::Port => f.write_str("port"),
            Attribute::Received => f.write_str("received"),
            Attribute::Requests => f.write_str("requests"),
        }
    }
}

/// A value to assign, typed as far as it can be without the live state (tag values
/// are typed against their tag when applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// A time (`value`, `latency`, `timeout`); zero means none.
    Seconds(Duration),
    /// A delay range (`range`).
    Range {
        /// Shortest.
        min: Duration,
        /// Longest.
        max: Duration,
    },
    /// A flag (`disable`, `done`, `eof`).
    Flag(bool),
    /// A forced status (`error`); general status 0 clears it.
    Status(ForcedError),
    /// Tag values, as text (`attribute`).
    Values(String),
}

/// One command: read an attribute, or assign it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// What is read or assigned.
    pub attribute: Attribute,
    /// The value as given, and what it means; `None` reads.
    pub value: Option<(String, Setting)>,
}

/// A parsed API request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiRequest {
    /// Which groups.
    pub group: Pattern,
    /// Which entities of them.
    pub matcher: Pattern,
    /// What to do to them, if anything (else they are listed).
    pub command: Option<Command>,
    /// The `since` query parameter, echoed back.
    pub since: Option<f64>,
}

/// Why a request was refused. [`http_status`](ApiError::http_status) is the HTTP status
/// to answer with; [`ApiReply::failure`] the JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The path is not under `/api`.
    #[error("{path:?} is not an API path (expected /api/<group>/<match>/<command>/<value>)")]
    NotApi {
        /// The path.
        path: String,
    },
    /// A `%` escape that is not two hex digits, or bytes that are not UTF-8.
    #[error("bad URL encoding in {text:?}")]
    Encoding {
        /// The term.
        text: String,
    },
    /// A query parameter the API does not know.
    #[error("unknown query parameter {name:?} (expected group, match, command, value or since)")]
    UnknownQuery {
        /// Its name.
        name: String,
    },
    /// A group pattern that matches no group.
    #[error("no group matches {group:?} (expected options, server, tags or connections)")]
    UnknownGroup {
        /// The pattern.
        group: String,
    },
    /// A command no entity has.
    #[error("unknown command {command:?}")]
    UnknownCommand {
        /// The command.
        command: String,
    },
    /// A command of another group than the one asked for.
    #[error("{command} is a command of {belongs}, not of {group:?}")]
    WrongGroup {
        /// The command.
        command: String,
        /// Its group.
        belongs: Group,
        /// The group pattern given.
        group: String,
    },
    /// A value for a read-only attribute.
    #[error("{command} is read-only")]
    ReadOnly {
        /// The command.
        command: String,
    },
    /// A value that does not parse or is refused.
    #[error("{command}={value:?}: {reason}")]
    BadValue {
        /// The command.
        command: String,
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
    /// A command matching no entity.
    #[error("nothing in {group} matches {matcher:?}")]
    NoMatch {
        /// The group.
        group: Group,
        /// The pattern.
        matcher: String,
    },
}

impl ApiError {
    /// The HTTP status to answer with: 404 for a path outside the API or a command that
    /// matches nothing, 400 for everything else.
    pub fn http_status(&self) -> u16 {
        match self {
            ApiError::NotApi { .. } | ApiError::NoMatch { .. } => HTTP_NOT_FOUND,
            _ => HTTP_BAD_REQUEST,
        }
    }
}

/// Decode `%XX` escapes (`+` stays itself unless `plus_is_space`, as in a query).
pub fn url_decode(text: &str, plus_is_space: bool) -> Result<String, ApiError> {
    let bad = || ApiError::Encoding {
        text: text.to_string(),
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                    return Err(bad());
                }
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Parse a request's path (and query): see the module documentation.
pub fn parse_request(url: &str) -> Result<ApiRequest, ApiError> {
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (url, None),
    };
    let mut raw: Vec<&str> = path.split('/').collect();
    // A leading slash gives an empty first term; trailing slashes empty last ones.
    if raw.first() == Some(&"") {
        raw.remove(0);
    }
    while raw.len() > 1 && raw.last() == Some(&"") {
        raw.pop();
    }
    if raw.first().copied() != Some(API_ROOT) {
        return Err(ApiError::NotApi {
            path: path.to_string(),
        });
    }
    let mut terms = raw
        .get(1..)
        .unwrap_or_default()
        .iter()
        .map(|t| url_decode(t, false))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(last) = terms.last_mut() {
        if let Some(stripped) = last.strip_suffix(".json") {
            *last = stripped.to_string();
        }
    }
    let mut group = terms.first().cloned().filter(|t| !t.is_empty());
    let mut matcher = terms.get(1).cloned().filter(|t| !t.is_empty());
    let mut command = terms.get(2).cloned().filter(|t| !t.is_empty());
    let mut value = terms
        .get(3..)
        .filter(|rest| !rest.is_empty())
        .map(|rest| rest.join("/"));
    if value.is_none() {
        if let Some((name, given)) = command.as_deref().and_then(|c| c.split_once('=')) {
            value = Some(given.to_string());
            command = Some(name.to_string());
        }
    }
    let mut since = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, given) = pair.split_once('=').unwrap_or((pair, ""));
        let name = url_decode(name, true)?;
        let given = url_decode(given, true)?;
        let slot = match name.as_str() {
            "group" => &mut group,
            "match" => &mut matcher,
            "command" => &mut command,
            "value" => &mut value,
            "since" => {
                since = if given.is_empty() {
                    None
                } else {
                    Some(
                        given
                            .parse::<f64>()
                            .ok()
                            .filter(|s| s.is_finite())
                            .ok_or_else(|| ApiError::BadValue {
                                command: "since".into(),
                                value: given.clone(),
                                reason: "not a time in seconds".into(),
                            })?,
                    )
                };
                continue;
            }
            _ => return Err(ApiError::UnknownQuery { name }),
        };
        if !given.is_empty() {
            *slot = Some(given);
        }
    }
    let group = Pattern(group.unwrap_or_else(|| "*".into()));
    if !Group::ALL.iter().any(|g| group.matches(g.name())) {
        return Err(ApiError::UnknownGroup { group: group.0 });
    }
    let matcher = Pattern(matcher.unwrap_or_else(|| "*".into()));
    let command = match command {
        None => None,
        Some(name) => {
            let attribute = Attribute::parse(&name)?;
            if !group.matches(attribute.group().name()) {
                return Err(ApiError::WrongGroup {
                    command: name,
                    belongs: attribute.group(),
                    group: group.0,
                });
            }
            let value = match value.filter(|v| !v.is_empty()) {
                None => None,
                Some(text) => {
                    let setting = parse_setting(attribute, &text)?;
                    Some((text, setting))
                }
            };
            Some(Command { attribute, value })
        }
    };
    Ok(ApiRequest {
        group,
        matcher,
        command,
        since,
    })
}

fn parse_seconds(text: &str) -> Option<Duration> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        other => parse_int(other).map(|n| n != 0),
    }
}

/// An integer: decimal with a sign, or `0x`/`0o`/`0b`.
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim();
    match text.strip_prefix('-') {
        Some(neg) => parse_number(neg)
            .and_then(|n| i64::try_from(n).ok())
            .map(|n| -n),
        None => {
            parse_number(text.strip_prefix('+').unwrap_or(text)).and_then(|n| i64::try_from(n).ok())
        }
    }
}

fn parse_setting(attribute: Attribute, text: &str) -> Result<Setting, ApiError> {
    let bad = |reason: &str| ApiError::BadValue {
        command: attribute.to_string(),
        value: text.to_string(),
        reason: reason.to_string(),
    };
    match attribute {
        Attribute::DelayValue | Attribute::Latency | Attribute::Timeout => parse_seconds(text)
            .map(Setting::Seconds)
            .ok_or_else(|| bad("not a number of seconds (e.g. 0.5)")),
        Attribute::DelayRange => {
            let (lo, hi) = text
                .split_once('-')
                .ok_or_else(|| bad("not a range of seconds (e.g. 0.5-1.5)"))?;
            match (parse_seconds(lo), parse_seconds(hi)) {
                (Some(min), Some(max)) if min <= max => Ok(Setting::Range { min, max }),
                (Some(_), Some(_)) => Err(bad("the range ends before it starts")),
                _ => Err(bad("not a range of seconds (e.g. 0.5-1.5)")),
            }
        }
        Attribute::Disable | Attribute::Done | Attribute::Eof => parse_flag(text)
            .map(Setting::Flag)
            .ok_or_else(|| bad("not true or false")),
        Attribute::Error => {
            let mut words = text.split(',');
            let status = words
                .next()
                .and_then(parse_int)
                .and_then(|s| u8::try_from(s).ok())
                .ok_or_else(|| bad("not a general status 0-255 (e.g. 8 or 0x08)"))?;
            let extended = words
                .map(|w| parse_int(w).and_then(|w| u16::try_from(w).ok()))
                .collect::<Option<Vec<u16>>>()
                .ok_or_else(|| bad("an extended status word that is not 0-0xFFFF"))?;
            if status == 0 && !extended.is_empty() {
                return Err(bad("status 0 (success) takes no extended status"));
            }
            Ok(Setting::Status(ForcedError { status, extended }))
        }
        Attribute::Value { .. } => Ok(Setting::Values(text.to_string())),
        Attribute::Interface | Attribute::Port | Attribute::Received | Attribute::Requests => {
            Err(ApiError::ReadOnly {
                command: attribute.to_string(),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// The reply

/// The outcome of a command: `{}` when there was none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// What was done (`options.delay.value='0.5' (0.5)`) or read
    /// (`tags.SCADA.attribute[3]: 4`), or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
}

/// `options.delay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayView {
    /// The fixed delay in seconds (0 for none); `null` when a range is in force.
    pub value: Option<f64>,
    /// The range in force (`0.5-1.5`), else `null`.
    pub range: Option<String>,
}

/// `server.control`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlView {
    /// Service refused.
    pub disable: bool,
    /// The server is stopping.
    pub done: bool,
    /// [`crate::enip::server::Faults::latency`] in seconds (0: never wakes).
    pub latency: f64,
    /// [`crate::enip::server::Faults::timeout`] in seconds (0: does not wait).
    pub timeout: f64,
}

/// One element of a tag's value, as JSON shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// BOOL.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer beyond `i64`.
    Uint(u64),
    /// REAL, LREAL.
    Float(f64),
    /// A string (latin-1 decoded).
    Text(String),
}

impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(v) => write!(f, "{v}"),
            Scalar::Uint(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v}"),
            Scalar::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// `tags.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagView {
    /// cpppo's one-line description: `SCADA          INT[1000] == [0, 0, ...]`.
    pub attribute: String,
    /// The forced general status (0: none).
    pub error: u8,
    /// The type's name (`INT`, `STRING`, a structure's name).
    #[serde(rename = "type")]
    pub type_name: String,
    /// How many elements the tag has.
    pub elements: usize,
    /// The first [`VIEW_ELEMENTS`] values (empty for structures other than STRING).
    pub value: Vec<Scalar>,
}

/// `connections.<ip_port>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    /// An EOF was requested and the connection has not yet closed.
    pub eof: bool,
    /// The peer's IP address.
    pub interface: String,
    /// The peer's port.
    pub port: u16,
    /// Bytes received.
    pub received: u64,
    /// Encapsulation requests handled.
    pub requests: u64,
}

/// The matched entities, by group then name (a group with none is left out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiData {
    /// `options`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, DelayView>,
    /// `server`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server: BTreeMap<String, ControlView>,
    /// `tags`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, TagView>,
    /// `connections`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<String, ConnectionView>,
}

/// cpppo's reply: `{alarm, command, data, since, until}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiReply {
    /// Alarms raised since `since` (this simulator raises none: always empty).
    pub alarm: Vec<String>,
    /// The command's outcome.
    pub command: CommandOutcome,
    /// The matched entities, after the command.
    pub data: ApiData,
    /// The `since` query parameter.
    pub since: Option<f64>,
    /// The time of the reply, seconds since 1970.
    pub until: f64,
}

impl ApiReply {
    /// The body of a refused request: `command.success` false with the error's message.
    pub fn failure(error: &ApiError, since: Option<f64>, until: f64) -> Self {
        ApiReply {
            alarm: Vec::new(),
            command: CommandOutcome {
                message: Some(error.to_string()),
                success: Some(false),
            },
            data: ApiData::default(),
            since,
            until,
        }
    }
}

/// A connection's name in the API: its peer's address and port with every character
/// that is not a letter or digit as `_` (`127_0_0_1_52590`).
pub fn connection_name(peer: SocketAddr) -> String {
    let ip: String = peer
        .ip()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{ip}_{}", peer.port())
}

fn secs(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64())
}

fn nonzero(d: Duration) -> Option<Duration> {
    Some(d).filter(|d| !d.is_zero())
}

fn delay_view(delay: &ReplyDelay) -> DelayView {
    match *delay {
        ReplyDelay::None => DelayView {
            value: Some(0.0),
            range: None,
        },
        ReplyDelay::Fixed(d) => DelayView {
            value: Some(d.as_secs_f64()),
            range: None,
        },
        ReplyDelay::Range { min, max } => DelayView {
            value: None,
            range: Some(format!("{}-{}", min.as_secs_f64(), max.as_secs_f64())),
        },
    }
}

fn control_view<D>(server: &Server<D>) -> ControlView {
    ControlView {
        disable: server.faults.disabled,
        done: server.faults.done,
        latency: secs(server.faults.latency),
        timeout: secs(server.faults.timeout),
    }
}

/// The type's name as a tag declaration writes it.
fn type_name(plc: &Controller, element: ElementType) -> String {
    match element {
        ElementType::LOGIX_STRING => "STRING".into(),
        ElementType::Atomic(dt) => dt.name().to_string(),
        ElementType::Structure(i) => plc
            .tags()
            .structure(i)
            .map_or_else(|| format!("structure {i}"), |s| s.name.clone()),
    }
}

fn scalars(values: &Values) -> Vec<Scalar> {
    // REAL through its shortest decimal text, so 0.1 shows as 0.1, not 0.10000000149.
    let real = |v: &f32| Scalar::Float(v.to_string().parse().unwrap_or(f64::from(*v)));
    let text = |t: &crate::cip::data::Text| Scalar::Text(t.to_string());
    match values {
        Values::Bool(v) => v.iter().map(|b| Scalar::Bool(*b)).collect(),
        Values::Sint(v) => v.iter().map(|x| Scalar::Int(i64::from(*x))).collect(),
        Values::Int(v) => v.iter().map(|x| Scalar::Int(i64::from(*x))).collect(),
        Values::Dint(v) => v.iter().map(|x| Scalar::Int(i64::from(*x))).collect(),
        Values::Lint(v) => v.iter().map(|x| Scalar::Int(*x)).collect(),
        Values::Usint(v) => v.iter().map(|x| Scalar::Int(i64::from(*x))).collect(),
        Values::Uint(v) => v.iter().map(|x| Scalar::Int(i64::from(*x))).collect(),
        Values::Udint(v) | Values::Dword(v) => {
            v.iter().map(|x| Scalar::Int(i64::from(*x))).collect()
        }
        Values::Ulint(v) => v
            .iter()
            .map(|x| i64::try_from(*x).map_or(Scalar::Uint(*x), Scalar::Int))
            .collect(),
        Values::Real(v) => v.iter().map(real).collect(),
        Values::Lreal(v) => v.iter().map(|x| Scalar::Float(*x)).collect(),
        Values::Sstring(v) | Values::String(v) | Values::LogixString(v) => {
            v.iter().map(text).collect()
        }
        Values::Structure { .. } => Vec::new(),
    }
}

/// `count` values of tag `index` from element `first`; `None` beyond the tag.
fn read_elements(plc: &Controller, index: usize, first: usize, count: usize) -> Option<Values> {
    let db = plc.tags();
    let mut target = db.whole(index)?;
    if first.checked_add(count)? > target.len {
        return None;
    }
    target.index = first;
    let bytes = db.read_bytes(&target, count);
    Values::decode(
        db.tag_type(target.element),
        Count::Elements(count),
        &mut Reader::new(&bytes),
    )
    .ok()
}

fn tag_view(plc: &Controller, index: usize) -> Option<TagView> {
    let tag = plc.tags().tag(index)?;
    let elements = tag.elements();
    let shown = elements.min(VIEW_ELEMENTS);
    let value = read_elements(plc, index, 0, shown)
        .map(|v| scalars(&v))
        .unwrap_or_default();
    let type_name = type_name(plc, tag.element);
    let declared = if tag.dimensions.is_empty() {
        type_name.clone()
    } else {
        let dims: Vec<String> = tag.dimensions.iter().map(ToString::to_string).collect();
        format!("{type_name}[{}]", dims.join(","))
    };
    let mut items: Vec<String> = value
        .iter()
        .take(ATTRIBUTE_TEXT_ELEMENTS)
        .map(ToString::to_string)
        .collect();
    if elements > items.len() {
        items.push("...".into());
    }
    let attribute = if value.is_empty() && elements > 0 {
        format!("{:<14} {declared}", tag.full_name())
    } else if tag.dimensions.is_empty() {
        format!(
            "{:<14} {declared} == {}",
            tag.full_name(),
            items.first().map_or("", String::as_str)
        )
    } else {
        format!(
            "{:<14} {declared} == [{}]",
            tag.full_name(),
            items.join(", ")
        )
    };
    Some(TagView {
        attribute,
        error: tag.error.as_ref().map_or(0, |e| e.status),
        type_name,
        elements,
        value,
    })
}

/// Values of `tag_type` from the API's text: comma-separated (brackets around them
/// allowed) for numbers, the whole text as one string for string types.
fn parse_values(tag_type: TagType, text: &str) -> Result<Values, String> {
    let strings = matches!(tag_type, TagType::Structure(h) if h == crate::cip::data::LOGIX_STRING_HANDLE)
        || tag_type == TagType::from(DataType::SSTRING)
        || tag_type == TagType::from(DataType::STRING);
    if strings {
        return Values::from_strs(tag_type, &[text]).map_err(|e| e.to_string());
    }
    let Some(dt) = tag_type.data_type() else {
        return Err("structure values cannot be written here".into());
    };
    let trimmed = text.trim();
    let list = trimmed
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(trimmed);
    let items: Vec<&str> = list.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err("an empty value".into());
    }
    if matches!(dt, DataType::REAL | DataType::LREAL) {
        let floats = items
            .iter()
            .map(|i| {
                i.parse::<f64>()
                    .map_err(|_| format!("{i:?} is not a number"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Values::from_f64s(dt, &floats).map_err(|e| e.to_string());
    }
    if dt == DataType::ULINT {
        // Beyond i64: the only type that is.
        return items
            .iter()
            .map(|i| parse_number(i).ok_or_else(|| format!("{i:?} is not an integer 0-2^64")))
            .collect::<Result<Vec<_>, _>>()
            .map(Values::Ulint);
    }
    let ints = items
        .iter()
        .map(|i| {
            let lower = i.to_ascii_lowercase();
            match (dt, lower.as_str()) {
                (DataType::BOOL, "true") => Some(1),
                (DataType::BOOL, "false") => Some(0),
                _ => parse_int(i),
            }
            .ok_or_else(|| format!("{i:?} is not an integer"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Values::from_i64s(dt, &ints).map_err(|e| e.to_string())
}

/// What a command did to one entity: its message, or why it failed.
type Outcome = Result<String, ApiError>;

fn delay_command(server: &mut Server<Controller>, command: &Command) -> Outcome {
    let name = format!("options.{DELAY}.{}", command.attribute);
    match &command.value {
        None => {
            let view = delay_view(&server.faults.delay);
            let shown = match command.attribute {
                Attribute::DelayRange => view.range,
                _ => view.value.map(|v| v.to_string()),
            };
            Ok(format!("{name}: {}", shown.as_deref().unwrap_or("null")))
        }
        Some((text, Setting::Seconds(d))) => {
            server.faults.delay = nonzero(*d).map_or(ReplyDelay::None, ReplyDelay::Fixed);
            Ok(format!("{name}={text:?} ({})", d.as_secs_f64()))
        }
        Some((text, Setting::Range { min, max })) => {
            server.faults.delay = ReplyDelay::Range {
                min: *min,
                max: *max,
            };
            Ok(format!(
                "{name}={text:?} ({}-{})",
                min.as_secs_f64(),
                max.as_secs_f64()
            ))
        }
        Some((text, _)) => Err(mismatch(command, text)),
    }
}

/// A setting that does not belong to its attribute (only a hand-built request has one).
fn mismatch(command: &Command, text: &str) -> ApiError {
    ApiError::BadValue {
        command: command.attribute.to_string(),
        value: text.to_string(),
        reason: "not a value for this command".into(),
    }
}

fn control_command(server: &mut Server<Controller>, command: &Command) -> Outcome {
    let name = format!("server.{CONTROL}.{}", command.attribute);
    let view = control_view(server);
    let faults = &mut server.faults;
    match (&command.value, command.attribute) {
        (None, attribute) => Ok(match attribute {
            Attribute::Disable => format!("{name}: {}", view.disable),
            Attribute::Done => format!("{name}: {}", view.done),
            Attribute::Latency => format!("{name}: {}", view.latency),
            _ => format!("{name}: {}", view.timeout),
        }),
        (Some((text, Setting::Flag(on))), Attribute::Disable) => {
            faults.disabled = *on;
            Ok(format!("{name}={text:?} ({on})"))
        }
        (Some((text, Setting::Flag(on))), Attribute::Done) => {
            faults.done = *on;
            Ok(format!("{name}={text:?} ({on})"))
        }
        (Some((text, Setting::Seconds(d))), Attribute::Latency) => {
            faults.latency = nonzero(*d);
            Ok(format!("{name}={text:?} ({})", d.as_secs_f64()))
        }
        (Some((text, Setting::Seconds(d))), Attribute::Timeout) => {
            faults.timeout = nonzero(*d);
            Ok(format!("{name}={text:?} ({})", d.as_secs_f64()))
        }
        (Some((text, _)), _) => Err(mismatch(command, text)),
    }
}

fn tag_command(plc: &mut Controller, index: usize, command: &Command) -> Outcome {
    let Some(tag) = plc.tags().tag(index) else {
        return Err(ApiError::NoMatch {
            group: Group::Tags,
            matcher: index.to_string(),
        });
    };
    let full = tag.full_name();
    let element = tag.element;
    let elements = tag.elements();
    let forced = tag.error.clone();
    let name = format!("tags.{full}.{}", command.attribute);
    let bad = |text: &str, reason: String| ApiError::BadValue {
        command: name.clone(),
        value: text.to_string(),
        reason,
    };
    match (&command.value, command.attribute) {
        (None, Attribute::Error) => Ok(format!(
            "{name}: {}",
            forced.as_ref().map_or(0, |e| e.status)
        )),
        (Some((text, Setting::Status(status))), Attribute::Error) => {
            let error = Some(status.clone()).filter(|s| s.status != 0);
            plc.force_error(&full, error);
            Ok(format!("{name}={text:?} ({})", status.status))
        }
        (None, Attribute::Value { index: None }) => {
            let view = tag_view(plc, index)
                .map(|v| v.attribute)
                .unwrap_or_default();
            Ok(format!("{name}: {view}"))
        }
        (None, Attribute::Value { index: Some(i) }) => {
            let value = read_elements(plc, index, i, 1)
                .and_then(|v| scalars(&v).into_iter().next())
                .ok_or_else(|| {
                    bad(
                        "",
                        format!("element {i} is beyond the tag's {elements} element(s)"),
                    )
                })?;
            Ok(format!("{name}: {value}"))
        }
        (Some((text, Setting::Values(given))), Attribute::Value { index: at }) => {
            let tag_type = plc.tags().tag_type(element);
            let values = parse_values(tag_type, given).map_err(|r| bad(text, r))?;
            let first = at.unwrap_or(0);
            plc.tags_mut()
                .set_values(&full, first, &values)
                .map_err(|e| bad(text, e.to_string()))?;
            let shown = scalars(&values)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            Ok(format!("{name}={text:?} ({shown})"))
        }
        (Some((text, _)), _) => Err(mismatch(command, text)),
        (None, _) => Err(ApiError::UnknownCommand {
            command: command.attribute.to_string(),
        }),
    }
}

fn connection_view(server: &Server<Controller>, id: u64) -> Option<ConnectionView> {
    let stats = server.stats().get(&id)?;
    Some(ConnectionView {
        eof: server.faults.eof.contains(&id),
        interface: stats.peer.ip().to_string(),
        port: stats.peer.port(),
        received: stats.received,
        requests: stats.requests,
    })
}

fn connection_command(server: &mut Server<Controller>, id: u64, command: &Command) -> Outcome {
    let view = connection_view(server, id).ok_or_else(|| ApiError::NoMatch {
        group: Group::Connections,
        matcher: id.to_string(),
    })?;
    let peer = format!("{}_{}", view.interface, view.port);
    let key = server
        .stats()
        .get(&id)
        .map_or(peer, |s| connection_name(s.peer));
    let name = format!("connections.{key}.{}", command.attribute);
    match (&command.value, command.attribute) {
        (None, Attribute::Eof) => Ok(format!("{name}: {}", view.eof)),
        (None, Attribute::Interface) => Ok(format!("{name}: {}", view.interface)),
        (None, Attribute::Port) => Ok(format!("{name}: {}", view.port)),
        (None, Attribute::Received) => Ok(format!("{name}: {}", view.received)),
        (None, Attribute::Requests) => Ok(format!("{name}: {}", view.requests)),
        (Some((text, Setting::Flag(on))), Attribute::Eof) => {
            if *on {
                server.request_eof(id);
            } else {
                server.faults.eof.remove(&id);
            }
            Ok(format!("{name}={text:?} ({on})"))
        }
        (Some((text, _)), _) => Err(mismatch(command, text)),
        (None, _) => Err(ApiError::UnknownCommand {
            command: command.attribute.to_string(),
        }),
    }
}

/// The open connections whose names match, by id.
fn matching_connections(server: &Server<Controller>, matcher: &Pattern) -> Vec<(u64, String)> {
    server
        .open_connections()
        .map(|(id, s)| (id, connection_name(s.peer)))
        .filter(|(_, name)| matcher.matches(name))
        .collect()
}

/// The tags whose full names match, by index.
fn matching_tags(plc: &Controller, matcher: &Pattern) -> Vec<(usize, String)> {
    plc.tags()
        .tags()
        .iter()
        .enumerate()
        .map(|(i, t)| (i, t.full_name()))
        .filter(|(_, name)| matcher.matches(name))
        .collect()
}

/// Run `request` on `server`: perform its command on every matching entity, then
/// describe the matched entities. `until` is the reply's time (seconds since 1970).
///
/// A command naming an entity that does not exist is [`ApiError::NoMatch`] (a wildcard
/// matching nothing succeeds, saying so); one refused for an entity
/// (a value that does not fit a tag) is an error and stops there (the entities before
/// it were changed). A listing that matches nothing is a success with no data.
pub fn apply(
    server: &mut Server<Controller>,
    request: &ApiRequest,
    until: f64,
) -> Result<ApiReply, ApiError> {
    let groups: Vec<Group> = match &request.command {
        Some(command) => vec![command.attribute.group()],
        None => Group::ALL
            .into_iter()
            .filter(|g| request.group.matches(g.name()))
            .collect(),
    };
    let matcher = &request.matcher;
    let mut messages = Vec::new();
    let mut data = ApiData::default();
    for group in groups {
        match group {
            Group::Options if matcher.matches(DELAY) => {
                if let Some(command) = &request.command {
                    messages.push(delay_command(server, command)?);
                }
                data.options
                    .insert(DELAY.into(), delay_view(&server.faults.delay));
            }
            Group::Server if matcher.matches(CONTROL) => {
                if let Some(command) = &request.command {
                    messages.push(control_command(server, command)?);
                }
                data.server.insert(CONTROL.into(), control_view(server));
            }
            Group::Tags => {
                for (index, name) in matching_tags(server.device(), matcher) {
                    if let Some(command) = &request.command {
                        messages.push(tag_command(server.device_mut(), index, command)?);
                    }
                    if let Some(view) = tag_view(server.device(), index) {
                        data.tags.insert(name, view);
                    }
                }
            }
            Group::Connections => {
                for (id, name) in matching_connections(server, matcher) {
                    if let Some(command) = &request.command {
                        messages.push(connection_command(server, id, command)?);
                    }
                    if let Some(view) = connection_view(server, id) {
                        data.connections.insert(name, view);
                    }
                }
            }
            Group::Options | Group::Server => {}
        }
        if request.command.is_some() && messages.is_empty() {
            let error = ApiError::NoMatch {
                group,
                matcher: matcher.0.clone(),
            };
            // "Every connection" when there is none did what was asked; a name that
            // matches nothing is a mistake.
            if !matcher.is_glob() {
                return Err(error);
            }
            messages.push(error.to_string());
        }
    }
    let command = match request.command {
        Some(_) => CommandOutcome {
            message: Some(messages.join("; ")),
            success: Some(true),
        },
        None => CommandOutcome::default(),
    };
    Ok(ApiReply {
        alarm: Vec::new(),
        command,
        data,
        since: request.since,
        until,
    })
}

/// Whether `request` changes something the connections must act on (EOF, disable,
/// done): an adapter then waits up to [`crate::enip::server::Faults::timeout`] for
/// [`Server::faults_pending`] to clear before answering.
pub fn needs_settling(request: &ApiRequest) -> bool {
    matches!(
        &request.command,
        Some(Command {
            attribute: Attribute::Eof | Attribute::Disable | Attribute::Done,
            value: Some((_, Setting::Flag(true))),
        })
    )
}

#[cfg(test)]
mod tests;
