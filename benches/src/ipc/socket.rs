//! The channel of [`ring`](crate::ipc::ring) over a Unix stream socket pair: the
//! "transparent" contender, what a program that does not share memory would use.
//!
//! A message is the same `[u64; W]`, sent as a frame of `8 * W` bytes in native byte order
//! (both ends are on one machine). Fixed-size frames need no length prefix: the stream is
//! cut every `8 * W` bytes.
//!
//! - The sender makes one `write` per [`send`](Sender::send) (unbuffered, so a message is
//!   on its way when `send` returns) and one per [`send_batch`](Sender::send_batch).
//! - The receiver reads into a buffer of at least 4 KiB and hands out frames from it, so when
//!   the sender is ahead one `read` brings many messages. Partial frames stay in the buffer,
//!   so [`try_recv`](Receiver::try_recv) and [`recv_timeout`](Receiver::recv_timeout) never
//!   lose bytes.
//! - Blocking is the kernel's: the socket stays in blocking mode; `try_*` use
//!   `MSG_DONTWAIT`, the timeouts `SO_RCVTIMEO`/`SO_SNDTIMEO`.
//!
//! A closed peer shows as end-of-file (receiver) or `EPIPE` (sender, with `MSG_NOSIGNAL` or
//! Rust's default of ignoring `SIGPIPE`): both are [`Disconnected`].
//!
//! # Panics
//!
//! Operations panic on I/O errors other than end-of-file, `EPIPE`, `ECONNRESET`, timeouts
//! and interruptions, which a connected socket pair does not produce in normal operation
//! (they would mean a closed or corrupted descriptor, or the kernel out of memory).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::ipc::sys;
use crate::ipc::{
    Disconnected, RecvTimeoutError, Rx, SendTimeoutError, TryRecvError, TrySendError, Tx,
};

/// The smallest receive buffer.
const MIN_BUFFER: usize = 4096;

/// Creates a one-way channel over a new socket pair (each socket shut down in the unused
/// direction).
///
/// # Errors
///
/// If `socketpair` or `shutdown` fails.
///
/// # Examples
///
/// ```
/// use concord_benches::ipc::socket;
///
/// let (mut tx, mut rx) = socket::channel::<2>()?;
/// tx.send([1, 2]).unwrap();
/// assert_eq!(rx.recv().unwrap(), [1, 2]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn channel<const W: usize>() -> io::Result<(Sender<W>, Receiver<W>)> {
    let (a, b) = UnixStream::pair()?;
    a.shutdown(Shutdown::Read)?;
    b.shutdown(Shutdown::Write)?;
    Ok((Sender::from_stream(a), Receiver::from_stream(b)))
}

/// What an I/O error means for the channel.
fn classify(e: io::Error) -> Disconnected {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::WriteZero => Disconnected,
        _ => panic!("socket transport: unexpected I/O error: {e}"),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The sending end: one stream socket, written one frame per message.
pub struct Sender<const W: usize> {
    stream: UnixStream,
    /// Encoding buffer (one frame, or a batch).
    buf: Vec<u8>,
}

/// The receiving end: one stream socket and a buffer of received bytes.
pub struct Receiver<const W: usize> {
    stream: UnixStream,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl<const W: usize> fmt::Debug for Sender<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("socket::Sender").field("words", &W).field("stream", &self.stream).finish()
    }
}

impl<const W: usize> fmt::Debug for Receiver<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("socket::Receiver")
            .field("words", &W)
            .field("stream", &self.stream)
            .field("buffered", &(self.end - self.start))
            .finish()
    }
}

impl<const W: usize> Sender<W> {
    const FRAME: usize = 8 * W;

    /// Sends on `stream` (a connected stream socket, in blocking mode; the other end must be
    /// a [`Receiver<W>`] with the same `W`).
    pub fn from_stream(stream: UnixStream) -> Sender<W> {
        assert!(W > 0, "messages must have at least one word");
        Sender { stream, buf: Vec::with_capacity(Self::FRAME) }
    }

    fn encode(&mut self, msgs: &[[u64; W]]) {
        self.buf.clear();
        for word in msgs.iter().flatten() {
            self.buf.extend_from_slice(&word.to_ne_bytes());
        }
    }

    /// Writes `self.buf[from..]`, blocking.
    fn write_rest(&mut self, from: usize) -> Result<(), Disconnected> {
        self.stream.write_all(&self.buf[from..]).map_err(classify)
    }

    /// Sends `msg` with one `write`, blocking while the socket buffer is full.
    ///
    /// # Errors
    ///
    /// If the receiving socket is closed.
    pub fn send(&mut self, msg: [u64; W]) -> Result<(), Disconnected> {
        self.encode(std::slice::from_ref(&msg));
        self.write_rest(0)
    }

    /// Sends `msg` if the socket buffer has room (`MSG_DONTWAIT`). A frame of a few words goes
    /// into the kernel whole or not at all; should the kernel take only part of it, the rest
    /// is written blocking, so that the stream stays cut at frame boundaries.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if the socket buffer is full, [`TrySendError::Disconnected`] if
    /// the receiving socket is closed.
    pub fn try_send(&mut self, msg: [u64; W]) -> Result<(), TrySendError> {
        self.encode(std::slice::from_ref(&msg));
        loop {
            match sys::send_nonblocking(self.stream.as_fd(), &self.buf) {
                Ok(n) if n == self.buf.len() => return Ok(()),
                Ok(n) => {
                    return self.write_rest(n).map_err(|Disconnected| TrySendError::Disconnected)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(TrySendError::Full),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let Disconnected = classify(e);
                    return Err(TrySendError::Disconnected);
                }
            }
        }
    }

    /// Sends `msg`, blocking at most about `timeout` while the socket buffer is full. Once
    /// part of the frame is written, the rest is written whatever the time.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if nothing could be written in time,
    /// [`SendTimeoutError::Disconnected`] if the receiving socket is closed.
    pub fn send_timeout(
        &mut self,
        msg: [u64; W],
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.encode(std::slice::from_ref(&msg));
        let timeout = timeout.max(Duration::from_micros(1));
        self.stream.set_write_timeout(Some(timeout)).expect("setting SO_SNDTIMEO");
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break Ok(());
            }
            match self.stream.write(&self.buf[written..]) {
                Ok(0) => break Err(SendTimeoutError::Disconnected),
                Ok(n) => written += n,
                Err(e) if is_timeout(&e) && written == 0 => break Err(SendTimeoutError::Timeout),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let Disconnected = classify(e);
                    break Err(SendTimeoutError::Disconnected);
                }
            }
        };
        self.stream.set_write_timeout(None).expect("clearing SO_SNDTIMEO");
        result
    }

    /// Sends all of `msgs` with one `write` call (more if the socket buffer fills up).
    ///
    /// # Errors
    ///
    /// If the receiving socket is closed; a prefix of `msgs` may have been delivered.
    pub fn send_batch(&mut self, msgs: &[[u64; W]]) -> Result<(), Disconnected> {
        self.encode(msgs);
        self.write_rest(0)
    }
}

impl<const W: usize> Receiver<W> {
    const FRAME: usize = 8 * W;

    /// Receives from `stream` (a connected stream socket, in blocking mode; the other end must
    /// be a [`Sender<W>`] with the same `W`).
    pub fn from_stream(stream: UnixStream) -> Receiver<W> {
        assert!(W > 0, "messages must have at least one word");
        let size = MIN_BUFFER.div_ceil(Self::FRAME) * Self::FRAME;
        Receiver { stream, buf: vec![0; size].into_boxed_slice(), start: 0, end: 0 }
    }

    /// Takes a whole buffered frame, if there is one.
    fn take(&mut self) -> Option<[u64; W]> {
        if self.end - self.start < Self::FRAME {
            return None;
        }
        let frame = &self.buf[self.start..self.start + Self::FRAME];
        self.start += Self::FRAME;
        Some(std::array::from_fn(|i| {
            let bytes: [u8; 8] = frame[8 * i..8 * i + 8].try_into().expect("8 bytes");
            u64::from_ne_bytes(bytes)
        }))
    }

    /// Moves a partial frame to the front of the buffer, so that a whole one fits after it.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Blocks until a frame is buffered.
    ///
    /// # Errors
    ///
    /// If the sending socket is closed first.
    pub fn recv(&mut self) -> Result<[u64; W], Disconnected> {
        loop {
            if let Some(msg) = self.take() {
                return Ok(msg);
            }
            self.compact();
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(Disconnected),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(classify(e)),
            }
        }
    }

    /// Waits for the next message, then passes it and up to `max - 1` more whole frames
    /// already in the receive buffer to `f` (no further system call). Returns how many it
    /// passed (0 only if `max` is 0).
    ///
    /// # Errors
    ///
    /// If the sending socket is closed before a message comes.
    pub fn recv_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut([u64; W]),
    ) -> Result<usize, Disconnected> {
        if max == 0 {
            return Ok(0);
        }
        f(self.recv()?);
        let mut n = 1;
        while n < max {
            let Some(msg) = self.take() else { break };
            f(msg);
            n += 1;
        }
        Ok(n)
    }

    /// Returns a buffered frame, or reads what the socket holds without blocking
    /// (`MSG_DONTWAIT`).
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if no whole frame is there, [`TryRecvError::Disconnected`] if
    /// none is and the sending socket is closed.
    pub fn try_recv(&mut self) -> Result<[u64; W], TryRecvError> {
        loop {
            if let Some(msg) = self.take() {
                return Ok(msg);
            }
            self.compact();
            match sys::recv_nonblocking(self.stream.as_fd(), &mut self.buf[self.end..]) {
                Ok(0) => return Err(TryRecvError::Disconnected),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(TryRecvError::Empty),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let Disconnected = classify(e);
                    return Err(TryRecvError::Disconnected);
                }
            }
        }
    }

    /// Blocks at most about `timeout` until a frame is buffered.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time, [`RecvTimeoutError::Disconnected`]
    /// if none is there and the sending socket is closed.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<[u64; W], RecvTimeoutError> {
        if let Some(msg) = self.take() {
            return Ok(msg);
        }
        // `None` (wait for ever) if the deadline is beyond what `Instant` can represent.
        let deadline = Instant::now().checked_add(timeout);
        let result = loop {
            if let Some(msg) = self.take() {
                break Ok(msg);
            }
            let left = match deadline {
                None => Duration::from_secs(1 << 30),
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => break Err(RecvTimeoutError::Timeout),
                },
            };
            // SO_RCVTIMEO of zero means "no timeout": wait at least a microsecond.
            let left = left.max(Duration::from_micros(1));
            self.stream.set_read_timeout(Some(left)).expect("setting SO_RCVTIMEO");
            self.compact();
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => break Err(RecvTimeoutError::Disconnected),
                Ok(n) => self.end += n,
                Err(e) if is_timeout(&e) => break Err(RecvTimeoutError::Timeout),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let Disconnected = classify(e);
                    break Err(RecvTimeoutError::Disconnected);
                }
            }
        };
        self.stream.set_read_timeout(None).expect("clearing SO_RCVTIMEO");
        result
    }
}

impl<const W: usize> Tx<W> for Sender<W> {
    fn send(&mut self, msg: [u64; W]) -> Result<(), Disconnected> {
        Sender::send(self, msg)
    }

    fn try_send(&mut self, msg: [u64; W]) -> Result<(), TrySendError> {
        Sender::try_send(self, msg)
    }

    fn send_timeout(&mut self, msg: [u64; W], timeout: Duration) -> Result<(), SendTimeoutError> {
        Sender::send_timeout(self, msg, timeout)
    }

    fn send_batch(&mut self, msgs: &[[u64; W]]) -> Result<(), Disconnected> {
        Sender::send_batch(self, msgs)
    }
}

impl<const W: usize> Rx<W> for Receiver<W> {
    fn recv(&mut self) -> Result<[u64; W], Disconnected> {
        Receiver::recv(self)
    }

    fn try_recv(&mut self) -> Result<[u64; W], TryRecvError> {
        Receiver::try_recv(self)
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<[u64; W], RecvTimeoutError> {
        Receiver::recv_timeout(self, timeout)
    }

    fn recv_batch<F: FnMut([u64; W])>(&mut self, max: usize, f: F) -> Result<usize, Disconnected> {
        Receiver::recv_batch(self, max, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn messages_arrive_in_order_across_threads() {
        const N: u64 = 200_000;
        let (mut tx, mut rx) = channel::<2>().unwrap();
        let producer = thread::spawn(move || {
            for i in 0..N {
                if i % 1000 == 999 {
                    let batch: Vec<[u64; 2]> = vec![[i, !i]];
                    tx.send_batch(&batch).unwrap();
                } else {
                    tx.send([i, !i]).unwrap();
                }
            }
        });
        // Alternate single receives and batches of up to 7 buffered frames.
        let mut next = 0;
        while next < N {
            if next % 2 == 0 {
                let n = rx
                    .recv_batch(7, |m| {
                        assert_eq!(m, [next, !next], "message {next}");
                        next += 1;
                    })
                    .unwrap();
                assert!((1..=7).contains(&n));
            } else {
                assert_eq!(rx.recv().unwrap(), [next, !next], "message {next}");
                next += 1;
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.recv(), Err(Disconnected));
    }

    #[test]
    fn try_and_timeout_operations() {
        let (mut tx, mut rx) = channel::<3>().unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(rx.recv_timeout(Duration::from_millis(20)), Err(RecvTimeoutError::Timeout));
        tx.try_send([1, 2, 3]).unwrap();
        tx.send_timeout([4, 5, 6], Duration::from_secs(1)).unwrap();
        assert_eq!(rx.try_recv(), Ok([1, 2, 3]));
        assert_eq!(rx.recv_timeout(Duration::MAX), Ok([4, 5, 6]));
        // Fill the socket buffer: try_send reports Full, send_timeout times out.
        let mut sent = 0u64;
        while tx.try_send([sent, 0, 0]).is_ok() {
            sent += 1;
        }
        assert!(sent > 0);
        assert_eq!(tx.try_send([sent, 0, 0]), Err(TrySendError::Full));
        assert_eq!(
            tx.send_timeout([sent, 0, 0], Duration::from_millis(20)),
            Err(SendTimeoutError::Timeout)
        );
        for i in 0..sent {
            assert_eq!(rx.try_recv(), Ok([i, 0, 0]));
        }
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(), Err(Disconnected));

        let (mut tx, rx) = channel::<1>().unwrap();
        drop(rx);
        assert_eq!(tx.send([1]), Err(Disconnected));
        assert_eq!(tx.try_send([1]), Err(TrySendError::Disconnected));
    }

    /// A frame split across two writes is reassembled, also by `try_recv`.
    #[test]
    fn partial_frames_are_kept() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut raw = a;
        let mut rx = Receiver::<2>::from_stream(b);
        let bytes: Vec<u8> = [7u64, 8].iter().flat_map(|w| w.to_ne_bytes()).collect();
        raw.write_all(&bytes[..5]).unwrap();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
        raw.write_all(&bytes[5..]).unwrap();
        assert_eq!(rx.try_recv(), Ok([7, 8]));
    }
}
