//! The outbox: every job event the control plane has not acknowledged yet,
//! in memory and on disk, so a broken connection, a control-plane restart or
//! an agent restart loses nothing.
//!
//! One file per attempt (`<job id>.<epoch>.jsonl` in `outbox/` under the
//! agent's directory), one event per line, appended before the event is sent.
//! Output chunks are written without waiting for the disk; an attempt's
//! outcome is flushed to disk (fsync) before it is sent, so a result that was
//! ever reported survives a crash of the agent. A file goes once the control
//! plane acknowledged the outcome.
//!
//! Writes happen on a dedicated thread: the tasks streaming tokens never wait
//! on the file system.
//!
//! The outbox is the boundary every job event crosses on its way out, so the
//! policy's redaction happens here: with `redact_phi` on, identifiers in
//! streamed text, progress messages and outcomes (error messages included)
//! are replaced before the event is recorded. Streamed text keeps a short
//! tail back until more arrives, so an identifier split across batches is
//! still seen whole.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use marketer_protocol::documents::RedactionCounts;
use marketer_protocol::{JobEvent, JobEventBody, JobOutcome, JobRef};
use tokio::sync::{Notify, oneshot};

use crate::privacy::Redactor;

/// One attempt's unacknowledged events.
#[derive(Debug)]
struct Attempt {
    /// The next event's sequence number.
    next_seq: u64,
    /// Events not yet acknowledged, in order.
    pending: VecDeque<JobEvent>,
    /// The last sequence number sent on the current connection.
    sent: u64,
    finished: bool,
    /// Streamed text held back until the next batch shows whether an
    /// identifier continues into it (redaction on only).
    held: String,
    redactions: RedactionCounts,
}

/// Streamed text closer than this to the end waits for the next batch.
const HOLDBACK: usize = 96;

#[derive(Debug, Default)]
struct State {
    /// Attempts in the order they began (their key is a counter), so
    /// replays go oldest first.
    attempts: BTreeMap<u64, (JobRef, Attempt)>,
    index: HashMap<JobRef, u64>,
    counter: u64,
}

impl State {
    fn get_mut(&mut self, job: JobRef) -> Option<&mut Attempt> {
        let key = *self.index.get(&job)?;
        self.attempts.get_mut(&key).map(|(_, a)| a)
    }
}

enum Op {
    Append {
        job: JobRef,
        line: Vec<u8>,
    },
    Sync {
        job: JobRef,
        done: oneshot::Sender<std::io::Result<()>>,
    },
    Remove {
        job: JobRef,
    },
    /// Answers once every earlier operation is done.
    Flush {
        done: oneshot::Sender<()>,
    },
}

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Signalled when there is something to send.
    changed: Notify,
    disk: std::sync::mpsc::Sender<Op>,
    redactor: Mutex<Option<Arc<Redactor>>>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Append { job, .. } => write!(f, "Append({})", job.job_id),
            Op::Sync { job, .. } => write!(f, "Sync({})", job.job_id),
            Op::Remove { job } => write!(f, "Remove({})", job.job_id),
            Op::Flush { .. } => write!(f, "Flush"),
        }
    }
}

impl Outbox {
    /// Opens the outbox in `dir`, creating it if needed. Attempts that have
    /// an outcome are loaded for delivery; attempts that were cut short by
    /// the agent stopping are dropped (the control plane gives their job to
    /// another attempt when this agent reconnects without them).
    pub fn open(dir: &Path) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {}", dir.display()))?;
        }
        let mut state = State::default();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        entries.sort();
        for path in entries {
            match load(&path) {
                Some((job, events)) => {
                    let next_seq = events.last().map_or(1, |e| e.seq + 1);
                    let attempt = Attempt {
                        next_seq,
                        pending: events.into(),
                        sent: 0,
                        finished: true,
                        held: String::new(),
                        redactions: RedactionCounts::new(),
                    };
                    state.counter += 1;
                    state.index.insert(job, state.counter);
                    state.attempts.insert(state.counter, (job, attempt));
                }
                None => {
                    tracing::info!(file = %path.display(), "dropping an attempt the agent did not finish before it stopped");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        if !state.attempts.is_empty() {
            tracing::info!(
                attempts = state.attempts.len(),
                "job results from before the restart wait for delivery"
            );
        }
        let (disk, ops) = std::sync::mpsc::channel();
        let dir = dir.to_owned();
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || write_loop(&dir, &ops))
            .context("starting the outbox writer")?;
        Ok(Arc::new(Self {
            state: Mutex::new(state),
            changed: Notify::new(),
            disk,
            redactor: Mutex::new(None),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording an attempt. Returns false if it is already known.
    pub fn begin(&self, job: JobRef) -> bool {
        let mut state = self.state();
        if state.index.contains_key(&job) {
            return false;
        }
        state.counter += 1;
        let key = state.counter;
        state.index.insert(job, key);
        let attempt = Attempt {
            next_seq: 1,
            pending: VecDeque::new(),
            sent: 0,
            finished: false,
            held: String::new(),
            redactions: RedactionCounts::new(),
        };
        state.attempts.insert(key, (job, attempt));
        true
    }

    /// Redacts what leaves from now on (`None`: nothing). Set from the
    /// policy once the tenant's compliance mode is known, before any job.
    pub fn set_redactor(&self, redactor: Option<Redactor>) {
        *self.redactor.lock().unwrap_or_else(|p| p.into_inner()) = redactor.map(Arc::new);
    }

    fn redactor(&self) -> Option<Arc<Redactor>> {
        self.redactor.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records an event of a running attempt, to be sent.
    pub fn push(&self, job: JobRef, body: JobEventBody) {
        let redactor = self.redactor();
        let mut state = self.state();
        let Some(attempt) = state.get_mut(job) else { return };
        if attempt.finished {
            return;
        }
        let mut bodies = Vec::with_capacity(2);
        match (redactor.as_deref(), body) {
            (None, body) => bodies.push(body),
            (Some(redactor), JobEventBody::Output { text }) => {
                attempt.held.push_str(&text);
                let cut = redactor.safe_cut(&attempt.held, HOLDBACK);
                if cut > 0 {
                    let rest = attempt.held.split_off(cut);
                    let ready = std::mem::replace(&mut attempt.held, rest);
                    bodies.push(JobEventBody::Output {
                        text: redactor.redact(&ready, &mut attempt.redactions),
                    });
                }
            }
            (Some(redactor), JobEventBody::Progress { step, percent, message }) => {
                if let Some(text) = release_held(attempt, redactor) {
                    bodies.push(JobEventBody::Output { text });
                }
                let message = redactor.redact(&message, &mut attempt.redactions);
                bodies.push(JobEventBody::Progress { step, percent, message });
            }
            (Some(redactor), JobEventBody::Checkpoint { result, usage }) => {
                // Counted once, in the outcome; a checkpoint repeats text
                // already counted or still to be.
                let mut scratch = RedactionCounts::new();
                if let Ok(mut value) = serde_json::to_value(&result) {
                    redact_strings(&mut value, redactor, &mut scratch);
                    // A shape that does not survive the round trip is not sent.
                    if let Ok(result) = serde_json::from_value(value) {
                        bodies.push(JobEventBody::Checkpoint { result, usage });
                    }
                }
            }
            (Some(_), body) => bodies.push(body),
        }
        for body in bodies {
            let event = JobEvent { job, seq: attempt.next_seq, body };
            attempt.next_seq += 1;
            self.append(&event);
            attempt.pending.push_back(event);
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Records an attempt's outcome, on disk before it is sent.
    pub async fn finish(&self, job: JobRef, outcome: JobOutcome) {
        let redactor = self.redactor();
        let synced = {
            let mut state = self.state();
            let Some(attempt) = state.get_mut(job) else { return };
            if attempt.finished {
                return;
            }
            let mut outcome = outcome;
            if let Some(redactor) = redactor.as_deref() {
                if let Some(text) = release_held(attempt, redactor) {
                    let event = JobEvent { job, seq: attempt.next_seq, body: JobEventBody::Output { text } };
                    attempt.next_seq += 1;
                    self.append(&event);
                    attempt.pending.push_back(event);
                }
                outcome = redact_outcome(redactor, outcome, &mut attempt.redactions);
            }
            let event = JobEvent { job, seq: attempt.next_seq, body: JobEventBody::Finished { outcome } };
            attempt.next_seq += 1;
            attempt.finished = true;
            self.append(&event);
            attempt.pending.push_back(event);
            let (done, synced) = oneshot::channel();
            let _ = self.disk.send(Op::Sync { job, done });
            synced
        };
        match synced.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(job_id = %job.job_id, error = %e, "could not save a job result to disk; it is kept in memory only");
            }
            Err(_) => {
                tracing::error!(job_id = %job.job_id, "the outbox writer stopped; a job result is kept in memory only");
            }
        }
        self.changed.notify_one();
    }

    fn append(&self, event: &JobEvent) {
        match serde_json::to_vec(event) {
            Ok(mut line) => {
                line.push(b'\n');
                let _ = self.disk.send(Op::Append { job: event.job, line });
            }
            Err(e) => tracing::error!(error = %e, "could not encode a job event"),
        }
    }

    /// The control plane stored the attempt's events up to `seq`.
    pub fn acknowledge(&self, job: JobRef, seq: u64) {
        let mut state = self.state();
        let Some(key) = state.index.get(&job).copied() else { return };
        let Some((_, attempt)) = state.attempts.get_mut(&key) else { return };
        while attempt.pending.front().is_some_and(|e| e.seq <= seq) {
            attempt.pending.pop_front();
        }
        if attempt.finished && attempt.pending.is_empty() {
            state.attempts.remove(&key);
            state.index.remove(&job);
            let _ = self.disk.send(Op::Remove { job });
        }
    }

    /// Forgets every attempt and deletes its file (the tenant was erased:
    /// its results will never be delivered). Returns how many there were;
    /// [`Outbox::flush`] waits for the files to be gone.
    pub fn clear(&self) -> u64 {
        let mut state = self.state();
        let jobs: Vec<JobRef> = state.attempts.values().map(|(job, _)| *job).collect();
        state.attempts.clear();
        state.index.clear();
        drop(state);
        for job in &jobs {
            let _ = self.disk.send(Op::Remove { job: *job });
        }
        u64::try_from(jobs.len()).unwrap_or(u64::MAX)
    }

    /// Events not yet sent on this connection, oldest attempt first.
    pub fn unsent(&self) -> Vec<JobEvent> {
        let mut state = self.state();
        let mut out = Vec::new();
        for (_, attempt) in state.attempts.values_mut() {
            for event in attempt.pending.iter().filter(|e| e.seq > attempt.sent) {
                out.push(event.clone());
            }
            attempt.sent = attempt.next_seq - 1;
        }
        out
    }

    /// A new connection: everything unacknowledged is sent again.
    pub fn rewind(&self) {
        let mut state = self.state();
        for (_, attempt) in state.attempts.values_mut() {
            attempt.sent = attempt.pending.front().map_or(attempt.next_seq - 1, |e| e.seq - 1);
        }
        drop(state);
        self.changed.notify_one();
    }

    /// Every attempt the control plane must keep the lease of: running,
    /// or finished with events still to deliver.
    pub fn attempts(&self) -> Vec<JobRef> {
        self.state().attempts.values().map(|(job, _)| *job).collect()
    }

    /// Whether the attempt still has events to deliver.
    pub fn holds(&self, job: JobRef) -> bool {
        self.state().index.contains_key(&job)
    }

    /// Waits until the disk holds what memory holds: every write and every
    /// removal of a delivered attempt asked for so far is done. The agent
    /// calls it before it exits, so a delivered result is not sent again.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.disk.send(Op::Flush { done }).is_ok() {
            let _ = flushed.await;
        }
    }

    /// Waits until there may be something new to send.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

fn file_name(job: JobRef) -> String {
    format!("{}.{}.jsonl", job.job_id, job.epoch)
}

/// The held-back streamed text of an attempt, redacted, if any.
fn release_held(attempt: &mut Attempt, redactor: &Redactor) -> Option<String> {
    if attempt.held.is_empty() {
        return None;
    }
    let held = std::mem::take(&mut attempt.held);
    Some(redactor.redact(&held, &mut attempt.redactions))
}

/// An outcome with every text in it redacted, and the attempt's redaction
/// counts in its usage.
fn redact_outcome(redactor: &Redactor, outcome: JobOutcome, counts: &mut RedactionCounts) -> JobOutcome {
    let Ok(mut value) = serde_json::to_value(&outcome) else { return outcome };
    redact_strings(&mut value, redactor, counts);
    let Ok(mut redacted) = serde_json::from_value::<JobOutcome>(value) else {
        // A shape that does not survive the round trip: send nothing of it.
        return JobOutcome::Failed {
            error: marketer_protocol::JobError {
                code: marketer_protocol::job_errors::POLICY.into(),
                message: "the result could not be redacted, so it was not sent".into(),
                retryable: false,
            },
        };
    };
    if let JobOutcome::Succeeded { usage, .. } = &mut redacted {
        // Added to what the job itself counted (document text withheld).
        for (kind, count) in counts.iter() {
            *usage.redactions.entry(kind.clone()).or_default() += count;
        }
    }
    redacted
}

fn redact_strings(value: &mut serde_json::Value, redactor: &Redactor, counts: &mut RedactionCounts) {
    match value {
        serde_json::Value::String(text) => *text = redactor.redact(text, counts),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, redactor, counts)),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(|v| redact_strings(v, redactor, counts));
        }
        _ => {}
    }
}

/// Reads an attempt's file: its events if it ends with an outcome. A line
/// cut short by a crash ends the readable part.
fn load(path: &Path) -> Option<(JobRef, Vec<JobEvent>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut events: Vec<JobEvent> = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<JobEvent>(line) {
            Ok(event) => events.push(event),
            Err(_) => break,
        }
    }
    let last = events.last()?;
    let job = last.job;
    let consistent = events.iter().enumerate().all(|(i, e)| e.job == job && e.seq == i as u64 + 1);
    (consistent && matches!(last.body, JobEventBody::Finished { .. })).then_some((job, events))
}

fn write_loop(dir: &Path, ops: &std::sync::mpsc::Receiver<Op>) {
    let mut files: HashMap<JobRef, File> = HashMap::new();
    let open = |job: JobRef| -> std::io::Result<File> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(dir.join(file_name(job)))
    };
    while let Ok(op) = ops.recv() {
        match op {
            Op::Append { job, line } => {
                let file = match files.entry(job) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => match open(job) {
                        Ok(file) => e.insert(file),
                        Err(err) => {
                            tracing::error!(error = %err, "could not open an outbox file");
                            continue;
                        }
                    },
                };
                if let Err(e) = file.write_all(&line) {
                    tracing::error!(error = %e, "could not write to the outbox");
                }
            }
            Op::Sync { job, done } => {
                let result = match files.get(&job) {
                    // The directory entry must be durable too, or a crash
                    // could lose a new file with its synced contents.
                    Some(file) => file.sync_data().and_then(|()| File::open(dir)?.sync_all()),
                    None => Err(std::io::Error::other("the attempt's outbox file could not be opened")),
                };
                let _ = done.send(result);
            }
            Op::Remove { job } => {
                files.remove(&job);
                if let Err(e) = std::fs::remove_file(dir.join(file_name(job)))
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(error = %e, "could not remove a delivered outbox file");
                }
            }
            Op::Flush { done } => {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketer_protocol::{JobOutput, Usage};

    fn job() -> JobRef {
        JobRef { job_id: uuid::Uuid::now_v7(), epoch: 1 }
    }

    fn success() -> JobOutcome {
        JobOutcome::Succeeded {
            output: JobOutput::Message {
                role: "assistant".into(),
                content: "Hello".into(),
                done_reason: "stop".into(),
            },
            usage: Usage::default(),
        }
    }

    #[tokio::test]
    async fn results_survive_a_restart_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let (done, cut_short) = (job(), job());
        {
            let outbox = Outbox::open(dir.path()).unwrap();
            assert!(outbox.begin(done));
            assert!(!outbox.begin(done), "an attempt begins once");
            outbox.push(done, JobEventBody::Started);
            outbox.push(done, JobEventBody::Output { text: "Hel".into() });
            outbox.push(done, JobEventBody::Output { text: "lo".into() });
            outbox.finish(done, success()).await;
            outbox.begin(cut_short);
            outbox.push(cut_short, JobEventBody::Started);
            let sent: Vec<u64> = outbox.unsent().iter().filter(|e| e.job == done).map(|e| e.seq).collect();
            assert_eq!(sent, [1, 2, 3, 4]);
            assert!(outbox.unsent().is_empty(), "sent once per connection");
            outbox.acknowledge(done, 2);
            outbox.rewind();
            let again: Vec<u64> = outbox.unsent().iter().filter(|e| e.job == done).map(|e| e.seq).collect();
            assert_eq!(again, [3, 4], "a new connection resends what was not acknowledged");
            // Let the writer catch up before "crashing".
            outbox.finish(cut_short, JobOutcome::Cancelled { reason: "x".into() }).await;
        }
        // A crash right after the cut-short attempt began: simulate by
        // truncating its file to the Started line.
        let cut_path = dir.path().join(file_name(cut_short));
        let text = std::fs::read_to_string(&cut_path).unwrap();
        std::fs::write(&cut_path, text.lines().next().unwrap()).unwrap();

        let reopened = Outbox::open(dir.path()).unwrap();
        assert_eq!(reopened.attempts(), vec![done], "only finished attempts are delivered after a restart");
        assert!(!cut_path.exists(), "an unfinished attempt's file is dropped");
        let replay: Vec<u64> = reopened.unsent().iter().map(|e| e.seq).collect();
        assert_eq!(
            replay,
            [1, 2, 3, 4],
            "after a restart everything is replayed; the server drops duplicates"
        );
        reopened.acknowledge(done, 4);
        assert!(reopened.attempts().is_empty());
        reopened.flush().await;
        assert!(!dir.path().join(file_name(done)).exists(), "flushed: the delivered attempt's file is gone");
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let attempt = job();
        {
            let outbox = Outbox::open(dir.path()).unwrap();
            outbox.begin(attempt);
            outbox.push(attempt, JobEventBody::Started);
            outbox.finish(attempt, success()).await;
        }
        let path = dir.path().join(file_name(attempt));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"job\":").unwrap();
        let reopened = Outbox::open(dir.path()).unwrap();
        assert_eq!(reopened.attempts(), vec![attempt]);
    }
}
