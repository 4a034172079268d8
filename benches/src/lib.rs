//! Criterion benchmarks and the allocation report for cpppo-rs's codecs.
//!
//! This library holds what the benches (`benches/codec.rs`), the allocation report
//! (`benches/allocations.rs`) and the allocation tests (`tests/allocations.rs`) share,
//! so that all three measure exactly the same operations on exactly the same bytes:
//!
//! - the frames, real ones (captured from a ControlLogix and from pymodbus' tests) and
//!   built ones (the same envelope around a plain Read Tag, which no public capture has);
//! - the operations, each written the way a server or client in steady state runs it:
//!   decode borrowing from the input, encode into caller-owned buffers that are reused
//!   from one operation to the next (so a warm buffer never grows again).
//!
//! Every operation returns what it decoded or wrote, so the optimiser cannot drop it and
//! the tests can check it did the real work.

use std::borrow::Cow;
use std::time::Instant;

use cpppo_core::cip::connection_manager::UnconnectedSend;
use cpppo_core::cip::data::{DataType, TagType};
use cpppo_core::cip::epath::{Epath, Segment};
use cpppo_core::cip::logix::{ReadTagFragmentedRequest, ReadTagReply, ReadTagRequest};
use cpppo_core::cip::message_router::{service, MessageRouterReply, MessageRouterRequest, Service};
use cpppo_core::cip::status::GeneralStatus;
use cpppo_core::enip::cpf::{Cpf, Item};
use cpppo_core::enip::encapsulation::{Command, Encapsulation, Header, SendData, SendDataItems};
use cpppo_core::modbus::pdu::{Registers, Request as ModbusRequest, Response};
use cpppo_core::modbus::rtu::{RtuFrame, RtuFramer};
use cpppo_core::modbus::tcp::Adu;
use cpppo_core::wire::{DecodeError, DecodeResult, Encode};

/// EtherNet/IP frames and the Read Tag operations of a Logix server and client.
pub mod enip {
    use super::*;

    /// The session handle the ControlLogix of cpppo's capture handed out (packet 6).
    pub const SESSION: u32 = 0x1102_1E01;
    /// The sender context of the capture's packets 14 and 16.
    pub const CONTEXT: [u8; 8] = [3, 0, 0, 0, 0, 0, 0, 0];
    /// The tag the capture reads and writes.
    pub const TAG: &str = "SCADA";
    /// SendRRData timeout (seconds) cpppo's client sent.
    pub const TIMEOUT: u16 = 5;
    /// Unconnected Send priority/time tick byte cpppo's client sent.
    pub const PRIORITY_TIME_TICK: u8 = 0x05;
    /// Unconnected Send timeout ticks cpppo's client sent.
    pub const TIMEOUT_TICKS: u8 = 0x9D;
    /// The INT value of `SCADA` in packet 16 (wire bytes `27 80`).
    pub const SCADA_VALUE: [u8; 2] = [0x27, 0x80];
    /// The connection id and CIP sequence count of the connected Read Tag frames
    /// (those of cpppo's `rfg_gg0_req`, a pycomm client's connected request).
    pub const CONNECTION: (u32, u16) = (0x018A_A501, 19);

    /// cpppo capture `controllogix-SCADA-read-write`, packet 14 (client -> 1756-L61):
    /// SendRRData, Unconnected Send via backplane port 1 slot 0, Read Tag Fragmented
    /// `SCADA`, 1 element, offset 0. Also in `core/tests/frames/enip/`.
    pub const CAPTURE_READ_TAG_FRAGMENTED_REQUEST: &[u8] = &[
        0x6f, 0x00, 0x2e, 0x00, 0x01, 0x1e, 0x02, 0x11, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb2, 0x00, 0x1e, 0x00, 0x52, 0x02, 0x20, 0x06, 0x24,
        0x01, 0x05, 0x9d, 0x10, 0x00, 0x52, 0x04, 0x91, 0x05, 0x53, 0x43, 0x41, 0x44, 0x41, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
    ];

    /// The same capture, packet 16 (1756-L61 -> client): the Read Tag Fragmented reply,
    /// INT `0x8027`.
    pub const CAPTURE_READ_TAG_FRAGMENTED_REPLY: &[u8] = &[
        0x6f, 0x00, 0x18, 0x00, 0x01, 0x1e, 0x02, 0x11, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb2, 0x00, 0x08, 0x00, 0xd2, 0x00, 0x00, 0x00, 0xc3,
        0x00, 0x27, 0x80,
    ];

    /// The symbolic path of `tag` (an ANSI extended symbolic segment, padded).
    pub fn tag_path(tag: &str) -> Epath<'static> {
        Epath::from_segments(&[Segment::symbolic(tag.to_owned())])
            .expect("a short ASCII tag name encodes")
    }

    /// A SendRRData request frame in the capture's envelope (session, context,
    /// timeout, Unconnected Send to slot 0 of the backplane) carrying `service` on `tag`
    /// with request `data`.
    ///
    /// With [`service::READ_TAG_FRAGMENTED`] and data `01 00 00 00 00 00` this
    /// reproduces [`CAPTURE_READ_TAG_FRAGMENTED_REQUEST`] byte for byte.
    pub fn unconnected_send_frame(service_code: u8, tag: &str, data: &[u8]) -> Vec<u8> {
        let embedded = MessageRouterRequest::new(service_code, tag_path(tag), data);
        let send = UnconnectedSend {
            priority_time_tick: PRIORITY_TIME_TICK,
            timeout_ticks: TIMEOUT_TICKS,
            request: embedded,
            route_path: Epath::from_segments(&[Segment::port(1, 0)])
                .expect("port 1 link 0 encodes"),
        };
        let outer = MessageRouterRequest::new(
            service::UNCONNECTED_SEND,
            "@0x06/1".parse::<Epath<'static>>().expect("a logical path"),
            send.to_vec(),
        );
        let body = SendData::new(TIMEOUT, Cpf::unconnected(outer.to_vec()));
        let header = Header::new(Command::SendRRData, SESSION, CONTEXT);
        Encapsulation::with_body(header, &body)
            .expect("a short frame")
            .to_vec()
    }

    /// A plain Read Tag (0x4C) of `SCADA`, 1 element, in the capture's envelope: the
    /// request every Logix client sends most (no public capture has one, so it is
    /// built; [`unconnected_send_frame`] is checked against the capture).
    pub fn read_tag_request_frame() -> Vec<u8> {
        unconnected_send_frame(
            service::READ_TAG,
            TAG,
            &ReadTagRequest { elements: 1 }.to_vec(),
        )
    }

    /// The reply a controller sends to [`read_tag_request_frame`]: Read Tag reply
    /// (0xCC), success, INT [`SCADA_VALUE`], in the capture's reply envelope.
    pub fn read_tag_reply_frame() -> Vec<u8> {
        let mut out = Vec::new();
        let header = Header::new(Command::SendRRData, SESSION, CONTEXT);
        ReplyEncoder::default().encode(
            &header,
            TIMEOUT,
            None,
            service::READ_TAG,
            &int_reply(),
            &mut out,
        );
        out
    }

    /// A connected (SendUnitData) Read Tag of `SCADA`, 1 element, on
    /// [`CONNECTION`]: what a client that opened a class 3 connection sends.
    pub fn connected_read_tag_request_frame() -> Vec<u8> {
        let (connection_id, sequence) = CONNECTION;
        let request = MessageRouterRequest::new(
            service::READ_TAG,
            tag_path(TAG),
            ReadTagRequest { elements: 1 }.to_vec(),
        );
        let body = SendData::new(0, Cpf::connected(connection_id, sequence, request.to_vec()));
        let header = Header::new(Command::SendUnitData, SESSION, CONTEXT);
        Encapsulation::with_body(header, &body)
            .expect("a short frame")
            .to_vec()
    }

    /// The reply to [`connected_read_tag_request_frame`].
    pub fn connected_read_tag_reply_frame() -> Vec<u8> {
        let mut out = Vec::new();
        let header = Header::new(Command::SendUnitData, SESSION, CONTEXT);
        ReplyEncoder::default().encode(
            &header,
            0,
            Some(CONNECTION),
            service::READ_TAG,
            &int_reply(),
            &mut out,
        );
        out
    }

    /// The value the replies carry: INT [`SCADA_VALUE`].
    pub fn int_reply() -> ReadTagReply<'static> {
        ReadTagReply {
            tag_type: TagType::from(DataType::INT),
            data: Cow::Borrowed(&SCADA_VALUE),
        }
    }

    /// What a server needs from a Read Tag request frame to answer it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReadTagCall<'a> {
        /// The request's encapsulation header (the reply echoes session and context).
        pub header: Header,
        /// The SendRRData timeout (0 in SendUnitData).
        pub timeout: u16,
        /// Connection id and sequence count, for a connected (SendUnitData) request.
        pub connection: Option<(u32, u16)>,
        /// The Logix service: Read Tag or Read Tag Fragmented.
        pub service: u8,
        /// The tag's path, borrowed from the frame.
        pub path: Epath<'a>,
        /// Elements to read.
        pub elements: u16,
        /// The byte offset (Read Tag Fragmented; 0 for Read Tag).
        pub offset: u32,
    }

    fn not_a_read(reason: &'static str) -> DecodeError {
        DecodeError::invalid("bench.read_tag", 0, reason)
    }

    /// The bytes of a decoded field, with the lifetime of the input they borrow from
    /// (every decoder here borrows; an owned field would mean a copy was made).
    fn borrowed<'a>(bytes: &Cow<'a, [u8]>) -> DecodeResult<&'a [u8]> {
        match bytes {
            Cow::Borrowed(b) => Ok(b),
            Cow::Owned(_) => Err(not_a_read("decoded bytes are borrowed")),
        }
    }

    /// The CIP message of a SendRRData or SendUnitData frame.
    struct Message<'a> {
        /// The message bytes (Message Router request or reply).
        bytes: &'a [u8],
        /// Connection id and sequence count (SendUnitData only).
        connection: Option<(u32, u16)>,
        /// The SendRRData timeout.
        timeout: u16,
    }

    /// The message of a SendRRData (unconnected data item) or SendUnitData (connected
    /// data item, with its connection id and sequence count) frame's `data`, decoding
    /// the CPF items lazily (no vector of items is built).
    fn message_of(command: Command, data: &[u8]) -> DecodeResult<Message<'_>> {
        let send = SendDataItems::decode(data)?;
        let timeout = send.timeout;
        match command {
            Command::SendUnitData => {
                let c = send
                    .items
                    .connected_data()?
                    .ok_or_else(|| not_a_read("no connected data item"))?;
                Ok(Message {
                    bytes: c.data,
                    connection: Some((c.connection_id, c.sequence)),
                    timeout,
                })
            }
            Command::SendRRData => {
                let bytes = send
                    .items
                    .unconnected_data()?
                    .ok_or_else(|| not_a_read("no unconnected data item"))?;
                Ok(Message {
                    bytes,
                    connection: None,
                    timeout,
                })
            }
            _ => Err(not_a_read("not SendRRData/SendUnitData")),
        }
    }

    /// The Logix read inside a Message Router request, looking through one Unconnected
    /// Send: (service, tag path, elements, offset).
    fn logix_read(message: &[u8]) -> DecodeResult<(u8, Epath<'_>, u16, u32)> {
        let mut request = MessageRouterRequest::decode(message)?;
        if request.kind() == Service::UnconnectedSend {
            let (send, _) = UnconnectedSend::decode_with_trailing(borrowed(&request.data)?)?;
            request = send.request;
        }
        let data = borrowed(&request.data)?;
        let (elements, offset) = match request.kind() {
            Service::ReadTag => (ReadTagRequest::decode_with_trailing(data)?.0.elements, 0),
            Service::ReadTagFragmented => {
                let (r, _) = ReadTagFragmentedRequest::decode_with_trailing(data)?;
                (r.elements, r.offset)
            }
            _ => return Err(not_a_read("not a Read Tag request")),
        };
        Ok((request.service, request.path, elements, offset))
    }

    /// Decode a Read Tag or Read Tag Fragmented request frame, unconnected (SendRRData,
    /// direct or through Unconnected Send) or connected (SendUnitData), as a server
    /// does when it arrives.
    pub fn decode_read_tag_request(frame: &[u8]) -> DecodeResult<ReadTagCall<'_>> {
        let (encap, _) = Encapsulation::decode(frame)?;
        let header = encap.header;
        let message = message_of(header.command, borrowed(&encap.data)?)?;
        let (service_code, path, elements, offset) = logix_read(message.bytes)?;
        Ok(ReadTagCall {
            header,
            timeout: message.timeout,
            connection: message.connection,
            service: service_code,
            path,
            elements,
            offset,
        })
    }

    /// Encodes Read Tag reply frames into reused buffers, as a server connection does.
    ///
    /// The reply's [`SendData`] is kept from one reply to the next: its item vector and
    /// the message bytes its data item owns are cleared and refilled, never dropped, so
    /// a warm encoder allocates nothing (with core's public types as they are).
    #[derive(Debug, Clone)]
    pub struct ReplyEncoder {
        send: SendData<'static>,
    }

    impl Default for ReplyEncoder {
        fn default() -> Self {
            ReplyEncoder {
                send: SendData::new(0, Cpf::empty()),
            }
        }
    }

    impl ReplyEncoder {
        /// Append to `out` the reply frame to a Read Tag request with `request`'s
        /// header (session, context, command) and `timeout`, for `request_service`,
        /// carrying `value`.
        ///
        /// `connection` is the T->O connection id and the sequence count to echo, for
        /// a SendUnitData reply; `None` answers SendRRData.
        pub fn encode(
            &mut self,
            request: &Header,
            timeout: u16,
            connection: Option<(u32, u16)>,
            request_service: u8,
            value: &ReadTagReply<'_>,
            out: &mut Vec<u8>,
        ) {
            let items = &mut self.send.cpf.items;
            // Take back the message buffer the previous reply's data item owned.
            let mut message = match items.pop() {
                Some(Item::UnconnectedData(Cow::Owned(m)))
                | Some(Item::ConnectedData {
                    data: Cow::Owned(m),
                    ..
                }) => m,
                _ => Vec::new(),
            };
            items.clear();
            // Message Router reply header, then the Read Tag reply data: the reply's
            // data is simply the rest, so the two are written back to back.
            message.clear();
            MessageRouterReply::success(request_service, &[][..]).encode(&mut message);
            value.encode(&mut message);
            match connection {
                Some((connection_id, sequence)) => {
                    items.push(Item::ConnectedAddress { connection_id });
                    items.push(Item::ConnectedData {
                        sequence,
                        data: Cow::Owned(message),
                    });
                }
                None => {
                    items.push(Item::NullAddress);
                    items.push(Item::UnconnectedData(Cow::Owned(message)));
                }
            }
            self.send.timeout = timeout;
            let header = Header {
                length: u16::try_from(self.send.encoded_len()).unwrap_or(u16::MAX),
                ..Header::new(
                    request.command,
                    request.session_handle,
                    request.sender_context,
                )
            };
            header.encode(out);
            self.send.encode(out);
        }
    }

    /// What a client learns from a Read Tag reply frame.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReadTagAnswer<'a> {
        /// The reply's encapsulation header.
        pub header: Header,
        /// The reply's service code (request | 0x80).
        pub service: u8,
        /// The CIP general status.
        pub general_status: GeneralStatus,
        /// The tag's type.
        pub tag_type: TagType,
        /// The value bytes, borrowed from the frame.
        pub data: &'a [u8],
    }

    /// Decode a Read Tag (or Read Tag Fragmented) reply frame, as a client does.
    pub fn decode_read_tag_reply(frame: &[u8]) -> DecodeResult<ReadTagAnswer<'_>> {
        let (encap, _) = Encapsulation::decode(frame)?;
        let header = encap.header;
        let message = message_of(header.command, borrowed(&encap.data)?)?;
        let reply = MessageRouterReply::decode(message.bytes)?;
        let value = ReadTagReply::decode(borrowed(&reply.data)?)?;
        Ok(ReadTagAnswer {
            header,
            service: reply.service,
            general_status: reply.general_status,
            tag_type: value.tag_type,
            data: borrowed(&value.data)?,
        })
    }

    /// A server's whole turn: decode `request`, answer with `value`, append the reply
    /// frame to `out`. Returns the number of elements asked for.
    pub fn serve_read_tag(
        request: &[u8],
        value: &ReadTagReply<'_>,
        encoder: &mut ReplyEncoder,
        out: &mut Vec<u8>,
    ) -> DecodeResult<u16> {
        let call = decode_read_tag_request(request)?;
        encoder.encode(
            &call.header,
            call.timeout,
            call.connection,
            call.service,
            value,
            out,
        );
        Ok(call.elements)
    }
}

/// Modbus/TCP and Modbus/RTU frames and the read-holding-registers (FC 3) operations of
/// a server and a client.
pub mod modbus {
    use super::*;

    /// pymodbus `test/framer/test_framer.py` (FramerSocket): Modbus/TCP read holding
    /// registers, transaction 3077, unit 255, address 124, quantity 2.
    pub const TCP_FC3_REQUEST: &[u8] = &[
        0x0c, 0x05, 0x00, 0x00, 0x00, 0x06, 0xff, 0x03, 0x00, 0x7c, 0x00, 0x02,
    ];
    /// The matching response: 2 registers, 141 and 142.
    pub const TCP_FC3_RESPONSE: &[u8] = &[
        0x0c, 0x05, 0x00, 0x00, 0x00, 0x07, 0xff, 0x03, 0x04, 0x00, 0x8d, 0x00, 0x8e,
    ];
    /// pymodbus `test/framer/test_framer.py` (FramerRTU): Modbus RTU read holding
    /// registers, unit 17, address 124, quantity 2, CRC `07 43`.
    pub const RTU_FC3_REQUEST: &[u8] = &[0x11, 0x03, 0x00, 0x7c, 0x00, 0x02, 0x07, 0x43];
    /// The matching response: 2 registers, 141 and 142, CRC `fb bd`.
    pub const RTU_FC3_RESPONSE: &[u8] = &[0x11, 0x03, 0x04, 0x00, 0x8d, 0x00, 0x8e, 0xfb, 0xbd];

    /// A holding register table as big-endian wire bytes, so that a response can
    /// borrow a range of it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct HoldingRegisters {
        bytes: Vec<u8>,
    }

    impl HoldingRegisters {
        /// `count` registers, register `i` holding `i + 17` (so that registers 124
        /// and 125 hold 141 and 142, the values in pymodbus' response).
        pub fn new(count: u16) -> Self {
            let bytes = (0..count)
                .flat_map(|i| i.wrapping_add(17).to_be_bytes())
                .collect();
            HoldingRegisters { bytes }
        }

        /// `quantity` registers from `address`, as wire bytes; `None` past the end.
        pub fn range(&self, address: u16, quantity: u16) -> Option<&[u8]> {
            let start = usize::from(address) * 2;
            self.bytes.get(start..start + usize::from(quantity) * 2)
        }
    }

    fn not_fc3(reason: &'static str) -> DecodeError {
        DecodeError::invalid("bench.fc3", 0, reason)
    }

    /// The response PDU to a read holding registers request, written into `pdu`.
    /// Returns the quantity read.
    fn answer(
        request: &ModbusRequest<'_>,
        table: &HoldingRegisters,
        pdu: &mut Vec<u8>,
    ) -> DecodeResult<u16> {
        let ModbusRequest::ReadHoldingRegisters { address, quantity } = *request else {
            return Err(not_fc3("not read holding registers"));
        };
        let values = table
            .range(address, quantity)
            .ok_or_else(|| not_fc3("address out of range"))?;
        let registers =
            Registers::from_be_bytes(values).ok_or_else(|| not_fc3("odd register bytes"))?;
        pdu.clear();
        Response::ReadHoldingRegisters(registers).encode(pdu);
        Ok(quantity)
    }

    /// A Modbus/TCP server's turn: decode the request ADU `request` (one whole frame)
    /// and append the response ADU to `out`; `pdu` is scratch. Returns the quantity.
    pub fn serve_tcp(
        request: &[u8],
        table: &HoldingRegisters,
        pdu: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> DecodeResult<u16> {
        let adu = Adu::decode(request)?;
        let req = adu.request().map_err(|e| e.error)?;
        let quantity = answer(&req, table, pdu)?;
        Adu {
            transaction_id: adu.transaction_id,
            unit_id: adu.unit_id,
            pdu: Cow::Borrowed(&pdu[..]),
        }
        .encode(out);
        Ok(quantity)
    }

    /// Decode a request ADU: (transaction id, unit, address, quantity).
    pub fn decode_tcp_request(frame: &[u8]) -> DecodeResult<(u16, u8, u16, u16)> {
        let adu = Adu::decode(frame)?;
        match adu.request().map_err(|e| e.error)? {
            ModbusRequest::ReadHoldingRegisters { address, quantity } => {
                Ok((adu.transaction_id, adu.unit_id, address, quantity))
            }
            _ => Err(not_fc3("not read holding registers")),
        }
    }

    /// A client's request: append the read holding registers ADU to `out`; `pdu` is
    /// scratch.
    pub fn encode_tcp_request(
        transaction_id: u16,
        unit_id: u8,
        address: u16,
        quantity: u16,
        pdu: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        pdu.clear();
        ModbusRequest::ReadHoldingRegisters { address, quantity }.encode(pdu);
        Adu {
            transaction_id,
            unit_id,
            pdu: Cow::Borrowed(&pdu[..]),
        }
        .encode(out);
    }

    /// A client's view of a response ADU: (transaction id, the register values'
    /// wire bytes, borrowed from the frame).
    pub fn decode_tcp_response(frame: &[u8]) -> DecodeResult<(u16, Registers<'_>)> {
        let adu = Adu::decode(frame)?;
        let pdu = match adu.pdu {
            Cow::Borrowed(p) => p,
            Cow::Owned(_) => return Err(not_fc3("decoded PDU is borrowed")),
        };
        match Response::decode(pdu)? {
            Response::ReadHoldingRegisters(r) => Ok((adu.transaction_id, r)),
            _ => Err(not_fc3("not a read holding registers response")),
        }
    }

    /// Encode a response ADU carrying `values` (wire bytes) into `out`.
    pub fn encode_tcp_response(
        transaction_id: u16,
        unit_id: u8,
        values: &[u8],
        pdu: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> DecodeResult<()> {
        let registers =
            Registers::from_be_bytes(values).ok_or_else(|| not_fc3("odd register bytes"))?;
        pdu.clear();
        Response::ReadHoldingRegisters(registers).encode(pdu);
        Adu {
            transaction_id,
            unit_id,
            pdu: Cow::Borrowed(&pdu[..]),
        }
        .encode(out);
        Ok(())
    }

    /// A Modbus RTU server's turn: feed `chunk` (received at `now`) to `framer`, answer
    /// every read holding registers request it completes by appending the response
    /// frame to `out`. Returns how many requests were answered.
    pub fn serve_rtu(
        framer: &mut RtuFramer,
        now: Instant,
        chunk: &[u8],
        table: &HoldingRegisters,
        pdu: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> DecodeResult<usize> {
        framer.handle_input(now, chunk);
        let mut answered = 0;
        // Each frame is lent, not copied, while it is answered.
        while let Some(done) = framer.poll_frame_with(|frame| -> DecodeResult<()> {
            let req = frame.request().map_err(|e| e.error)?;
            answer(&req, table, pdu)?;
            RtuFrame {
                unit: frame.unit,
                pdu: Cow::Borrowed(&pdu[..]),
            }
            .encode(out);
            Ok(())
        }) {
            done?;
            answered += 1;
        }
        Ok(answered)
    }

    /// A Modbus RTU client's turn: feed `chunk` to `framer` (a
    /// [`cpppo_core::modbus::rtu::Direction::Responses`] framer) and sum the register
    /// values of every response it completes (a stand-in for using them).
    pub fn receive_rtu(framer: &mut RtuFramer, now: Instant, chunk: &[u8]) -> DecodeResult<u32> {
        framer.handle_input(now, chunk);
        let mut sum = 0u32;
        while let Some(values) = framer.poll_frame_with(|frame| match frame.response()? {
            Response::ReadHoldingRegisters(r) => {
                Ok(r.iter().fold(0u32, |s, v| s.wrapping_add(u32::from(v))))
            }
            _ => Err(not_fc3("not a read holding registers response")),
        }) {
            sum = sum.wrapping_add(values?);
        }
        Ok(sum)
    }

    /// Encode a whole RTU request frame (unit, PDU, CRC) into `out`; `pdu` is scratch.
    pub fn encode_rtu_request(
        unit: u8,
        address: u16,
        quantity: u16,
        pdu: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) {
        pdu.clear();
        ModbusRequest::ReadHoldingRegisters { address, quantity }.encode(pdu);
        RtuFrame {
            unit,
            pdu: Cow::Borrowed(&pdu[..]),
        }
        .encode(out);
    }
}

/// The measured operations, by name, each a closure that owns its (reused) buffers.
///
/// The criterion benches, the allocation report and the allocation tests all iterate
/// over [`workload::operations`], so the names in the README's table are the names of
/// exactly these closures. Each returns a number derived from what it decoded or wrote,
/// which the callers pass through [`std::hint::black_box`].
pub mod workload {
    use std::time::Duration;

    use cpppo_core::modbus::rtu::Direction;

    use super::*;

    /// One named operation.
    pub struct Operation {
        /// `protocol/message/what`, e.g. `enip/read_tag/round_trip`.
        pub name: &'static str,
        /// One run of the operation; panics if the codec refuses the frame (the frames
        /// are fixed and valid, so that would be a bug the tests catch).
        pub run: Box<dyn FnMut() -> u64>,
    }

    fn op(name: &'static str, run: impl FnMut() -> u64 + 'static) -> Operation {
        Operation {
            name,
            run: Box::new(run),
        }
    }

    /// Baud rate of the RTU framers: a common serial line speed (timing only matters
    /// for when a stale partial frame is dropped; every chunk here is a whole frame).
    pub const RTU_BAUD: u32 = 19_200;

    /// A clock for the RTU framers: each call is 10 ms after the previous one, longer
    /// than the 3.5-character silence at [`RTU_BAUD`], as between real requests.
    fn ticking_clock() -> impl FnMut() -> Instant {
        let origin = Instant::now();
        let mut n = 0u64;
        move || {
            n = n.wrapping_add(1);
            origin + Duration::from_millis(n.saturating_mul(10))
        }
    }

    /// Every operation, in report order.
    pub fn operations() -> Vec<Operation> {
        let mut ops = Vec::new();
        ops.extend(enip_operations());
        ops.extend(modbus_tcp_operations());
        ops.extend(modbus_rtu_operations());
        ops.extend(modbus_server_operations());
        ops.push(enip_server_turn());
        ops.push(engines::enip_msp_server_turn());
        ops.push(engines::enip_client_turn());
        ops.push(engines::enip_msp_client_turn());
        ops.push(engines::modbus_client_turn());
        ops
    }

    /// A RegisterSession request (protocol version 1, no options), session 0.
    pub fn register_session_frame() -> Vec<u8> {
        let mut frame = vec![0x65, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        frame.extend_from_slice(&enip::CONTEXT);
        frame.extend_from_slice(&[0, 0, 0, 0, 0x01, 0x00, 0x00, 0x00]);
        frame
    }

    /// The Read Tag request ([`enip::read_tag_request_frame`]) through core's
    /// EtherNet/IP server engine (`enip::server::ServerConn` over a `Server<Controller>`
    /// holding `SCADA=INT` = [`enip::SCADA_VALUE`]), on a session registered before the
    /// first run: `handle_input`, then drain `poll_transmit` and `poll_event`. The
    /// request carries the session handle the server assigned.
    fn enip_server_turn() -> Operation {
        use cpppo_core::cip::data::Values;
        use cpppo_core::controller::{Controller, ControllerConfig};
        use cpppo_core::engine::Server as _;
        use cpppo_core::enip::server::{Server, ServerOptions};

        let mut plc = Controller::new(ControllerConfig::default());
        plc.tags_mut()
            .add_str("SCADA=INT")
            .expect("a valid tag spec");
        plc.tags_mut()
            .set_values(
                enip::TAG,
                0,
                &Values::Int(vec![i16::from_le_bytes(enip::SCADA_VALUE)]),
            )
            .expect("an INT value");
        let mut server = Server::new(plc, ServerOptions::default());
        let mut clock = ticking_clock();
        let local = "127.0.0.1:44818".parse().expect("an address");
        let peer = "127.0.0.1:40000".parse().expect("an address");
        let mut conn = server
            .accept(clock(), local, peer)
            .expect("the server accepts a connection");
        let mut out = Vec::new();
        let now = clock();
        conn.handle_input(now, &register_session_frame(), &mut server);
        while conn.poll_transmit(now, &mut out) {}
        while conn.poll_event().is_some() {}
        let session = out.get(4..8).expect("a RegisterSession reply").to_vec();
        let mut request = enip::read_tag_request_frame();
        request[4..8].copy_from_slice(&session);
        op("enip/read_tag/server_conn", move || {
            let now = clock();
            out.clear();
            conn.handle_input(now, &request, &mut server);
            while conn.poll_transmit(now, &mut out) {}
            let mut events = 0u64;
            while conn.poll_event().is_some() {
                events += 1;
            }
            out.len() as u64 + events
        })
    }

    /// The register spec of the simulated device the server operations talk to:
    /// holding registers 40001-41000 (so the request's 124-125 exist).
    pub const DEVICE_SPEC: &str = "40001-41000=7";

    /// One request through core's Modbus server engine (`modbus::server::ServerConn`
    /// over a `modbus::device::Device`), as a runtime drives it: `handle_input`, then
    /// drain `poll_transmit` and `poll_event`.
    fn server_turn(
        transport: cpppo_core::modbus::server::Transport,
        request: &'static [u8],
        name: &'static str,
    ) -> Operation {
        use cpppo_core::engine::Server;
        use cpppo_core::modbus::device::Device;

        let mut device = Device::from_specs([DEVICE_SPEC]).expect("a valid register spec");
        device.transport = transport;
        let mut clock = ticking_clock();
        let local = "127.0.0.1:502".parse().expect("an address");
        let peer = "127.0.0.1:40000".parse().expect("an address");
        let mut conn = device
            .accept(clock(), local, peer)
            .expect("the device accepts a connection");
        let mut out = Vec::new();
        op(name, move || {
            let now = clock();
            out.clear();
            conn.handle_input(now, request, &mut device);
            while conn.poll_transmit(now, &mut out) {}
            let mut events = 0u64;
            while conn.poll_event().is_some() {
                events += 1;
            }
            out.len() as u64 + events
        })
    }

    fn modbus_server_operations() -> Vec<Operation> {
        use cpppo_core::modbus::server::Transport;
        vec![
            server_turn(
                Transport::Tcp,
                modbus::TCP_FC3_REQUEST,
                "modbus_tcp/fc3/server_conn",
            ),
            server_turn(
                Transport::RtuSerial { baud: RTU_BAUD },
                modbus::RTU_FC3_REQUEST,
                "modbus_rtu/fc3/server_conn",
            ),
        ]
    }

    fn enip_operations() -> Vec<Operation> {
        let request = enip::read_tag_request_frame();
        let reply = enip::read_tag_reply_frame();
        let header = Header::new(Command::SendRRData, enip::SESSION, enip::CONTEXT);
        let mut ops = Vec::new();

        let frame = request.clone();
        ops.push(op("enip/read_tag/decode_request", move || {
            let call = enip::decode_read_tag_request(&frame).expect("valid Read Tag request");
            u64::from(call.elements) + call.path.as_bytes().len() as u64
        }));

        let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
        ops.push(op("enip/read_tag/encode_reply", move || {
            out.clear();
            encoder.encode(
                &header,
                enip::TIMEOUT,
                None,
                service::READ_TAG,
                &enip::int_reply(),
                &mut out,
            );
            out.len() as u64
        }));

        let frame = reply.clone();
        ops.push(op("enip/read_tag/decode_reply", move || {
            let answer = enip::decode_read_tag_reply(&frame).expect("valid Read Tag reply");
            u64::from(answer.general_status.0) + answer.data.len() as u64
        }));

        let frame = request;
        let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
        ops.push(op("enip/read_tag/round_trip", move || {
            out.clear();
            let n = enip::serve_read_tag(&frame, &enip::int_reply(), &mut encoder, &mut out)
                .expect("valid Read Tag request");
            u64::from(n) + out.len() as u64
        }));

        let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
        ops.push(op(
            "enip/capture_read_tag_fragmented/round_trip",
            move || {
                out.clear();
                let n = enip::serve_read_tag(
                    enip::CAPTURE_READ_TAG_FRAGMENTED_REQUEST,
                    &enip::int_reply(),
                    &mut encoder,
                    &mut out,
                )
                .expect("the captured request decodes");
                u64::from(n) + out.len() as u64
            },
        ));

        ops.push(op(
            "enip/capture_read_tag_fragmented/decode_reply",
            move || {
                let answer = enip::decode_read_tag_reply(enip::CAPTURE_READ_TAG_FRAGMENTED_REPLY)
                    .expect("the captured reply decodes");
                u64::from(answer.general_status.0) + answer.data.len() as u64
            },
        ));

        let frame = enip::connected_read_tag_request_frame();
        let (mut encoder, mut out) = (enip::ReplyEncoder::default(), Vec::new());
        ops.push(op("enip/connected_read_tag/round_trip", move || {
            out.clear();
            let n = enip::serve_read_tag(&frame, &enip::int_reply(), &mut encoder, &mut out)
                .expect("valid connected Read Tag request");
            u64::from(n) + out.len() as u64
        }));
        ops
    }

    fn modbus_tcp_operations() -> Vec<Operation> {
        let mut ops = Vec::new();
        ops.push(op("modbus_tcp/fc3/decode_request", || {
            let (tid, unit, address, quantity) =
                modbus::decode_tcp_request(modbus::TCP_FC3_REQUEST).expect("valid request");
            u64::from(tid) + u64::from(unit) + u64::from(address) + u64::from(quantity)
        }));

        let (mut pdu, mut out) = (Vec::new(), Vec::new());
        ops.push(op("modbus_tcp/fc3/encode_request", move || {
            out.clear();
            modbus::encode_tcp_request(3077, 255, 124, 2, &mut pdu, &mut out);
            out.len() as u64
        }));

        ops.push(op("modbus_tcp/fc3/decode_response", || {
            let (tid, regs) =
                modbus::decode_tcp_response(modbus::TCP_FC3_RESPONSE).expect("valid response");
            u64::from(tid) + regs.iter().map(u64::from).sum::<u64>()
        }));

        let (mut pdu, mut out) = (Vec::new(), Vec::new());
        ops.push(op("modbus_tcp/fc3/encode_response", move || {
            out.clear();
            modbus::encode_tcp_response(3077, 255, &[0x00, 0x8d, 0x00, 0x8e], &mut pdu, &mut out)
                .expect("even register bytes");
            out.len() as u64
        }));

        let table = modbus::HoldingRegisters::new(1000);
        let (mut pdu, mut out) = (Vec::new(), Vec::new());
        ops.push(op("modbus_tcp/fc3/round_trip", move || {
            out.clear();
            let q = modbus::serve_tcp(modbus::TCP_FC3_REQUEST, &table, &mut pdu, &mut out)
                .expect("valid request");
            u64::from(q) + out.len() as u64
        }));
        ops
    }

    fn modbus_rtu_operations() -> Vec<Operation> {
        let mut ops = Vec::new();
        let mut framer = RtuFramer::new(Direction::Requests, RTU_BAUD);
        let mut clock = ticking_clock();
        ops.push(op("modbus_rtu/fc3/framer_decode_request", move || {
            framer.handle_input(clock(), modbus::RTU_FC3_REQUEST);
            framer
                .poll_frame_with(|frame| match frame.request().expect("valid request") {
                    ModbusRequest::ReadHoldingRegisters { address, quantity } => {
                        u64::from(frame.unit) + u64::from(address) + u64::from(quantity)
                    }
                    other => panic!("not FC 3: {other:?}"),
                })
                .expect("a whole frame")
        }));

        let (mut pdu, mut out) = (Vec::new(), Vec::new());
        ops.push(op("modbus_rtu/fc3/encode_request", move || {
            out.clear();
            modbus::encode_rtu_request(17, 124, 2, &mut pdu, &mut out);
            out.len() as u64
        }));

        let mut framer = RtuFramer::new(Direction::Responses, RTU_BAUD);
        let mut clock = ticking_clock();
        ops.push(op("modbus_rtu/fc3/framer_decode_response", move || {
            u64::from(
                modbus::receive_rtu(&mut framer, clock(), modbus::RTU_FC3_RESPONSE)
                    .expect("valid response"),
            )
        }));

        let (mut pdu, mut out) = (Vec::new(), Vec::new());
        ops.push(op("modbus_rtu/fc3/encode_response", move || {
            out.clear();
            let registers = Registers::from_be_bytes(&[0x00, 0x8d, 0x00, 0x8e][..])
                .expect("even register bytes");
            pdu.clear();
            Response::ReadHoldingRegisters(registers).encode(&mut pdu);
            RtuFrame {
                unit: 17,
                pdu: Cow::Borrowed(&pdu[..]),
            }
            .encode(&mut out);
            out.len() as u64
        }));

        let table = modbus::HoldingRegisters::new(1000);
        let mut framer = RtuFramer::new(Direction::Requests, RTU_BAUD);
        let mut clock = ticking_clock();
        let (mut pdu, mut out) = (Vec::new(), Vec::new());
        ops.push(op("modbus_rtu/fc3/round_trip", move || {
            out.clear();
            let n = modbus::serve_rtu(
                &mut framer,
                clock(),
                modbus::RTU_FC3_REQUEST,
                &table,
                &mut pdu,
                &mut out,
            )
            .expect("valid request");
            n as u64 + out.len() as u64
        }));
        ops
    }

    /// The engine hot paths the codec operations do not cover: a Multiple Service
    /// Packet served, and a client's reply matched (EtherNet/IP and Modbus/TCP).
    pub mod engines {
        use super::*;
        use cpppo_core::cip::data::Values;
        use cpppo_core::cip::operation::parse_operation;
        use cpppo_core::controller::{Controller, ControllerConfig};
        use cpppo_core::engine::Server as _;
        use cpppo_core::enip::client::{ClientConn, ClientEvent, ClientOptions};
        use cpppo_core::enip::server::{Server, ServerConn, ServerOptions};

        /// Reads packed into the Multiple Service Packet of `enip/msp20/server_conn`.
        pub const MSP_READS: usize = 20;
        /// The Multiple Service Packet budget (bytes) the client packs them within.
        pub const MSP_BUDGET: usize = 500;

        /// A `Server<Controller>` holding `SCADA=INT[100]` (values 0, 1, 2...), a
        /// connection accepted on it, and a client whose session the server registered,
        /// all in memory; `clock` ticks 10 ms per call.
        pub struct EnipPair {
            /// The server state.
            pub server: Server<Controller>,
            /// The server's connection.
            pub conn: ServerConn<Controller>,
            /// The client engine, session registered.
            pub client: ClientConn,
        }

        impl EnipPair {
            /// The pair, with `options` for the client.
            pub fn new(now: Instant, options: ClientOptions) -> Self {
                let mut plc = Controller::new(ControllerConfig::default());
                plc.tags_mut()
                    .add_str("SCADA=INT[100]")
                    .expect("a valid tag spec");
                let values: Vec<i16> = (0..100).collect();
                plc.tags_mut()
                    .set_values(enip::TAG, 0, &Values::Int(values))
                    .expect("INT values");
                let mut server = Server::new(plc, ServerOptions::default());
                let local = "127.0.0.1:44818".parse().expect("an address");
                let peer = "127.0.0.1:40000".parse().expect("an address");
                let conn = server
                    .accept(now, local, peer)
                    .expect("the server accepts a connection");
                let mut pair = EnipPair {
                    server,
                    conn,
                    client: ClientConn::new(now, options),
                };
                // RegisterSession (and whatever else the client sets up first).
                pair.exchange(now, &mut Vec::new());
                assert!(pair.client.session_handle().is_some());
                pair
            }

            /// Move bytes both ways until neither side has more to send; returns the
            /// client's events. `sent` receives the last bytes the client sent.
            pub fn exchange(&mut self, now: Instant, sent: &mut Vec<u8>) -> Vec<ClientEvent> {
                let mut events = Vec::new();
                let mut to_client = Vec::new();
                loop {
                    let mut to_server = Vec::new();
                    while self.client.poll_transmit(now, &mut to_server) {}
                    if !to_server.is_empty() {
                        sent.clone_from(&to_server);
                    }
                    self.conn.handle_input(now, &to_server, &mut self.server);
                    to_client.clear();
                    while self.conn.poll_transmit(now, &mut to_client) {}
                    while self.conn.poll_event().is_some() {}
                    self.client.handle_input(now, &to_client);
                    let before = events.len();
                    while let Some(event) = self.client.poll_event() {
                        events.push(event);
                    }
                    if to_server.is_empty() && to_client.is_empty() && events.len() == before {
                        return events;
                    }
                }
            }
        }

        /// The Multiple Service Packet of [`MSP_READS`] Read Tags (`SCADA[0]`,
        /// `SCADA[1]`, ...) our client sends (packed within [`MSP_BUDGET`] bytes), and
        /// the server's reply, and the client's events on that reply, on a pair whose
        /// session is registered.
        pub fn msp_frames(
            pair: &mut EnipPair,
            now: Instant,
        ) -> (Vec<u8>, Vec<u8>, Vec<ClientEvent>) {
            for i in 0..MSP_READS {
                pair.client.submit(
                    now,
                    parse_operation(&format!("SCADA[{i}]")).expect("a valid operation"),
                );
            }
            let mut request = Vec::new();
            while pair.client.poll_transmit(now, &mut request) {}
            pair.conn.handle_input(now, &request, &mut pair.server);
            let mut reply = Vec::new();
            while pair.conn.poll_transmit(now, &mut reply) {}
            while pair.conn.poll_event().is_some() {}
            pair.client.handle_input(now, &reply);
            let events = std::iter::from_fn(|| pair.client.poll_event()).collect();
            (request, reply, events)
        }

        /// `enip/msp20/server_conn`: one SendRRData carrying a Multiple Service Packet
        /// of [`MSP_READS`] Read Tags (built by our client) through core's EtherNet/IP
        /// server engine; drains `poll_transmit` and `poll_event`.
        pub fn enip_msp_server_turn() -> Operation {
            let mut clock = ticking_clock();
            let options = ClientOptions {
                multiple: MSP_BUDGET,
                depth: 1,
                ..ClientOptions::default()
            };
            let mut pair = EnipPair::new(clock(), options);
            let (request, _, _) = msp_frames(&mut pair, clock());
            let EnipPair {
                mut server,
                mut conn,
                ..
            } = pair;
            let mut out = Vec::new();
            op("enip/msp20/server_conn", move || {
                let now = clock();
                out.clear();
                conn.handle_input(now, &request, &mut server);
                while conn.poll_transmit(now, &mut out) {}
                let mut events = 0u64;
                while conn.poll_event().is_some() {
                    events += 1;
                }
                out.len() as u64 + events
            })
        }

        /// `enip/read_tag/client_reply`: our client submits a read of `SCADA` (1
        /// element), sends it (`poll_transmit`), is handed the server's reply (its
        /// sender context patched to the request's) and yields the `Reply` event.
        pub fn enip_client_turn() -> Operation {
            let mut clock = ticking_clock();
            let mut pair = EnipPair::new(clock(), ClientOptions::default());
            let read = parse_operation("SCADA").expect("a valid operation");
            pair.client.submit(clock(), read.clone());
            let mut request = Vec::new();
            let events = pair.exchange(clock(), &mut request);
            assert!(matches!(
                events.as_slice(),
                [ClientEvent::Reply { result: Ok(_), .. }]
            ));
            pair.conn.handle_input(clock(), &request, &mut pair.server);
            let mut reply = Vec::new();
            while pair.conn.poll_transmit(clock(), &mut reply) {}
            client_turn(
                "enip/read_tag/client_reply",
                pair.client,
                vec![read],
                reply,
                clock,
            )
        }

        /// `enip/msp20/client_reply`: our client submits [`MSP_READS`] reads
        /// (`SCADA[0]`, `SCADA[1]`, ...) packed into one Multiple Service Packet, sends
        /// it, is handed the server's reply (sender context patched) and yields the 20
        /// `Reply` events.
        pub fn enip_msp_client_turn() -> Operation {
            let mut clock = ticking_clock();
            let options = ClientOptions {
                multiple: MSP_BUDGET,
                ..ClientOptions::default()
            };
            let mut pair = EnipPair::new(clock(), options);
            let (_, reply, _) = msp_frames(&mut pair, clock());
            let reads: Vec<_> = (0..MSP_READS)
                .map(|i| parse_operation(&format!("SCADA[{i}]")).expect("a valid operation"))
                .collect();
            client_turn("enip/msp20/client_reply", pair.client, reads, reply, clock)
        }

        /// One client turn: submit `reads`, send them (`poll_transmit`), take `reply`
        /// (its sender context, bytes 12..20, patched to the request's: it is the
        /// client's transaction id) and drain the events; every read must be answered.
        fn client_turn(
            name: &'static str,
            mut client: ClientConn,
            reads: Vec<cpppo_core::cip::operation::Operation>,
            mut reply: Vec<u8>,
            mut clock: impl FnMut() -> Instant + 'static,
        ) -> Operation {
            let mut out = Vec::new();
            op(name, move || {
                let now = clock();
                out.clear();
                for read in &reads {
                    client.submit(now, read.clone());
                }
                while client.poll_transmit(now, &mut out) {}
                if let (Some(theirs), Some(ours)) = (reply.get_mut(12..20), out.get(12..20)) {
                    theirs.copy_from_slice(ours);
                }
                client.handle_input(now, &reply);
                let mut answered = 0u64;
                while let Some(event) = client.poll_event() {
                    if let ClientEvent::Reply { result: Ok(_), .. } = event {
                        answered += 1;
                    }
                }
                assert_eq!(answered, reads.len() as u64, "the replies are matched");
                out.len() as u64 + answered
            })
        }

        /// `modbus_tcp/fc3/client_reply`: our Modbus/TCP client submits a read of 10
        /// holding registers, sends it, is handed the device's response (transaction id
        /// patched to the request's) and yields the `Reply` event.
        pub fn modbus_client_turn() -> Operation {
            use cpppo_core::modbus::client::{ClientConfig, ClientConn, ClientEvent};
            use cpppo_core::modbus::device::Device;
            use cpppo_core::modbus::server::ServerConn;

            let mut clock = ticking_clock();
            let request = ModbusRequest::ReadHoldingRegisters {
                address: 0,
                quantity: 10,
            };
            let mut device = Device::from_specs([DEVICE_SPEC]).expect("a valid register spec");
            let mut server = ServerConn::tcp();
            let mut client = ClientConn::tcp(ClientConfig::default());
            let now = clock();
            client.submit(now, request.clone(), 1);
            let mut sent = Vec::new();
            while client.poll_transmit(now, &mut sent) {}
            server.handle_input(now, &sent, &mut device);
            let mut reply = Vec::new();
            while server.poll_transmit(now, &mut reply) {}
            client.handle_input(now, &reply);
            while client.poll_event().is_some() {}
            let mut out = Vec::new();
            op("modbus_tcp/fc3/client_reply", move || {
                let now = clock();
                out.clear();
                client.submit(now, request.clone(), 1);
                while client.poll_transmit(now, &mut out) {}
                if let (Some(theirs), Some(ours)) = (reply.get_mut(0..2), out.get(0..2)) {
                    theirs.copy_from_slice(ours);
                }
                client.handle_input(now, &reply);
                let mut answered = 0u64;
                while let Some(event) = client.poll_event() {
                    if let ClientEvent::Reply {
                        response: Ok(_), ..
                    } = event
                    {
                        answered += 1;
                    }
                }
                assert_eq!(answered, 1, "the reply is matched");
                out.len() as u64 + answered
            })
        }
    }
}
