//! Principal look-ups that Apple Calendar relies on beyond RFC 3744's reports:
//! CalendarServer's `calendarserver-principal-search` (attendee and delegate search by typed
//! tokens) and RFC 3253 3.8 `expand-property` (one request that reads a principal's
//! delegations and, for each principal they name, that principal's own properties).
//!
//! Must never: touch SQL, list disabled users, or expand an href into anything but a
//! principal's public properties.

use http::StatusCode;

use super::props::Prop;
use super::{Dav, DavResponse, Node, internal, principal_href};
use crate::calendar::address::principal_name;
use crate::dav::{self, DavError, Multistatus, NS_CS, NS_DAV, PropertyName, PropfindRequest};
use crate::store::{User, UserStore};

/// Most principals one search returns when the client sets no limit.
const DEFAULT_SEARCH_LIMIT: usize = 50;

/// A principal's fields that search tokens match, caseless.
fn matches_token(u: &User, token: &str) -> bool {
    [
        Some(u.name.as_str()),
        u.display_name.as_deref(),
        u.email.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|f| f.to_lowercase().contains(token))
}

impl Dav<'_> {
    /// `calendarserver-principal-search`: principals matching every search token (in name,
    /// display name or email), with the properties asked for; `CS:limit/CS:nresults` caps the
    /// count, and a truncated answer says so with 507 on the request URI (as RFC 5323 does).
    pub(super) async fn cs_principal_search(
        &self,
        request_href: &str,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        let tokens: Vec<String> = root
            .children_named(NS_CS, "search-token")
            .map(|t| t.text.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() {
            return Err(DavError::bad_request(
                "calendarserver-principal-search needs at least one non-empty search-token",
            ));
        }
        let limit = root
            .child(NS_CS, "limit")
            .and_then(|l| l.child(NS_CS, "nresults"))
            .and_then(|n| n.text.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_SEARCH_LIMIT)
            .clamp(1, 1000);
        let names = root
            .child(NS_DAV, "prop")
            .map(dav::prop_names)
            .unwrap_or_default();
        // Directory people are principals too, before their first login.
        if let Some(dir) = self.directory {
            match dir.search_people(&tokens[0], limit).await {
                Ok(people) => {
                    for p in people {
                        if let Err(e) = crate::auth::provision(self.store, &p).await {
                            tracing::warn!(error = %e, "provisioning a directory person failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "directory search failed"),
            }
        }
        let users = self.store.list_users().await.map_err(internal)?;
        let mut hits = users
            .iter()
            .filter(|u| !u.disabled && tokens.iter().all(|t| matches_token(u, t)));
        let mut ms = Multistatus::new();
        for u in hits.by_ref().take(limit) {
            self.prefetch_links(u).await?;
            let node = Node::Principal(u);
            let (found, missing) =
                self.propfind_props(&PropfindRequest::Prop(names.clone()), &node, &[]);
            ms.propstat_response(&node.href(), &found, &[(404, missing)]);
        }
        let more = hits.next().is_some();
        // Group principals (directory groups and departments) match on their name.
        for g in self.group_principals().await? {
            if tokens.iter().all(|t| super::groups::group_matches(&g, t)) {
                let node = Node::Group(&g);
                let (found, missing) =
                    self.propfind_props(&PropfindRequest::Prop(names.clone()), &node, &[]);
                ms.propstat_response(&node.href(), &found, &[(404, missing)]);
            }
        }
        if more {
            ms.status_response(request_href, 507, None);
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// `expand-property` (RFC 3253 3.8) on `node`: each requested property, and where it holds
    /// hrefs to principals and nested properties are asked for, a response per principal with
    /// those properties in place of the href.
    pub(super) async fn expand_property(
        &self,
        node: &Node<'_>,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        let mut found = vec![];
        let mut missing = vec![];
        for p in root.children_named(NS_DAV, "property") {
            let name = property_name(p);
            let prop = Prop::from_name(&name);
            let nested: Vec<PropertyName> = p
                .children_named(NS_DAV, "property")
                .map(property_name)
                .collect();
            let hrefs = self.href_values(&prop, node);
            match (hrefs, nested.is_empty()) {
                (Some(hrefs), false) => {
                    let mut inner = String::new();
                    for h in hrefs {
                        let Some(user) = self.principal_at(&h).await? else {
                            // Not a principal: left as the href it is.
                            inner.push_str(&format!(
                                "<D:response><D:href>{}</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>",
                                dav::escape(&h)
                            ));
                            continue;
                        };
                        self.prefetch_links(&user).await?;
                        let pnode = Node::Principal(&user);
                        let (f, m) = self.propfind_props(
                            &PropfindRequest::Prop(nested.clone()),
                            &pnode,
                            &[],
                        );
                        inner
                            .push_str(&format!("<D:response><D:href>{}</D:href>", dav::escape(&h)));
                        if !f.is_empty() {
                            inner.push_str(&dav::propstat_xml(200, &f));
                        }
                        if !m.is_empty() {
                            inner.push_str(&dav::propstat_xml(404, &m));
                        }
                        inner.push_str("</D:response>");
                    }
                    found.push(wrap(&name, &inner));
                }
                _ => match self.render(&prop, node, &[]) {
                    Some(x) => found.push(x),
                    None => missing.push(name.empty_element()),
                },
            }
        }
        let mut ms = Multistatus::new();
        ms.propstat_response(&node.href(), &found, &[(404, missing)]);
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }

    /// The hrefs an href-valued property holds on `node`, for expansion.
    fn href_values(&self, prop: &Prop, node: &Node<'_>) -> Option<Vec<String>> {
        match (prop, node) {
            (Prop::CurrentUserPrincipal, _) => Some(vec![principal_href(&self.user.name)]),
            (Prop::PrincipalUrl, Node::Principal(u)) => Some(vec![principal_href(&u.name)]),
            (Prop::Owner, Node::Res { owner, .. }) => Some(vec![principal_href(&owner.name)]),
            (Prop::Owner, Node::Principal(u)) => Some(vec![principal_href(&u.name)]),
            (Prop::GroupMemberSet, Node::ProxyGroup { members, .. }) => Some(members.clone()),
            (Prop::GroupMemberSet, Node::Group(g)) => Some(g.members.clone()),
            (Prop::PrincipalUrl, Node::Group(g)) => Some(vec![g.href()]),
            (
                Prop::GroupMembership | Prop::CalendarProxyReadFor | Prop::CalendarProxyWriteFor,
                Node::Principal(u),
            ) => self.link_hrefs(prop, u),
            _ => None,
        }
    }

    async fn principal_at(&self, href: &str) -> Result<Option<User>, DavError> {
        match principal_name(href) {
            Some(name) => Ok(self
                .store
                .user_by_name(&name)
                .await
                .map_err(internal)?
                .filter(|u| !u.disabled)),
            None => Ok(None),
        }
    }
}

/// The `name`/`namespace` attributes of an expand-property `property` element (RFC 3253 3.8:
/// the namespace defaults to `DAV:`).
fn property_name(p: &dav::Element) -> PropertyName {
    PropertyName::new(
        p.attr("namespace").unwrap_or(NS_DAV),
        p.attr("name").unwrap_or_default(),
    )
}

/// `<prefix:name>inner</prefix:name>` for a property whose value is the expanded responses.
fn wrap(name: &PropertyName, inner: &str) -> String {
    let (prefix, decl) = match name.ns.as_str() {
        NS_DAV => ("D", String::new()),
        dav::NS_CALDAV => ("C", String::new()),
        NS_CS => ("CS", String::new()),
        other => ("X", format!(" xmlns:X=\"{}\"", dav::escape(other))),
    };
    if inner.is_empty() {
        format!("<{prefix}:{}{decl}/>", name.local)
    } else {
        format!(
            "<{prefix}:{}{decl}>{inner}</{prefix}:{}>",
            name.local, name.local
        )
    }
}
