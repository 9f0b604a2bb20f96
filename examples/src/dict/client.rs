//! A minimal blocking RESP client that returns replies as raw bytes: what the tests use to
//! compare `dict-server` with Redis byte for byte, and to send malformed input on purpose.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Encodes `args` as a RESP multibulk request.
pub fn encode_request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A connection to a RESP server.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects, with a 30-second read timeout (a hang detector for tests).
    ///
    /// # Errors
    ///
    /// If the connection fails.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Client { reader: BufReader::new(stream) })
    }

    /// Sends `bytes` as they are.
    ///
    /// # Errors
    ///
    /// If the write fails.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Sends a request without waiting for its reply (pipelining).
    ///
    /// # Errors
    ///
    /// If the write fails.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        self.send_raw(&encode_request(args))
    }

    /// Sends a request and returns its raw reply.
    ///
    /// # Errors
    ///
    /// If the connection fails or the reply is malformed.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Vec<u8>> {
        self.send(args)?;
        self.read_reply()
    }

    /// Closes the writing half (the server sees end of input; replies can still arrive).
    ///
    /// # Errors
    ///
    /// As [`TcpStream::shutdown`].
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.reader.get_ref().shutdown(Shutdown::Write)
    }

    /// Reads until the server closes the connection; returns what arrived.
    ///
    /// # Errors
    ///
    /// If a read fails (a timeout included).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Reads one reply and returns its bytes (nested arrays included).
    ///
    /// # Errors
    ///
    /// If the connection closes or the reply is malformed.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(&mut out)?;
        Ok(out)
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        let n = self.reader.read_until(b'\n', out)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let line = &out[start..];
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed reply");
        let number = || -> io::Result<i64> {
            std::str::from_utf8(&line[1..line.len().saturating_sub(2)])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)
        };
        match line[0] {
            b'+' | b'-' | b':' => Ok(()),
            b'$' => {
                let len = number()?;
                if len >= 0 {
                    let mut data = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    out.extend_from_slice(&data);
                }
                Ok(())
            }
            b'*' => {
                let len = number()?;
                for _ in 0..len.max(0) {
                    self.read_into(out)?;
                }
                Ok(())
            }
            _ => Err(bad()),
        }
    }
}
