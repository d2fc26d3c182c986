//! [`KvStore`]: the replicated state machine. A hash map of string keys to byte values, and
//! the cluster's address book: for every node that registered, its raft and HTTP addresses.
//!
//! ```text
//!  HTTP handler ──► Command ──► raft.client_write ──► log, replicated, committed
//!                                                        │ on every node, in log order
//!                                                        ▼
//!                               KvStore::apply(index, Command) ──► Response { index, .. }
//!                                    │ SetNode: also tells the local transport (set_peer)
//! ```
//!
//! `apply` is deterministic: it reads only the map and the command. The one side effect, the
//! [`PeerHook`] that points this node's `TcpNetwork` at a registered node's raft address, does not
//! change the state, so replicas stay identical. Answers that are normal outcomes of a command (a
//! failed compare-and-set, a delete of a missing key) are responses, never errors.
//!
//! A snapshot is the whole map and address book, encoded with raftor's codec (bincode), streamed
//! to followers by raftor in chunks, read back by [`KvStore::restore`]. Taking one costs a copy of
//! the map's structure only: values are shared (`Value`, an `Arc<[u8]>`), and the encoding
//! happens in the returned reader, on the blocking thread raftor reads it from, not between two
//! applies (with 4 KiB values, encoding 26 MB there stalled every write for tens of milliseconds).
//! Values are encoded as byte strings, in one copy each, not byte by byte.
//!
//! The map is a `HashMap`: nothing asks for keys in order, and with a `BTreeMap` every write paid
//! a dozen string comparisons to find its place: the map took 5.8 % of the servers' CPU at 64
//! clients, the hash map takes 2.8 %.
//! A snapshot lists the keys in the map's order, which differs between nodes; restoring one
//! gives the same map on every node.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Read};
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use raftor::state_machine::SnapshotData;
use raftor::types::SnapshotMeta;
use raftor::{codec, LogIndex, NodeId, StateMachine, StateMachineError};
use serde::{Deserialize, Serialize};

/// Where a node can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddrs {
    /// The raft (TCP transport) address its peers connect to.
    pub raft: SocketAddr,
    /// The HTTP address clients (and other nodes, for membership requests) use.
    pub http: SocketAddr,
}

/// A write, as it travels through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value (as one byte string: see `raftor::codec::bytes`).
        #[serde(with = "raftor::codec::bytes")]
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Set `key` to `value` (`None`: remove it) only if it currently holds `expected`
    /// (`None`: only if it is absent).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold, or `None` for "absent".
        expected: Option<Vec<u8>>,
        /// The new value, or `None` to remove the key.
        value: Option<Vec<u8>>,
    },
    /// Record node `id`'s addresses in the address book.
    SetNode {
        /// The node.
        id: NodeId,
        /// Its addresses.
        addrs: NodeAddrs,
    },
}

/// What applying a [`Command`] did, and at which log index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The log index of the command.
    pub index: LogIndex,
    /// The command's outcome.
    pub outcome: Outcome,
}

/// A command's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// A put or an address took effect.
    Written,
    /// A delete; whether the key existed.
    Deleted {
        /// Whether the key held a value before.
        existed: bool,
    },
    /// A compare-and-set took effect.
    Swapped,
    /// A compare-and-set did not match; the key's current value.
    Mismatch {
        /// What the key holds (`None`: absent).
        current: Option<Vec<u8>>,
    },
}

/// A snapshot's bytes, encoded on the first read (on the thread that reads them).
enum ImageReader {
    /// Not read yet.
    Image(Image),
    /// Encoded, partly read.
    Bytes(Cursor<Vec<u8>>),
}

impl Read for ImageReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let ImageReader::Image(image) = self {
            let bytes = codec::encode(&*image).map_err(std::io::Error::other)?;
            *self = ImageReader::Bytes(Cursor::new(bytes));
        }
        match self {
            ImageReader::Bytes(cursor) => cursor.read(buf),
            ImageReader::Image(_) => Ok(0),
        }
    }
}

/// Told about every node whose addresses the state machine learns (from a `SetNode` entry or a
/// snapshot), so the transport can reach it.
pub type PeerHook = Arc<dyn Fn(NodeId, &NodeAddrs) + Send + Sync>;

/// A value: shared, so a snapshot copies none of its bytes, and serialized as one byte string.
/// (A bare `Arc<[u8]>` goes through serde byte by byte, in both directions: with 4 KiB values
/// that was most of a snapshot's cost, and the same bytes on the wire.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Value(#[serde(with = "raftor::codec::bytes")] Arc<[u8]>);

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Value {
        Value(bytes.into())
    }
}

impl std::ops::Deref for Value {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize)]
struct Image {
    map: HashMap<String, Value>,
    nodes: BTreeMap<NodeId, NodeAddrs>,
}

/// The replicated state.
#[derive(Default)]
pub struct KvStore {
    /// The data. Invariant: identical on every node that applied the same prefix of the log.
    /// Values are shared so a snapshot copies no value bytes.
    map: HashMap<String, Value>,
    /// The address book: every node that registered its addresses.
    nodes: BTreeMap<NodeId, NodeAddrs>,
    /// Told about addresses as they are applied or restored (not part of the state).
    on_peer: Option<PeerHook>,
}

impl KvStore {
    /// An empty store that tells `on_peer` about the addresses it learns.
    pub fn new(on_peer: PeerHook) -> KvStore {
        KvStore {
            on_peer: Some(on_peer),
            ..KvStore::default()
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.map.get(key).map(|value| &value[..])
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The address book.
    pub fn nodes(&self) -> &BTreeMap<NodeId, NodeAddrs> {
        &self.nodes
    }

    fn execute(&mut self, command: Command) -> Outcome {
        match command {
            Command::Put { key, value } => {
                self.map.insert(key, value.into());
                Outcome::Written
            }
            Command::Delete { key } => Outcome::Deleted {
                existed: self.map.remove(&key).is_some(),
            },
            Command::Cas {
                key,
                expected,
                value,
            } => self.compare_and_set(key, expected, value),
            Command::SetNode { id, addrs } => {
                self.tell_peer(id, &addrs);
                self.nodes.insert(id, addrs);
                Outcome::Written
            }
        }
    }

    fn compare_and_set(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> Outcome {
        let current = self.map.get(&key);
        if current.map(|value| &value[..]) != expected.as_deref() {
            return Outcome::Mismatch {
                current: current.map(|value| value.to_vec()),
            };
        }
        match value {
            Some(value) => self.map.insert(key, value.into()),
            None => self.map.remove(&key),
        };
        Outcome::Swapped
    }

    fn tell_peer(&self, id: NodeId, addrs: &NodeAddrs) {
        if let Some(hook) = &self.on_peer {
            hook(id, addrs);
        }
    }
}

#[async_trait]
impl StateMachine for KvStore {
    type Command = Command;
    type Response = Response;

    async fn apply(
        &mut self,
        index: LogIndex,
        command: Command,
    ) -> Result<Response, StateMachineError> {
        let outcome = self.execute(command);
        Ok(Response { index, outcome })
    }

    /// Copies the state into an encoded image; raftor reads it on a blocking thread.
    async fn snapshot(&mut self) -> Result<SnapshotData, StateMachineError> {
        let image = Image {
            map: self.map.clone(),
            nodes: self.nodes.clone(),
        };
        Ok(Box::new(ImageReader::Image(image)))
    }

    /// Replaces the state with the snapshot's, and tells the transport every address in it.
    async fn restore(
        &mut self,
        _meta: &SnapshotMeta,
        mut data: SnapshotData,
    ) -> Result<(), StateMachineError> {
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes)
            .map_err(|error| StateMachineError::Io(error.to_string()))?;
        let image: Image = codec::decode(&bytes).map_err(StateMachineError::Io)?;
        self.map = image.map;
        self.nodes = image.nodes;
        for (id, addrs) in &self.nodes {
            self.tell_peer(*id, addrs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use raftor::LogId;

    use super::*;

    async fn apply(store: &mut KvStore, index: u64, command: Command) -> Outcome {
        let response = store.apply(LogIndex(index), command).await.expect("apply");
        assert_eq!(response.index, LogIndex(index));
        response.outcome
    }

    fn put(key: &str, value: &str) -> Command {
        Command::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn cas(key: &str, expected: Option<&str>, value: Option<&str>) -> Command {
        Command::Cas {
            key: key.into(),
            expected: expected.map(Into::into),
            value: value.map(Into::into),
        }
    }

    #[tokio::test]
    async fn put_and_delete() {
        let mut store = KvStore::default();
        assert_eq!(apply(&mut store, 1, put("a", "1")).await, Outcome::Written);
        assert_eq!(store.get("a"), Some(&b"1"[..]));
        let delete = Command::Delete { key: "a".into() };
        let outcome = apply(&mut store, 2, delete.clone()).await;
        assert_eq!(outcome, Outcome::Deleted { existed: true });
        let outcome = apply(&mut store, 3, delete).await;
        assert_eq!(outcome, Outcome::Deleted { existed: false });
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn cas_matches_absent_present_and_deletes() {
        let mut store = KvStore::default();
        assert_eq!(
            apply(&mut store, 1, cas("k", None, Some("v1"))).await,
            Outcome::Swapped
        );
        assert_eq!(
            apply(&mut store, 2, cas("k", None, Some("v2"))).await,
            Outcome::Mismatch {
                current: Some(b"v1".to_vec())
            }
        );
        assert_eq!(
            apply(&mut store, 3, cas("k", Some("v1"), Some("v2"))).await,
            Outcome::Swapped
        );
        assert_eq!(store.get("k"), Some(&b"v2"[..]));
        assert_eq!(
            apply(&mut store, 4, cas("k", Some("v2"), None)).await,
            Outcome::Swapped
        );
        assert_eq!(
            apply(&mut store, 5, cas("k", Some("v2"), None)).await,
            Outcome::Mismatch { current: None }
        );
    }

    #[test]
    fn values_encode_as_one_byte_string_in_the_old_format() {
        let plain: BTreeMap<String, Arc<[u8]>> =
            BTreeMap::from([("k".to_string(), Arc::from(vec![1u8, 2, 3]))]);
        let wrapped = BTreeMap::from([("k".to_string(), Value::from(vec![1u8, 2, 3]))]);
        let bytes = codec::encode(&plain).expect("encodes");
        assert_eq!(codec::encode(&wrapped).expect("encodes"), bytes);
        assert_eq!(
            codec::decode::<BTreeMap<String, Value>>(&bytes),
            Ok(wrapped),
            "snapshots taken before still restore"
        );
        // Images written when the map was a BTreeMap decode into today's HashMap.
        let keys =
            ["a", "b", "c"].map(|key| (key.to_string(), Value::from(key.as_bytes().to_vec())));
        let old = (
            BTreeMap::from(keys.clone()),
            BTreeMap::<NodeId, NodeAddrs>::new(),
        );
        let image: Image = codec::decode(&codec::encode(&old).expect("encodes")).expect("decodes");
        assert_eq!(image.map, HashMap::from(keys));
    }

    #[tokio::test]
    async fn snapshot_restores_map_and_addresses() {
        let mut store = KvStore::default();
        apply(&mut store, 1, put("a", "1")).await;
        apply(&mut store, 2, put("b", "2")).await;
        let addrs = NodeAddrs {
            raft: "127.0.0.1:7001".parse().expect("addr"),
            http: "127.0.0.1:8001".parse().expect("addr"),
        };
        let set = Command::SetNode {
            id: NodeId(4),
            addrs: addrs.clone(),
        };
        apply(&mut store, 3, set).await;
        let data = store.snapshot().await.expect("snapshot");

        let told = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&told);
        let hook: PeerHook = Arc::new(move |id, addrs| {
            seen.lock().expect("lock").push((id, addrs.clone()));
        });
        let mut restored = KvStore::new(hook);
        let meta = SnapshotMeta {
            last_included: LogId::new(raftor::Term(1), LogIndex(3)),
            ..SnapshotMeta::default()
        };
        restored.restore(&meta, data).await.expect("restore");
        assert_eq!(restored.map, store.map);
        assert_eq!(restored.nodes, store.nodes);
        assert_eq!(*told.lock().expect("lock"), vec![(NodeId(4), addrs)]);
    }

    #[tokio::test]
    async fn garbage_snapshot_is_an_error_not_a_panic() {
        let mut store = KvStore::default();
        let data: SnapshotData = Box::new(Cursor::new(vec![0xff; 7]));
        let result = store.restore(&SnapshotMeta::default(), data).await;
        assert!(result.is_err());
    }
}
