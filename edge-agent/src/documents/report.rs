//! Reporting the index to the control plane: metadata only (names, sizes,
//! hashes, status, chunk counts), names and errors redacted under the
//! policy. Each connection starts by sending everything again: the first
//! report lists every document the agent holds (the control plane forgets
//! the others), and it and the next ones carry every document's metadata,
//! a bounded number per report; after that, reports carry what changed.
//! One report is in flight at a time; what it carried is marked reported
//! when the control plane acknowledges it, so a lost connection loses
//! nothing.

use marketer_protocol::documents::{DocumentMeta, DocumentReport, MAX_REPORT_DOCUMENTS, RefusedDocument};

use super::index::{Index, Pending};
use crate::privacy::Redactor;

#[derive(Debug)]
pub struct Reporter<'a> {
    index: &'a Index,
    redactor: Option<Redactor>,
    next_seq: u64,
    in_flight: Option<(u64, Pending)>,
    /// Whether the first report of the connection (with `held`) went.
    started: bool,
}

impl<'a> Reporter<'a> {
    pub fn new(index: &'a Index, redactor: Option<Redactor>) -> Self {
        Self { index, redactor, next_seq: 1, in_flight: None, started: false }
    }

    /// The report to send now, if there is something to say and no report
    /// is waiting for its acknowledgement.
    pub async fn next(&mut self) -> anyhow::Result<Option<DocumentReport>> {
        if self.in_flight.is_some() {
            return Ok(None);
        }
        let held = if self.started {
            None
        } else {
            self.index.report_all_again().await?;
            Some(self.index.held().await?)
        };
        let pending = self.index.pending(MAX_REPORT_DOCUMENTS).await?;
        if held.is_none() && pending.documents.is_empty() && pending.removed.is_empty() {
            return Ok(None);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.started = true;
        let report = DocumentReport {
            seq,
            held,
            documents: pending.documents.iter().map(|d| self.outgoing(&d.meta)).collect(),
            removed: pending.removed.clone(),
        };
        self.in_flight = Some((seq, pending));
        Ok(Some(report))
    }

    /// The control plane stored report `seq`, except the documents it
    /// refused: those are marked failed with its reason.
    pub async fn acknowledged(&mut self, seq: u64, refused: &[RefusedDocument]) -> anyhow::Result<()> {
        let Some((in_flight, pending)) = self.in_flight.take() else { return Ok(()) };
        if in_flight != seq {
            self.in_flight = Some((in_flight, pending));
            return Ok(());
        }
        self.index.reported(&pending).await?;
        for refusal in refused {
            tracing::warn!(document_id = %refusal.id, reason = %refusal.reason, "the control plane refused a document");
            self.index
                .refused(refusal.id, &format!("the control plane refused it: {}", refusal.reason))
                .await?;
        }
        Ok(())
    }

    /// A document's metadata as it leaves the host.
    fn outgoing(&self, meta: &DocumentMeta) -> DocumentMeta {
        let mut meta = meta.clone();
        if let Some(redactor) = &self.redactor {
            // Counts of what is redacted here are not reported: the name and
            // the error are all there is.
            let mut ignored = Default::default();
            meta.name = redactor.redact(&meta.name, &mut ignored);
            meta.error = meta.error.map(|e| redactor.redact(&e, &mut ignored));
        }
        meta
    }
}
