//! [`WireConnection`]: the load generator's own HTTP/1.1 client, one request in flight per
//! connection, as cheap as a client can be so it takes as little CPU as possible from the
//! servers it measures (they share the machine).
//!
//! ```text
//!  send(method, path, body) ─► request head + body built in a reused buffer ─► one write
//!      ◄─ status ◄─ body skipped (Content-Length or chunked) ◄─ head parsed (httparse) ◄─ reads
//! ```
//!
//! hyper's client runs each connection as a task of its own and hands every request and answer
//! between that task and the caller; on the two-core benchmark machine that cost about a fifth
//! of all CPU at 64 clients. Here the client's own task writes the request and reads the answer,
//! and only the status is kept: the benchmark never looks at a body. The answer's framing is
//! checked, so a connection that loses its place fails rather than miscount.

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most headers an answer may carry.
const MAX_HEADERS: usize = 64;

/// The most bytes an answer may take, head and body: far more than any benchmark answer.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The read buffer's first size; it doubles when an answer does not fit.
const READ_CHUNK: usize = 16 << 10;

/// Why a request on a [`WireConnection`] got no usable answer. Any of them leaves the
/// connection unusable.
#[derive(Debug, Error)]
pub enum WireError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before the answer was complete.
    #[error("the server closed the connection")]
    Closed,
    /// The answer is not HTTP/1.1 this client can frame.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// No complete answer in time.
    #[error("no answer in time")]
    Timeout,
}

/// One open connection, for many requests in turn.
pub struct WireConnection {
    stream: TcpStream,
    authority: String,
    /// The request being written: reused, so a request allocates nothing.
    request: Vec<u8>,
    /// Bytes read and not yet consumed: `input[..filled]`.
    input: Vec<u8>,
    filled: usize,
}

/// Where the body of an answer ends.
enum Framing {
    Length(usize),
    Chunked,
}

impl WireConnection {
    /// Connects to `authority` (`host:port`) within `timeout`.
    pub async fn connect(authority: &str, timeout: Duration) -> Result<Self, WireError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(authority))
            .await
            .map_err(|_| WireError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(WireConnection {
            stream,
            authority: authority.to_string(),
            request: Vec::with_capacity(256),
            input: vec![0; READ_CHUNK],
            filled: 0,
        })
    }

    /// Sends one request and reads its whole answer within `timeout`; returns the status.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u16, WireError> {
        tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| WireError::Timeout)?
    }

    async fn exchange(&mut self, method: &str, path: &str, body: &[u8]) -> Result<u16, WireError> {
        self.write_request(method, path, body);
        self.stream.write_all(&self.request).await?;
        let (status, head_bytes, framing) = self.read_head().await?;
        let body_end = match framing {
            Framing::Length(length) => {
                let end = head_bytes
                    .checked_add(length)
                    .filter(|&end| end <= MAX_ANSWER_BYTES)
                    .ok_or_else(|| malformed("the body is too long"))?;
                self.fill_to(end).await?;
                end
            }
            Framing::Chunked => self.chunked_end(head_bytes).await?,
        };
        self.consume(body_end);
        Ok(status)
    }

    fn write_request(&mut self, method: &str, path: &str, body: &[u8]) {
        use std::io::Write;
        self.request.clear();
        // Writing to a Vec cannot fail.
        let _ = write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n\r\n",
            self.authority,
            body.len()
        );
        self.request.extend_from_slice(body);
    }

    /// Reads until a whole head is buffered; returns the status, the head's length and how the
    /// body is framed.
    async fn read_head(&mut self) -> Result<(u16, usize, Framing), WireError> {
        loop {
            if let Some(head) = parse_head(&self.input[..self.filled])? {
                return Ok(head);
            }
            self.read_more().await?;
        }
    }

    /// Reads until `input` holds at least `end` bytes.
    async fn fill_to(&mut self, end: usize) -> Result<(), WireError> {
        while self.filled < end {
            self.read_more().await?;
        }
        Ok(())
    }

    /// Reads until the chunked body starting at `at` is whole; returns where it ends.
    async fn chunked_end(&mut self, mut at: usize) -> Result<usize, WireError> {
        loop {
            match chunk_step(&self.input[..self.filled], at)? {
                Chunk::Data(next) => at = next,
                Chunk::End(end) => return Ok(end),
                Chunk::Partial => self.read_more().await?,
            }
        }
    }

    /// One read into the free end of the buffer, which doubles when full.
    async fn read_more(&mut self) -> Result<(), WireError> {
        if self.filled == self.input.len() {
            if self.input.len() >= MAX_ANSWER_BYTES {
                return Err(malformed("the answer is too long"));
            }
            let grown = (self.input.len() * 2).clamp(READ_CHUNK, MAX_ANSWER_BYTES);
            self.input.resize(grown, 0);
        }
        match self.stream.read(&mut self.input[self.filled..]).await? {
            0 => Err(WireError::Closed),
            read => {
                self.filled += read;
                Ok(())
            }
        }
    }

    /// Drops the first `used` buffered bytes (one answer), keeping whatever follows.
    fn consume(&mut self, used: usize) {
        self.input.copy_within(used..self.filled, 0);
        self.filled -= used;
    }
}

/// Parses an answer's head from `bytes`: None while it is incomplete.
fn parse_head(bytes: &[u8]) -> Result<Option<(u16, usize, Framing)>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let head_bytes = match answer.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(malformed(&error.to_string())),
    };
    let status = answer.code.ok_or_else(|| malformed("no status"))?;
    if status < 200 {
        return Err(malformed("an informational answer (1xx)"));
    }
    let framing = if status == 204 || status == 304 {
        Framing::Length(0)
    } else {
        framing(answer.headers)?
    };
    Ok(Some((status, head_bytes, framing)))
}

/// How the headers frame the body: chunked, or a length; an answer that ends only when the
/// connection closes cannot be followed by another, so it is refused.
fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, WireError> {
    let mut length = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked = header.value.eq_ignore_ascii_case(b"chunked");
            return if chunked {
                Ok(Framing::Chunked)
            } else {
                Err(malformed("a transfer encoding other than chunked"))
            };
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).unwrap_or("");
            let parsed = text.trim().parse::<usize>();
            length = Some(parsed.map_err(|_| malformed("a bad content-length"))?);
        }
    }
    length
        .map(Framing::Length)
        .ok_or_else(|| malformed("neither content-length nor chunked"))
}

/// One step through a chunked body.
#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    /// A whole data chunk; the next starts here.
    Data(usize),
    /// The last chunk and the trailers are whole; the answer ends here.
    End(usize),
    /// More bytes are needed.
    Partial,
}

/// Reads the chunk that starts at `at` in `bytes`.
fn chunk_step(bytes: &[u8], at: usize) -> Result<Chunk, WireError> {
    let rest = &bytes[at..];
    let (size_bytes, size) = match httparse::parse_chunk_size(rest) {
        Ok(httparse::Status::Complete(found)) => found,
        Ok(httparse::Status::Partial) => return Ok(Chunk::Partial),
        Err(_) => return Err(malformed("a bad chunk size")),
    };
    if size == 0 {
        return Ok(
            trailers_end(rest, size_bytes).map_or(Chunk::Partial, |end| Chunk::End(at + end))
        );
    }
    let size = usize::try_from(size)
        .ok()
        .filter(|&size| size <= MAX_ANSWER_BYTES)
        .ok_or_else(|| malformed("a chunk too long"))?;
    let end = size_bytes + size + 2;
    if rest.len() < end {
        return Ok(Chunk::Partial);
    }
    if &rest[end - 2..end] != b"\r\n" {
        return Err(malformed("a chunk not ended by CRLF"));
    }
    Ok(Chunk::Data(at + end))
}

/// Where the trailers after the last chunk end (at the first empty line from `from`), if they
/// are whole.
fn trailers_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let line = bytes[from..].windows(2).position(|pair| pair == b"\r\n")?;
        from += line + 2;
        if line == 0 {
            return Some(from);
        }
    }
}

fn malformed(what: &str) -> WireError {
    WireError::Malformed(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> (u16, usize, Framing) {
        match parse_head(text.as_bytes()) {
            Ok(Some(head)) => head,
            other => panic!(
                "{text:?} did not parse: {:?}",
                other.map(|h| h.map(|h| h.0))
            ),
        }
    }

    #[test]
    fn heads_give_status_and_framing() {
        let (status, length, framing) = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello");
        assert_eq!((status, length), (200, 38));
        assert!(matches!(framing, Framing::Length(5)));
        let (status, _, framing) =
            head("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(status, 404);
        assert!(matches!(framing, Framing::Chunked));
        let (_, _, framing) = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert!(matches!(framing, Framing::Length(0)));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le"),
            Ok(None)
        ));
    }

    #[test]
    fn unframed_or_bad_heads_are_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(text.as_bytes()), Err(WireError::Malformed(_))),
                "{text:?} was accepted"
            );
        }
    }

    #[test]
    fn chunked_bodies_are_walked_to_their_end() {
        let body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        assert_eq!(chunk_step(body, 0).ok(), Some(Chunk::Data(10)));
        assert_eq!(chunk_step(body, 10).ok(), Some(Chunk::Data(24)));
        assert_eq!(chunk_step(body, 24).ok(), Some(Chunk::End(body.len() - 4)));
        // Every prefix short of a whole chunk asks for more.
        for cut in 1..10 {
            assert_eq!(
                chunk_step(&body[..cut], 0).ok(),
                Some(Chunk::Partial),
                "cut {cut}"
            );
        }
        for cut in 24..body.len() - 4 {
            assert_eq!(
                chunk_step(&body[..cut], 24).ok(),
                Some(Chunk::Partial),
                "cut {cut}"
            );
        }
        assert!(chunk_step(b"5\r\nhelloXX", 0).is_err());
        assert!(chunk_step(b"zz\r\n", 0).is_err());
    }

    /// Reads one request head (these requests have empty bodies) from `socket`.
    async fn read_request(socket: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") {
            let read = socket.read(&mut byte).await.expect("read");
            assert_eq!(read, 1, "the client closed early");
            seen.push(byte[0]);
        }
        String::from_utf8(seen).expect("text")
    }

    #[tokio::test]
    async fn answers_are_read_back_to_back_on_one_connection() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let first = read_request(&mut socket).await;
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            socket.write_all(answer.as_bytes()).await.expect("write");
            let second = read_request(&mut socket).await;
            // A chunked answer in pieces that split the head, a size line and a chunk.
            for piece in [
                "HTTP/1.1 503 Busy\r\ntransfer-enc",
                "oding: chunked\r\n\r\n4\r",
                "\nbu",
                "sy\r\n0\r\n\r\n",
            ] {
                socket.write_all(piece.as_bytes()).await.expect("write");
                socket.flush().await.expect("flush");
                tokio::task::yield_now().await;
            }
            (first, second)
        });
        let timeout = Duration::from_secs(5);
        let mut connection = WireConnection::connect(&address, timeout)
            .await
            .expect("connect");
        let first = connection.send("PUT", "/kv/a", b"", timeout).await;
        assert_eq!(first.ok(), Some(200));
        let second = connection.send("GET", "/kv/b", b"", timeout).await;
        assert_eq!(second.ok(), Some(503));
        assert_eq!(connection.filled, 0, "nothing of the answers is left over");
        let (first, second) = server.await.expect("server");
        assert!(first.starts_with("PUT /kv/a HTTP/1.1\r\nhost: 127.0.0.1:"));
        assert!(first.ends_with("content-length: 0\r\n\r\n"));
        assert!(second.starts_with("GET /kv/b HTTP/1.1\r\n"));
    }
}
