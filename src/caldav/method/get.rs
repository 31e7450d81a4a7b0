//! GET and HEAD: one object, a collection's listing, or a whole calendar exported as one
//! iCalendar document.

use crate::caldav::*;

impl<'a> Dav<'a> {
    pub(in crate::caldav) async fn get(
        &self,
        req: &DavRequest,
        with_body: bool,
    ) -> Result<DavResponse, DavError> {
        match self.resolve(&req.path).await? {
            Target::Res { res, .. } if res.kind == ResourceKind::Object => {
                let etag = self.view_etag(&res).unwrap_or_default().into_owned();
                if let Some(inm) = header_str(&req.headers, "if-none-match")
                    && EtagMatch::parse(inm).matches(Some(&etag))
                {
                    return Ok(
                        DavResponse::new(StatusCode::NOT_MODIFIED).header(header::ETAG, &etag)
                    );
                }
                let data = self.view_body(
                    res.id,
                    self.store
                        .object_data(res.id)
                        .await
                        .map_err(internal)?
                        // Deleted since the path was resolved.
                        .ok_or_else(DavError::not_found)?,
                );
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::ETAG, &etag)
                    .header(header::LAST_MODIFIED, &http_date(res.modified_at))
                    .header(
                        header::CONTENT_TYPE,
                        res.content_type
                            .as_deref()
                            .unwrap_or("application/octet-stream"),
                    )
                    .header(header::CONTENT_LENGTH, &data.len().to_string());
                if let Some(tag) = &res.schedule_tag {
                    r = r.header(header::HeaderName::from_static("schedule-tag"), tag);
                }
                if with_body {
                    r.body = Bytes::from(data);
                }
                Ok(r)
            }
            Target::Res { res, .. }
                if res.kind == ResourceKind::Calendar
                    && header_str(&req.headers, "accept")
                        .is_some_and(|a| a.contains("text/calendar")) =>
            {
                self.export(&res, req, with_body).await
            }
            Target::Res { res, segs, .. } => {
                let href = Self::res_href(&segs, &res);
                let mut listing = String::new();
                for c in self.store.children(res.id).await.map_err(internal)? {
                    listing.push_str(&Self::child_href(&href, &c));
                    listing.push('\n');
                }
                let len = listing.len().to_string();
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .header(header::CONTENT_LENGTH, &len);
                if with_body {
                    r.body = Bytes::from(listing);
                }
                Ok(r)
            }
            Target::Missing { .. } => Err(DavError::not_found()),
            _ => {
                let mut r = DavResponse::new(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
                if with_body {
                    r.body = Bytes::from_static(b"Convene CalDAV server\n");
                }
                Ok(r)
            }
        }
    }

    /// The whole calendar as one iCalendar document (GET with `Accept: text/calendar`).
    pub(in crate::caldav) async fn export(
        &self,
        cal: &Resource,
        req: &DavRequest,
        with_body: bool,
    ) -> Result<DavResponse, DavError> {
        let etag = crate::feed::etag(cal);
        if let Some(inm) = header_str(&req.headers, "if-none-match")
            && EtagMatch::parse(inm).matches(Some(&etag))
        {
            return Ok(DavResponse::new(StatusCode::NOT_MODIFIED).header(header::ETAG, &etag));
        }
        let reader = self.non_owner().map(|p| (p, ical::privacy::Detail::Full));
        let body = crate::feed::render(self.store, cal, reader)
            .await
            .map_err(internal)?;
        let mut r = DavResponse::new(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/calendar; charset=utf-8")
            .header(header::ETAG, &etag)
            .header(header::CONTENT_LENGTH, &body.len().to_string())
            .header(
                header::CONTENT_DISPOSITION,
                &format!(
                    "attachment; filename=\"{}.ics\"",
                    cal.name.replace(['"', '\\'], "_")
                ),
            );
        if with_body {
            r.body = Bytes::from(body);
        }
        Ok(r)
    }
}
