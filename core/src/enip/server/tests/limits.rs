//! Limits and hostile input, at the engine: every bound is on bytes buffered and replies
//! queued, checked after every input, as a runtime would feed a hostile peer (reading
//! only while the engine is not backlogged, at most one socket read at a time).

use super::*;
use crate::limits::{ConnectionLimits, Limit};

/// What one socket read hands the engine at most (the runtimes' read buffer).
const READ: usize = 16 * 1024;

fn list_identity() -> Vec<u8> {
    frame(Command::ListIdentity, 0, *b"flooder\0", &[])
}

/// The encapsulation frames in `bytes` (whole ones), as (command, status) pairs.
fn replies(mut bytes: &[u8]) -> Vec<(Command, u32)> {
    let mut out = Vec::new();
    while let Ok((f, used)) = Encapsulation::decode(bytes) {
        out.push((f.header.command, f.header.status));
        bytes = &bytes[used..];
    }
    assert!(bytes.is_empty(), "a partial reply");
    out
}

#[test]
fn a_huge_length_field_is_refused_before_its_body_is_buffered() {
    let mut h = Harness::default();
    let handle = h.register([0; 8]);
    let mut header = Header::new(Command::SendRRData, handle, *b"toolong!").to_vec();
    header[2..4].copy_from_slice(&60_000u16.to_le_bytes());
    let out = h.send(&header);
    // Answered at once with 0x0065 (invalid length), context echoed, and closed.
    assert_eq!(
        replies(&out),
        vec![(Command::SendRRData, status::INVALID_LENGTH)]
    );
    assert_eq!(&out[12..20], b"toolong!");
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.buffered(), 0);
    // The body that follows is not kept.
    h.conn.handle_input(h.now, &vec![0; READ], &mut h.server);
    assert_eq!(h.conn.buffered(), 0);
    assert_eq!(h.server.limits_reached().frame_length, 1);
    assert!(h.server.sessions().is_empty(), "the session is released");
    let events = h.events();
    assert!(events.contains(&ServerEvent::LimitReached {
        limit: Limit::FrameLength
    }));
    assert!(events.contains(&ServerEvent::Closed {
        reason: CloseReason::FrameTooLong
    }));
}

#[test]
fn the_frame_size_limit_is_configurable_and_frames_within_it_pass() {
    let mut h = Harness::new(ServerOptions {
        max_frame_len: 64,
        ..ServerOptions::default()
    });
    // ListIdentity (24 bytes) is within the limit.
    assert_eq!(
        replies(&h.send(&list_identity())),
        vec![(Command::ListIdentity, status::SUCCESS)]
    );
    // A 65-byte Nop is not.
    let out = h.send(&frame(Command::Nop, 0, [0; 8], &[0; 41]));
    assert_eq!(replies(&out), vec![(Command::Nop, status::INVALID_LENGTH)]);
    assert!(h.conn.is_closed());
}

#[test]
fn a_frame_never_finished_is_closed_after_the_frame_timeout() {
    let mut h = Harness::default();
    let timeout = ConnectionLimits::default().frame_timeout.unwrap();
    let t0 = h.now;
    // A whole ListIdentity and the first 10 bytes of another.
    let mut bytes = list_identity();
    bytes.extend_from_slice(&list_identity()[..10]);
    assert_eq!(replies(&h.send(&bytes)).len(), 1);
    assert_eq!(h.conn.buffered(), 10);
    assert_eq!(h.conn.poll_timeout(), Some(t0 + timeout));
    // More of it later does not restart the clock: the frame began at t0.
    let t1 = t0 + timeout / 2;
    h.conn
        .handle_input(t1, &list_identity()[10..20], &mut h.server);
    assert_eq!(h.conn.poll_timeout(), Some(t0 + timeout));
    h.conn
        .handle_timeout(t0 + timeout - Duration::from_millis(1), &mut h.server);
    assert!(!h.conn.is_closed());
    h.conn.handle_timeout(t0 + timeout, &mut h.server);
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.buffered(), 0);
    assert_eq!(h.server.limits_reached().frame_timeout, 1);
    assert!(h.events().contains(&ServerEvent::Closed {
        reason: CloseReason::FrameTimeout
    }));

    // Finished frames leave no deadline; `None` disables the timeout.
    let mut h = Harness::default();
    h.send(&list_identity());
    assert_eq!(h.conn.poll_timeout(), None);
    h.server.options_mut().limits.frame_timeout = None;
    h.send(&list_identity()[..5]);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn a_flood_that_never_reads_stays_bounded_and_every_request_is_answered_once() {
    let max_pending = 16;
    let mut h = Harness::new(ServerOptions {
        limits: ConnectionLimits {
            max_pending_replies: max_pending,
            ..ConnectionLimits::default()
        },
        ..ServerOptions::default()
    });
    // Replies are held a while (a slow device): the flooder's requests pile up.
    h.server.faults.delay = ReplyDelay::Fixed(Duration::from_millis(100));
    let request = list_identity();
    let stream: Vec<u8> = request.repeat(5000);
    let mut fed = 0;
    let mut out = Vec::new();
    let mut now = h.now;
    let mut most_buffered = 0;
    let mut most_pending = 0;
    while fed < stream.len() || h.conn.pending_replies() > 0 || h.conn.buffered() > 0 {
        if !h.conn.is_backlogged() && fed < stream.len() {
            let end = (fed + READ).min(stream.len());
            h.conn.handle_input(now, &stream[fed..end], &mut h.server);
            fed = end;
        }
        most_buffered = most_buffered.max(h.conn.buffered());
        most_pending = most_pending.max(h.conn.pending_replies());
        assert!(h.conn.pending_replies() <= max_pending);
        assert!(h.conn.buffered() <= READ);
        // The runtime waits for the engine's deadline, then hands replies out.
        match h.conn.poll_timeout() {
            Some(at) if h.conn.is_backlogged() || fed == stream.len() => {
                now = now.max(at);
                h.conn.handle_timeout(now, &mut h.server);
            }
            _ => {}
        }
        h.conn.poll_transmit(now, &mut out);
    }
    assert_eq!(most_pending, max_pending);
    assert!(most_buffered > request.len());
    let answered = replies(&out);
    assert_eq!(answered.len(), 5000);
    assert!(answered
        .iter()
        .all(|r| *r == (Command::ListIdentity, status::SUCCESS)));
    assert!(h.server.limits_reached().pending_replies >= 1);
}

#[test]
fn the_request_rate_is_held_to_its_limit_without_losing_requests() {
    let mut h = Harness::new(ServerOptions {
        limits: ConnectionLimits {
            max_request_rate: Some(10),
            ..ConnectionLimits::default()
        },
        ..ServerOptions::default()
    });
    let t0 = h.now;
    let out = h.send(&list_identity().repeat(50));
    // A second's burst (and the one on schedule), then one per 100 ms.
    assert_eq!(replies(&out).len(), 11);
    assert!(h.conn.is_backlogged());
    assert_eq!(h.conn.poll_timeout(), Some(t0 + Duration::from_millis(100)));
    let mut out = Vec::new();
    let mut now = t0;
    while let Some(at) = h.conn.poll_timeout() {
        now = at;
        h.conn.handle_timeout(now, &mut h.server);
        h.conn.poll_transmit(now, &mut out);
    }
    assert_eq!(replies(&out).len(), 39);
    assert_eq!(now, t0 + Duration::from_millis(3900));
    assert!(!h.conn.is_backlogged());
    assert_eq!(h.server.limits_reached().request_rate, 1);
    assert!(h.events().contains(&ServerEvent::LimitReached {
        limit: Limit::RequestRate
    }));
}

#[test]
fn garbage_never_grows_the_buffer_past_one_frame() {
    let mut rng = SplitMix64::new(8);
    let mut closed = 0;
    for round in 0..50 {
        let mut h = Harness::default();
        let mut fed = 0;
        while !h.conn.is_closed() && fed < 1 << 20 {
            let chunk: Vec<u8> = (0..997).map(|_| rng.next_u64() as u8).collect();
            h.conn.handle_input(h.now, &chunk, &mut h.server);
            fed += chunk.len();
            assert!(
                h.conn.buffered() <= DEFAULT_MAX_FRAME_LEN,
                "round {round}: {} bytes buffered",
                h.conn.buffered()
            );
            let mut out = Vec::new();
            h.conn.poll_transmit(h.now, &mut out);
            // Whatever it answers is whole frames.
            replies(&out);
        }
        closed += usize::from(h.conn.is_closed());
    }
    // Random headers mostly announce frames beyond the limit: refused and closed.
    assert!(closed >= 25, "{closed} of 50 closed");
}

#[test]
fn forward_opens_are_limited_per_session_and_in_all() {
    let options = ServerOptions {
        max_connections: 3,
        max_connections_per_session: 2,
        ..ServerOptions::default()
    };
    let mut h = Harness::new(options);
    let a = h.register([0; 8]);
    for serial in 1..=2 {
        let r = rr_reply(&h.send(&pylogix_rr(a, &pylogix_forward_open(504, 7, serial))));
        assert!(r.general_status.is_success());
    }
    let r = rr_reply(&h.send(&pylogix_rr(a, &pylogix_forward_open(504, 7, 3))));
    assert_eq!(r.general_status, GeneralStatus::CONNECTION_FAILURE);
    assert_eq!(
        r.additional_status,
        vec![ConnectionManagerStatus::OUT_OF_CONNECTIONS.0]
    );
    assert_eq!(h.server.limits_reached().connections_per_session, 1);
    // A second client gets one more, then the server is full.
    let mut b = ServerConn::new(h.now, peer(), &mut h.server);
    let mut send_b = |h: &mut Harness, bytes: &[u8]| {
        b.handle_input(h.now, bytes, &mut h.server);
        let mut out = Vec::new();
        b.poll_transmit(h.now, &mut out);
        out
    };
    let out = send_b(&mut h, &Encapsulation::register_session([0; 8]).to_vec());
    let hb = u32_at(&out, 4);
    let r = rr_reply(&send_b(
        &mut h,
        &pylogix_rr(hb, &pylogix_forward_open(504, 8, 10)),
    ));
    assert!(r.general_status.is_success());
    let r = rr_reply(&send_b(
        &mut h,
        &pylogix_rr(hb, &pylogix_forward_open(504, 8, 11)),
    ));
    assert_eq!(
        r.additional_status,
        vec![ConnectionManagerStatus::OUT_OF_CONNECTIONS.0]
    );
    assert_eq!(h.server.limits_reached().connections, 1);
    assert_eq!(h.server.connections().len(), 3);
}

#[test]
fn forward_close_must_repeat_the_forward_opens_path_and_come_from_its_owner() {
    let mut h = Harness::default();
    let a = h.register([0; 8]);
    let r = rr_reply(&h.send(&pylogix_rr(a, &pylogix_forward_open(504, 7, 77))));
    assert!(r.general_status.is_success());
    // Another client closing it: not found (0x0107), and it stays open.
    let mut b = ServerConn::new(h.now, peer(), &mut h.server);
    let mut out = Vec::new();
    b.handle_input(
        h.now,
        &Encapsulation::register_session([0; 8]).to_vec(),
        &mut h.server,
    );
    b.poll_transmit(h.now, &mut out);
    let hb = u32_at(&out, 4);
    out.clear();
    b.handle_input(
        h.now,
        &pylogix_rr(hb, &pylogix_forward_close(77)),
        &mut h.server,
    );
    b.poll_transmit(h.now, &mut out);
    let r = rr_reply(&out);
    assert_eq!(
        r.additional_status,
        vec![ConnectionManagerStatus::CONNECTION_NOT_FOUND.0]
    );
    assert_eq!(h.server.connections().len(), 1);
    // Its owner, naming another path (link 1): 0x0316, and it stays open.
    let mut close = pylogix_forward_close(77);
    let link = close.len() - 5;
    close[link] = 1;
    let r = rr_reply(&h.send(&pylogix_rr(a, &close)));
    assert_eq!(r.general_status, GeneralStatus::CONNECTION_FAILURE);
    assert_eq!(
        r.additional_status,
        vec![ConnectionManagerStatus::FORWARD_CLOSE_PATH_MISMATCH.0]
    );
    assert_eq!(h.conn.connections().len(), 1);
    // The same path: closed.
    let r = rr_reply(&h.send(&pylogix_rr(a, &pylogix_forward_close(77))));
    assert!(r.general_status.is_success());
    assert!(h.server.connections().is_empty());
}

#[test]
fn the_limits_read_and_write_as_json_with_their_defaults() {
    let options: ServerOptions = serde_json::from_str(
        &serde_json::to_string(&ServerOptions::default())
            .unwrap()
            .replace(r#","max_frame_len":16384"#, ""),
    )
    .unwrap();
    assert_eq!(options, ServerOptions::default());
    assert_eq!(options.max_frame_len, DEFAULT_MAX_FRAME_LEN);
    assert_eq!(
        options.max_connections_per_session,
        DEFAULT_MAX_CONNECTIONS_PER_SESSION
    );
}
