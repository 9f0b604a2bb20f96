//! RESP2: the request parser (multibulk and inline requests, with Redis's limits and
//! protocol errors) and the reply encoder.
//!
//! [`parse`] takes the bytes a connection has buffered and returns the first complete
//! request, the number of bytes it used, or that more bytes are needed; a connection calls it
//! in a loop to answer every complete pipelined request in one write. Errors carry Redis's
//! own wording (`Protocol error: invalid bulk length`, ...); the connection answers them
//! with `-ERR` and closes, as Redis does.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Longest line Redis accepts for an inline request or a `*`/`$` count (64 KiB).
pub const MAX_INLINE: usize = 64 * 1024;
/// Most arguments a multibulk request may declare (Redis 7 accepts up to `INT_MAX`; the
/// arguments are only allocated as they arrive).
pub const MAX_MULTIBULK: i64 = i32::MAX as i64;
/// Redis's default `proto-max-bulk-len` (512 MiB).
pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
/// Most arguments an unauthenticated client may declare.
const UNAUTH_MULTIBULK: i64 = 10;
/// Longest argument an unauthenticated client may declare.
const UNAUTH_BULK: i64 = 16 * 1024;

/// A request: its arguments, the command name first.
pub type Args = Vec<Vec<u8>>;

/// What limits apply to the request being parsed.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest bulk argument accepted (`--max-bulk-len`).
    pub max_bulk_len: usize,
    /// Whether the client has authenticated (or needs not): unauthenticated clients get
    /// Redis's much smaller limits.
    pub authenticated: bool,
}

/// A request that breaks the protocol; the connection answers `-ERR <message>` and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub Cow<'static, str>);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// The outcome of [`parse`] on a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete request (possibly empty: an empty inline line or `*0`, to be skipped),
    /// and how many bytes of the buffer it took.
    Request(Args, usize),
    /// The buffer holds no complete request; do not call again before it holds at least
    /// this many bytes.
    Incomplete(usize),
}

fn perr(msg: &'static str) -> ProtocolError {
    ProtocolError(Cow::Borrowed(msg))
}

/// Parses the first request in `buf`.
///
/// # Errors
///
/// A [`ProtocolError`] with Redis's text if the request is malformed or exceeds a limit.
///
/// # Examples
///
/// ```
/// use concord_examples::dict::resp::{parse, Limits, Parsed};
///
/// let limits = Limits { max_bulk_len: 1024, authenticated: true };
/// let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
/// let Parsed::Request(args, used) = parse(buf, &limits).unwrap() else { panic!() };
/// assert_eq!(args, vec![b"GET".to_vec(), b"k".to_vec()]);
/// let Parsed::Request(args, _) = parse(&buf[used..], &limits).unwrap() else { panic!() };
/// assert_eq!(args, vec![b"PING".to_vec()]);
/// assert!(parse(b"*1\r\n$9999999999\r\n", &limits).is_err());
/// ```
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete(1)),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf),
    }
}

/// The position of the `\r` ending the line that starts at `from`, if the `\n` after it has
/// arrived too; `Ok(None)` if the line is incomplete, an error if it is already too long.
///
/// Like Redis (which looks for the line end with `strchr`), a NUL byte hides the rest of the
/// buffer: a line with a NUL before its end never ends.
fn line_end(
    buf: &[u8],
    from: usize,
    too_long: &'static str,
) -> Result<Option<usize>, ProtocolError> {
    match buf[from..].iter().position(|&b| b == b'\r' || b == 0) {
        Some(i) if buf[from + i] == b'\r' && from + i + 1 < buf.len() => Ok(Some(from + i)),
        Some(_) => Ok(None),
        None if buf.len() - from > MAX_INLINE => Err(perr(too_long)),
        None => Ok(None),
    }
}

fn parse_multibulk(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(end) = line_end(buf, 0, "too big mbulk count string")? else {
        return Ok(Parsed::Incomplete(buf.len() + 1));
    };
    let count = parse_i64(&buf[1..end])
        .filter(|&n| n <= MAX_MULTIBULK)
        .ok_or_else(|| perr("invalid multibulk length"))?;
    if !limits.authenticated && count > UNAUTH_MULTIBULK {
        return Err(perr("unauthenticated multibulk length"));
    }
    let mut pos = end + 2;
    if count <= 0 {
        return Ok(Parsed::Request(Vec::new(), pos));
    }
    let count = count as usize;
    let mut args = Vec::with_capacity(count.min(1024));
    while args.len() < count {
        if pos >= buf.len() {
            return Ok(Parsed::Incomplete(pos + 1));
        }
        let Some(end) = line_end(buf, pos, "too big bulk count string")? else {
            return Ok(Parsed::Incomplete(buf.len() + 1));
        };
        if buf[pos] != b'$' {
            let got = buf[pos] as char;
            return Err(ProtocolError(Cow::Owned(format!("expected '$', got '{got}'"))));
        }
        let len = parse_i64(&buf[pos + 1..end])
            .filter(|&n| n >= 0 && n as u64 <= limits.max_bulk_len as u64)
            .ok_or_else(|| perr("invalid bulk length"))?;
        if !limits.authenticated && len > UNAUTH_BULK {
            return Err(perr("unauthenticated bulk length"));
        }
        let start = end + 2;
        let len = len as usize;
        // Like Redis, the two bytes after the data are skipped, not checked.
        if buf.len() < start + len + 2 {
            return Ok(Parsed::Incomplete(start + len + 2));
        }
        args.push(buf[start..start + len].to_vec());
        pos = start + len + 2;
    }
    Ok(Parsed::Request(args, pos))
}

fn parse_inline(buf: &[u8]) -> Result<Parsed, ProtocolError> {
    // Redis finds the newline with `strchr`: a NUL before it hides it.
    let Some(nl) = buf.iter().position(|&b| b == b'\n' || b == 0).filter(|&i| buf[i] == b'\n')
    else {
        if buf.len() > MAX_INLINE {
            return Err(perr("too big inline request"));
        }
        return Ok(Parsed::Incomplete(buf.len() + 1));
    };
    let mut line = &buf[..nl];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    let args = split_args(line).ok_or_else(|| perr("unbalanced quotes in request"))?;
    Ok(Parsed::Request(args, nl + 1))
}

/// C's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Redis's `sdssplitargs`: whitespace-separated arguments, `"..."` with C escapes
/// (`\n`, `\xHH`, ...) and `'...'` with only `\'`. `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Args> {
    let mut args = Vec::new();
    let mut p = 0;
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    loop {
        while at(p) != 0 && is_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(args);
        }
        let (mut inq, mut insq, mut done) = (false, false, false);
        let mut current = Vec::new();
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\'
                    && at(p + 1) == b'x'
                    && hex(at(p + 2)).is_some()
                    && hex(at(p + 3)).is_some()
                {
                    current.push(hex(at(p + 2))? * 16 + hex(at(p + 3))?);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => current.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(current);
    }
}

/// Redis's `string2ll`: a strict decimal `i64` (no sign but `-`, no leading zeros, no
/// spaces, no `-0`).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// A reply, encoded with [`Reply::encode`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+text`.
    Simple(Cow<'static, str>),
    /// `-text`: the text starts with the error code (`ERR`, `WRONGTYPE`, ...). Bytes, not
    /// `str`: like Redis, an error may quote a client's binary argument.
    Error(Cow<'static, [u8]>),
    /// `:n`.
    Int(i64),
    /// `$len` and the bytes.
    Bulk(Arc<[u8]>),
    /// `$-1`.
    Nil,
    /// `*-1`.
    NilArray,
    /// `*n` and the elements.
    Array(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Simple(Cow::Borrowed("OK"));

    /// A bulk reply copied from `bytes`.
    pub fn bulk(bytes: &[u8]) -> Reply {
        Reply::Bulk(Arc::from(bytes))
    }

    /// An error reply with a fixed text.
    pub const fn err(text: &'static str) -> Reply {
        Reply::Error(Cow::Borrowed(text.as_bytes()))
    }

    /// An error reply with a formatted text; `\r` and `\n` become spaces, as in Redis.
    pub fn error(text: String) -> Reply {
        Reply::error_bytes(text.into_bytes())
    }

    /// An error reply with a text of raw bytes; `\r` and `\n` become spaces, as in Redis.
    pub fn error_bytes(mut text: Vec<u8>) -> Reply {
        for b in &mut text {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        Reply::Error(Cow::Owned(text))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the RESP2 encoding of `self` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(s) => {
                out.push(b'-');
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Int(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => {
                out.push(b'$');
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                out.push(b'*');
                out.extend_from_slice(items.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                for item in items {
                    item.encode(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits { max_bulk_len: 100, authenticated: true };

    fn req(buf: &[u8]) -> (Args, usize) {
        match parse(buf, &L).unwrap() {
            Parsed::Request(a, n) => (a, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multibulk_and_partial_input() {
        let full = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        assert_eq!(req(full), (vec![b"ECHO".to_vec(), b"hello".to_vec()], full.len()));
        for cut in 0..full.len() {
            assert!(matches!(parse(&full[..cut], &L).unwrap(), Parsed::Incomplete(_)), "{cut}");
        }
        assert_eq!(req(b"*0\r\n"), (vec![], 4));
    }

    #[test]
    fn protocol_errors_have_redis_text() {
        let e = |b: &[u8]| parse(b, &L).unwrap_err().to_string();
        assert_eq!(e(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(e(b"*9999999999\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(e(b"*1\r\n$101\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(e(b"*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(e(b"*1\r\n:5\r\n"), "Protocol error: expected '$', got ':'");
        assert_eq!(e(b"PING \"a\r\n"), "Protocol error: unbalanced quotes in request");
        assert_eq!(e(&[b'x'; MAX_INLINE + 1]), "Protocol error: too big inline request");
        let mut long = b"*".to_vec();
        long.extend(std::iter::repeat(b'1').take(MAX_INLINE + 1));
        assert_eq!(e(&long), "Protocol error: too big mbulk count string");
        let unauth = Limits { authenticated: false, ..L };
        assert!(parse(b"*11\r\n", &unauth).is_err());
    }

    #[test]
    fn inline_requests_split_like_redis() {
        assert_eq!(
            req(b"SET a \"b c\\x41\\n\"\r\n").0,
            vec![b"SET".to_vec(), b"a".to_vec(), b"b cA\n".to_vec()]
        );
        assert_eq!(req(b"  x  'it\\'s'\n").0, vec![b"x".to_vec(), b"it's".to_vec()]);
        assert_eq!(req(b"\r\n").0, Vec::<Vec<u8>>::new());
        assert!(split_args(b"\"a\"b").is_none());
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [&b"9223372036854775808"[..], b"01", b"-0", b"+1", b" 1", b"", b"1x"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        Reply::Array(vec![
            Reply::OK,
            Reply::Int(-3),
            Reply::bulk(b"ab"),
            Reply::Nil,
            Reply::NilArray,
        ])
        .encode(&mut out);
        assert_eq!(out, b"*5\r\n+OK\r\n:-3\r\n$2\r\nab\r\n$-1\r\n*-1\r\n");
    }
}
