//! The query planner: which members of a calendar a filter selects, answered from the
//! time-range index, parsing only the objects the index cannot decide (beyond their indexed
//! horizon, or filters on properties). The filter arrives as `ical::filter` types; how it was
//! written on the wire is the protocol's business.
//!
//! Must never: answer from an index row that cannot decide (an object past its horizon is
//! parsed), or test a non-owner's property filter against details they may not see.

use std::collections::HashMap;
use std::sync::Arc;

use crate::ical::filter::{CompFilter, EvalContext, TimeRange, instance_matches};
use crate::ical::index::MatchRule;
use crate::ical::privacy::{Detail, Privacy};
use crate::ical::zones::Zone;
use crate::store::{IndexReader, InstanceRow, Resource, ResourceId, ResourceReader, Store};

/// Window slack for floating times: the widest UTC offsets are -12 and +14 hours.
const FLOATING_SLACK: i64 = 15 * 3600;

/// Why a selection has no answer: the store failed, or an object has more instances near
/// the window than the limits allow (403 `max-instances`, never a silent omission).
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Ical(#[from] crate::ical::IcalError),
}

/// The members of a calendar a filter selects, shared with the listing they came from. Only
/// objects the index cannot decide are parsed.
/// `non_owner`: the privacy rule when the asker is not the owner; property filters are then
/// evaluated on what they may see, so a text-match cannot test withheld details.
pub async fn select(
    store: &Store,
    calendar: &Resource,
    filter: &CompFilter,
    ctx: &EvalContext,
    non_owner: Option<&Privacy>,
) -> Result<Vec<Arc<Resource>>, SelectError> {
    if filter.is_not_defined {
        return Ok(vec![]);
    }
    // The common shape: VCALENDAR > one component filter with a time range. It is answered
    // from index rows near the window; only the resources those rows name are loaded.
    if let [main] = filter.comps.as_slice()
        && filter.props.is_empty()
        && filter.time_range.is_none()
        && !main.is_not_defined
        && let Some(tr) = main.time_range
    {
        return select_by_time(store, calendar, filter, main, tr, ctx).await;
    }
    let objects: Vec<Arc<Resource>> = match store.listing(calendar).await? {
        Some(listing) => {
            let l = listing.read().unwrap_or_else(|e| e.into_inner());
            l.members()
                .filter(|c| c.component.is_some())
                .cloned()
                .collect()
        }
        None => store
            .children(calendar.id)
            .await?
            .into_iter()
            .filter(|c| c.component.is_some())
            .map(Arc::new)
            .collect(),
    };
    let (main, rest_simple) = match filter.comps.as_slice() {
        [] => {
            return if filter.is_simple() {
                Ok(objects)
            } else {
                parse_all(store, objects, filter, ctx, non_owner).await
            };
        }
        [m] => (m, filter.props.is_empty() && filter.time_range.is_none()),
        _ => return parse_all(store, objects, filter, ctx, non_owner).await,
    };
    let of_type = |r: &Resource| r.component.as_deref() == Some(main.name.as_str());
    if main.is_not_defined {
        let kept: Vec<Arc<Resource>> = objects.into_iter().filter(|r| !of_type(r)).collect();
        return if rest_simple {
            Ok(kept)
        } else {
            parse_all(store, kept, filter, ctx, non_owner).await
        };
    }
    let typed: Vec<Arc<Resource>> = objects.into_iter().filter(|r| of_type(r)).collect();
    if rest_simple && main.props.is_empty() && main.comps.is_empty() {
        Ok(typed)
    } else {
        parse_all(store, typed, filter, ctx, non_owner).await
    }
}

async fn select_by_time(
    store: &Store,
    calendar: &Resource,
    filter: &CompFilter,
    main: &CompFilter,
    tr: TimeRange,
    ctx: &EvalContext,
) -> Result<Vec<Arc<Resource>>, SelectError> {
    let simple = main.props.is_empty() && main.comps.is_empty();
    let from = tr.start.saturating_sub(FLOATING_SLACK);
    let to = tr.end.saturating_add(FLOATING_SLACK);
    let complete = |r: &Resource| r.complete_until.is_none_or(|c| c >= tr.end);
    let of_type = |r: &Resource| r.component.as_deref() == Some(main.name.as_str());
    // Each member is decided once, however many of its instances fall in the window, and
    // only members that are returned or must be parsed are copied out of the listing.
    let mut decided: Vec<ResourceId> = vec![];
    let mut consider = |r: &Resource, row: &InstanceRow| {
        if of_type(r) && complete(r) && instance_matches(&row.instance, tr, &ctx.floating_zone) {
            decided.push(r.id);
        }
    };
    let mut undecided: Vec<Arc<Resource>> = vec![];
    let hits: Vec<Arc<Resource>>;
    // Objects whose index ends before the window (`incomplete`) must be expanded now.
    match store.listing(calendar).await? {
        Some(listing) => {
            let l = listing.read().unwrap_or_else(|e| e.into_inner());
            // Rows wholly before the widened window cannot match in any zone: skipped before
            // the member lookup (the scan starts a long span early). A to-do with only
            // CREATED, or none of the dates, matches whatever the window's start.
            let may_reach = |r: &InstanceRow| {
                r.instance.start.max(r.instance.end) >= from
                    || matches!(r.instance.rule, MatchRule::TodoCreated | MatchRule::Always)
            };
            for row in l.instances_between(from, to).filter(may_reach) {
                if let Some(r) = l.by_id(row.resource) {
                    consider(r, &row);
                }
            }
            decided.sort_unstable();
            decided.dedup();
            hits = decided
                .iter()
                .filter_map(|id| l.by_id(*id))
                .cloned()
                .collect();
            undecided.extend(
                l.incomplete(from, to)
                    .filter(|r| of_type(r) && !complete(r))
                    .cloned(),
            );
        }
        None => {
            let rows = store.instances_between(calendar.id, from, to).await?;
            let mut ids: Vec<ResourceId> = rows.iter().map(|r| r.resource).collect();
            ids.sort();
            ids.dedup();
            let near: HashMap<ResourceId, Arc<Resource>> = store
                .children_by_id(calendar.id, &ids)
                .await?
                .into_iter()
                .map(|r| (r.id, Arc::new(r)))
                .collect();
            for row in &rows {
                if let Some(r) = near.get(&row.resource) {
                    consider(r, row);
                }
            }
            decided.sort_unstable();
            decided.dedup();
            hits = decided
                .iter()
                .filter_map(|id| near.get(id))
                .cloned()
                .collect();
            undecided.extend(
                store
                    .incomplete_objects(calendar.id, from, to)
                    .await?
                    .into_iter()
                    .filter(|r| of_type(r) && !complete(r))
                    .map(Arc::new),
            );
        }
    }
    let mut out = if simple {
        hits
    } else {
        undecided.extend(hits);
        vec![]
    };
    undecided.sort_by_key(|r| r.id);
    undecided.dedup_by_key(|r| r.id);
    // Timing only: what the window tests is shown to everyone who may read the calendar.
    out.extend(parse_all(store, undecided, filter, ctx, None).await?);
    // Names are unique in a collection: an unstable sort gives the same order, in place.
    out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn parse_all(
    store: &Store,
    candidates: Vec<Arc<Resource>>,
    filter: &CompFilter,
    ctx: &EvalContext,
    non_owner: Option<&Privacy>,
) -> Result<Vec<Arc<Resource>>, SelectError> {
    let mut out = vec![];
    for r in candidates {
        let Some(body) = store.object_data(r.id).await? else {
            continue;
        };
        let seen = match non_owner {
            Some(p) => crate::ical::privacy::non_owner_view(&body, p, Detail::Full),
            None => std::borrow::Cow::Borrowed(&body[..]),
        };
        if crate::ical::filter::matches_checked(&seen, filter, ctx)?.unwrap_or(false) {
            out.push(r);
        }
    }
    Ok(out)
}

/// The zone floating times are read in: the query's `CALDAV:timezone`, else the calendar's
/// `calendar-timezone`, else UTC (RFC 4791 9.8, 7.3).
pub fn floating_zone(query_tz: Option<&str>, calendar_tz: Option<&str>) -> Zone {
    for text in [query_tz, calendar_tz].into_iter().flatten() {
        if let Some(z) = crate::ical::zone_of_vtimezone(text.as_bytes()) {
            return z;
        }
    }
    Zone::Utc
}
