//! Heap allocations per operation, asserted as upper bounds.
//!
//! Allocation counts, unlike times, are deterministic: the same operation on the same
//! bytes allocates the same number of times on every run and machine, so they can be
//! tested. The bounds are the counts measured with `cargo bench -p cpppo-benches --bench
//! allocations` (see the README); a change that makes an operation allocate more fails
//! here. Counting is per thread (`allocation-counter`), so parallel tests do not
//! disturb each other.

use allocation_counter::measure;
use cpppo_benches::workload::operations;

/// Runs measured per operation, after one warm-up run that sizes the reused buffers.
const RUNS: u64 = 100;

/// Heap allocations per run in steady state, at most.
fn bound(name: &str) -> Option<u64> {
    Some(match name {
        // core's EtherNet/IP engine on a Multiple Service Packet of 20 Read Tags: the
        // MSP's request, offset and reply tables (was 135; every embedded reply's data
        // is now a buffer the controller gets back through `CipDevice::recycle`).
        "enip/msp20/server_conn" => 5,
        // core's EtherNet/IP client: the operation (cloned per submit), its pending
        // record, the request encoded per layer, and the typed values of the reply.
        "enip/read_tag/client_reply" => 15,
        // The same for 20 reads packed into one Multiple Service Packet.
        "enip/msp20/client_reply" => 122,
        // core's Modbus client: the reply's registers, owned by the event.
        "modbus_tcp/fc3/client_reply" => 1,
        "enip/read_tag/decode_request"
        | "enip/read_tag/encode_reply"
        | "enip/read_tag/decode_reply"
        | "enip/read_tag/round_trip"
        | "enip/capture_read_tag_fragmented/round_trip"
        | "enip/capture_read_tag_fragmented/decode_reply"
        | "enip/connected_read_tag/round_trip"
        | "modbus_tcp/fc3/decode_request"
        | "modbus_tcp/fc3/encode_request"
        | "modbus_tcp/fc3/decode_response"
        | "modbus_tcp/fc3/encode_response"
        | "modbus_tcp/fc3/round_trip"
        | "modbus_rtu/fc3/framer_decode_request"
        | "modbus_rtu/fc3/framer_decode_response"
        | "modbus_rtu/fc3/round_trip"
        | "modbus_rtu/fc3/encode_request"
        | "modbus_rtu/fc3/encode_response"
        // core's Modbus server engine (modbus::server): 3 (TCP) and 4 (RTU) before the
        // replies were queued in one reused buffer; see the README.
        | "modbus_tcp/fc3/server_conn"
        // core's EtherNet/IP server engine over `Server<Controller>`: 6, then 4, before
        // the tag lookup, the tag read, the path's segments and the reply's data stopped
        // allocating (see the README).
        | "enip/read_tag/server_conn"
        | "modbus_rtu/fc3/server_conn" => 0,
        _ => return None,
    })
}

#[test]
fn the_counter_counts_this_thread() {
    // Without this, every "no allocation" below could pass with a dead counter.
    let info = measure(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(10));
    });
    assert_eq!(info.count_total, 1);
    assert_eq!(info.bytes_total, 10);
}

#[test]
fn steady_state_allocations_stay_within_their_bounds() {
    let mut failures = Vec::new();
    for mut op in operations() {
        let bound = bound(op.name).unwrap_or_else(|| panic!("no bound for {}", op.name));
        std::hint::black_box((op.run)());
        let info = measure(|| {
            for _ in 0..RUNS {
                std::hint::black_box((op.run)());
            }
        });
        if info.count_total > bound * RUNS {
            failures.push(format!(
                "{}: {} allocations in {RUNS} runs, bound {bound} per run",
                op.name, info.count_total
            ));
        }
        // Whatever is allocated per run is freed in the same run.
        assert_eq!(info.count_current, 0, "{} leaks", op.name);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_server_engines_are_measured() {
    // Their steady state allocates exactly their bound (0 but for the MSP: when one of
    // its allocations goes away this fails and the bound is lowered); the first run
    // (buffers and tables growing) allocates, which shows the counter sees the engine.
    let mut seen = 0;
    for mut op in operations() {
        if !op.name.ends_with("/server_conn") {
            continue;
        }
        seen += 1;
        let first = measure(|| {
            std::hint::black_box((op.run)());
        });
        assert!(first.count_total > 0, "{}", op.name);
        let steady = measure(|| {
            for _ in 0..RUNS {
                std::hint::black_box((op.run)());
            }
        });
        let bound = bound(op.name).unwrap_or_else(|| panic!("no bound for {}", op.name));
        assert_eq!(steady.count_total, bound * RUNS, "{}", op.name);
    }
    assert_eq!(seen, 4);
}

#[test]
fn copying_frames_out_of_the_rtu_framer_allocates_once_per_frame() {
    // `RtuFramer::poll_frame` hands out an owned frame (one copy of its PDU); the
    // operations above use `poll_frame_with`, which lends it. This is the difference.
    use cpppo_benches::modbus::RTU_FC3_REQUEST;
    use cpppo_core::modbus::rtu::{Direction, RtuFramer};
    use std::time::{Duration, Instant};

    let t0 = Instant::now();
    let mut framer = RtuFramer::new(Direction::Requests, 19_200);
    framer.handle_input(t0, RTU_FC3_REQUEST);
    assert!(framer.poll_frame().is_some());
    for (i, lend) in [(1u64, false), (2, true)] {
        let info = measure(|| {
            framer.handle_input(t0 + Duration::from_millis(10 * i), RTU_FC3_REQUEST);
            let unit = if lend {
                framer.poll_frame_with(|f| f.unit)
            } else {
                framer.poll_frame().map(|f| f.unit)
            };
            assert_eq!(unit, Some(17));
        });
        assert_eq!(info.count_total, u64::from(!lend), "lend: {lend}");
    }
}
