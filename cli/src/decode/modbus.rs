//! Modbus/TCP ADUs and Modbus/RTU frames as JSON, with typed requests or responses.

use cpppo_core::modbus::pdu::{ExceptionCode, Request, Response};
use cpppo_core::modbus::rtu::{self, FrameLen, RtuFrame};
use cpppo_core::modbus::tcp::{self, Adu, MbapHeader};
use cpppo_core::wire::{DecodeError, DecodeResult};
use serde_json::{json, Value};

use crate::hex;

/// The name of a Modbus exception code (Application Protocol V1.1b3 section 7).
fn exception_name(code: ExceptionCode) -> Option<&'static str> {
    Some(match code {
        ExceptionCode::ILLEGAL_FUNCTION => "Illegal function",
        ExceptionCode::ILLEGAL_DATA_ADDRESS => "Illegal data address",
        ExceptionCode::ILLEGAL_DATA_VALUE => "Illegal data value",
        ExceptionCode::SERVER_DEVICE_FAILURE => "Server device failure",
        ExceptionCode::ACKNOWLEDGE => "Acknowledge",
        ExceptionCode::SERVER_DEVICE_BUSY => "Server device busy",
        ExceptionCode::MEMORY_PARITY_ERROR => "Memory parity error",
        ExceptionCode::GATEWAY_PATH_UNAVAILABLE => "Gateway path unavailable",
        ExceptionCode::GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND => {
            "Gateway target device failed to respond"
        }
        _ => return None,
    })
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn request(r: &Request<'_>) -> Value {
    let name = |v: &Value| v.as_object().and_then(|o| o.keys().next().cloned());
    let mut v = to_value(r);
    let key = name(&v).unwrap_or_default();
    match r {
        Request::WriteMultipleCoils { values, .. } => {
            v[&key]["values"] = json!(values.iter().collect::<Vec<_>>());
        }
        Request::WriteMultipleRegisters { values, .. }
        | Request::ReadWriteMultipleRegisters { values, .. } => {
            v[&key]["values"] = json!(values.to_vec());
        }
        Request::Diagnostics { data, .. } => v[&key]["data"] = json!(hex::encode(data)),
        _ => {}
    }
    v
}

fn response(r: &Response<'_>) -> Value {
    match r {
        Response::ReadCoils(bits) => {
            json!({ "ReadCoils": { "values": bits.iter().collect::<Vec<_>>() } })
        }
        Response::ReadDiscreteInputs(bits) => {
            json!({ "ReadDiscreteInputs": { "values": bits.iter().collect::<Vec<_>>() } })
        }
        Response::ReadHoldingRegisters(regs) => {
            json!({ "ReadHoldingRegisters": { "values": regs.to_vec() } })
        }
        Response::ReadInputRegisters(regs) => {
            json!({ "ReadInputRegisters": { "values": regs.to_vec() } })
        }
        Response::ReadWriteMultipleRegisters(regs) => {
            json!({ "ReadWriteMultipleRegisters": { "values": regs.to_vec() } })
        }
        Response::ReportServerId(data) => {
            json!({ "ReportServerId": { "data": hex::encode(data) } })
        }
        Response::Diagnostics { sub_function, data } => json!({
            "Diagnostics": { "sub_function": sub_function, "data": hex::encode(data) }
        }),
        Response::ReadDeviceIdentification {
            read_device_id_code,
            conformity_level,
            more_follows,
            next_object_id,
            objects,
        } => json!({
            "ReadDeviceIdentification": {
                "read_device_id_code": read_device_id_code,
                "conformity_level": conformity_level,
                "more_follows": more_follows,
                "next_object_id": next_object_id,
                "objects": objects.iter().map(|o| json!({
                    "id": o.id, "value": String::from_utf8_lossy(&o.value),
                })).collect::<Vec<_>>(),
            }
        }),
        Response::Exception(e) => json!({
            "Exception": {
                "function": e.function,
                "code": e.code.0,
                "name": exception_name(e.code),
            }
        }),
        other => to_value(other),
    }
}

/// The PDU as a request or a response, under the key that says which.
fn pdu(
    key_request: bool,
    decoded_request: impl FnOnce() -> DecodeResult<Value>,
    decoded_response: impl FnOnce() -> DecodeResult<Value>,
) -> DecodeResult<(&'static str, Value)> {
    if key_request {
        Ok(("request", decoded_request()?))
    } else {
        Ok(("response", decoded_response()?))
    }
}

/// Every Modbus/TCP ADU in `input` (concatenated ADUs allowed).
pub fn decode_tcp(input: &[u8], responses: bool) -> DecodeResult<Vec<Value>> {
    let mut stream = tcp::decoder();
    stream.handle_input(input);
    let mut out = Vec::new();
    let mut at = 0usize;
    loop {
        let bytes = match stream.next_frame() {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(e) => return Err(e.at(at)),
        };
        let header = MbapHeader::decode(&bytes).map_err(|e| e.at(at))?;
        let adu = Adu::decode(&bytes).map_err(|e| e.at(at))?;
        let (key, value) = pdu(
            !responses,
            || {
                adu.request()
                    .map(|r| request(&r))
                    .map_err(|e| e.error.at(at))
            },
            || adu.response().map(|r| response(&r)).map_err(|e| e.at(at)),
        )?;
        out.push(json!({
            "offset": at,
            "length": bytes.len(),
            "mbap": header,
            "function": adu.pdu.first(),
            "pdu": hex::encode(&adu.pdu),
            key: value,
        }));
        at = at.saturating_add(bytes.len());
    }
    if stream.buffered() > 0 {
        let rest = input.get(at..).unwrap_or_default();
        return Err(match Adu::decode(rest) {
            Err(e) => e.at(at),
            Ok(_) => DecodeError::Incomplete {
                field: "mbap",
                offset: at,
                needed: stream.needed(),
            },
        });
    }
    Ok(out)
}

/// Every Modbus/RTU frame in `input`: each frame's length comes from its function code
/// (as the serial framer finds it); a function with no length rule takes the rest.
pub fn decode_rtu(input: &[u8], responses: bool) -> DecodeResult<Vec<Value>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < input.len() {
        let rest = input.get(at..).unwrap_or_default();
        let rule = if responses {
            rtu::response_len(rest)
        } else {
            rtu::request_len(rest)
        };
        let len = match rule {
            FrameLen::Known(n) => n,
            FrameLen::NeedMore(n) => n,
            FrameLen::Unknown => rest.len(),
            FrameLen::Unsupported => {
                return Err(DecodeError::invalid(
                    "rtu.function",
                    at + 1,
                    format!(
                        "function code 0x{:02X} has no RTU {} length rule",
                        rest.get(1).copied().unwrap_or(0),
                        if responses { "response" } else { "request" }
                    ),
                ))
            }
        };
        let len = len.max(rtu::MIN_RTU_ADU_LEN);
        if rest.len() < len {
            return Err(DecodeError::Incomplete {
                field: "rtu.adu",
                offset: at + rest.len(),
                needed: len - rest.len(),
            });
        }
        let bytes = rest.get(..len).unwrap_or_default();
        let crc_at = len - 2;
        let computed = rtu::crc16(bytes.get(..crc_at).unwrap_or_default());
        let received = bytes
            .get(crc_at..)
            .and_then(|c| c.try_into().ok())
            .map(u16::from_le_bytes)
            .unwrap_or_default();
        if computed != received {
            return Err(DecodeError::invalid(
                "rtu.crc",
                at + crc_at,
                format!("CRC-16 mismatch: frame has 0x{received:04X}, computed 0x{computed:04X}"),
            ));
        }
        let frame = RtuFrame::decode(bytes).map_err(|e| e.at(at))?;
        let (key, value) = pdu(
            !responses,
            || {
                frame
                    .request()
                    .map(|r| request(&r))
                    .map_err(|e| e.error.at(at))
            },
            || frame.response().map(|r| response(&r)).map_err(|e| e.at(at)),
        )?;
        out.push(json!({
            "offset": at,
            "length": len,
            "unit": frame.unit,
            "function": frame.pdu.first(),
            "pdu": hex::encode(&frame.pdu),
            "crc": received,
            "crc_ok": true,
            key: value,
        }));
        at += len;
    }
    Ok(out)
}
