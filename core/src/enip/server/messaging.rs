//! Carrying CIP: SendRRData (unconnected) and SendUnitData (connected) messages, the
//! Connection Manager's Unconnected Send with its route path, and the hand-over of every
//! other request to the device.

use std::time::Instant;

use bytes::BufMut;

use super::{Server, ServerConn, ServerEvent};
use crate::cip::connection_manager::{unconnected_send_failure, UnconnectedSend};
use crate::cip::device::{CipDevice, RequestContext};
use crate::cip::message_router::{MessageRouterReply, MessageRouterRequest, Service};
use crate::cip::status::GeneralStatus;
use crate::enip::cpf::item_type;
use crate::enip::encapsulation::{status, Header, SendDataItems, HEADER_LEN, MAX_DATA_LEN};
use crate::wire::Encode;

/// How a CIP request arrived: unconnected or on a connection, and its reply budget.
#[derive(Debug, Clone, Copy)]
struct Via {
    connection_serial: Option<u16>,
    budget: usize,
}

impl<D: CipDevice> ServerConn<D> {
    pub(super) fn send_rr_data(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        h: &Header,
        data: &[u8],
    ) {
        if self.session.is_none() || self.session != Some(h.session_handle) {
            self.wrong_session(now, server, h);
            return;
        }
        // Items read as they are checked (as `SendData::decode` would), not collected.
        let send =
            SendDataItems::decode(data).and_then(|s| Ok((s.timeout, s.items.unconnected_data()?)));
        let (timeout, message) = match send {
            Ok(s) => s,
            Err(e) => {
                self.protocol_error(Some(h.command), e.to_string());
                self.reply(now, server, h, status::INCORRECT_DATA, &[]);
                return;
            }
        };
        let Some(message) = message else {
            self.protocol_error(Some(h.command), "no unconnected data item");
            self.reply(now, server, h, status::INCORRECT_DATA, &[]);
            return;
        };
        let via = Via {
            connection_serial: None,
            budget: server.options().unconnected_reply_budget,
        };
        let Some((service, reply)) = self.dispatch(now, server, message, via) else {
            self.protocol_error(Some(h.command), "empty Message Router request");
            self.reply(now, server, h, status::INCORRECT_DATA, &[]);
            return;
        };
        self.events.push_back(ServerEvent::RequestServed {
            command: h.command,
            service,
            general_status: reply.general_status,
            connection: None,
        });
        self.reply_send_data(now, server, h, timeout, None, &reply);
        server.device_and_options().0.recycle(reply);
    }

    pub(super) fn send_unit_data(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        h: &Header,
        data: &[u8],
    ) {
        if self.session.is_none() || self.session != Some(h.session_handle) {
            self.wrong_session(now, server, h);
            return;
        }
        let send = SendDataItems::decode(data).and_then(|s| s.items.connected_data());
        let c = match send {
            Ok(c) => c,
            Err(e) => {
                self.protocol_error(Some(h.command), format!("{e}: dropped"));
                return;
            }
        };
        let Some(c) = c else {
            self.protocol_error(Some(h.command), "no connected address and data: dropped");
            return;
        };
        let Some(conn) = self
            .connections
            .iter_mut()
            .find(|x| x.o_t_connection_id == c.connection_id)
        else {
            self.protocol_error(
                Some(h.command),
                format!(
                    "connection id 0x{:08X} is not open on this session: dropped",
                    c.connection_id
                ),
            );
            return;
        };
        conn.deadline = now.checked_add(conn.timeout).unwrap_or(now);
        let o_t = conn.o_t_connection_id;
        let t_o = conn.t_o_connection_id;
        let via = Via {
            connection_serial: Some(conn.triple.connection_serial),
            budget: conn.reply_budget(),
        };
        let last = match conn.last.take() {
            // A retransmission: answer again without executing twice.
            Some(last) if last.0 == c.sequence => last,
            previous => {
                if let Some((_, _, reply)) = previous {
                    server.device_and_options().0.recycle(reply);
                }
                let Some((service, reply)) = self.dispatch(now, server, c.data, via) else {
                    self.protocol_error(Some(h.command), "empty Message Router request: dropped");
                    return;
                };
                (c.sequence, service, reply)
            }
        };
        self.events.push_back(ServerEvent::RequestServed {
            command: h.command,
            service: last.1,
            general_status: last.2.general_status,
            connection: Some(o_t),
        });
        self.reply_send_data(now, server, h, 0, Some((t_o, c.sequence)), &last.2);
        // Kept for a retransmission (unless the request closed its own connection).
        if let Some(conn) = self
            .connections
            .iter_mut()
            .find(|x| x.o_t_connection_id == o_t)
        {
            conn.last = Some(last);
        }
    }

    /// Queue a SendRRData/SendUnitData reply carrying `reply` in the canonical two-item
    /// CPF (null address and unconnected data, or connected address `id` and connected
    /// data with sequence count `seq`), encoded straight into one buffer.
    fn reply_send_data(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        h: &Header,
        timeout: u16,
        connected: Option<(u32, u16)>,
        reply: &MessageRouterReply<'_>,
    ) {
        const SEND_DATA_PREFIX: usize = 6; // interface handle, timeout
        const ITEM_HEADER: usize = 4; // type id, length
        let mr_len = reply.encoded_len();
        let (address_len, data_item_len) = match connected {
            None => (0, mr_len),
            Some(_) => (4, 2 + mr_len),
        };
        let data_len =
            SEND_DATA_PREFIX + 2 + ITEM_HEADER + address_len + ITEM_HEADER + data_item_len;
        let (Ok(length), Ok(item_len)) = (u16::try_from(data_len), u16::try_from(data_item_len))
        else {
            self.protocol_error(Some(h.command), format!("reply of {mr_len} bytes too long"));
            return;
        };
        if data_len > MAX_DATA_LEN {
            self.protocol_error(Some(h.command), format!("reply of {mr_len} bytes too long"));
            return;
        }
        let start = self.queue_start();
        let out = &mut self.queued;
        out.reserve(HEADER_LEN + data_len);
        Header {
            command: h.command,
            length,
            session_handle: h.session_handle,
            status: status::SUCCESS,
            sender_context: h.sender_context,
            options: 0,
        }
        .encode(out);
        out.put_u32_le(0); // interface handle: CIP
        out.put_u16_le(timeout);
        out.put_u16_le(2); // item count
        match connected {
            None => {
                out.put_u16_le(item_type::NULL_ADDRESS);
                out.put_u16_le(0);
                out.put_u16_le(item_type::UNCONNECTED_DATA);
                out.put_u16_le(item_len);
            }
            Some((id, seq)) => {
                out.put_u16_le(item_type::CONNECTED_ADDRESS);
                out.put_u16_le(4);
                out.put_u32_le(id);
                out.put_u16_le(item_type::CONNECTED_DATA);
                out.put_u16_le(item_len);
                out.put_u16_le(seq);
            }
        }
        reply.encode(out);
        self.queue_from(now, server, start);
    }

    /// Route one Message Router request: Connection Manager services here, the rest to
    /// the device. `None` when there is not even a service code. Returns the service
    /// code served (the embedded one for an Unconnected Send) and the reply.
    fn dispatch(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        message: &[u8],
        via: Via,
    ) -> Option<(u8, MessageRouterReply<'static>)> {
        let service = *message.first()?;
        let req = match MessageRouterRequest::decode(message) {
            Ok(r) => r,
            Err(_) => {
                return Some((
                    service,
                    MessageRouterReply::error(service, GeneralStatus::PATH_SEGMENT_ERROR, &[]),
                ))
            }
        };
        Some(match req.kind() {
            Service::UnconnectedSend => self.unconnected_send(now, server, &req, via),
            Service::ForwardOpen | Service::LargeForwardOpen => {
                (service, self.forward_open(now, server, &req))
            }
            Service::ForwardClose => (service, self.forward_close(server, &req)),
            _ => (service, execute(now, server, &req, via)),
        })
    }

    fn unconnected_send(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        req: &MessageRouterRequest<'_>,
        via: Via,
    ) -> (u8, MessageRouterReply<'static>) {
        let us = match UnconnectedSend::decode_with_trailing(&req.data) {
            Ok((us, _)) => us,
            Err(_) => {
                return (
                    req.service,
                    MessageRouterReply::error(req.service, GeneralStatus::NOT_ENOUGH_DATA, &[]),
                )
            }
        };
        if let Err(why) = server.options().route_path.check(&us.route_path) {
            let words = u8::try_from(us.route_path.word_len()).unwrap_or(u8::MAX);
            return (
                req.service,
                unconnected_send_failure(GeneralStatus::CONNECTION_FAILURE, &[why.0], words),
            );
        }
        let inner = &us.request;
        let service = inner.service;
        let reply = match inner.kind() {
            Service::ForwardOpen | Service::LargeForwardOpen => {
                self.forward_open(now, server, inner)
            }
            Service::ForwardClose => self.forward_close(server, inner),
            // No further hop: this device routes nowhere.
            Service::UnconnectedSend => {
                MessageRouterReply::error(service, GeneralStatus::PATH_DESTINATION_UNKNOWN, &[])
            }
            _ => execute(
                now,
                server,
                inner,
                Via {
                    connection_serial: via.connection_serial,
                    budget: server.options().unconnected_reply_budget,
                },
            ),
        };
        (service, reply)
    }
}

/// Hand a request to the device, and refuse a reply larger than the budget.
fn execute<D: CipDevice>(
    now: Instant,
    server: &mut Server<D>,
    req: &MessageRouterRequest<'_>,
    via: Via,
) -> MessageRouterReply<'static> {
    let ctx = RequestContext {
        now,
        connection: via.connection_serial,
        reply_budget: via.budget,
    };
    let (device, _) = server.device_and_options();
    let reply = device.execute(&ctx, req);
    if reply.encoded_len() > via.budget {
        MessageRouterReply::error(req.service, GeneralStatus::REPLY_DATA_TOO_LARGE, &[])
    } else {
        reply
    }
}
