//! Large REPORT answers written as a stream: a sync-collection or calendar-query that lists
//! more than `STREAM_MIN_MEMBERS` members goes out in batches of `STREAM_BATCH`, each batch rendered
//! (bodies fetched in one query) and sent before the next is built, through a channel of
//! `STREAM_CHANNEL` chunks. Memory stays bounded by a batch whatever the member count.
//!
//! Must never: touch SQL, or send anything after a failure other than ending the body (the
//! status line has already gone out).

use bytes::Bytes;
use http::StatusCode;

use super::{DataSpec, Dav, DavResponse, STREAM_BATCH, STREAM_CHANNEL, Wanted};
use crate::dav::{self, Multistatus, PropertyName, escape};
use crate::store::{Change, ResourceKind, User};

impl Dav<'_> {
    /// Stream a report: `head` (already begun), then one response per item (members of the
    /// collection at `href`, with the properties and calendar-data shape asked for), then a
    /// 507 for the collection when `truncated`, then the sync token, if any.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stream_report(
        &self,
        mut head: Multistatus,
        changes: Vec<Change>,
        (names, spec): (Vec<PropertyName>, DataSpec),
        owner: User,
        href: String,
        truncated: bool,
        token: Option<String>,
    ) -> DavResponse {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_CHANNEL);
        let first = Bytes::from(head.take_chunk());
        let (store, settings, user) =
            (self.store.clone(), self.settings.clone(), self.user.clone());
        let personal = self.personal_parts();
        tokio::spawn(async move {
            let dav = Dav::background(&store, &settings, &user);
            // A sharee's view of a shared calendar stays theirs in a streamed answer too.
            dav.set_personal_parts(personal);
            if tx.send(first).await.is_err() {
                return;
            }
            for batch in changes.chunks(STREAM_BATCH) {
                let live = batch.iter().filter_map(|c| match c {
                    Change::Live(r) if r.kind == ResourceKind::Object => Some(r.id),
                    _ => None,
                });
                let mut bodies = match dav.prefetch_bodies(live, &names).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e.message, "streamed report failed");
                        return;
                    }
                };
                let mut ms = Multistatus::new();
                ms.take_chunk();
                for c in batch {
                    match c {
                        Change::Live(r) => {
                            let wanted = Wanted {
                                names: &names,
                                spec: &spec,
                            };
                            let child = Dav::child_href(&href, r);
                            if let Err(e) = dav
                                .report_response(&mut ms, &owner, r, child, wanted, &mut bodies)
                                .await
                            {
                                tracing::error!(error = %e.message, "streamed report failed");
                                return;
                            }
                        }
                        Change::Deleted { name, .. } => {
                            let mut h = href.clone();
                            h.push_str(&dav::encode_path(name));
                            ms.status_response(&h, 404, None);
                        }
                    }
                }
                if tx.send(Bytes::from(ms.take_chunk())).await.is_err() {
                    return;
                }
            }
            let mut tail = Multistatus::new();
            tail.take_chunk();
            if truncated {
                tail.status_response(&href, 507, None);
            }
            let mut end = tail.take_chunk();
            if let Some(t) = &token {
                end.push_str(&format!("<D:sync-token>{}</D:sync-token>", escape(t)));
            }
            end.push_str(Multistatus::tail());
            end.push('\n');
            let _ = tx.send(Bytes::from(end)).await;
        });
        let mut r = DavResponse::xml(StatusCode::MULTI_STATUS, String::new());
        r.stream = Some(rx);
        r
    }
}
