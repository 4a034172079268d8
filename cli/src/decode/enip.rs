//! EtherNet/IP encapsulation frames as JSON: header, body, CPF items, and the CIP
//! message in any data item.

use cpppo_core::enip::cpf::{Cpf, Item, SockAddr};
use cpppo_core::enip::encapsulation::{status_name, Body, Encapsulation, EncapsulationFraming};
use cpppo_core::wire::{DecodeError, DecodeResult};
use serde_json::{json, Value};

use super::cip::{self, Frame};
use crate::hex;

/// Every encapsulation frame in `input` (frames may be concatenated, as on a TCP
/// stream). Offsets in errors are offsets in `input`.
pub fn decode(input: &[u8]) -> DecodeResult<Vec<Value>> {
    let mut stream = EncapsulationFraming::stream_decoder();
    stream.handle_input(input);
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        match stream.next_frame() {
            Ok(Some(bytes)) => {
                out.push(frame(Frame {
                    bytes: &bytes,
                    base: at,
                })?);
                at = at.saturating_add(bytes.len());
            }
            Ok(None) => break,
            Err(e) => return Err(e.at(at)),
        }
    }
    if stream.buffered() > 0 {
        // A partial frame is left: decode it alone for the field that is short.
        let rest = input.get(at..).unwrap_or_default();
        return Err(match Encapsulation::decode(rest) {
            Err(e) => e.at(at),
            Ok(_) => DecodeError::Incomplete {
                field: "encapsulation",
                offset: at,
                needed: stream.needed(),
            },
        });
    }
    Ok(out)
}

fn frame(f: Frame<'_>) -> DecodeResult<Value> {
    let (enc, used) = Encapsulation::decode(f.bytes).map_err(|e| e.at(f.base))?;
    let h = &enc.header;
    let body = enc.body().map_err(|e| e.at(f.base))?;
    Ok(json!({
        "offset": f.base,
        "length": used,
        "header": {
            "command": h.command.to_string(),
            "command_code": h.command.code(),
            "length": h.length,
            "session_handle": h.session_handle,
            "status": h.status,
            "status_name": status_name(h.status),
            "sender_context": hex::encode(&h.sender_context),
            "options": h.options,
        },
        "body": body_value(f, &body)?,
    }))
}

fn body_value(f: Frame<'_>, body: &Body<'_>) -> DecodeResult<Value> {
    Ok(match body {
        Body::Empty => Value::Null,
        Body::RegisterSession(r) => json!({ "register_session": r }),
        Body::SendData(s) => json!({
            "send_data": {
                "interface_handle": s.interface_handle,
                "timeout": s.timeout,
                "items": items(f, &s.cpf)?,
            }
        }),
        Body::Cpf(c) => json!({ "items": items(f, c)? }),
        Body::Raw(data) => json!({ "raw": hex::encode(data) }),
    })
}

fn items(f: Frame<'_>, cpf: &Cpf<'_>) -> DecodeResult<Vec<Value>> {
    cpf.items.iter().map(|i| item(f, i)).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .to_string()
}

fn sockaddr(a: &SockAddr) -> Value {
    json!({ "family": a.family, "port": a.port, "addr": a.addr.to_string() })
}

fn item(f: Frame<'_>, item: &Item<'_>) -> DecodeResult<Value> {
    let type_id = item.type_id();
    let mut v = match item {
        Item::NullAddress => json!({ "type": "NullAddress" }),
        Item::ConnectedAddress { connection_id } => {
            json!({ "type": "ConnectedAddress", "connection_id": connection_id })
        }
        Item::SequencedAddress {
            connection_id,
            sequence,
        } => json!({
            "type": "SequencedAddress", "connection_id": connection_id, "sequence": sequence,
        }),
        Item::ConnectedData { sequence, data } => json!({
            "type": "ConnectedData",
            "sequence": sequence,
            "data": hex::encode(data),
            "message": cip::message(f, data)?,
        }),
        Item::UnconnectedData(data) => json!({
            "type": "UnconnectedData",
            "data": hex::encode(data),
            "message": cip::message(f, data)?,
        }),
        Item::Identity(id) => {
            let mut v = serde_json::to_value(id).unwrap_or(Value::Null);
            v["type"] = json!("Identity");
            v["product_name"] = json!(id.product_name_lossy());
            v["extra"] = json!(hex::encode(&id.extra));
            v["socket_address"] = sockaddr(&id.socket_address);
            v
        }
        Item::Service(s) => json!({
            "type": "Service",
            "version": s.version,
            "capability": s.capability,
            "name": text(&s.name),
        }),
        Item::SockAddrOT(a) | Item::SockAddrTO(a) => json!({
            "type": if matches!(item, Item::SockAddrOT(_)) { "SockAddrOT" } else { "SockAddrTO" },
            "socket_address": sockaddr(a),
        }),
        Item::Legacy(l) => json!({
            "type": "Legacy",
            "version": l.version,
            "unknown": l.unknown,
            "socket_address": sockaddr(&l.socket_address),
            "address": text(&l.address),
        }),
        Item::Raw { data, .. } => json!({ "type": "Raw", "data": hex::encode(data) }),
    };
    v["type_id"] = json!(type_id);
    Ok(v)
}
