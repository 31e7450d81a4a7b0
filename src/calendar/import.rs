//! Whole-calendar import: an `.ics` file (an export from another server, Outlook or Google)
//! split into one calendar object resource per UID, each validated and indexed as a PUT would
//! be, with a report of what was skipped and why. An object whose UID is already in the
//! calendar is replaced, so importing the same file twice changes nothing.
//!
//! Import is a data load: it sends no scheduling messages.
//!
//! Must never: touch SQL, or stop at the first bad component (the rest still go in).

use serde::Serialize;

use super::{Calendars, Error, Refusal};
use crate::ical;
use crate::store::{NewObject, Resource, ResourceReader, WriteCondition};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// New objects created.
    pub imported: usize,
    /// Objects whose UID was already in the calendar, replaced.
    pub replaced: usize,
    pub skipped: Vec<SkippedItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedItem {
    /// The UID, or the component's position when it has none.
    pub what: String,
    pub reason: String,
}

/// Most objects one import may hold; a bigger file is refused (413) before anything is
/// written, and can be imported in parts.
pub const MAX_IMPORT_OBJECTS: usize = 10_000;

impl Calendars<'_> {
    /// Import `body` into the calendar `cal`; `progress(done, total)` is called as it goes.
    pub async fn import(
        &self,
        cal: &Resource,
        body: &[u8],
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<ImportReport, Error> {
        let split =
            ical::bundle::split_calendar(body, MAX_IMPORT_OBJECTS).map_err(|e| match e {
                ical::IcalError::TooManyObjects(_) => Error::TooLarge(e.to_string()),
                e => Error::refused(Refusal::ValidCalendarData, e.to_string()),
            })?;
        let mut report = ImportReport {
            skipped: split
                .skipped
                .into_iter()
                .map(|s| SkippedItem {
                    what: s.what,
                    reason: s.reason,
                })
                .collect(),
            ..ImportReport::default()
        };
        let existing: std::collections::HashMap<String, String> = self
            .store
            .children(cal.id)
            .await?
            .into_iter()
            .filter_map(|r| r.uid.map(|u| (u, r.name)))
            .collect();
        let total = split.pieces.len();
        let now = self.now();
        for (done, mut piece) in split.pieces.into_iter().enumerate() {
            progress(done, total);
            if let Some(stamped) = ical::repair::add_missing_dtstamp(&piece.data, now) {
                piece.data = stamped;
            }
            let skip = |reason: String| SkippedItem {
                what: piece.uid.clone(),
                reason,
            };
            let checked = self.check_body(cal, None, &piece.data).and_then(|v| {
                let index = v.index(self.index_limits()).map_err(Error::of_index)?;
                Ok((index, v.summary))
            });
            let (index, summary) = match checked {
                Ok(c) => c,
                Err(e) => {
                    report.skipped.push(skip(e.to_string()));
                    continue;
                }
            };
            let name = existing
                .get(&piece.uid)
                .cloned()
                .unwrap_or_else(|| super::schedule::copy_name(&piece.uid));
            let obj = NewObject {
                etag: crate::dav::etag_of(&piece.data),
                data: piece.data,
                content_type: "text/calendar; charset=utf-8".into(),
                uid: Some(summary.uid),
                component: Some(summary.kind.name().to_string()),
                index: Some(index),
                schedule_tag: None,
            };
            match self.store_new(cal, &name, obj, WriteCondition::None).await {
                Ok(true) => report.imported += 1,
                Ok(false) => report.replaced += 1,
                Err(Error::Refused {
                    refusal: Refusal::UidConflict { holder },
                    ..
                }) => {
                    report
                        .skipped
                        .push(skip(format!("the UID is already used by {holder}")));
                }
                Err(e) => return Err(e),
            }
        }
        progress(total, total);
        Ok(report)
    }
}
