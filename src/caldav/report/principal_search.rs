//! principal-property-search (RFC 3744 9.4) and CalendarServer's calendarserver-principal-search.

use crate::caldav::*;

/// The properties principal-property-search can match on (RFC 3744 9.5).
pub(in crate::caldav) const PRINCIPAL_SEARCH_PROPERTY_SET: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<D:principal-search-property-set xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">"#,
    r#"<D:principal-search-property><D:prop><D:displayname/></D:prop>"#,
    r#"<D:description xml:lang="en">Display name</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><C:calendar-user-address-set/></D:prop>"#,
    r#"<D:description xml:lang="en">Calendar address (mailto:)</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><CS:email-address-set xmlns:CS="http://calendarserver.org/ns/"/></D:prop>"#,
    r#"<D:description xml:lang="en">Email address</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><CS:first-name xmlns:CS="http://calendarserver.org/ns/"/></D:prop>"#,
    r#"<D:description xml:lang="en">First name</D:description></D:principal-search-property>"#,
    r#"<D:principal-search-property><D:prop><CS:last-name xmlns:CS="http://calendarserver.org/ns/"/></D:prop>"#,
    r#"<D:description xml:lang="en">Last name</D:description></D:principal-search-property>"#,
    r#"</D:principal-search-property-set>"#
);

/// A principal property principal-property-search matches against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::caldav) enum PrincipalField {
    DisplayName,
    Address,
    /// CalendarServer's first-name and last-name: the first and last word of the display name.
    FirstName,
    LastName,
}

impl PrincipalField {
    pub(in crate::caldav) fn of(ns: &str, local: &str) -> Option<PrincipalField> {
        match (ns, local) {
            (NS_DAV, "displayname") => Some(PrincipalField::DisplayName),
            (NS_CALDAV, "calendar-user-address-set") => Some(PrincipalField::Address),
            (NS_CS, "email-address-set") => Some(PrincipalField::Address),
            (NS_CS, "first-name") => Some(PrincipalField::FirstName),
            (NS_CS, "last-name") => Some(PrincipalField::LastName),
            _ => None,
        }
    }

    pub(in crate::caldav) fn values(self, u: &User) -> Vec<String> {
        let display = u.display_name.clone().unwrap_or_else(|| u.name.clone());
        match self {
            PrincipalField::DisplayName => vec![display],
            PrincipalField::Address => {
                let mut v = vec![principal_href(&u.name)];
                if let Some(e) = &u.email {
                    v.push(e.clone());
                    v.push(format!("mailto:{e}"));
                }
                v
            }
            PrincipalField::FirstName => display
                .split_whitespace()
                .next()
                .map(str::to_string)
                .into_iter()
                .collect(),
            PrincipalField::LastName => display
                .split_whitespace()
                .last()
                .map(str::to_string)
                .into_iter()
                .collect(),
        }
    }
}

/// RFC 3744 9.4 / RFC 5323 match types, caseless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::caldav) enum MatchType {
    Contains,
    StartsWith,
    EndsWith,
    Equals,
}

impl MatchType {
    pub(in crate::caldav) fn parse(s: Option<&str>) -> MatchType {
        match s {
            Some("starts-with") => MatchType::StartsWith,
            Some("ends-with") => MatchType::EndsWith,
            Some("equals") => MatchType::Equals,
            _ => MatchType::Contains,
        }
    }
    pub(in crate::caldav) fn test(self, value: &str, text: &str) -> bool {
        let v = value.to_lowercase();
        match self {
            MatchType::Contains => v.contains(text),
            MatchType::StartsWith => v.starts_with(text),
            MatchType::EndsWith => v.ends_with(text),
            MatchType::Equals => v == text,
        }
    }
}

impl<'a> Dav<'a> {
    /// principal-property-search (RFC 3744 9.4): users whose searchable properties contain
    /// the match text, caseless. `test="anyof"` needs one property-search to match, the default
    /// `allof` every one. Without any property-search (not RFC 3744, but sent by clients to
    /// list principals) every principal matches.
    pub(in crate::caldav) async fn principal_search(
        &self,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        let any_of = root.attr("test") == Some("anyof");
        let mut searches: Vec<(Vec<PrincipalField>, String, MatchType)> = vec![];
        for ps in root.children_named(NS_DAV, "property-search") {
            let m = ps.child(NS_DAV, "match");
            let text = m.map(|m| m.text.trim().to_lowercase()).unwrap_or_default();
            let how = MatchType::parse(m.and_then(|m| m.attr("match-type")));
            let fields: Vec<PrincipalField> = ps
                .child(NS_DAV, "prop")
                .map(|p| {
                    p.children
                        .iter()
                        .filter_map(|c| PrincipalField::of(&c.ns, &c.local))
                        .collect()
                })
                .unwrap_or_default();
            if fields.is_empty() {
                return Err(DavError::bad_request(
                    "property-search names no searchable property (see principal-search-property-set)",
                ));
            }
            searches.push((fields, text, how));
        }
        let mut names = root
            .child(NS_DAV, "prop")
            .map(dav::prop_names)
            .unwrap_or_default();
        // python-caldav (through 3.6) sends the wanted properties as siblings of an empty
        // DAV:prop; take them from there too rather than answer with bare hrefs.
        names.extend(
            root.children
                .iter()
                .filter(|c| {
                    !(c.ns == NS_DAV
                        && matches!(
                            c.local.as_str(),
                            "prop" | "property-search" | "apply-to-principal-collection-set"
                        ))
                })
                .map(PropertyName::of),
        );
        // Directory people are principals too, before their first login.
        if let Some(dir) = self.directory {
            for (_, text, _) in searches.iter().filter(|(_, t, _)| t.chars().count() >= 2) {
                match dir.search_people(text, 50).await {
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
        }
        let users = self.store.list_users().await.map_err(internal)?;
        let mut ms = Multistatus::new();
        for u in users.iter().filter(|u| !u.disabled) {
            let hit = |(fields, text, how): &(Vec<PrincipalField>, String, MatchType)| {
                fields
                    .iter()
                    .any(|f| f.values(u).iter().any(|v| how.test(v, text)))
            };
            let selected = searches.is_empty()
                || if any_of {
                    searches.iter().any(hit)
                } else {
                    searches.iter().all(hit)
                };
            if !selected {
                continue;
            }
            let node = Node::Principal(u);
            let (found, missing) =
                self.propfind_props(&PropfindRequest::Prop(names.clone()), &node, &[]);
            ms.propstat_response(&node.href(), &found, &[(404, missing)]);
        }
        // Group principals match on their name (display name) or description.
        let texts: Vec<&String> = searches
            .iter()
            .filter(|(fields, _, _)| fields.contains(&PrincipalField::DisplayName))
            .map(|(_, t, _)| t)
            .collect();
        if !searches.is_empty() && !texts.is_empty() && (any_of || texts.len() == searches.len()) {
            for g in self.group_principals().await? {
                if texts.iter().any(|t| groups::group_matches(&g, t)) {
                    let node = Node::Group(&g);
                    let (found, missing) =
                        self.propfind_props(&PropfindRequest::Prop(names.clone()), &node, &[]);
                    ms.propstat_response(&node.href(), &found, &[(404, missing)]);
                }
            }
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }
}
