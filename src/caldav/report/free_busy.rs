//! free-busy-query (RFC 4791 7.10).

use crate::caldav::*;

impl<'a> Dav<'a> {
    /// free-busy-query (RFC 4791 7.10): busy time from the index's candidates, honouring
    /// TRANSP and STATUS. Only the owner reaches this for now (read-free-busy is in read).
    pub(in crate::caldav) async fn free_busy(
        &self,
        cal: &Resource,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        let tr_el = root
            .child(NS_CALDAV, "time-range")
            .ok_or_else(|| DavError::bad_request("free-busy-query needs a CALDAV:time-range"))?;
        let start = tr_el.attr("start").map(query::parse_utc).transpose()?;
        let end = tr_el.attr("end").map(query::parse_utc).transpose()?;
        let (Some(start), Some(end)) = (start, end) else {
            return Err(DavError::bad_request(
                "the free-busy time-range needs start and end",
            ));
        };
        if end <= start {
            return Err(DavError::bad_request(
                "the free-busy time-range end must follow its start",
            ));
        }
        let range = ical::filter::TimeRange::new(Some(start), Some(end));
        let periods = self.busy_periods(cal, range).await?;
        let text = ical::freebusy::vfreebusy(periods, range, self.clock.now());
        let mut resp = DavResponse::new(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/calendar; charset=utf-8");
        resp.body = Bytes::from(text);
        Ok(resp)
    }

    /// Busy periods of one calendar's events in `range` (RFC 4791 7.10), from the index.
    pub(in crate::caldav) async fn busy_periods(
        &self,
        cal: &Resource,
        range: ical::filter::TimeRange,
    ) -> Result<Vec<(i64, i64, ical::freebusy::BusyType)>, DavError> {
        let tz = self.calendar_timezone_text(cal).await?;
        let zone = crate::calendar::query::floating_zone(None, tz.as_deref());
        let filter = ical::filter::CompFilter {
            name: "VCALENDAR".into(),
            is_not_defined: false,
            time_range: None,
            props: vec![],
            comps: vec![ical::filter::CompFilter {
                name: "VEVENT".into(),
                is_not_defined: false,
                time_range: Some(range),
                props: vec![],
                comps: vec![],
            }],
        };
        let ctx = ical::filter::EvalContext {
            floating_zone: zone.clone(),
            limits: self.expand_limits(range),
        };
        let candidates = crate::calendar::query::select(self.store, cal, &filter, &ctx, None)
            .await
            .map_err(select_error)?;
        let ids: Vec<ResourceId> = candidates.iter().map(|r| r.id).collect();
        let mut periods = vec![];
        for (i, (_, body)) in self
            .store
            .object_datas(&ids)
            .await
            .map_err(internal)?
            .into_iter()
            .enumerate()
        {
            // A client that has gone drops this future at the next yield: the work stops
            // with it instead of running to the end.
            if i % 32 == 31 {
                tokio::task::yield_now().await;
            }
            periods.extend(ical::freebusy::busy_periods(
                &body, range, ctx.limits, &zone,
            ));
        }
        Ok(periods)
    }
}
