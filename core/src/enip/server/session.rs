//! The encapsulation layer as a device answers it: commands, sessions, the List
//! commands over TCP and UDP, and the encapsulation status codes of refusals.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Instant;

use super::{
    CloseReason, Server, ServerConn, ServerEvent, IDENTITY_STATE_UNKNOWN, LIST_SERVICES_CAPABILITY,
};
use crate::cip::device::CipDevice;
use crate::cip::objects;
use crate::enip::cpf::{self, Cpf, Item, LegacyAddress, SockAddr};
use crate::enip::encapsulation::{
    status, Command, Encapsulation, Header, RegisterSession, PROTOCOL_VERSION,
};
use crate::wire::Encode;

impl<D: CipDevice> ServerConn<D> {
    pub(super) fn handle_frame(&mut self, now: Instant, frame: &[u8], server: &mut Server<D>) {
        let enc = match Encapsulation::decode(frame) {
            Ok((enc, _)) => enc,
            Err(e) => {
                self.protocol_error(None, e.to_string());
                return;
            }
        };
        self.stats.requests = self.stats.requests.saturating_add(1);
        let h = enc.header;
        if h.options != 0 {
            self.protocol_error(
                Some(h.command),
                format!("options 0x{:08X} not zero: message discarded", h.options),
            );
            return;
        }
        if !h.length_is_valid() {
            self.protocol_error(Some(h.command), "length exceeds the specification's limit");
            self.reply(now, server, &h, status::INVALID_LENGTH, &[]);
            return;
        }
        match h.command {
            Command::Nop => {}
            Command::ListIdentity
            | Command::ListServices
            | Command::ListInterfaces
            | Command::Legacy => {
                let addr = self.local.unwrap_or(server.options().address);
                let cpf = list_reply(h.command, server.device(), addr);
                self.reply(now, server, &h, status::SUCCESS, &cpf.to_vec());
            }
            Command::RegisterSession => self.register_session(now, server, &h, &enc.data),
            Command::UnRegisterSession => {
                if self.session.is_some() && self.session == Some(h.session_handle) {
                    self.release_all(server);
                    self.closing = true;
                    self.events.push_back(ServerEvent::Closed {
                        reason: CloseReason::UnRegisterSession,
                    });
                } else {
                    self.wrong_session(now, server, &h);
                }
            }
            Command::SendRRData => self.send_rr_data(now, server, &h, &enc.data),
            Command::SendUnitData => self.send_unit_data(now, server, &h, &enc.data),
            Command::Other(code) => {
                self.protocol_error(Some(h.command), format!("unsupported command 0x{code:04X}"));
                self.reply(now, server, &h, status::INVALID_COMMAND, &[]);
            }
        }
    }

    pub(super) fn wrong_session(&mut self, now: Instant, server: &mut Server<D>, h: &Header) {
        self.protocol_error(
            Some(h.command),
            format!("invalid session handle 0x{:08X}", h.session_handle),
        );
        self.reply(now, server, h, status::INVALID_SESSION_HANDLE, &[]);
    }

    pub(super) fn register_session(
        &mut self,
        now: Instant,
        server: &mut Server<D>,
        h: &Header,
        data: &[u8],
    ) {
        let request = match RegisterSession::decode(data) {
            Ok(r) => r,
            Err(e) => {
                self.protocol_error(Some(h.command), e.to_string());
                self.reply(now, server, h, status::INVALID_LENGTH, &[]);
                return;
            }
        };
        if let Some(existing) = self.session {
            self.protocol_error(Some(h.command), "a session is already registered");
            let header = Header {
                session_handle: existing,
                ..*h
            };
            self.reply(now, server, &header, status::INVALID_COMMAND, data);
            return;
        }
        if request.protocol_version != PROTOCOL_VERSION || request.options != 0 {
            self.protocol_error(
                Some(h.command),
                format!(
                    "unsupported protocol version {} or options 0x{:04X}",
                    request.protocol_version, request.options
                ),
            );
            let header = Header {
                session_handle: 0,
                ..*h
            };
            let supported = RegisterSession::default().to_vec();
            self.reply(
                now,
                server,
                &header,
                status::UNSUPPORTED_PROTOCOL_REVISION,
                &supported,
            );
            return;
        }
        let handle = server.register_session();
        self.session = Some(handle);
        self.events.push_back(ServerEvent::SessionRegistered {
            session_handle: handle,
        });
        let header = Header {
            session_handle: handle,
            ..*h
        };
        self.reply(now, server, &header, status::SUCCESS, &request.to_vec());
    }
}

/// The ListIdentity item for `identity` at `addr`.
pub fn list_identity_item(
    identity: &objects::Identity<'_>,
    addr: SocketAddrV4,
) -> cpf::Identity<'static> {
    cpf::Identity {
        protocol_version: PROTOCOL_VERSION,
        socket_address: SockAddr::new(*addr.ip(), addr.port()),
        vendor_id: identity.vendor_id,
        device_type: identity.device_type,
        product_code: identity.product_code,
        revision_major: identity.revision.major,
        revision_minor: identity.revision.minor,
        status: identity.status,
        serial_number: identity.serial_number,
        product_name: identity.product_name.as_bytes().to_vec().into(),
        state: Some(identity.state.unwrap_or(IDENTITY_STATE_UNKNOWN)),
        extra: Vec::new().into(),
    }
}

/// The CPF answering ListIdentity, ListServices, ListInterfaces or legacy 0x0001 (an
/// empty list for any other command).
fn list_reply<D: CipDevice>(command: Command, device: &D, addr: SocketAddrV4) -> Cpf<'static> {
    let items = match command {
        Command::ListIdentity => vec![Item::Identity(list_identity_item(&device.identity(), addr))],
        Command::ListServices => vec![Item::Service(cpf::Service::communications(
            LIST_SERVICES_CAPABILITY,
        ))],
        Command::Legacy => vec![Item::Legacy(LegacyAddress::new(*addr.ip(), addr.port()))],
        _ => Vec::new(),
    };
    Cpf { items }
}

impl<D: CipDevice> Server<D> {
    /// Answer one UDP datagram, appending the reply datagram to `out`: ListIdentity,
    /// ListServices, ListInterfaces and legacy 0x0001 are answered as over TCP; the
    /// commands that need a TCP connection (Nop, RegisterSession, UnRegisterSession,
    /// SendRRData, SendUnitData) and unknown ones get status 0x0001 (invalid command), as
    /// OpENer answers them. Returns false when there is no reply: a datagram that is not
    /// exactly one encapsulation message, non-zero options, and everything while the
    /// server is disabled or done. `local` is the address the datagram arrived on: a
    /// specific IPv4 address is announced in the reply, else [`super::ServerOptions::address`].
    /// `peer` is the sender (replies do not depend on it).
    ///
    /// Replies are immediate: the random delay the specification asks of a reply to a
    /// *broadcast* ListIdentity (up to the request's maximum response delay) is left
    /// out, since an adapter cannot always tell broadcast from unicast.
    pub fn handle_datagram(
        &mut self,
        _now: Instant,
        local: SocketAddr,
        _peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if self.faults.disabled || self.faults.done {
            return false;
        }
        let Ok((enc, used)) = Encapsulation::decode(data) else {
            return false;
        };
        let h = enc.header;
        if used != data.len() || h.options != 0 {
            return false;
        }
        match h.command {
            Command::ListIdentity
            | Command::ListServices
            | Command::ListInterfaces
            | Command::Legacy => {
                let addr = match local {
                    SocketAddr::V4(v4) if !v4.ip().is_unspecified() => v4,
                    _ => self.options().address,
                };
                let cpf = list_reply(h.command, self.device(), addr);
                match Encapsulation::reply(&h, status::SUCCESS, cpf.to_vec()) {
                    Ok(frame) => {
                        frame.encode(out);
                        true
                    }
                    Err(_) => false,
                }
            }
            // TCP-only commands (and unknown ones) are refused, as OpENer does.
            _ => match Encapsulation::reply(&h, status::INVALID_COMMAND, &[][..]) {
                Ok(frame) => {
                    frame.encode(out);
                    true
                }
                Err(_) => false,
            },
        }
    }
}
