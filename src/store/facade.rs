//! The `Store` facade: the configured backend (SQLite or PostgreSQL) behind every capability
//! trait, and this process's cache of collection listings. Each method is a delegation;
//! `route!` is the one visible fork, to the statements SQLite runs in place
//! (`sqlite_direct`), and the methods that use it are the whole list of them.
//!
//! Must never: hold a SQL statement of its own (they live in `sql` and `sqlite_direct`).

use super::*;

/// The configured backend. An enum rather than `dyn` because async trait methods are not
/// object safe; every method is a plain delegation.
#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// The store: a backend plus this process's cache of collection listings.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    listings: Arc<ListingCache>,
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $e,
            // Boxed: sqlx's PostgreSQL futures run to kilobytes, and inline they would set
            // the size of every store call's future, SQLite's too, and of every future that
            // awaits one. Next to a network round trip the allocation costs nothing.
            Backend::Postgres($s) => Box::pin(async { $e }).await,
        }
    };
}

/// The one fork between the portable SQL (`store::sql`, both databases) and the statements SQLite
/// runs in place (`sqlite_direct`): on a SQLite file, `$hot` runs with `$d` the in-place
/// connections (and `$sq` the SQLite store); otherwise the portable body, as `delegate!`. The
/// methods that use it below are the whole list of what runs in place.
macro_rules! route {
    ($self:ident, $sq:ident, $d:ident => $hot:expr, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($sq) => match $sq.direct() {
                Some($d) => $hot,
                None => {
                    let $s = $sq;
                    $e
                }
            },
            Backend::Postgres($s) => Box::pin(async { $e }).await,
        }
    };
}

impl Store {
    /// Open (creating and migrating) a store from a URL: `sqlite://path` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(PgStore::open(url).await?)
        } else {
            Backend::Sqlite(SqliteStore::open(url).await?)
        };
        Ok(Store {
            backend,
            listings: Arc::new(ListingCache::new(listing::DEFAULT_BUDGET_ROWS)),
        })
    }

    /// Bound the listing cache to `rows` (members plus index rows over all collections);
    /// 0 turns it off.
    pub fn with_listing_budget(mut self, rows: usize) -> Store {
        self.listings = Arc::new(ListingCache::new(rows));
        self
    }

    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The members and index rows of collection `coll`, at least as new as `coll.sync_seq`
    /// (the change number the caller read). `None` when the collection does not fit the
    /// listing budget: the caller then asks the indexed queries instead.
    pub async fn listing(&self, coll: &Resource) -> Result<Option<SharedListing>> {
        if self.listings.budget() == 0 || self.listings.is_too_big(coll.id) {
            return Ok(None);
        }
        let fresh = |shared: &SharedListing| {
            shared.read().unwrap_or_else(|e| e.into_inner()).seq() >= coll.sync_seq
        };
        if let Some(shared) = self.listings.get(coll.id)
            && fresh(&shared)
        {
            return Ok(Some(shared));
        }
        // Stale or missing: one request at a time brings it up to date; those waiting here
        // then find it fresh and run no queries of their own.
        let _turn = self.listings.gate(coll.id).lock().await;
        if self.listings.is_too_big(coll.id) {
            return Ok(None);
        }
        if let Some(shared) = self.listings.get(coll.id) {
            let since = {
                let l = shared.read().unwrap_or_else(|e| e.into_inner());
                l.seq()
            };
            if since >= coll.sync_seq {
                return Ok(Some(shared));
            }
            if coll.tomb_floor <= since {
                let changes = self
                    .changes_since(coll.id, Some(since), Some(listing::DELTA_LIMIT))
                    .await?;
                if changes.len() <= listing::DELTA_LIMIT {
                    let live: Vec<ResourceId> = changes
                        .iter()
                        .filter_map(|c| match c {
                            Change::Live(r) => Some(r.id),
                            Change::Deleted { .. } => None,
                        })
                        .collect();
                    let rows = if live.is_empty() {
                        vec![]
                    } else {
                        self.instances_of(coll.id, Some(&live)).await?
                    };
                    let size = {
                        let mut l = shared.write().unwrap_or_else(|e| e.into_inner());
                        // Another request may have patched it meanwhile; replaying changes
                        // in order from an older label is idempotent, from a newer one it
                        // would be wrong, so only patch the label we read.
                        if l.seq() == since {
                            tracing::debug!(
                                collection = coll.id.0,
                                since,
                                changes = changes.len(),
                                "listing patched"
                            );
                            l.apply(coll.sync_seq, changes, rows);
                        }
                        listing::rows_of(&l)
                    };
                    self.listings.resized(coll.id, size);
                    // If a concurrent patch from an older label won, the listing may still be
                    // behind the row we read: answer from SQL this time rather than serve it.
                    let seq = shared.read().unwrap_or_else(|e| e.into_inner()).seq();
                    return Ok((seq >= coll.sync_seq).then_some(shared));
                }
            }
        }
        tracing::debug!(
            collection = coll.id.0,
            seq = coll.sync_seq,
            "listing loaded"
        );
        let direct = match &self.backend {
            Backend::Sqlite(s) => s.direct_shared(),
            Backend::Postgres(_) => None,
        };
        let listing = match direct {
            // A whole calendar takes milliseconds to seconds to read: off the runtime threads.
            Some(d) => {
                let (id, seq) = (coll.id, coll.sync_seq);
                tokio::task::spawn_blocking(move || d.load_listing(id, seq))
                    .await
                    .map_err(|e| StoreError::Direct(format!("listing load: {e}")))??
            }
            None => {
                let members = self.children(coll.id).await?;
                let rows = self.instances_of(coll.id, None).await?;
                Listing::build(coll.sync_seq, members, rows)
            }
        };
        Ok(self.listings.put(coll.id, listing))
    }

    pub async fn close(&self) {
        delegate!(self, s => s.close().await)
    }
}

impl UserStore for Store {
    async fn create_user(&self, user: NewUser) -> Result<User> {
        delegate!(self, s => s.create_user(user).await)
    }
    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        route!(self, _sq, d => d.user_by_name(name), s => s.user_by_name(name).await)
    }
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        route!(self, _sq, d => d.user_by_id(id), s => s.user_by_id(id).await)
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        delegate!(self, s => s.user_by_email(email).await)
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        delegate!(self, s => s.list_users().await)
    }
    async fn set_disabled(&self, id: UserId, disabled: bool) -> Result<()> {
        delegate!(self, s => s.set_disabled(id, disabled).await)
    }
    async fn set_password(&self, id: UserId, hash: &str) -> Result<()> {
        delegate!(self, s => s.set_password(id, hash).await)
    }
    async fn delete_user(&self, id: UserId) -> Result<()> {
        delegate!(self, s => s.delete_user(id).await)
    }
}

impl ResourceReader for Store {
    async fn home(&self, owner: UserId) -> Result<Option<Resource>> {
        route!(self, _sq, d => d.home(owner), s => s.home(owner).await)
    }
    async fn resource(&self, id: ResourceId) -> Result<Option<Resource>> {
        route!(self, _sq, d => d.resource(id), s => s.resource(id).await)
    }
    async fn child(&self, parent: ResourceId, name: &str) -> Result<Option<Resource>> {
        route!(self, _sq, d => d.child(parent, name), s => s.child(parent, name).await)
    }
    async fn children(&self, parent: ResourceId) -> Result<Vec<Resource>> {
        delegate!(self, s => s.children(parent).await)
    }
    async fn children_after(
        &self,
        parent: ResourceId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Resource>> {
        delegate!(self, s => s.children_after(parent, after, limit).await)
    }
    async fn children_by_id(
        &self,
        parent: ResourceId,
        ids: &[ResourceId],
    ) -> Result<Vec<Resource>> {
        delegate!(self, s => s.children_by_id(parent, ids).await)
    }
    async fn children_by_name(
        &self,
        parent: ResourceId,
        names: &[String],
    ) -> Result<Vec<Resource>> {
        delegate!(self, s => s.children_by_name(parent, names).await)
    }
    async fn object_data(&self, id: ResourceId) -> Result<Option<Vec<u8>>> {
        route!(self, _sq, d => d.object_data(id), s => s.object_data(id).await)
    }
    async fn objects_by_uid(&self, owner: UserId, uid: &str) -> Result<Vec<Resource>> {
        delegate!(self, s => s.objects_by_uid(owner, uid).await)
    }
    async fn lookup_path(&self, owner: UserId, names: &[String]) -> Result<Vec<Resource>> {
        route!(self, _sq, d => d.lookup_path(owner, names), s => s.lookup_path(owner, names).await)
    }
    async fn object_datas(&self, ids: &[ResourceId]) -> Result<Vec<(ResourceId, Vec<u8>)>> {
        route!(self, _sq, d => d.object_datas(ids), s => s.object_datas(ids).await)
    }
    async fn props(&self, id: ResourceId, viewer: UserId) -> Result<Vec<StoredProp>> {
        route!(self, _sq, d => d.props(id, viewer), s => s.props(id, viewer).await)
    }
    async fn child_props(
        &self,
        parent: ResourceId,
        viewer: UserId,
    ) -> Result<Vec<(ResourceId, StoredProp)>> {
        delegate!(self, s => s.child_props(parent, viewer).await)
    }
}

impl ResourceWriter for Store {
    async fn ensure_home(&self, owner: UserId, defaults: &[NewCollection]) -> Result<Resource> {
        // Boxed: it runs once per account, and its transaction's future would otherwise size
        // every request's that might reach it.
        Box::pin(async { delegate!(self, s => s.ensure_home(owner, defaults).await) }).await
    }
    async fn create_collection(&self, parent: ResourceId, c: NewCollection) -> Result<Resource> {
        delegate!(self, s => s.create_collection(parent, c).await)
    }
    async fn put_object(
        &self,
        parent: ResourceId,
        name: &str,
        obj: NewObject,
        cond: WriteCondition,
    ) -> Result<(Resource, bool)> {
        route!(self, sq, d => sq.put_object_in_place(d, parent, name, &obj, &cond).await, s => s.put_object(parent, name, obj, cond).await)
    }
    async fn delete(&self, target: &Resource, cond: WriteCondition) -> Result<()> {
        delegate!(self, s => s.delete(target, cond).await)
    }
    async fn transfer(
        &self,
        src: &Resource,
        dest_parent: ResourceId,
        dest_name: &str,
        overwrite: bool,
        is_move: bool,
    ) -> Result<bool> {
        delegate!(self, s => s.transfer(src, dest_parent, dest_name, overwrite, is_move).await)
    }
    async fn patch_props(
        &self,
        id: ResourceId,
        viewer: UserId,
        set: Vec<StoredProp>,
        remove: Vec<(String, String)>,
    ) -> Result<()> {
        delegate!(self, s => s.patch_props(id, viewer, set, remove).await)
    }
}

impl IndexReader for Store {
    async fn instances_between(
        &self,
        parent: ResourceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<InstanceRow>> {
        delegate!(self, s => s.instances_between(parent, from, to).await)
    }
    async fn instances_of(
        &self,
        parent: ResourceId,
        ids: Option<&[ResourceId]>,
    ) -> Result<Vec<InstanceRow>> {
        match ids {
            Some(ids) => {
                route!(self, _sq, d => d.instances_of(parent, ids), s => s.instances_of(parent, Some(ids)).await)
            }
            None => delegate!(self, s => s.instances_of(parent, None).await),
        }
    }
    async fn incomplete_objects(
        &self,
        parent: ResourceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Resource>> {
        delegate!(self, s => s.incomplete_objects(parent, from, to).await)
    }
}

impl SessionStore for Store {
    async fn create_session(&self, s: NewSession) -> Result<Session> {
        delegate!(self, x => x.create_session(s).await)
    }
    async fn session_by_hash(&self, token_hash: &str, now: i64) -> Result<Option<(Session, User)>> {
        delegate!(self, x => x.session_by_hash(token_hash, now).await)
    }
    async fn session_by_id(&self, id: i64, now: i64) -> Result<Option<(Session, User)>> {
        route!(self, _sq, d => d.session_by_id(id, now), s => s.session_by_id(id, now).await)
    }
    async fn renew_session(
        &self,
        id: i64,
        id_token: Option<&str>,
        refresh_sealed: Option<&str>,
        refresh_due: Option<i64>,
    ) -> Result<()> {
        delegate!(self, x => x.renew_session(id, id_token, refresh_sealed, refresh_due).await)
    }
    async fn delete_session(&self, id: i64) -> Result<bool> {
        delegate!(self, x => x.delete_session(id).await)
    }
    async fn delete_sessions_of(&self, user: UserId) -> Result<u64> {
        delegate!(self, x => x.delete_sessions_of(user).await)
    }
    async fn purge_sessions(&self, now: i64) -> Result<u64> {
        delegate!(self, x => x.purge_sessions(now).await)
    }
    async fn user_by_oidc(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        delegate!(self, x => x.user_by_oidc(issuer, subject).await)
    }
    async fn link_oidc(&self, issuer: &str, subject: &str, user: UserId) -> Result<()> {
        delegate!(self, x => x.link_oidc(issuer, subject, user).await)
    }
    async fn has_oidc(&self, issuer: Option<&str>, user: UserId) -> Result<bool> {
        delegate!(self, x => x.has_oidc(issuer, user).await)
    }
    async fn set_user_groups(
        &self,
        user: UserId,
        source: GroupSource,
        groups: &[String],
    ) -> Result<()> {
        delegate!(self, x => x.set_user_groups(user, source, groups).await)
    }
    async fn groups_of(&self, user: UserId) -> Result<Vec<String>> {
        delegate!(self, x => x.groups_of(user).await)
    }
    async fn group_members(&self, source: GroupSource) -> Result<Vec<(String, Vec<User>)>> {
        delegate!(self, x => x.group_members(source).await)
    }
}

impl BindingStore for Store {
    async fn set_binding(
        &self,
        user: UserId,
        system: &str,
        state: BindingState,
        at: i64,
    ) -> Result<()> {
        delegate!(self, x => x.set_binding(user, system, state, at).await)
    }
    async fn bindings_of(&self, user: UserId) -> Result<Vec<Binding>> {
        delegate!(self, x => x.bindings_of(user).await)
    }
    async fn remove_binding(&self, user: UserId, system: &str) -> Result<bool> {
        delegate!(self, x => x.remove_binding(user, system).await)
    }
    async fn record_release(
        &self,
        user: UserId,
        system: &str,
        purpose: AuditPurpose,
        outcome: AuditOutcome,
        at: i64,
    ) -> Result<()> {
        delegate!(self, x => x.record_release(user, system, purpose, outcome, at).await)
    }
    async fn releases(&self, user: Option<UserId>, limit: i64) -> Result<Vec<AuditEntry>> {
        delegate!(self, x => x.releases(user, limit).await)
    }
    async fn add_handoff(&self, h: &Handoff, now: i64) -> Result<()> {
        delegate!(self, x => x.add_handoff(h, now).await)
    }
    async fn take_handoff(&self, code_hash: &str, now: i64) -> Result<Option<Handoff>> {
        delegate!(self, x => x.take_handoff(code_hash, now).await)
    }
    async fn registered_systems(&self) -> Result<Vec<(String, String)>> {
        delegate!(self, x => x.registered_systems().await)
    }
    async fn register_system(&self, name: &str, entry: &str, at: i64) -> Result<()> {
        delegate!(self, x => x.register_system(name, entry, at).await)
    }
    async fn unregister_system(&self, name: &str) -> Result<bool> {
        delegate!(self, x => x.unregister_system(name).await)
    }
    async fn systems_with_bindings(&self) -> Result<Vec<String>> {
        delegate!(self, x => x.systems_with_bindings().await)
    }
    async fn forget_system(&self, system: &str) -> Result<u64> {
        delegate!(self, x => x.forget_system(system).await)
    }
}

impl VaultStore for Store {
    async fn vault_check(&self) -> Result<Option<(String, Vec<u8>)>> {
        delegate!(self, x => x.vault_check().await)
    }
    async fn set_vault_check(&self, kek_id: &str, blob: &[u8]) -> Result<()> {
        delegate!(self, x => x.set_vault_check(kek_id, blob).await)
    }
    async fn data_key(&self, user: UserId) -> Result<Option<StoredKey>> {
        delegate!(self, x => x.data_key(user).await)
    }
    async fn add_data_key(&self, user: UserId, key: &StoredKey) -> Result<StoredKey> {
        delegate!(self, x => x.add_data_key(user, key).await)
    }
    async fn data_keys_not_under(&self, kek_id: &str) -> Result<Vec<(UserId, StoredKey)>> {
        delegate!(self, x => x.data_keys_not_under(kek_id).await)
    }
    async fn rewrap_data_key(&self, user: UserId, old_kek: &str, key: &StoredKey) -> Result<bool> {
        delegate!(self, x => x.rewrap_data_key(user, old_kek, key).await)
    }
    async fn put_secret(
        &self,
        user: UserId,
        system: &str,
        field: &str,
        blob: &[u8],
        now: i64,
    ) -> Result<()> {
        delegate!(self, x => x.put_secret(user, system, field, blob, now).await)
    }
    async fn secret(&self, user: UserId, system: &str, field: &str) -> Result<Option<Vec<u8>>> {
        delegate!(self, x => x.secret(user, system, field).await)
    }
    async fn remove_secrets(&self, user: UserId, system: Option<&str>) -> Result<u64> {
        delegate!(self, x => x.remove_secrets(user, system).await)
    }
}

impl OrgStore for Store {
    async fn org_chart(
        &self,
    ) -> Result<(Vec<OrgDepartment>, Vec<OrgGroup>, Vec<(String, OrgPerson)>)> {
        delegate!(self, x => x.org_chart().await)
    }
    async fn put_department(&self, d: &OrgDepartment) -> Result<()> {
        delegate!(self, x => x.put_department(d).await)
    }
    async fn remove_department(&self, name: &str) -> Result<bool> {
        delegate!(self, x => x.remove_department(name).await)
    }
    async fn put_group(&self, name: &str, description: Option<&str>) -> Result<()> {
        delegate!(self, x => x.put_group(name, description).await)
    }
    async fn remove_group(&self, name: &str) -> Result<bool> {
        delegate!(self, x => x.remove_group(name).await)
    }
    async fn set_group_member(&self, group: &str, user: UserId, member: bool) -> Result<bool> {
        delegate!(self, x => x.set_group_member(group, user, member).await)
    }
    async fn put_person(&self, user: UserId, p: &OrgPerson) -> Result<()> {
        delegate!(self, x => x.put_person(user, p).await)
    }
}

impl MailOutboxStore for Store {
    async fn enqueue_mail(
        &self,
        recipient: &str,
        message: &[u8],
        origin: Option<&MailOrigin>,
    ) -> Result<i64> {
        delegate!(self, s => s.enqueue_mail(recipient, message, origin).await)
    }
    async fn claim_mail(
        &self,
        now: i64,
        lease_seconds: i64,
        limit: i64,
    ) -> Result<Vec<OutboxMail>> {
        delegate!(self, s => s.claim_mail(now, lease_seconds, limit).await)
    }
    async fn mail_sent(&self, id: i64, now: i64) -> Result<()> {
        delegate!(self, s => s.mail_sent(id, now).await)
    }
    async fn mail_failed(&self, id: i64, next_attempt_at: i64, error: &str) -> Result<()> {
        delegate!(self, s => s.mail_failed(id, next_attempt_at, error).await)
    }
    async fn unsent_mail(&self) -> Result<i64> {
        delegate!(self, s => s.unsent_mail().await)
    }
}

impl FeedStore for Store {
    async fn create_feed(
        &self,
        owner: UserId,
        calendar: ResourceId,
        label: &str,
        token_hash: &str,
        detail: crate::ical::privacy::Detail,
    ) -> Result<Feed> {
        delegate!(self, s => s.create_feed(owner, calendar, label, token_hash, detail).await)
    }
    async fn feeds_of(&self, owner: UserId) -> Result<Vec<Feed>> {
        delegate!(self, s => s.feeds_of(owner).await)
    }
    async fn use_feed(&self, token_hash: &str) -> Result<Option<Feed>> {
        delegate!(self, s => s.use_feed(token_hash).await)
    }
    async fn revoke_feed(&self, owner: UserId, id: i64) -> Result<bool> {
        delegate!(self, s => s.revoke_feed(owner, id).await)
    }
}

impl AppPasswordStore for Store {
    async fn create_app_password(&self, p: NewAppPassword) -> Result<AppPassword> {
        delegate!(self, s => s.create_app_password(p).await)
    }
    async fn app_password_by_lookup(&self, lookup: &str) -> Result<Option<AppPassword>> {
        delegate!(self, s => s.app_password_by_lookup(lookup).await)
    }
    async fn app_passwords_of(&self, user: UserId) -> Result<Vec<AppPassword>> {
        delegate!(self, s => s.app_passwords_of(user).await)
    }
    async fn revoke_app_password(&self, user: UserId, id: i64) -> Result<bool> {
        delegate!(self, s => s.revoke_app_password(user, id).await)
    }
    async fn touch_app_password(&self, id: i64, now: i64) -> Result<()> {
        delegate!(self, s => s.touch_app_password(id, now).await)
    }
}

impl ShareStore for Store {
    async fn add_share_rule(
        &self,
        owner: UserId,
        calendar: ResourceId,
        kind: RuleKind,
        target: &str,
    ) -> Result<ShareRule> {
        delegate!(self, s => s.add_share_rule(owner, calendar, kind, target).await)
    }
    async fn share_rules_of(&self, owner: UserId) -> Result<Vec<ShareRule>> {
        delegate!(self, s => s.share_rules_of(owner).await)
    }
    async fn share_rules_for(&self, calendar: ResourceId) -> Result<Vec<ShareRule>> {
        delegate!(self, s => s.share_rules_for(calendar).await)
    }
    async fn remove_share_rule(&self, owner: UserId, id: i64) -> Result<bool> {
        delegate!(self, s => s.remove_share_rule(owner, id).await)
    }
    async fn share_pending(&self, now: i64) -> Result<Vec<PendingCalendar>> {
        delegate!(self, s => s.share_pending(now).await)
    }
    async fn share_watched(&self) -> Result<Vec<(ResourceId, UserId, ShareCursor)>> {
        delegate!(self, s => s.share_watched().await)
    }
    async fn claim_share_cursor(
        &self,
        calendar: ResourceId,
        now: i64,
        until: i64,
    ) -> Result<Option<ShareCursor>> {
        delegate!(self, s => s.claim_share_cursor(calendar, now, until).await)
    }
    async fn renew_share_lease(&self, calendar: ResourceId, held: i64, until: i64) -> Result<bool> {
        delegate!(self, s => s.renew_share_lease(calendar, held, until).await)
    }
    async fn release_share_cursor(
        &self,
        calendar: ResourceId,
        cursor: &ShareCursor,
        held: i64,
    ) -> Result<bool> {
        delegate!(self, s => s.release_share_cursor(calendar, cursor, held).await)
    }
    async fn share_copies(
        &self,
        calendar: ResourceId,
        names: Option<&[String]>,
    ) -> Result<Vec<(String, UserId)>> {
        delegate!(self, s => s.share_copies(calendar, names).await)
    }
    async fn record_share_copy(&self, copy: &ShareCopy) -> Result<()> {
        delegate!(self, s => s.record_share_copy(copy).await)
    }
    async fn orphaned_share_copies(&self) -> Result<Vec<ShareCopy>> {
        delegate!(self, s => s.orphaned_share_copies().await)
    }
    async fn forget_share_copy(
        &self,
        calendar: ResourceId,
        name: &str,
        recipient: UserId,
    ) -> Result<()> {
        delegate!(self, s => s.forget_share_copy(calendar, name, recipient).await)
    }
    async fn share_settings(&self, user: UserId) -> Result<ShareSettings> {
        delegate!(self, s => s.share_settings(user).await)
    }
    async fn set_share_settings(&self, user: UserId, st: &ShareSettings) -> Result<()> {
        delegate!(self, s => s.set_share_settings(user, st).await)
    }
    async fn members_of_group(&self, sources: &[GroupSource], name: &str) -> Result<Vec<User>> {
        delegate!(self, s => s.members_of_group(sources, name).await)
    }
}

impl CalendarShareStore for Store {
    async fn set_calendar_share(
        &self,
        calendar: ResourceId,
        owner: UserId,
        sharee: UserId,
        access: ShareAccess,
        summary: Option<&str>,
        accepted: bool,
    ) -> Result<(CalendarShare, bool)> {
        delegate!(self, s => s.set_calendar_share(calendar, owner, sharee, access, summary, accepted).await)
    }
    async fn remove_calendar_share(
        &self,
        calendar: ResourceId,
        sharee: UserId,
    ) -> Result<Option<CalendarShare>> {
        delegate!(self, s => s.remove_calendar_share(calendar, sharee).await)
    }
    async fn shares_of_calendar(&self, calendar: ResourceId) -> Result<Vec<CalendarShare>> {
        delegate!(self, s => s.shares_of_calendar(calendar).await)
    }
    async fn shared_calendar_ids(&self, owner: UserId) -> Result<Vec<ResourceId>> {
        delegate!(self, s => s.shared_calendar_ids(owner).await)
    }
    async fn share_by_invite(&self, invite_uid: &str) -> Result<Option<CalendarShare>> {
        delegate!(self, s => s.share_by_invite(invite_uid).await)
    }
    async fn share_by_mount(&self, sharee: UserId, mount: &str) -> Result<Option<CalendarShare>> {
        delegate!(self, s => s.share_by_mount(sharee, mount).await)
    }
    async fn shares_to(&self, sharee: UserId) -> Result<Vec<CalendarShare>> {
        delegate!(self, s => s.shares_to(sharee).await)
    }
    async fn set_share_status(&self, id: i64, status: InviteStatus) -> Result<()> {
        delegate!(self, s => s.set_share_status(id, status).await)
    }
    async fn open_access_request(&self, r: NewAccessRequest<'_>) -> Result<AccessRequest> {
        delegate!(self, s => s.open_access_request(r).await)
    }
    async fn access_request(&self, id: i64) -> Result<Option<AccessRequest>> {
        delegate!(self, s => s.access_request(id).await)
    }
    async fn access_request_by_uid(&self, uid: &str) -> Result<Option<AccessRequest>> {
        delegate!(self, s => s.access_request_by_uid(uid).await)
    }
    async fn access_requests_of(&self, user: UserId) -> Result<Vec<AccessRequest>> {
        delegate!(self, s => s.access_requests_of(user).await)
    }
    async fn decide_access_request(
        &self,
        id: i64,
        status: RequestStatus,
        granted: Option<ShareAccess>,
    ) -> Result<bool> {
        delegate!(self, s => s.decide_access_request(id, status, granted).await)
    }
    async fn access_requests_since(&self, requester: UserId, since: i64) -> Result<i64> {
        delegate!(self, s => s.access_requests_since(requester, since).await)
    }
    async fn personal_data_in(
        &self,
        calendar: ResourceId,
        user: UserId,
    ) -> Result<Vec<(ResourceId, String, Vec<u8>)>> {
        delegate!(self, s => s.personal_data_in(calendar, user).await)
    }
    async fn set_personal_data(
        &self,
        resource: ResourceId,
        user: UserId,
        etag: &str,
        data: &[u8],
    ) -> Result<()> {
        delegate!(self, s => s.set_personal_data(resource, user, etag, data).await)
    }
}

impl DelegateStore for Store {
    async fn set_delegates(&self, owner: UserId, write: bool, members: &[UserId]) -> Result<()> {
        delegate!(self, s => s.set_delegates(owner, write, members).await)
    }
    async fn delegates_of(&self, owner: UserId) -> Result<Vec<(User, bool)>> {
        delegate!(self, s => s.delegates_of(owner).await)
    }
    async fn delegators_of(&self, delegate: UserId) -> Result<Vec<(User, bool)>> {
        delegate!(self, s => s.delegators_of(delegate).await)
    }
    async fn delegation(&self, owner: UserId, delegate: UserId) -> Result<Option<bool>> {
        delegate!(self, s => s.delegation(owner, delegate).await)
    }
}

impl SyncReader for Store {
    async fn changes_since(
        &self,
        parent: ResourceId,
        since: Option<i64>,
        limit: Option<usize>,
    ) -> Result<Vec<Change>> {
        // With a token the answer is as long as what changed, so it runs in place.
        match since {
            Some(since) => route!(self, _sq, d => {
                let cap = limit.map_or(i64::MAX, |l| l as i64 + 1);
                let mut out = d.changes_since(parent, since, cap)?;
                if let Some(l) = limit {
                    out.truncate(l + 1);
                }
                Ok(out)
            }, s => s.changes_since(parent, Some(since), limit).await),
            None => delegate!(self, s => s.changes_since(parent, None, limit).await),
        }
    }
}
