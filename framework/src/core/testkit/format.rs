//! One-line text forms of actions and messages, for traces and golden files.

use crate::core::Action;
use crate::message::{AppendOutcome, Request, Response, SnapshotOutcome};
use crate::types::Entry;

/// An action as one line, e.g. `send 2 AppendEntries term=2 prev=1@3 entries=2@4..2@5 commit=3`.
pub fn format_action(action: &Action) -> String {
    match action {
        Action::SaveHardState(hs) => match hs.voted_for {
            Some(vote) => format!("save term={} vote={vote}", hs.term),
            None => format!("save term={} vote=none", hs.term),
        },
        Action::TruncateLog { from } => format!("truncate from={from}"),
        Action::AppendLog { entries } => format!("append {}", format_entries(entries)),
        Action::Send { to, request } => format!("send {to} {}", format_request(request)),
        Action::Reply { to, response, .. } => format!("reply {to} {}", format_response(response)),
        Action::Apply { entries, clients } => {
            let clients: Vec<String> = clients
                .iter()
                .map(|(index, request)| format!("{request}@{index}"))
                .collect();
            if clients.is_empty() {
                format!("apply {}", format_entries(entries))
            } else {
                format!(
                    "apply {} clients={}",
                    format_entries(entries),
                    clients.join(",")
                )
            }
        }
        Action::Reject { request, error } => format!("reject {request} {error}"),
        Action::ReadReady {
            request,
            read_index,
        } => format!("read-ready {request} index={read_index}"),
        Action::RejectRead { request, error } => format!("reject-read {request} {error}"),
        Action::BuildSnapshot { last_included, .. } => format!("build-snapshot {last_included}"),
        Action::PurgeLog { up_to } => format!("purge up_to={up_to}"),
        Action::SendSnapshotChunk { to, request, len } => format!(
            "send {to} InstallSnapshot term={} last={} size={} offset={} len={len}{}",
            request.term,
            request.meta.last_included,
            request.meta.size_bytes,
            request.offset,
            if request.done { " done" } else { "" }
        ),
        Action::ReceiveSnapshotChunk { meta, offset, data } => format!(
            "receive-snapshot {} offset={offset} len={}",
            meta.last_included,
            data.len()
        ),
        Action::InstallSnapshot { meta } => format!("install-snapshot {}", meta.last_included),
        Action::RestoreSnapshot { meta } => format!("restore-snapshot {}", meta.last_included),
        Action::ChangeDone { request, result } => match result {
            Ok(membership) => format!("change-done {request} voters={:?}", membership.voters()),
            Err(error) => format!("change-done {request} {error}"),
        },
    }
}

/// A request as one line.
pub fn format_request(request: &Request) -> String {
    match request {
        Request::AppendEntries(req) => format!(
            "AppendEntries term={} prev={} entries={} commit={}",
            req.term,
            req.prev_log_id,
            format_entries(&req.entries),
            req.leader_commit
        ),
        Request::RequestVote(req) => {
            let kind = if req.pre_vote {
                "PreVote"
            } else {
                "RequestVote"
            };
            format!("{kind} term={} last={}", req.term, req.last_log_id)
        }
        Request::InstallSnapshot(req) => format!(
            "InstallSnapshot term={} last={} size={} offset={} len={}{}",
            req.term,
            req.meta.last_included,
            req.meta.size_bytes,
            req.offset,
            req.data.len(),
            if req.done { " done" } else { "" }
        ),
        Request::TimeoutNow(req) => format!("TimeoutNow term={}", req.term),
    }
}

/// A response as one line.
pub fn format_response(response: &Response) -> String {
    match response {
        Response::AppendEntries(resp) => {
            let outcome = match resp.outcome {
                AppendOutcome::Success { match_index } => format!("success match={match_index}"),
                AppendOutcome::Conflict {
                    rejected_index,
                    hint,
                } => match hint.conflict_term {
                    Some(term) => format!(
                        "conflict rejected={rejected_index} hint=term {term} from {}",
                        hint.first_index
                    ),
                    None => format!(
                        "conflict rejected={rejected_index} hint=log ends before {}",
                        hint.first_index
                    ),
                },
                AppendOutcome::StaleTerm => "stale-term".to_string(),
            };
            format!("AppendEntriesResponse term={} {outcome}", resp.term)
        }
        Response::RequestVote(resp) => {
            let kind = if resp.pre_vote {
                "PreVoteResponse"
            } else {
                "VoteResponse"
            };
            let verdict = if resp.granted { "granted" } else { "rejected" };
            format!("{kind} term={} {verdict}", resp.term)
        }
        Response::InstallSnapshot(resp) => {
            let outcome = match resp.outcome {
                SnapshotOutcome::Continue { next_offset } => {
                    format!("continue offset={next_offset}")
                }
                SnapshotOutcome::Installed { match_index } => {
                    format!("installed match={match_index}")
                }
                SnapshotOutcome::Stale { match_index } => format!("stale match={match_index}"),
                SnapshotOutcome::StaleTerm => "stale-term".to_string(),
            };
            format!(
                "InstallSnapshotResponse term={} last={} {outcome}",
                resp.term, resp.last_included
            )
        }
        Response::TimeoutNow(resp) => {
            format!(
                "TimeoutNowResponse term={} accepted={}",
                resp.term, resp.accepted
            )
        }
    }
}

/// Entries as `[]`, `2@4`, or a range `2@4..3@9 (6)`.
fn format_entries(entries: &[Entry]) -> String {
    match entries {
        [] => "[]".to_string(),
        [only] => only.log_id.to_string(),
        [first, .., last] => format!("{}..{} ({})", first.log_id, last.log_id, entries.len()),
    }
}
