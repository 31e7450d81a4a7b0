//! In-memory listings of collections: each member's resource row and its time-range index
//! rows, so PROPFIND Depth 1, calendar-query and multiget answer without a database round trip
//! per member. A listing is labelled with the collection's change number and brought up to
//! date from the change log (RFC 6578 machinery: changed members plus tombstones), so several
//! instances on one PostgreSQL stay correct: a caller that read change number `n` from the
//! collection row never gets a listing older than `n`.
//!
//! Memory is bounded by a budget of rows (members plus index rows) over all listings; the least
//! recently used listings are dropped first, and a collection bigger than the whole budget is
//! never cached (callers fall back to indexed SQL). This module must never decide what a query
//! means: it only answers "which members, which index rows", exactly as the SQL would.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::ical::index::Instance;
use crate::store::{Change, InstanceRow, LONG_SPAN, Resource, ResourceId};

/// More changes than this since a listing's label: reload it whole instead of patching.
pub const DELTA_LIMIT: usize = 2_000;

/// Default budget, about 70 bytes a row: room for one 100,000-event calendar (100,000
/// members and about 850,000 index rows with the one-year horizon; 1.2 million with three),
/// or many ordinary ones.
pub const DEFAULT_BUDGET_ROWS: usize = 1_500_000;

struct Member {
    /// Shared, so a report hands members on without copying their strings.
    res: Arc<Resource>,
    /// Keys of this member's rows in `Listing::starts` (or `long`), to remove them on change.
    keys: Vec<(i64, u32)>,
}

#[derive(Clone, Copy)]
struct Row {
    end: i64,
    rule: crate::ical::index::MatchRule,
    floating: bool,
}

impl Row {
    fn at(&self, resource: ResourceId, start: i64) -> InstanceRow {
        InstanceRow {
            resource,
            instance: Instance {
                start,
                end: self.end,
                rule: self.rule,
                floating: self.floating,
            },
        }
    }
}

/// A collection's members and index rows as of change number `seq`.
pub struct Listing {
    seq: i64,
    /// Keyed by id with a fast hash: a time-range query looks a member up per index row.
    members: HashMap<ResourceId, Member, foldhash::fast::RandomState>,
    by_name: BTreeMap<String, ResourceId>,
    /// Rows no longer than `LONG_SPAN`, keyed by (start, member, ordinal).
    starts: BTreeMap<(i64, ResourceId, u32), Row>,
    /// Longer rows, scanned whole (they are few).
    long: BTreeMap<(ResourceId, u32), (i64, Row)>,
    /// Members whose index stops somewhere (open-ended rules), by where it stops: the only
    /// candidates for `incomplete`, and only those that stop before a window's end are read.
    partial: BTreeSet<(i64, ResourceId)>,
}

/// Where this member's index stops, if before the end of time.
fn partial_key(r: &Resource) -> Option<(i64, ResourceId)> {
    r.complete_until
        .filter(|c| *c < crate::ical::index::POS_INF)
        .map(|c| (c, r.id))
}

impl Listing {
    fn new(seq: i64) -> Self {
        Listing {
            seq,
            members: HashMap::default(),
            by_name: BTreeMap::new(),
            starts: BTreeMap::new(),
            long: BTreeMap::new(),
            partial: BTreeSet::new(),
        }
    }

    /// The change number this listing reflects (at least).
    pub fn seq(&self) -> i64 {
        self.seq
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn rows(&self) -> usize {
        self.members.len() + self.starts.len() + self.long.len()
    }

    /// Members in name order.
    pub fn members(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.by_name
            .values()
            .filter_map(|id| self.members.get(id).map(|m| &m.res))
    }

    /// Members whose name sorts after `after` (all members for `None`), in name order: a
    /// cursor for walking a large listing in batches without holding it locked.
    pub fn members_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'a Arc<Resource>> + use<'a> {
        use std::ops::Bound;
        let lower = match after {
            Some(a) => Bound::Excluded(a.to_string()),
            None => Bound::Unbounded,
        };
        self.by_name
            .range((lower, Bound::Unbounded))
            .filter_map(|(_, id)| self.members.get(id).map(|m| &m.res))
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Resource>> {
        self.by_name
            .get(name)
            .and_then(|id| self.members.get(id))
            .map(|m| &m.res)
    }

    pub fn by_id(&self, id: ResourceId) -> Option<&Arc<Resource>> {
        self.members.get(&id).map(|m| &m.res)
    }

    /// Index rows that may overlap `[from, to]`: the same rows as
    /// `IndexReader::instances_between` returns.
    pub fn instances_between(
        &self,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = InstanceRow> + use<'_> {
        let lo = from.saturating_sub(LONG_SPAN);
        self.starts
            .range((lo, ResourceId(i64::MIN), 0)..=(to, ResourceId(i64::MAX), u32::MAX))
            .map(|(&(start, resource, _), row)| row.at(resource, start))
            .chain(
                self.long
                    .iter()
                    .filter(move |(_, (start, row))| *start <= to && row.end >= from)
                    .map(|(&(resource, _), &(start, row))| row.at(resource, start)),
            )
    }

    /// Members whose index stops before `to` and whose set may reach `[from, to]`: the same
    /// members as `IndexReader::incomplete_objects`.
    pub fn incomplete(&self, from: i64, to: i64) -> impl Iterator<Item = &Arc<Resource>> {
        self.partial
            .range(..(to, ResourceId(i64::MIN)))
            .filter_map(|(_, id)| self.by_id(*id))
            .filter(move |r| {
                r.complete_until.is_some_and(|c| c < to)
                    && r.first_start.is_some_and(|s| s <= to)
                    && r.last_end.is_some_and(|e| e >= from)
            })
    }

    fn remove(&mut self, id: ResourceId) {
        if let Some(m) = self.members.remove(&id) {
            if let Some(k) = partial_key(&m.res) {
                self.partial.remove(&k);
            }
            if self.by_name.get(&m.res.name) == Some(&id) {
                self.by_name.remove(&m.res.name);
            }
            for (start, k) in m.keys {
                if self.starts.remove(&(start, id, k)).is_none() {
                    self.long.remove(&(id, k));
                }
            }
        }
    }

    fn insert(&mut self, res: Arc<Resource>, rows: &[InstanceRow]) {
        let id = res.id;
        self.remove(id);
        if let Some(other) = self.by_name.get(&res.name).copied() {
            self.remove(other);
        }
        self.by_name.insert(res.name.clone(), id);
        if let Some(k) = partial_key(&res) {
            self.partial.insert(k);
        }
        self.members.insert(
            id,
            Member {
                res,
                keys: Vec::with_capacity(rows.len()),
            },
        );
        for r in rows {
            self.add_row(InstanceRow {
                resource: id,
                instance: r.instance,
            });
        }
    }

    /// A listing built from a full load. Rows are moved in one at a time, never copied into
    /// an intermediate map: a 100,000-event calendar has over a million of them.
    pub fn build(seq: i64, members: Vec<Resource>, rows: Vec<InstanceRow>) -> Listing {
        let mut l = Listing::empty(seq);
        for m in members {
            l.add_member(m);
        }
        for r in rows {
            l.add_row(r);
        }
        l
    }

    /// An empty listing labelled `seq`, to be filled by a loader that streams rows in
    /// (members first, then their index rows).
    pub(crate) fn empty(seq: i64) -> Listing {
        Listing::new(seq)
    }

    /// Add a member without index rows (a full load adds them next, with `add_row`).
    pub(crate) fn add_member(&mut self, res: Resource) {
        self.insert(Arc::new(res), &[]);
    }

    /// Add one index row to an existing member (rows of members not listed are skipped: the
    /// member was created after the member query read).
    pub(crate) fn add_row(&mut self, r: InstanceRow) {
        let Some(m) = self.members.get_mut(&r.resource) else {
            return;
        };
        let k = m.keys.len() as u32;
        let i = r.instance;
        let row = Row {
            end: i.end,
            rule: i.rule,
            floating: i.floating,
        };
        if i.end.saturating_sub(i.start) > LONG_SPAN {
            self.long.insert((r.resource, k), (i.start, row));
        } else {
            self.starts.insert((i.start, r.resource, k), row);
        }
        m.keys.push((i.start, k));
    }

    /// Apply changes read after this listing's label; `rows` are the index rows of the live
    /// members among them. Changes are applied in change-number order, so a name deleted and
    /// created again ends up as its newest member.
    pub fn apply(&mut self, seq: i64, mut changes: Vec<Change>, rows: Vec<InstanceRow>) {
        let mut by_member: HashMap<ResourceId, Vec<InstanceRow>> = HashMap::new();
        for r in rows {
            by_member.entry(r.resource).or_default().push(r);
        }
        changes.sort_by_key(Change::seq);
        for c in changes {
            match c {
                Change::Live(res) => {
                    let rows = by_member.get(&res.id).map(Vec::as_slice).unwrap_or(&[]);
                    self.insert(res, rows);
                }
                Change::Deleted { name, .. } => {
                    if let Some(id) = self.by_name.get(&name).copied() {
                        self.remove(id);
                    }
                }
            }
        }
        self.seq = self.seq.max(seq);
    }
}

/// A shared, lockable listing. Read it in synchronous code only: never hold the guard across
/// an `.await`.
pub type SharedListing = Arc<RwLock<Listing>>;

struct Slot {
    listing: SharedListing,
    rows: usize,
    last_used: u64,
}

/// All cached listings of one process, within a row budget.
pub struct ListingCache {
    budget: usize,
    tick: AtomicU64,
    slots: Mutex<HashMap<ResourceId, Slot>>,
    too_big: Mutex<HashSet<ResourceId>>,
    /// Striped by collection: one request at a time loads or patches a collection's listing,
    /// and the requests that arrive meanwhile wait and use its work instead of each running
    /// the same queries (under a write-heavy load every request found the listing stale).
    gates: Vec<tokio::sync::Mutex<()>>,
}

const GATES: usize = 64;

impl ListingCache {
    pub fn new(budget: usize) -> Self {
        ListingCache {
            budget,
            tick: AtomicU64::new(0),
            slots: Mutex::new(HashMap::new()),
            too_big: Mutex::new(HashSet::new()),
            gates: (0..GATES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// The gate of collection `id`'s listing updates.
    pub fn gate(&self, id: ResourceId) -> &tokio::sync::Mutex<()> {
        &self.gates[(id.0.unsigned_abs() as usize) % GATES]
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The cached listing of `id`, if any, marked as used.
    pub fn get(&self, id: ResourceId) -> Option<SharedListing> {
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get_mut(&id).map(|s| {
            s.last_used = now;
            s.listing.clone()
        })
    }

    pub fn is_too_big(&self, id: ResourceId) -> bool {
        self.too_big
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    /// Store a freshly built listing; `None` when it alone exceeds the budget.
    pub fn put(&self, id: ResourceId, listing: Listing) -> Option<SharedListing> {
        let rows = listing.rows();
        if rows > self.budget {
            self.too_big
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id);
            return None;
        }
        let shared = Arc::new(RwLock::new(listing));
        let now = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.insert(
            id,
            Slot {
                listing: shared.clone(),
                rows,
                last_used: now,
            },
        );
        self.evict(&mut slots, id);
        Some(shared)
    }

    /// Record a listing's new size after a patch, evicting others if the budget is exceeded.
    pub fn resized(&self, id: ResourceId, rows: usize) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slots.get_mut(&id) {
            s.rows = rows;
        }
        if rows > self.budget {
            slots.remove(&id);
            self.too_big
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id);
        }
        self.evict(&mut slots, id);
    }

    fn evict(&self, slots: &mut HashMap<ResourceId, Slot>, keep: ResourceId) {
        let mut total: usize = slots.values().map(|s| s.rows).sum();
        while total > self.budget {
            let Some((&victim, _)) = slots
                .iter()
                .filter(|(id, _)| **id != keep)
                .min_by_key(|(_, s)| s.last_used)
            else {
                break;
            };
            if let Some(s) = slots.remove(&victim) {
                total -= s.rows;
            }
        }
    }
}

/// Rows a listing holds, for the budget.
pub fn rows_of(l: &Listing) -> usize {
    l.rows()
}
