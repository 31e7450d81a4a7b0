//! calendar-query (RFC 4791 7.8).

use crate::caldav::*;

impl<'a> Dav<'a> {
    /// calendar-query (RFC 4791 7.8): the filter answered from the time-range index where it
    /// can be, parsing only the objects it cannot decide.
    pub(in crate::caldav) async fn calendar_query(
        &self,
        owner: &User,
        res: &Resource,
        href: &str,
        root: &dav::Element,
        depth: Option<Depth>,
    ) -> Result<DavResponse, DavError> {
        let names = root
            .child(NS_DAV, "prop")
            .map(dav::prop_names)
            .unwrap_or_default();
        let filter_el = root
            .child(NS_CALDAV, "filter")
            .ok_or_else(|| DavError::bad_request("calendar-query needs a CALDAV:filter"))?;
        let vcal = filter_el
            .child(NS_CALDAV, "comp-filter")
            .ok_or_else(|| DavError::bad_request("CALDAV:filter needs a comp-filter"))?;
        let filter = query::parse_comp_filter(vcal, 0)?;
        query::check_filter(&filter)?;
        let (calendar, single) = if res.kind == ResourceKind::Object {
            (self.parent_of(res).await?, Some(res.clone()))
        } else {
            (res.clone(), None)
        };
        let query_tz = root.child(NS_CALDAV, "timezone").map(|t| t.text.clone());
        // RFC 4791 9.8: a VCALENDAR holding exactly one VTIMEZONE.
        if let Some(tz) = &query_tz {
            ical::validate_timezone(tz.as_bytes())
                .map_err(|e| DavError::with(403, CalCondition::ValidCalendarData, e.to_string()))?;
        }
        let cal_tz = self.calendar_timezone_text(&calendar).await?;
        let mut limits = self.index_limits();
        let ctx_zone =
            crate::calendar::query::floating_zone(query_tz.as_deref(), cal_tz.as_deref());
        // Expansion at query time must reach the end of any time range asked about.
        limits.horizon = limits
            .horizon
            .max(max_range_end(&filter).saturating_add(86_400));
        // ...and needs only the occurrences near the earliest window asked about.
        limits.from = min_range_start(&filter);
        // ...and up to the latest end asked about.
        limits.to = max_comp_range_end(&filter);
        let ctx = ical::filter::EvalContext {
            floating_zone: ctx_zone,
            limits,
        };
        let spec = self.data_spec(root, &calendar).await?;
        let mut ms = Multistatus::new();
        // RFC 4791 7.8: Depth 0 on a collection selects nothing but the collection itself.
        if single.is_none() && depth == Some(Depth::Zero) {
            return Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)));
        }
        let selected =
            crate::calendar::query::select(self.store, &calendar, &filter, &ctx, self.non_owner())
                .await
                .map_err(select_error)?;
        let cal_href = match &single {
            Some(_) => href
                .rsplit_once('/')
                .map(|(p, _)| format!("{p}/"))
                .unwrap_or_default(),
            None => href.to_string(),
        };
        let selected: Vec<Arc<Resource>> = selected
            .into_iter()
            .filter(|c| single.as_ref().is_none_or(|s| s.id == c.id))
            .collect();
        if selected.len() > STREAM_MIN_MEMBERS {
            let items = selected.into_iter().map(Change::Live).collect();
            return Ok(self.stream_report(
                ms,
                items,
                (names, spec),
                owner.clone(),
                cal_href,
                false,
                None,
            ));
        }
        let mut bodies = self
            .prefetch_bodies(selected.iter().map(|r| r.id), &names)
            .await?;
        for child in selected {
            let h = Self::child_href(&cal_href, &child);
            let wanted = Wanted {
                names: &names,
                spec: &spec,
            };
            self.report_response(&mut ms, owner, &child, h, wanted, &mut bodies)
                .await?;
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }
}
