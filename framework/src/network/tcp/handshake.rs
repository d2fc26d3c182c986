//! The handshake that opens every connection, before any RPC:
//!
//! ```text
//!  connecting node                                  accepting node
//!  Hello { magic, version, cluster_id, from, to } ──►  checks magic, version, cluster id,
//!                                                      to == itself, from != itself
//!        ◄── Welcome { node }                          (or Refused(reason), then closes)
//! ```
//!
//! Both frames are tiny and limited to [`HANDSHAKE_FRAME_BYTES`]: a peer that has not introduced
//! itself gets no large buffer.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::types::NodeId;

use super::error::{FrameError, HandshakeError, Refusal};
use super::frame::{encode_frame, read_frame, Frame, Hello, HANDSHAKE_FRAME_BYTES, MAGIC, VERSION};

/// The connecting side: introduces itself and waits for the accepting node's answer.
pub(crate) async fn offer<S>(stream: &mut S, hello: Hello) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let expected = hello.to;
    send(stream, &Frame::Hello(hello)).await?;
    match read_frame(stream, HANDSHAKE_FRAME_BYTES).await? {
        Frame::Welcome { node } if node == expected => Ok(()),
        Frame::Welcome { node } => Err(HandshakeError::WrongPeer {
            expected,
            actual: node,
        }),
        Frame::Refused(refusal) => Err(HandshakeError::RefusedByPeer(refusal)),
        _ => Err(FrameError::Unexpected("non-handshake").into()),
    }
}

/// The accepting side: reads the peer's introduction and welcomes or refuses it. Returns the
/// introduction of a welcomed peer.
pub(crate) async fn accept<S>(
    stream: &mut S,
    id: NodeId,
    cluster_id: &str,
) -> Result<Hello, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = match read_frame(stream, HANDSHAKE_FRAME_BYTES).await? {
        Frame::Hello(hello) if hello.magic == MAGIC => hello,
        Frame::Hello(_) => return Err(FrameError::Decode("bad magic".into()).into()),
        _ => return Err(FrameError::Unexpected("non-handshake").into()),
    };
    match check(&hello, id, cluster_id) {
        Ok(()) => {
            send(stream, &Frame::Welcome { node: id }).await?;
            Ok(hello)
        }
        Err(refusal) => {
            // Best effort: the peer learns why, then the connection closes either way.
            let _ = send(stream, &Frame::Refused(refusal.clone())).await;
            Err(HandshakeError::Refused(refusal))
        }
    }
}

/// Whether node `id` of cluster `cluster_id` accepts a peer introducing itself with `hello`.
pub(crate) fn check(hello: &Hello, id: NodeId, cluster_id: &str) -> Result<(), Refusal> {
    if hello.version != VERSION {
        return Err(Refusal::Version {
            expected: VERSION,
            got: hello.version,
        });
    }
    if hello.cluster_id != cluster_id {
        return Err(Refusal::ClusterMismatch {
            expected: cluster_id.to_string(),
            got: hello.cluster_id.clone(),
        });
    }
    if hello.to != id {
        return Err(Refusal::WrongNode {
            expected: hello.to,
            actual: id,
        });
    }
    if hello.from == id {
        return Err(Refusal::OwnId(id));
    }
    Ok(())
}

async fn send<S>(stream: &mut S, frame: &Frame) -> Result<(), FrameError>
where
    S: AsyncWrite + Unpin,
{
    let bytes = encode_frame(frame, HANDSHAKE_FRAME_BYTES)?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    Ok(())
}
