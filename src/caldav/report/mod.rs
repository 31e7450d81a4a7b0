//! REPORT: the dispatch on the report's root element, and what the reports share (the
//! calendar-data spec, body prefetch and shaping).

mod calendar_query;
mod free_busy;
mod multiget;
mod principal_search;
pub(super) use principal_search::{PRINCIPAL_SEARCH_PROPERTY_SET, PrincipalField};
mod sync_collection;

use crate::caldav::*;

/// The REPORTs the server answers, recognised once from the body's root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::caldav) enum Report {
    /// RFC 3744 9.4.
    PrincipalPropertySearch,
    /// RFC 3744 9.5.
    PrincipalSearchPropertySet,
    /// CalendarServer's calendarserver-principal-search.
    CsPrincipalSearch,
    /// RFC 3253 3.8.
    ExpandProperty,
    /// RFC 6578.
    SyncCollection,
    /// RFC 4791 7.9.
    CalendarMultiget,
    /// RFC 4791 7.8.
    CalendarQuery,
    /// RFC 4791 7.10.
    FreeBusyQuery,
}

impl Report {
    pub(in crate::caldav) fn of(root: &dav::Element) -> Option<Report> {
        Some(match (root.ns.as_str(), root.local.as_str()) {
            (NS_DAV, "principal-property-search") => Report::PrincipalPropertySearch,
            (NS_DAV, "principal-search-property-set") => Report::PrincipalSearchPropertySet,
            (NS_CS, "calendarserver-principal-search") => Report::CsPrincipalSearch,
            (NS_DAV, "expand-property") => Report::ExpandProperty,
            (NS_DAV, "sync-collection") => Report::SyncCollection,
            (NS_CALDAV, "calendar-multiget") => Report::CalendarMultiget,
            (NS_CALDAV, "calendar-query") => Report::CalendarQuery,
            (NS_CALDAV, "free-busy-query") => Report::FreeBusyQuery,
            _ => return None,
        })
    }
}

/// What a REPORT asks of calendar-data.
#[derive(Clone)]
pub struct DataSpec {
    pub expand: Option<ical::filter::TimeRange>,
    pub limit_recurrence: Option<ical::filter::TimeRange>,
    pub limit_freebusy: Option<ical::filter::TimeRange>,
    pub select: Option<ical::partial::CompSelect>,
    pub zone: ical::zones::Zone,
}

impl DataSpec {
    pub(in crate::caldav) fn plain() -> Self {
        DataSpec {
            expand: None,
            limit_recurrence: None,
            limit_freebusy: None,
            select: None,
            zone: ical::zones::Zone::Utc,
        }
    }
}

/// `CALDAV:comp` (RFC 4791 9.6.1) as a selection.
pub(in crate::caldav) fn parse_comp_select(
    el: &dav::Element,
) -> Result<ical::partial::CompSelect, DavError> {
    pub(in crate::caldav) fn inner(
        el: &dav::Element,
        depth: usize,
    ) -> Result<ical::partial::CompSelect, DavError> {
        if depth > 8 {
            return Err(DavError::bad_request("CALDAV:comp nesting is too deep"));
        }
        let name = el
            .attr("name")
            .ok_or_else(|| DavError::bad_request("CALDAV:comp needs a name"))?
            .to_ascii_uppercase();
        let mut comps = vec![];
        for c in el.children_named(NS_CALDAV, "comp") {
            comps.push(inner(c, depth + 1)?);
        }
        Ok(ical::partial::CompSelect {
            name,
            all_props: el.child(NS_CALDAV, "allprop").is_some(),
            props: el
                .children_named(NS_CALDAV, "prop")
                .filter_map(|p| p.attr("name").map(str::to_string))
                .collect(),
            all_comps: el.child(NS_CALDAV, "allcomp").is_some(),
            comps,
        })
    }
    inner(el, 0)
}

/// The latest bound of any time range in a filter (for query-time expansion).
/// The earliest start of the component time ranges in a filter (`NEG_INF` if it has none,
/// or one is open at the start): occurrences ending well before it cannot decide a match.
pub(in crate::caldav) fn min_range_start(f: &ical::filter::CompFilter) -> i64 {
    let mut starts = vec![];
    let mut stack = vec![f];
    while let Some(c) = stack.pop() {
        if let Some(t) = c.time_range {
            starts.push(t.start);
        }
        stack.extend(c.comps.iter());
    }
    starts.into_iter().min().unwrap_or(ical::index::NEG_INF)
}

/// The latest end of the component time ranges in a filter (`POS_INF` if it has none, or one
/// is open at the end): occurrences starting well after it cannot decide a match.
pub(in crate::caldav) fn max_comp_range_end(f: &ical::filter::CompFilter) -> i64 {
    let mut ends = vec![];
    let mut stack = vec![f];
    while let Some(c) = stack.pop() {
        if let Some(t) = c.time_range {
            ends.push(t.end);
        }
        stack.extend(c.comps.iter());
    }
    ends.into_iter().max().unwrap_or(ical::index::POS_INF)
}

pub(in crate::caldav) fn max_range_end(f: &ical::filter::CompFilter) -> i64 {
    let mine = f
        .time_range
        .map(|t| {
            if t.end >= ical::index::POS_INF {
                t.start
            } else {
                t.end
            }
        })
        .unwrap_or(0);
    let props = f
        .props
        .iter()
        .filter_map(|p| p.time_range)
        .map(|t| {
            if t.end >= ical::index::POS_INF {
                t.start
            } else {
                t.end
            }
        })
        .max()
        .unwrap_or(0);
    f.comps
        .iter()
        .map(max_range_end)
        .fold(mine.max(props), i64::max)
}

impl<'a> Dav<'a> {
    /// REPORT: the report named by the body's root element, on the resource it was sent to.
    pub(in crate::caldav) async fn report(
        &self,
        req: &DavRequest,
    ) -> Result<DavResponse, DavError> {
        let root = dav::xml::parse(&req.body, self.settings.xml)?;
        let report = Report::of(&root);
        // The principal reports (RFC 3744 9.4, 9.5, and CalendarServer's) search the
        // principal collection, whatever resource they are sent to (clients send them to the
        // DAV root or a principal).
        match report {
            Some(Report::PrincipalSearchPropertySet) => {
                self.resolve_existing(&req.path).await?;
                return Ok(DavResponse::xml(
                    StatusCode::OK,
                    PRINCIPAL_SEARCH_PROPERTY_SET.into(),
                ));
            }
            Some(Report::PrincipalPropertySearch) => {
                self.resolve_existing(&req.path).await?;
                return Box::pin(self.principal_search(&root)).await;
            }
            Some(Report::CsPrincipalSearch) => {
                self.resolve_existing(&req.path).await?;
                return Box::pin(self.cs_principal_search(&req.path, &root)).await;
            }
            Some(Report::ExpandProperty) => return self.expand_property_at(&req.path, &root).await,
            _ => {}
        }
        let (owner, res, segs) = match self.resolve(&req.path).await? {
            Target::Res { owner, res, segs } => (owner, res, segs),
            Target::Missing { .. } => return Err(DavError::not_found()),
            _ => {
                return Err(DavError::with(
                    403,
                    DavCondition::SupportedReport,
                    "this report is not supported here",
                ));
            }
        };
        let href = Self::res_href(&segs, &res);
        if let Some(Delegation { mount: Some(m), .. }) = &self.delegation
            && m.access == crate::store::ShareAccess::FreeBusy
            && report != Some(Report::FreeBusyQuery)
        {
            return Err(need_privilege(&href, Privilege::Read));
        }
        match report {
            Some(Report::SyncCollection) if res.kind.is_collection() => {
                let sc = dav::parse_sync_collection(&root)?;
                self.sync_collection(&owner, &res, &href, sc).await
            }
            Some(Report::CalendarMultiget) => self.multiget(&owner, &res, &href, &root).await,
            Some(Report::FreeBusyQuery) if res.kind == ResourceKind::Calendar => {
                self.free_busy(&res, &root).await
            }
            Some(Report::CalendarQuery)
                if matches!(res.kind, ResourceKind::Calendar | ResourceKind::Object) =>
            {
                let depth = Depth::parse(header_str(&req.headers, "depth"))?;
                self.calendar_query(&owner, &res, &href, &root, depth).await
            }
            _ => Err(DavError::with(
                403,
                DavCondition::SupportedReport,
                format!("report {{{}}}{} is not supported here", root.ns, root.local),
            )),
        }
    }

    /// 404 when `path` leads nowhere.
    async fn resolve_existing(&self, path: &str) -> Result<(), DavError> {
        match self.resolve(path).await? {
            Target::Missing { .. } => Err(DavError::not_found()),
            _ => Ok(()),
        }
    }

    /// expand-property (RFC 3253 3.8) on whatever `path` leads to.
    async fn expand_property_at(
        &self,
        path: &str,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        match self.resolve(path).await? {
            Target::Missing { .. } => Err(DavError::not_found()),
            Target::Root => self.expand_property(&Node::Root, root).await,
            Target::Principals => self.expand_property(&Node::Principals, root).await,
            Target::Homes => self.expand_property(&Node::Homes, root).await,
            Target::Principal(u) => {
                self.prefetch_links(&u).await?;
                self.expand_property(&Node::Principal(&u), root).await
            }
            Target::ProxyGroup { owner, write } => {
                let node = self.proxy_group_node(&owner, write).await?;
                self.expand_property(&node, root).await
            }
            Target::Group(g) => self.expand_property(&Node::Group(&g), root).await,
            Target::Res { owner, res, segs } => {
                let href = Self::res_href(&segs, &res);
                let node = Node::Res {
                    owner: &owner,
                    res: &res,
                    href,
                };
                self.expand_property(&node, root).await
            }
        }
    }

    /// Properties for a report response, with calendar-data rendered from the stored bytes.
    pub(in crate::caldav) async fn report_response(
        &self,
        ms: &mut Multistatus,
        owner: &User,
        res: &Resource,
        href: String,
        wanted: Wanted<'_>,
        bodies: &mut Bodies,
    ) -> Result<(), DavError> {
        let Wanted { names, spec } = wanted;
        let props: Vec<Prop> = names.iter().map(Prop::from_name).collect();
        let node = Node::Res { owner, res, href };
        // Only a request for a stored (dead or client-set) property needs the property table.
        let stored = if props.iter().any(Prop::is_stored) {
            self.stored_props(&node).await?
        } else {
            vec![]
        };
        // The found properties, as one string: a report writes this for every member, so the
        // common ones (ETag, calendar-data) are written in place rather than each as a string.
        let mut found = String::new();
        let mut missing = vec![];
        let is_object = res.kind == ResourceKind::Object && res.component.is_some();
        for (n, p) in names.iter().zip(&props) {
            match p {
                Prop::CalendarData if is_object => {
                    let data = match bodies.remove(&res.id) {
                        Some(d) => d,
                        None => self
                            .store
                            .object_data(res.id)
                            .await
                            .map_err(internal)?
                            .unwrap_or_default(),
                    };
                    let data = self.shape_data(self.view_body(res.id, data), spec)?;
                    found.reserve(data.len() + data.len() / 16 + 40);
                    found.push_str("<C:calendar-data>");
                    push_xml_text_exact(&mut found, &data);
                    found.push_str("</C:calendar-data>");
                }
                Prop::CalendarData => missing.push(n.empty_element()),
                Prop::GetEtag if res.kind == ResourceKind::Object => match self.view_etag(res) {
                    Some(etag) => {
                        found.push_str("<D:getetag>");
                        dav::push_text(&mut found, &etag);
                        found.push_str("</D:getetag>");
                    }
                    None => missing.push(n.empty_element()),
                },
                _ => match self.render(p, &node, &stored) {
                    Some(x) => found.push_str(&x),
                    None => missing.push(n.empty_element()),
                },
            }
        }
        let Node::Res { href, .. } = &node else {
            return Ok(());
        };
        if names.is_empty() {
            ms.status_response(href, 200, None);
        } else {
            ms.propstat_response_xml(href, &found, &[(404, missing)]);
        }
        Ok(())
    }

    /// The bodies a report will write, in one round trip, when it asks for calendar-data.
    pub(in crate::caldav) async fn prefetch_bodies(
        &self,
        items: impl Iterator<Item = ResourceId>,
        names: &[PropertyName],
    ) -> Result<Bodies, DavError> {
        if !names
            .iter()
            .any(|n| Prop::from_name(n) == Prop::CalendarData)
        {
            return Ok(Bodies::default());
        }
        let ids: Vec<ResourceId> = items.collect();
        Ok(self
            .store
            .object_datas(&ids)
            .await
            .map_err(internal)?
            .into_iter()
            .collect())
    }

    /// Apply a report's calendar-data request (RFC 4791 9.6) to stored bytes.
    pub(in crate::caldav) fn shape_data(
        &self,
        data: Vec<u8>,
        spec: &DataSpec,
    ) -> Result<Vec<u8>, DavError> {
        let mut data = data;
        let reshaped = match (spec.expand, spec.limit_recurrence) {
            (Some(range), _) => {
                ical::expand::expand(&data, range, self.expand_limits(range), &spec.zone)
                    .map_err(index_error)?
            }
            (None, Some(range)) => {
                ical::partial::limit_recurrence_set(&data, range, self.expand_limits(range))
            }
            (None, None) => None,
        };
        if let Some(x) = reshaped {
            data = x.into_bytes();
        }
        if let Some(range) = spec.limit_freebusy
            && let Some(x) = ical::partial::limit_freebusy_set(&data, range)
        {
            data = x.into_bytes();
        }
        if let Some(sel) = &spec.select
            && let Some(x) = ical::partial::select_parts(&data, sel)
        {
            data = x.into_bytes();
        }
        Ok(data)
    }

    /// Query-time expansion for a window: up to its end, and (when it has a start) only the
    /// occurrences near it are collected, so a long past costs steps, not instances.
    pub(in crate::caldav) fn expand_limits(
        &self,
        range: ical::filter::TimeRange,
    ) -> ical::index::IndexLimits {
        let mut l = self.index_limits();
        if range.end < ical::index::POS_INF {
            l.horizon = l.horizon.max(range.end.saturating_add(86_400));
        }
        if range.start > ical::index::NEG_INF {
            l.from = range.start;
        }
        l.to = range.end;
        l
    }

    /// What a report asks of `calendar-data` (RFC 4791 9.6): for now, `expand`.
    pub(in crate::caldav) async fn data_spec(
        &self,
        root: &dav::Element,
        collection: &Resource,
    ) -> Result<DataSpec, DavError> {
        let Some(cd) = root
            .child(NS_DAV, "prop")
            .and_then(|p| p.child(NS_CALDAV, "calendar-data"))
        else {
            return Ok(DataSpec::plain());
        };
        // RFC 4791 9.6: only iCalendar 2.0 is served.
        let media = cd.attr("content-type").unwrap_or("text/calendar");
        let version = cd.attr("version").unwrap_or("2.0");
        let bare = media.split(';').next().unwrap_or("").trim();
        if !bare.eq_ignore_ascii_case("text/calendar") || version.trim() != "2.0" {
            return Err(DavError::with(
                403,
                CalCondition::SupportedCalendarData,
                format!("calendar data is served as text/calendar 2.0, not {media} {version}"),
            ));
        }
        let range_of = |el: &dav::Element| -> Result<ical::filter::TimeRange, DavError> {
            let start = el.attr("start").map(query::parse_utc).transpose()?;
            let end = el.attr("end").map(query::parse_utc).transpose()?;
            match (start, end) {
                (Some(s), Some(e)) => Ok(ical::filter::TimeRange::new(Some(s), Some(e))),
                _ => Err(DavError::bad_request(format!(
                    "CALDAV:{} needs start and end",
                    el.local
                ))),
            }
        };
        let expand = cd.child(NS_CALDAV, "expand").map(range_of).transpose()?;
        let limit_recurrence = cd
            .child(NS_CALDAV, "limit-recurrence-set")
            .map(range_of)
            .transpose()?;
        let limit_freebusy = cd
            .child(NS_CALDAV, "limit-freebusy-set")
            .map(range_of)
            .transpose()?;
        // An empty `<C:comp name="VCALENDAR"/>` selects nothing by the letter of RFC 4791
        // 9.6.1, which would answer an empty VCALENDAR (not valid iCalendar): it means all.
        let select = cd
            .child(NS_CALDAV, "comp")
            .map(parse_comp_select)
            .transpose()?
            .filter(|s| s.all_props || s.all_comps || !s.props.is_empty() || !s.comps.is_empty());
        let zone = if expand.is_some() {
            let calendar = if collection.kind == ResourceKind::Object {
                self.parent_of(collection).await?
            } else {
                collection.clone()
            };
            let tz = self.calendar_timezone_text(&calendar).await?;
            crate::calendar::query::floating_zone(None, tz.as_deref())
        } else {
            ical::zones::Zone::Utc
        };
        Ok(DataSpec {
            expand,
            limit_recurrence,
            limit_freebusy,
            select,
            zone,
        })
    }
}
