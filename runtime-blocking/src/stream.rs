//! One engine connection over a byte stream instead of a socket: a serial line (Modbus
//! RTU on `/dev/ttyUSB0`), a pty, or any stream whose reads can be bounded in time.

use std::io::{self, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpppo_core::engine::{lock, wait_for, Connection, Driver, Server};

/// Longest wait for input before looking at the stop flag again.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// Bytes read at once.
const READ_BUFFER: usize = 4096;

/// A byte stream whose reads wait at most a set time, as [`serve_stream`] needs to
/// honour the engine's deadlines (a reply delay, the silence that ends an RTU frame).
pub trait TimedStream: Read + Write {
    /// Make the next reads give up with `TimedOut` or `WouldBlock` after `timeout`.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

/// Lend a stream: it stays the caller's after [`serve_stream`] returns.
impl<T: TimedStream + ?Sized> TimedStream for &mut T {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

#[cfg(unix)]
impl TimedStream for serialport::TTYPort {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        serialport::SerialPort::set_timeout(self, timeout).map_err(io::Error::from)
    }
}

impl TimedStream for std::net::TcpStream {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        // A zero timeout means "forever" to the socket: wait the shortest time instead.
        std::net::TcpStream::set_read_timeout(self, Some(timeout.max(Duration::from_micros(1))))
    }
}

/// Open the serial device at `path` for [`serve_stream`]: raw, 8 data bits, no parity,
/// 1 stop bit, no flow control, at `baud`, for this process alone.
#[cfg(unix)]
pub fn open_serial(path: &str, baud: u32) -> io::Result<serialport::TTYPort> {
    serialport::new(path, baud)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(STOP_CHECK)
        .open_native()
        .map_err(io::Error::from)
}

/// Drive `connection` over `stream` until the engine closes it, the server is done,
/// `stop` is set, or the stream ends (end of file or a read error, which is returned).
/// `server` is locked only while calling into the engine, so the same device can be
/// served on other lines or sockets meanwhile. Events go to `on_event`.
///
/// ```no_run
/// use cpppo_blocking::{open_serial, serve_stream};
/// use cpppo_core::engine::Server;
/// use cpppo_core::testing::EchoServer;
/// use std::sync::{atomic::AtomicBool, Mutex};
/// use std::time::Instant;
///
/// let server = Mutex::new(EchoServer::default());
/// let any = "0.0.0.0:0".parse()?;
/// let connection = server.lock().unwrap().accept(Instant::now(), any, any).unwrap();
/// let port = open_serial("/dev/ttyUSB0", 19_200)?;
/// serve_stream(&server, connection, port, &AtomicBool::new(false), |event| {
///     println!("{event:?}")
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve_stream<C, T>(
    server: &Mutex<C::Server>,
    connection: C,
    mut stream: T,
    stop: &AtomicBool,
    mut on_event: impl FnMut(C::Event),
) -> io::Result<()>
where
    C: Connection,
    C::Server: Server + Sized,
    T: TimedStream,
{
    let mut driver = Driver::new(connection, Instant::now(), None);
    let mut buf = vec![0u8; READ_BUFFER];
    let result = loop {
        let now = Instant::now();
        let out = driver.poll_transmit(now);
        if !out.is_empty() {
            if let Err(error) = stream.write_all(out).and_then(|()| stream.flush()) {
                break Err(error);
            }
            let sent = out.len();
            driver.advance(sent);
        }
        while let Some(event) = driver.poll_event() {
            on_event(event);
        }
        if driver.is_finished() || stop.load(Ordering::Acquire) || lock(server).is_done() {
            break Ok(());
        }
        let wait = wait_for(now, driver.poll_timeout()).map_or(STOP_CHECK, |w| w.min(STOP_CHECK));
        let input = if driver.wants_input() && !wait.is_zero() {
            stream.set_read_timeout(wait)?;
            Some(stream.read(&mut buf))
        } else {
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            None
        };
        let now = Instant::now();
        let mut server = lock(server);
        match input {
            Some(Ok(0)) => driver.handle_eof(now, &mut server),
            Some(Ok(n)) => driver.handle_input(now, buf.get(..n).unwrap_or_default(), &mut server),
            Some(Err(error))
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                driver.handle_timeout(now, &mut server);
            }
            Some(Err(error)) => {
                driver.handle_eof(now, &mut server);
                break Err(error);
            }
            None => driver.handle_timeout(now, &mut server),
        }
    };
    driver.handle_eof(Instant::now(), &mut lock(server));
    while let Some(event) = driver.poll_event() {
        on_event(event);
    }
    result
}
