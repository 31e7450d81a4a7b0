//! Schedule sharing (issue 6): delegated entries. An owner's event reaches chosen people, the
//! members of a group or department, or whoever a calendar's rules name, as a read-only copy
//! in a calendar of the recipient's own home named for the owner (`from~OWNER`), styled with
//! the owner's colour, avatar and name (`ical::delegated`).
//!
//! The durable job is the calendar's own change log: a worker carries each calendar's changes
//! (RFC 6578 machinery: `changes_since` from a cursor stored per calendar) into the copies,
//! so every change committed is a change the worker sees, also after a crash or on another
//! instance. Reconciling an object is idempotent: it computes the recipients and each one's
//! copy, writes only what differs, and removes copies nobody should hold. When the people a
//! calendar's rules or its events' groups stand for change (a rule added, someone joining a
//! department), the calendar is reconciled whole. A lease per calendar keeps two instances
//! from doing the same work at once.
//!
//! Must never: write into an owner's calendar; give a recipient more than the event's CLASS
//! allows; leave a copy with someone who is no longer a recipient; block the owner's request.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::ical::delegated::{self, Privacy, Style};
use crate::org::OrgChart;
use crate::store::{
    Change, GroupSource, NewCollection, ResourceId, ResourceKind, ResourceReader, ResourceWriter,
    RuleKind, ShareCopy, ShareCursor, ShareRule, ShareStore, Store, StoreError, StoredProp,
    SyncReader, User, UserId, UserStore, WriteCondition,
};

/// A recipient's copies of one owner's delegated entries live in a calendar named
/// `from~OWNER` (the "copies calendar"); no client makes such a name. A sharee's view of a
/// shared calendar is a different thing, a mount (`shared~`, `caldav::sharing`).
pub const COPIES_PREFIX: &str = "from~";

pub fn copies_calendar_name(owner: &str) -> String {
    format!("{COPIES_PREFIX}{owner}")
}

/// The owner whose entries a calendar of this name holds.
pub fn copies_owner(name: &str) -> Option<&str> {
    name.strip_prefix(COPIES_PREFIX)
}

/// How long a worker holds a calendar before another may take it over.
const LEASE_SECONDS: i64 = 120;
/// Change-log entries read, and bodies fetched, per query when a calendar is reconciled.
const PAGE: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sharing settings from the configuration.
#[derive(Debug, Clone)]
pub struct SharingConfig {
    /// The server's public base URL (avatars in copies are absolute URLs under it).
    pub public_url: String,
    pub privacy: Privacy,
    /// How often the worker looks without being woken (rule audiences, other instances).
    pub interval: Duration,
    pub index_horizon_days: i64,
    pub max_instances: usize,
    /// What a home holds when the worker is the first to need it (the same defaults CalDAV
    /// creates on first use).
    pub home_defaults: Vec<NewCollection>,
    /// Where the worker's "now" comes from (leases, the indexing horizon).
    pub clock: SharedClock,
}

/// What one pass of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub calendars: usize,
    pub written: usize,
    pub removed: usize,
    /// Pages of change log read.
    pub pages: usize,
}

/// What reconciling one calendar did, and where its cursor goes next.
struct CalendarOutcome {
    cursor: ShareCursor,
    written: usize,
    removed: usize,
    pages: usize,
}

struct Inner {
    store: Store,
    org: OrgChart,
    cfg: SharingConfig,
    wake: tokio::sync::Notify,
}

/// The sharing engine: cheap to clone, one per process.
#[derive(Clone)]
pub struct Sharing(Arc<Inner>);

/// Group and department members as first read in one unit of work (`kind:NAME` to members):
/// the audience fingerprint is computed from exactly what the copies were made from, so a
/// change after the read shows as a difference in the next pass.
type Groups = BTreeMap<String, Vec<User>>;

/// What one calendar's pass reads once per recipient rather than once per copy.
#[derive(Default)]
struct RecipientCache {
    prefix: BTreeMap<UserId, bool>,
    mounts: BTreeMap<UserId, ResourceId>,
}

/// Who an object goes to, and the group references that decided it.
#[derive(Default)]
struct Audience {
    users: BTreeMap<UserId, User>,
    refs: BTreeSet<String>,
}

/// One calendar's pass: what every page of its change log is reconciled against, and the
/// counts so far.
struct CalendarJob<'a> {
    cal: &'a crate::store::Resource,
    owner: &'a User,
    colour: &'a str,
    rule_users: &'a [User],
    refs: &'a mut BTreeSet<String>,
    groups: &'a mut Groups,
    cache: RecipientCache,
    written: usize,
    removed: usize,
}

impl CalendarJob<'_> {
    /// After a whole pass: remove the copies of members that are gone though no tombstone
    /// said so (deleted below the tombstone floor). A registered copy whose member was not
    /// among the pages read may still exist: it changed while the pages were read and moved
    /// past the pass's end, and the next pass reconciles it, so only the members that are
    /// really gone lose their copies.
    async fn remove_unread(
        &mut self,
        sharing: &Sharing,
        read: &HashSet<String>,
    ) -> Result<(), ShareError> {
        let store = &sharing.0.store;
        let mut unread: BTreeMap<String, BTreeSet<UserId>> = BTreeMap::new();
        for (n, u) in store.share_copies(self.cal.id, None).await? {
            if !read.contains(&n) {
                unread.entry(n).or_default().insert(u);
            }
        }
        let names: Vec<String> = unread.keys().cloned().collect();
        for chunk in names.chunks(PAGE) {
            for r in store.children_by_name(self.cal.id, chunk).await? {
                unread.remove(&r.name);
            }
        }
        for (name, users) in unread {
            self.remove_held(sharing, &name, users).await?;
        }
        Ok(())
    }

    /// Remove the copies of member `name` that these recipients hold.
    async fn remove_held(
        &mut self,
        sharing: &Sharing,
        name: &str,
        users: BTreeSet<UserId>,
    ) -> Result<(), ShareError> {
        let copy_name = copy_name(&self.cal.uuid, name);
        for u in users {
            sharing.remove_copy(self.owner, u, &copy_name).await?;
            sharing
                .0
                .store
                .forget_share_copy(self.cal.id, name, u)
                .await?;
            self.removed += 1;
        }
        Ok(())
    }
}

impl Sharing {
    pub fn new(store: Store, org: OrgChart, cfg: SharingConfig) -> Sharing {
        Sharing(Arc::new(Inner {
            store,
            org,
            cfg,
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Something changed: run a pass soon. Wakes coalesce.
    pub fn kick(&self) {
        self.0.wake.notify_one();
    }
}

/// A calendar object changed: the worker carries it into the copies.
impl crate::calendar::Hooks for Sharing {
    fn object_changed(&self, _calendar: ResourceId) {
        self.kick();
    }
}

impl Sharing {
    pub fn config(&self) -> &SharingConfig {
        &self.0.cfg
    }

    /// The worker loop: a pass when woken (after a 100 ms pause that gathers a burst of
    /// writes into one pass, so a bulk load costs a few passes a second, not one per PUT) and
    /// at least every `interval`, until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let woken = tokio::select! {
                r = tokio::time::timeout(self.0.cfg.interval, self.0.wake.notified()) => r.is_ok(),
                _ = stop.changed() => return,
            };
            if !woken {
                // On the timer only: it reads the whole copy register.
                match self.sweep_orphans().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "copies of deleted calendars removed"),
                    Err(e) => tracing::warn!(error = %e, "removing orphaned copies failed"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Each pass is its own task: a bug that panics on some object is logged and the
            // worker lives on (the leases it held expire), instead of sharing stopping.
            let worker = self.clone();
            match tokio::spawn(async move { worker.pass().await }).await {
                Ok(Ok(s)) if s.written + s.removed > 0 => tracing::debug!(
                    calendars = s.calendars,
                    written = s.written,
                    removed = s.removed,
                    "delegated entries updated"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "sharing pass failed; retried next pass"),
                Err(e) => tracing::error!(error = %e, "sharing pass panicked; retried next pass"),
            }
        }
    }

    /// One pass: every calendar with unshared changes, and every calendar whose audience
    /// changed, brought up to date.
    pub async fn pass(&self) -> Result<PassStats, ShareError> {
        let store = &self.0.store;
        let now = self.0.cfg.clock.now();
        let mut stats = PassStats::default();
        let mut full: BTreeMap<ResourceId, UserId> = BTreeMap::new();
        for (cal, owner, cursor) in store.share_watched().await? {
            let Some(owner_user) = store.user_by_id(owner).await? else {
                continue;
            };
            let audience = self.rule_audience(&owner_user, cal, &cursor.refs).await?;
            if audience != cursor.audience {
                full.insert(cal, owner);
            }
        }
        let mut incremental: Vec<(ResourceId, UserId)> = vec![];
        for p in store.share_pending(now).await? {
            if !full.contains_key(&p.calendar) {
                incremental.push((p.calendar, p.owner));
            }
        }
        for (cal, owner, whole) in full
            .into_iter()
            .map(|(c, o)| (c, o, true))
            .chain(incremental.into_iter().map(|(c, o)| (c, o, false)))
        {
            let lease = now + LEASE_SECONDS;
            let Some(cursor) = store.claim_share_cursor(cal, now, lease).await? else {
                continue;
            };
            let mut held = lease;
            match self
                .calendar(cal, owner, cursor.clone(), whole, &mut held)
                .await
            {
                Ok(Some(o)) => {
                    if store.release_share_cursor(cal, &o.cursor, held).await? {
                        stats.calendars += 1;
                        stats.written += o.written;
                        stats.removed += o.removed;
                        stats.pages += o.pages;
                    }
                }
                Ok(None) => {
                    tracing::warn!(
                        calendar = cal.0,
                        "sharing lease lost mid-pass; the worker that took it carries on"
                    );
                }
                Err(e) => {
                    // Give the lease back unchanged: the next pass retries from the same place.
                    store.release_share_cursor(cal, &cursor, held).await?;
                    return Err(e);
                }
            }
        }
        Ok(stats)
    }

    /// Remove the copies of calendars that are gone (deleted, or their owner's account was).
    pub async fn sweep_orphans(&self) -> Result<usize, ShareError> {
        let store = &self.0.store;
        let orphans = store.orphaned_share_copies().await?;
        for c in &orphans {
            self.remove_copy_at(c.recipient, &c.mount, &c.copy_name)
                .await?;
            store
                .forget_share_copy(c.calendar, &c.name, c.recipient)
                .await?;
        }
        Ok(orphans.len())
    }

    /// Bring one calendar's copies up to date, holding its lease (taken until `held`, which
    /// is moved on as the lease is renewed); `None` if the lease was lost on the way.
    async fn calendar(
        &self,
        cal_id: ResourceId,
        owner_id: UserId,
        cursor: ShareCursor,
        whole: bool,
        held: &mut i64,
    ) -> Result<Option<CalendarOutcome>, ShareError> {
        let store = &self.0.store;
        let (Some(cal), Some(owner)) = (
            store.resource(cal_id).await?,
            store.user_by_id(owner_id).await?,
        ) else {
            return Ok(Some(CalendarOutcome {
                cursor,
                written: 0,
                removed: 0,
                pages: 0,
            }));
        };
        let mut refs: BTreeSet<String> = if whole {
            BTreeSet::new()
        } else {
            split_refs(&cursor.refs)
        };
        // Rules and the members of the groups already referenced are read before any copy is
        // written; the fingerprint stored at the end is of these reads.
        let mut groups = Groups::new();
        let rules = store.share_rules_for(cal_id).await?;
        let rule_users = self.rule_users(&owner, &rules, &mut groups).await?;
        for r in refs.clone() {
            if let Some((kind, name)) = r.split_once(':') {
                self.group_into(kind, name, &mut Audience::default(), &mut groups)
                    .await?;
            }
        }
        let settings = store.share_settings(owner.id).await?;
        let colour = settings
            .colour
            .clone()
            .unwrap_or_else(|| crate::directory::avatar::colour_for(&owner.name));
        let seq = cal.sync_seq;
        let since = if whole || cursor.seq <= 0 {
            None
        } else {
            Some(cursor.seq)
        };
        // A token below the tombstone floor cannot tell what was deleted: look at it whole.
        let whole = whole || since.is_none_or(|s| s < cal.tomb_floor);
        let mut job = CalendarJob {
            cal: &cal,
            owner: &owner,
            colour: &colour,
            rule_users: &rule_users,
            refs: &mut refs,
            groups: &mut groups,
            cache: RecipientCache::default(),
            written: 0,
            removed: 0,
        };
        // The change log is read a page at a time, so the memory a pass needs is bounded by
        // the page, not by the calendar. The pass ends at the change number read when it
        // began: an owner writing without pause cannot keep it going, and what came later is
        // the next pass's work. A member changed while the pages are read shows up again
        // after the cursor; reconciling it twice is harmless.
        let mut after = if whole { None } else { since };
        let mut live_names: HashSet<String> = HashSet::new();
        let mut pages = 0usize;
        loop {
            let mut changes = store.changes_since(cal_id, after, Some(PAGE)).await?;
            let more = changes.len() > PAGE;
            changes.truncate(PAGE);
            let Some(last) = changes.last() else { break };
            after = Some(last.seq());
            pages += 1;
            let mut live: Vec<crate::store::Resource> = vec![];
            let mut gone: Vec<String> = vec![];
            for c in changes {
                match c {
                    Change::Live(r) if r.kind == ResourceKind::Object => {
                        live.push(Arc::unwrap_or_clone(r))
                    }
                    Change::Live(_) => {}
                    Change::Deleted { name, .. } => gone.push(name),
                }
            }
            if whole {
                live_names.extend(live.iter().map(|r| r.name.clone()));
                for n in &gone {
                    live_names.remove(n);
                }
            }
            self.reconcile_page(&mut job, live, gone).await?;
            if !more || after.is_some_and(|a| a >= seq) {
                break;
            }
            if !self.renew_lease(cal_id, held).await? {
                return Ok(None);
            }
        }
        if whole {
            job.remove_unread(self, &live_names).await?;
        }
        tracing::trace!(calendar = cal_id.0, pages, whole, "calendar reconciled");
        let (written, removed) = (job.written, job.removed);
        let refs_text = join_refs(&refs);
        let audience = fingerprint(&rules, &rule_users, &refs, &groups);
        Ok(Some(CalendarOutcome {
            cursor: ShareCursor {
                seq: seq.max(cursor.seq).max(after.unwrap_or(0)),
                audience,
                refs: refs_text,
            },
            written,
            removed,
            pages,
        }))
    }

    /// Past half its term, extend the calendar's lease; false if it was lost.
    async fn renew_lease(&self, cal: ResourceId, held: &mut i64) -> Result<bool, ShareError> {
        let now = self.0.cfg.clock.now();
        if now < *held - LEASE_SECONDS / 2 {
            return Ok(true);
        }
        let until = now + LEASE_SECONDS;
        if !self.0.store.renew_share_lease(cal, *held, until).await? {
            return Ok(false);
        }
        *held = until;
        Ok(true)
    }

    /// Reconcile one page of a calendar's change log: the copies of each live member, and
    /// the removal of the copies of the members deleted.
    async fn reconcile_page(
        &self,
        job: &mut CalendarJob<'_>,
        live: Vec<crate::store::Resource>,
        gone: Vec<String>,
    ) -> Result<(), ShareError> {
        let store = &self.0.store;
        let names: Vec<String> = live
            .iter()
            .map(|r| r.name.clone())
            .chain(gone.iter().cloned())
            .collect();
        let mut held: BTreeMap<String, BTreeSet<UserId>> = BTreeMap::new();
        for (n, u) in store.share_copies(job.cal.id, Some(&names)).await? {
            held.entry(n).or_default().insert(u);
        }
        let ids: Vec<ResourceId> = live.iter().map(|r| r.id).collect();
        let bodies: BTreeMap<ResourceId, Vec<u8>> =
            store.object_datas(&ids).await?.into_iter().collect();
        let owner = job.owner;
        for r in &live {
            let Some(body) = bodies.get(&r.id) else {
                continue;
            };
            let had = held.remove(&r.name).unwrap_or_default();
            let mut audience = Audience::default();
            for u in job.rule_users {
                audience.users.insert(u.id, u.clone());
            }
            for a in delegated::informational_addresses(body) {
                self.resolve_address(&a, &mut audience, job.groups).await?;
            }
            // A group with nobody in it yet is still watched: people may join it.
            job.refs.extend(audience.refs.iter().cloned());
            if audience.users.is_empty() && had.is_empty() {
                continue;
            }
            // People invited for real have the invitation; the owner has the original.
            audience.users.remove(&owner.id);
            for p in delegated::participant_addresses(body) {
                let mut a = Audience::default();
                self.resolve_address(&p, &mut a, job.groups).await?;
                for id in a.users.keys() {
                    audience.users.remove(id);
                }
            }
            audience.users.retain(|_, u| !u.disabled);
            let copy_name = copy_name(&job.cal.uuid, &r.name);
            for u in audience.users.values() {
                if self
                    .write_copy(
                        owner,
                        job.colour,
                        u,
                        &copy_name,
                        (r.uid.as_deref(), r.component.as_deref()),
                        body,
                        &mut job.cache,
                    )
                    .await?
                {
                    job.written += 1;
                }
                if had.contains(&u.id) {
                    continue;
                }
                store
                    .record_share_copy(&ShareCopy {
                        calendar: job.cal.id,
                        name: r.name.clone(),
                        recipient: u.id,
                        mount: copies_calendar_name(&owner.name),
                        copy_name: copy_name.clone(),
                    })
                    .await?;
            }
            let dropped: BTreeSet<UserId> = had
                .into_iter()
                .filter(|u| !audience.users.contains_key(u))
                .collect();
            job.remove_held(self, &r.name, dropped).await?;
        }
        for name in gone {
            let users = held.remove(&name).unwrap_or_default();
            job.remove_held(self, &name, users).await?;
        }
        Ok(())
    }

    /// The fingerprint of everyone a calendar's rules and referenced groups stand for now.
    async fn rule_audience(
        &self,
        owner: &User,
        cal: ResourceId,
        refs: &str,
    ) -> Result<String, ShareError> {
        let mut groups = Groups::new();
        let rules = self.0.store.share_rules_for(cal).await?;
        let users = self.rule_users(owner, &rules, &mut groups).await?;
        let refs = split_refs(refs);
        for r in &refs {
            if let Some((kind, name)) = r.split_once(':') {
                self.group_into(kind, name, &mut Audience::default(), &mut groups)
                    .await?;
            }
        }
        Ok(fingerprint(&rules, &users, &refs, &groups))
    }

    /// The accounts a calendar's rules name.
    async fn rule_users(
        &self,
        owner: &User,
        rules: &[ShareRule],
        groups: &mut Groups,
    ) -> Result<Vec<User>, ShareError> {
        let store = &self.0.store;
        let mut a = Audience::default();
        for rule in rules {
            match rule.kind {
                RuleKind::User => {
                    if let Some(u) = store.user_by_name(&rule.target).await? {
                        a.users.insert(u.id, u);
                    }
                }
                RuleKind::Group => {
                    self.group_into("group", &rule.target, &mut a, groups)
                        .await?
                }
                RuleKind::Department => {
                    self.group_into("department", &rule.target, &mut a, groups)
                        .await?
                }
                RuleKind::Manager => {
                    if let Some(m) = self.manager_of(owner).await?
                        && let Some(u) = store.user_by_name(&m).await?
                    {
                        a.users.insert(u.id, u);
                    }
                }
            }
        }
        Ok(a.users.into_values().collect())
    }

    async fn manager_of(&self, owner: &User) -> Result<Option<String>, ShareError> {
        match self.0.org.manager_of(&owner.name).await {
            Ok(m) => Ok(m),
            Err(e) => {
                tracing::warn!(error = %e, "directory unavailable for a manager rule");
                Ok(None)
            }
        }
    }

    async fn group_into(
        &self,
        kind: &str,
        name: &str,
        a: &mut Audience,
        groups: &mut Groups,
    ) -> Result<(), ShareError> {
        let key = format!("{kind}:{name}");
        if !groups.contains_key(&key) {
            let sources: &[GroupSource] = match kind {
                "department" => &[GroupSource::Department],
                _ => &[GroupSource::Directory, GroupSource::Oidc],
            };
            let members = self.0.store.members_of_group(sources, name).await?;
            groups.insert(key.clone(), members);
        }
        for u in groups.get(&key).into_iter().flatten() {
            a.users.insert(u.id, u.clone());
        }
        a.refs.insert(key);
        Ok(())
    }

    /// An attendee address of the convention: a person (`mailto:` or principal URL), a group
    /// (`/dav/groups/NAME/`) or a department (`/dav/departments/NAME/`).
    async fn resolve_address(
        &self,
        address: &str,
        a: &mut Audience,
        groups: &mut Groups,
    ) -> Result<(), ShareError> {
        let store = &self.0.store;
        let addr = address.trim();
        // `get`, not slicing: a multibyte character there must not panic.
        if let Some(mail) = addr
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("mailto:"))
            .and_then(|_| addr.get(7..))
        {
            if let Some(u) = store.user_by_email(mail.trim()).await? {
                a.users.insert(u.id, u);
            }
            return Ok(());
        }
        let path = crate::dav::href_path(addr);
        let Ok(segs) = crate::dav::decode_segments(path) else {
            return Ok(());
        };
        match segs.as_slice() {
            [d, p, name] if d == "dav" && p == "principals" => {
                if let Some(u) = store.user_by_name(name).await? {
                    a.users.insert(u.id, u);
                }
            }
            [d, g, name] if d == "dav" && g == "groups" => {
                self.group_into("group", name, a, groups).await?
            }
            [d, g, name] if d == "dav" && g == "departments" => {
                self.group_into("department", name, a, groups).await?
            }
            _ => {}
        }
        Ok(())
    }

    /// Write (or rewrite) one recipient's copy; `true` when bytes changed.
    #[allow(clippy::too_many_arguments)]
    async fn write_copy(
        &self,
        owner: &User,
        colour: &str,
        to: &User,
        name: &str,
        (uid, component): (Option<&str>, Option<&str>),
        body: &[u8],
        cache: &mut RecipientCache,
    ) -> Result<bool, ShareError> {
        let store = &self.0.store;
        let cfg = &self.0.cfg;
        let prefix_summary = match cache.prefix.get(&to.id) {
            Some(p) => *p,
            None => {
                let p = store.share_settings(to.id).await?.prefix_summary;
                cache.prefix.insert(to.id, p);
                p
            }
        };
        let label = owner
            .display_name
            .clone()
            .unwrap_or_else(|| owner.name.clone());
        let address = crate::calendar::address::preferred(owner);
        let avatar = format!(
            "{}/api/directory/people/{}/photo",
            cfg.public_url.trim_end_matches('/'),
            crate::dav::encode_path(&owner.name)
        );
        let style = Style {
            owner_label: &label,
            owner_address: &address,
            colour_name: delegated::css_colour_name(colour),
            avatar_url: &avatar,
            prefix_summary,
            privacy: cfg.privacy,
        };
        let Some(copy) = delegated::delegated_copy(body, &style) else {
            tracing::warn!(owner = %owner.name, "a shared object could not be read; not copied");
            return Ok(false);
        };
        let mount = match cache.mounts.get(&to.id) {
            Some(m) => *m,
            None => {
                let m = self.mount(owner, &label, colour, to).await?;
                cache.mounts.insert(to.id, m);
                m
            }
        };
        // A recipient may change their alarms meanwhile: retry on their ETag, a bounded
        // number of times.
        for _ in 0..3 {
            let existing = store.child(mount, name).await?;
            let data = match &existing {
                Some(e) => {
                    let old = store.object_data(e.id).await?.unwrap_or_default();
                    let merged =
                        crate::ical::itip::keep_personal(&copy, &old).unwrap_or(copy.clone());
                    if merged == old {
                        return Ok(false);
                    }
                    merged
                }
                None => copy.clone(),
            };
            let cond = match &existing {
                Some(e) => WriteCondition::EtagIn(e.etag.clone().into_iter().collect()),
                None => WriteCondition::MustNotExist,
            };
            // Written through the calendar domain, as the recipient: indexed as any object.
            let limits = crate::calendar::Limits {
                index_horizon_days: cfg.index_horizon_days,
                max_instances: cfg.max_instances,
                ..Default::default()
            };
            let calendars = crate::calendar::Calendars {
                store,
                user: to,
                limits: &limits,
                mailer: None,
                directory: None,
                clock: cfg.clock.as_ref(),
                hooks: &crate::calendar::NoHooks,
            };
            match calendars
                .store_derived(mount, name, data, (uid, component), cond)
                .await
            {
                Ok(()) => return Ok(true),
                Err(crate::calendar::Error::PreconditionFailed(_)) => continue,
                Err(crate::calendar::Error::Refused {
                    refusal: crate::calendar::Refusal::UidConflict { .. },
                    ..
                }) => {
                    tracing::info!(owner = %owner.name, recipient = %to.name, "two shared objects with one UID; the second is not copied");
                    return Ok(false);
                }
                Err(crate::calendar::Error::Store(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(owner = %owner.name, error = %e, "a copy could not be indexed");
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    async fn remove_copy(&self, owner: &User, to: UserId, name: &str) -> Result<(), ShareError> {
        self.remove_copy_at(to, &copies_calendar_name(&owner.name), name)
            .await
    }

    async fn remove_copy_at(&self, to: UserId, mount: &str, name: &str) -> Result<(), ShareError> {
        let store = &self.0.store;
        let chain = store
            .lookup_path(to, &[mount.to_string(), name.to_string()])
            .await?;
        if let [_, _, obj] = chain.as_slice() {
            match store.delete(obj, WriteCondition::None).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The recipient's calendar for this owner's entries, made on first use with the owner's
    /// name and colour (the recipient may rename and recolour it; those stay theirs).
    async fn mount(
        &self,
        owner: &User,
        label: &str,
        colour: &str,
        to: &User,
    ) -> Result<ResourceId, ShareError> {
        let store = &self.0.store;
        let mname = copies_calendar_name(&owner.name);
        let chain = store
            .lookup_path(to.id, std::slice::from_ref(&mname))
            .await?;
        if let [_, m] = chain.as_slice() {
            return Ok(m.id);
        }
        let home = match chain.into_iter().next() {
            Some(h) => h,
            None => store.ensure_home(to.id, &self.0.cfg.home_defaults).await?,
        };
        let prop = |ns: &str, local: &str, prefix: &str, value: &str| StoredProp {
            ns: ns.to_string(),
            local: local.to_string(),
            xml: format!(
                "<{prefix}:{local} xmlns:{prefix}=\"{ns}\">{}</{prefix}:{local}>",
                crate::dav::escape(value)
            )
            .into_bytes(),
        };
        let c = NewCollection {
            name: mname.clone(),
            kind: ResourceKind::Calendar,
            supported_components: Some("VEVENT,VTODO,VJOURNAL".into()),
            props: vec![
                prop("DAV:", "displayname", "D", label),
                prop(
                    "http://apple.com/ns/ical/",
                    "calendar-color",
                    "A",
                    &format!("{}FF", colour.get(..7).unwrap_or(colour)),
                ),
                prop(
                    "urn:ietf:params:xml:ns:caldav",
                    "calendar-description",
                    "C",
                    &format!("Entries {label} shares with you"),
                ),
            ],
        };
        match store.create_collection(home.id, c).await {
            Ok(r) => Ok(r.id),
            Err(StoreError::AlreadyExists) => {
                let chain = store
                    .lookup_path(to.id, std::slice::from_ref(&mname))
                    .await?;
                chain
                    .get(1)
                    .map(|r| r.id)
                    .ok_or_else(|| StoreError::NotFound.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The audience fingerprint: the rules, the accounts they stood for, and the members of each
/// referenced group, as read. Empty when there is nothing to watch.
fn fingerprint(
    rules: &[ShareRule],
    rule_users: &[User],
    refs: &BTreeSet<String>,
    groups: &Groups,
) -> String {
    if rules.is_empty() && refs.is_empty() {
        return String::new();
    }
    let mut text = String::new();
    for r in rules {
        text.push_str(&format!("r{},", r.id));
    }
    let mut ids: Vec<i64> = rule_users
        .iter()
        .filter(|u| !u.disabled)
        .map(|u| u.id.0)
        .collect();
    ids.sort_unstable();
    text.push_str(&format!("|{ids:?}"));
    for r in refs {
        let mut m: Vec<i64> = groups
            .get(r)
            .into_iter()
            .flatten()
            .filter(|u| !u.disabled)
            .map(|u| u.id.0)
            .collect();
        m.sort_unstable();
        text.push_str(&format!("|{r}={m:?}"));
    }
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

/// The copy's member name: stable per owner object, opaque to the recipient.
fn copy_name(calendar_uuid: &str, name: &str) -> String {
    let h = Sha256::digest(format!("{calendar_uuid}/{name}").as_bytes());
    format!("{}.ics", hex::encode(&h[..16]))
}

fn split_refs(s: &str) -> BTreeSet<String> {
    s.split('\n')
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

fn join_refs(r: &BTreeSet<String>) -> String {
    r.iter().cloned().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(copies_owner(&copies_calendar_name("alice")), Some("alice"));
        assert_eq!(copies_owner("calendar"), None);
        let a = copy_name("u1", "x.ics");
        assert_eq!(a, copy_name("u1", "x.ics"));
        assert_ne!(a, copy_name("u2", "x.ics"));
        assert!(a.ends_with(".ics") && a.len() == 36);
        let refs: BTreeSet<String> = ["group:a".to_string(), "department:b".to_string()].into();
        assert_eq!(split_refs(&join_refs(&refs)), refs);
        assert!(split_refs("").is_empty());
    }
}
