//! Modbus/TCP: the MBAP header (section 4.1 of the *Modbus Messaging on TCP/IP
//! Implementation Guide* V1.0b) and a resumable stream decoder.
//!
//! An ADU is the 7-byte MBAP header (transaction id, protocol id 0, length, unit id)
//! followed by the PDU; `length` counts the unit id and the PDU. Feed received bytes,
//! split anywhere, to a [`TcpDecoder`] (built by [`decoder`]) and take whole ADUs out;
//! decode each with [`Adu::decode`] and its PDU with [`Adu::request`] or
//! [`Adu::response`]. A header announcing more than 253 PDU bytes, or a protocol id
//! other than 0, is an [`DecodeError::Invalid`] naming `mbap.length` or
//! `mbap.protocol_id`: the stream is then out of step and the connection should close.
//!
//! ```
//! use cpppo_core::modbus::{pdu::Request, tcp};
//!
//! let mut d = tcp::decoder();
//! // pymodbus test/framer/test_framer.py: Read Holding Registers, unit 0x11.
//! d.handle_input(&[0x0c, 0x05, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03]);
//! assert_eq!(d.next_frame().unwrap(), None);
//! d.handle_input(&[0x00, 0x7c, 0x00, 0x02]);
//! let frame = d.next_frame().unwrap().unwrap();
//! let adu = tcp::Adu::decode(&frame).unwrap();
//! assert_eq!((adu.transaction_id, adu.unit_id), (0x0c05, 0x11));
//! assert_eq!(adu.request().unwrap(), Request::ReadHoldingRegisters { address: 0x7c, quantity: 2 });
//! ```

use std::borrow::Cow;

use bytes::BufMut;
use serde::{Deserialize, Serialize};

use super::pdu::{Request, RequestError, Response, MAX_PDU_LEN};
use crate::wire::{DecodeError, DecodeResult, Encode, Framing, Reader, StreamDecoder};

/// Length of the MBAP header, unit id included.
pub const MBAP_HEADER_LEN: usize = 7;
/// The only protocol id Modbus uses.
pub const PROTOCOL_ID_MODBUS: u16 = 0;
/// Largest value of the MBAP length field: unit id plus the largest PDU.
pub const MAX_MBAP_LENGTH: u16 = 1 + MAX_PDU_LEN as u16;
/// Largest Modbus/TCP ADU (260 bytes).
pub const MAX_ADU_LEN: usize = MBAP_HEADER_LEN + MAX_PDU_LEN;
/// The well-known Modbus/TCP port.
pub const PORT: u16 = 502;

/// The MBAP header, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbapHeader {
    /// Chosen by the client, echoed by the server.
    pub transaction_id: u16,
    /// Always [`PROTOCOL_ID_MODBUS`].
    pub protocol_id: u16,
    /// Bytes that follow this field: the unit id and the PDU.
    pub length: u16,
    /// Unit (slave) id, for gateways to serial lines; 0xFF when unused.
    pub unit_id: u8,
}

impl MbapHeader {
    /// Decode and check a header: protocol id 0, length 1 to [`MAX_MBAP_LENGTH`].
    /// `Incomplete` until all 7 bytes are there.
    pub fn decode(buf: &[u8]) -> DecodeResult<MbapHeader> {
        let mut r = Reader::new(buf);
        let (transaction_id, length) = read_prefix(&mut r)?;
        let unit_id = r.u8("mbap.unit_id")?;
        Ok(MbapHeader {
            transaction_id,
            protocol_id: PROTOCOL_ID_MODBUS,
            length,
            unit_id,
        })
    }

    /// Total length of the ADU this header starts.
    pub fn adu_len(&self) -> usize {
        6 + usize::from(self.length)
    }
}

/// The first 6 header bytes, checked: the transaction id and the length (protocol id 0,
/// length 1 to [`MAX_MBAP_LENGTH`]). They alone say where the frame ends.
fn read_prefix(r: &mut Reader<'_>) -> DecodeResult<(u16, u16)> {
    let transaction_id = r.u16_be("mbap.transaction_id")?;
    let at = r.offset();
    let protocol_id = r.u16_be("mbap.protocol_id")?;
    if protocol_id != PROTOCOL_ID_MODBUS {
        return Err(DecodeError::invalid(
            "mbap.protocol_id",
            at,
            format!("protocol id {protocol_id} is not Modbus (0)"),
        ));
    }
    let at = r.offset();
    let length = r.u16_be("mbap.length")?;
    if length == 0 || length > MAX_MBAP_LENGTH {
        return Err(DecodeError::invalid(
                "mbap.length",
                at,
                format!("length {length} outside 1..={MAX_MBAP_LENGTH} (unit id and at most {MAX_PDU_LEN} PDU bytes)"),
            ));
    }
    Ok((transaction_id, length))
}

/// A Modbus/TCP ADU: MBAP header fields and the raw PDU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adu<'a> {
    /// Transaction id.
    pub transaction_id: u16,
    /// Unit id.
    pub unit_id: u8,
    /// The PDU (function code first); may be empty in a header-only frame.
    pub pdu: Cow<'a, [u8]>,
}

impl<'a> Adu<'a> {
    /// An ADU carrying `pdu` (a [`Request`], [`Response`] or anything encodable).
    pub fn new(transaction_id: u16, unit_id: u8, pdu: &impl Encode) -> Adu<'static> {
        Adu {
            transaction_id,
            unit_id,
            pdu: Cow::Owned(pdu.to_vec()),
        }
    }

    /// Decode `buf`, exactly one ADU (as [`TcpDecoder::next_frame`] returns them).
    /// `Incomplete` while the header or the PDU it announces is not all there;
    /// trailing bytes are `Invalid`.
    pub fn decode(buf: &'a [u8]) -> DecodeResult<Adu<'a>> {
        let header = MbapHeader::decode(buf)?;
        let mut r = Reader::new(buf);
        r.skip(MBAP_HEADER_LEN, "mbap.header")?;
        let pdu = r.take(usize::from(header.length) - 1, "mbap.pdu")?;
        r.expect_end("mbap.pdu")?;
        Ok(Adu {
            transaction_id: header.transaction_id,
            unit_id: header.unit_id,
            pdu: Cow::Borrowed(pdu),
        })
    }

    /// The PDU as a request.
    pub fn request(&self) -> Result<Request<'_>, RequestError> {
        Request::decode(&self.pdu).map_err(|mut e| {
            e.error = e.error.at(MBAP_HEADER_LEN);
            e
        })
    }

    /// The PDU as a response.
    pub fn response(&self) -> DecodeResult<Response<'_>> {
        Response::decode(&self.pdu).map_err(|e| e.at(MBAP_HEADER_LEN))
    }

    /// A copy that owns its PDU.
    pub fn into_owned(self) -> Adu<'static> {
        Adu {
            transaction_id: self.transaction_id,
            unit_id: self.unit_id,
            pdu: Cow::Owned(self.pdu.into_owned()),
        }
    }
}

impl Encode for Adu<'_> {
    fn encoded_len(&self) -> usize {
        MBAP_HEADER_LEN + self.pdu.len()
    }
    fn encode<B: BufMut>(&self, out: &mut B) {
        out.put_u16(self.transaction_id);
        out.put_u16(PROTOCOL_ID_MODBUS);
        out.put_u16(u16::try_from(self.pdu.len().saturating_add(1)).unwrap_or(u16::MAX));
        out.put_u8(self.unit_id);
        out.put_slice(&self.pdu);
    }
}

/// [`Framing`] for Modbus/TCP: the frame length comes from the MBAP header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MbapFraming;

impl Framing for MbapFraming {
    fn frame_len(&self, buf: &[u8]) -> DecodeResult<usize> {
        // Only the 6 bytes up to the length are needed to know where the frame ends, but
        // the checks need no more either: the unit id is inside the counted length.
        let mut r = Reader::new(buf);
        let (_, length) = read_prefix(&mut r)?;
        Ok(6 + usize::from(length))
    }
}

/// A resumable Modbus/TCP stream decoder.
pub type TcpDecoder = StreamDecoder<MbapFraming>;

/// A [`TcpDecoder`] that refuses ADUs over [`MAX_ADU_LEN`].
pub fn decoder() -> TcpDecoder {
    StreamDecoder::new(MbapFraming, MAX_ADU_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::pdu::{tests::arb_request, Exception, ExceptionCode};
    use proptest::prelude::*;

    // pymodbus test/framer/test_framer.py (FramerSocket): request, response, exception.
    const STREAM: [&[u8]; 3] = [
        b"\x0c\x05\x00\x00\x00\x06\x11\x03\x00\x7c\x00\x02",
        b"\x0c\x05\x00\x00\x00\x07\x11\x03\x04\x00\x8d\x00\x8e",
        b"\x0c\x05\x00\x00\x00\x03\x11\x83\x02",
    ];

    #[test]
    fn pymodbus_socket_frames() {
        let a = Adu::decode(STREAM[0]).unwrap();
        assert_eq!(
            a.request().unwrap(),
            Request::ReadHoldingRegisters {
                address: 0x7c,
                quantity: 2
            }
        );
        let a = Adu::decode(STREAM[1]).unwrap();
        let Response::ReadHoldingRegisters(v) = a.response().unwrap() else {
            panic!()
        };
        assert_eq!(v.to_vec(), [0x8d, 0x8e]);
        let a = Adu::decode(STREAM[2]).unwrap();
        assert_eq!(
            a.response().unwrap(),
            Response::Exception(Exception {
                function: 3,
                code: ExceptionCode::ILLEGAL_DATA_ADDRESS
            })
        );
        assert_eq!(a.to_vec(), STREAM[2]);
        let h = MbapHeader::decode(STREAM[1]).unwrap();
        assert_eq!(
            h,
            MbapHeader {
                transaction_id: 0x0c05,
                protocol_id: 0,
                length: 7,
                unit_id: 0x11
            }
        );
    }

    #[test]
    fn several_frames_in_one_read_and_every_split() {
        let all: Vec<u8> = STREAM.concat();
        for split in 0..=all.len() {
            let mut d = decoder();
            let mut got = Vec::new();
            for part in [&all[..split], &all[split..]] {
                d.handle_input(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
            }
            assert_eq!(got, STREAM.map(<[u8]>::to_vec), "split at {split}");
        }
    }

    #[test]
    fn header_only_frame_then_a_real_one() {
        let mut d = decoder();
        d.handle_input(&[0, 1, 0, 0, 0, 1, 0x11]);
        d.handle_input(STREAM[0]);
        let f = d.next_frame().unwrap().unwrap();
        let a = Adu::decode(&f).unwrap();
        assert!(a.pdu.is_empty());
        let e = a.request().unwrap_err();
        assert_eq!(e.error.field(), "modbus.function");
        assert_eq!(e.error.offset(), 7);
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), STREAM[0]);
    }

    #[test]
    fn impossible_lengths_name_the_field() {
        // 255 = unit id + 254 PDU bytes: one too many.
        let mut d = decoder();
        d.handle_input(&[0, 1, 0, 0, 0x00, 0xFF, 0x11]);
        let e = d.next_frame().unwrap_err();
        assert_eq!((e.field(), e.offset()), ("mbap.length", 4));
        let e = Adu::decode(&[0, 1, 0, 0, 0x00, 0x00, 0x11]).unwrap_err();
        assert_eq!(e.field(), "mbap.length");
        let mut d = decoder();
        d.handle_input(&[0, 1, 0, 1, 0, 6]);
        assert_eq!(d.next_frame().unwrap_err().field(), "mbap.protocol_id");
        // The largest legal frame is fine.
        let mut d = decoder();
        let mut big = vec![0, 1, 0, 0, 0, 254, 1];
        big.extend(std::iter::repeat_n(0u8, 253));
        d.handle_input(&big);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), MAX_ADU_LEN);
    }

    proptest! {
        #[test]
        fn adu_round_trip_at_every_split(tid in any::<u16>(), unit in any::<u8>(), r in arb_request(), split in any::<prop::sample::Index>()) {
            let bytes = Adu::new(tid, unit, &r).to_vec();
            let at = split.index(bytes.len() + 1);
            let mut d = decoder();
            d.handle_input(&bytes[..at]);
            if at < bytes.len() {
                prop_assert_eq!(d.next_frame().unwrap(), None);
                prop_assert!(d.needed() > 0);
            }
            d.handle_input(&bytes[at..]);
            let f = d.next_frame().unwrap().unwrap();
            let a = Adu::decode(&f).unwrap();
            prop_assert_eq!((a.transaction_id, a.unit_id), (tid, unit));
            prop_assert_eq!(a.request().unwrap(), r);
        }

        #[test]
        fn arbitrary_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut d = decoder();
            d.handle_input(&bytes);
            while let Ok(Some(f)) = d.next_frame() {
                if let Ok(a) = Adu::decode(&f) {
                    let _ = a.request();
                    let _ = a.response();
                }
            }
            let _ = Adu::decode(&bytes);
        }
    }
}
