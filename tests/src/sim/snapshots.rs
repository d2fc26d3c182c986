//! Log compaction in the simulator: building, storing, sending and restoring snapshots, with the
//! same effects the actor performs (see `raftor::actor`'s `snapshot_io`).
//!
//! The state machine's image is the whole list of applied entries plus the key-value map, so a
//! node restored from a snapshot still knows every entry it "applied" and the invariant checker
//! can hold it to state machine safety. Building takes a disk write's time and is durable only
//! when it completes (a crash before loses it); sending reads the chunk from the durable
//! snapshot, or sends nothing if a newer one replaced it; restoring replaces the state machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use raftor::message::{InstallSnapshotRequest, Request};
use raftor::types::SnapshotMeta;
use raftor::{codec, Entry, LogId, Membership, NodeId};

use super::kv::KvStore;
use super::network::Message;
use super::world::{Event, World};

/// The bytes of a state machine image: every applied entry, and the store's values.
type Image = (Vec<Entry>, BTreeMap<u8, u64>);

impl World {
    /// `Effect::BuildSnapshot`: the state machine holds exactly the entries up to
    /// `last_included` (the simulator applies at once, in order); store its image after a disk
    /// write's time.
    pub(super) fn build_snapshot(
        &mut self,
        id: NodeId,
        last_included: LogId,
        membership: Membership,
    ) {
        let latency = self.nodes[&id].disk.latency(&mut self.rng);
        let node = self.nodes.get_mut(&id).expect("known node");
        assert_eq!(
            node.applied.last().map(|entry| entry.log_id),
            Some(last_included),
            "node {id}: snapshot at {last_included}, but the state machine applied {} entries",
            node.applied.len()
        );
        let image: Image = (node.applied.clone(), node.kv.values().clone());
        let data = codec::encode(&image).expect("images encode");
        let meta = SnapshotMeta {
            last_included,
            membership,
            size_bytes: data.len() as u64,
        };
        let incarnation = node.incarnation;
        self.schedule(latency, Event::SnapshotSaved(id, incarnation, meta, data));
    }

    /// The snapshot build finished: durable now, reported to the node.
    pub fn snapshot_saved(
        &mut self,
        id: NodeId,
        incarnation: u64,
        meta: SnapshotMeta,
        data: Vec<u8>,
    ) {
        let node = self.nodes.get_mut(&id).expect("known node");
        if node.incarnation != incarnation || node.executor.is_none() {
            return;
        }
        node.disk.save_snapshot(meta.clone(), data);
        self.snapshots_built += 1;
        self.note(Some(id), || {
            format!("n{id} snapshot {} durable", meta.last_included)
        });
        self.with_executor(id, |e| e.snapshot_built(meta));
    }

    /// `Effect::RestoreSnapshot`: the snapshot is durable (the executor waited for the install);
    /// the state machine takes its image, and the node hears it applied after the apply
    /// worker's latency, in order.
    pub(super) fn restore_snapshot(&mut self, id: NodeId, meta: &SnapshotMeta) {
        let latency = 50 + self.rng.below(500);
        let node = self.nodes.get_mut(&id).expect("known node");
        let (applied, kv) = match &node.disk.snapshot {
            Some((held, data)) if held == meta => decode_image(id, data),
            _ => panic!(
                "node {id}: restoring {} it does not hold",
                meta.last_included
            ),
        };
        node.applied = applied;
        node.kv = kv;
        let done_at = node.apply_free_at.max(self.now) + latency;
        node.apply_free_at = done_at;
        let incarnation = node.incarnation;
        let up_to = meta.last_included.index;
        self.schedule(done_at - self.now, Event::Applied(id, incarnation, up_to));
        self.note(Some(id), || {
            format!("n{id} restored snapshot {}", meta.last_included)
        });
        self.serve_parked_reads(id);
    }

    /// `Effect::SendSnapshotChunk`: read the chunk from the snapshot held for this follower's
    /// transfer (taken from the disk when the transfer starts; kept even once a newer snapshot
    /// replaced it there, as the actor holds it open) and send it.
    pub(super) fn send_snapshot_chunk(
        &mut self,
        id: NodeId,
        to: NodeId,
        mut request: InstallSnapshotRequest,
        len: u64,
    ) {
        let node = self.nodes.get_mut(&id).expect("known node");
        let wanted = request.meta.last_included;
        let held = node
            .sending
            .get(&to)
            .filter(|(meta, _)| meta.last_included == wanted)
            .map(|(_, data)| Arc::clone(data));
        let data = match held {
            Some(data) => data,
            None => match node.disk.snapshot.as_ref() {
                Some((meta, data)) if meta.last_included == wanted => {
                    let data: Arc<[u8]> = Arc::from(data.as_slice());
                    node.sending.insert(to, (meta.clone(), Arc::clone(&data)));
                    data
                }
                _ => return,
            },
        };
        let node = &self.nodes[&id];
        let start = (request.offset as usize).min(data.len());
        let end = (request.offset.saturating_add(len) as usize).min(data.len());
        request.data = data[start..end].to_vec();
        let message = Message::Request {
            from: id,
            from_incarnation: node.incarnation,
            to,
            sent_at: self.now,
            request: Request::InstallSnapshot(request),
        };
        self.send(message);
    }

    /// The state a restarting node's state machine starts from: its latest snapshot's image.
    pub(super) fn recovered_state_machine(&self, id: NodeId) -> (Vec<Entry>, KvStore) {
        match &self.nodes[&id].disk.snapshot {
            Some((_, data)) => decode_image(id, data),
            None => (Vec::new(), KvStore::default()),
        }
    }
}

fn decode_image(id: NodeId, data: &[u8]) -> (Vec<Entry>, KvStore) {
    let (applied, values): Image = codec::decode(data)
        .unwrap_or_else(|error| panic!("node {id}: its snapshot does not decode: {error}"));
    (applied, KvStore::from_values(values))
}
