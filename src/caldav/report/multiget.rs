//! calendar-multiget (RFC 4791 7.9).

use crate::caldav::*;

impl<'a> Dav<'a> {
    pub(in crate::caldav) async fn multiget(
        &self,
        owner: &User,
        res: &Resource,
        href: &str,
        root: &dav::Element,
    ) -> Result<DavResponse, DavError> {
        let names = root
            .child(NS_DAV, "prop")
            .map(dav::prop_names)
            .unwrap_or_default();
        let spec = self.data_spec(root, res).await?;
        let hrefs: Vec<&str> = root
            .children_named(NS_DAV, "href")
            .map(|h| h.text.trim())
            .collect();
        if hrefs.is_empty() {
            return Err(DavError::bad_request(
                "calendar-multiget needs at least one DAV:href",
            ));
        }
        // Members of the request collection (the usual case) are looked up in one query;
        // anything else goes through full path resolution.
        let direct = member_names(href, res, &hrefs)?;
        let wanted: Vec<String> = direct.iter().flatten().cloned().collect();
        let found: std::collections::HashMap<String, Arc<Resource>, foldhash::fast::RandomState> =
            if wanted.is_empty() {
                Default::default()
            } else if let Some(listing) = self.store.listing(res).await.map_err(internal)? {
                let l = listing.read().unwrap_or_else(|e| e.into_inner());
                wanted
                    .into_iter()
                    .filter_map(|n| l.by_name(&n).map(|r| (n, r.clone())))
                    .collect()
            } else {
                self.store
                    .children_by_name(res.id, &wanted)
                    .await
                    .map_err(internal)?
                    .into_iter()
                    .map(|r| (r.name.clone(), Arc::new(r)))
                    .collect()
            };
        let items = found
            .values()
            .filter(|r| r.kind == ResourceKind::Object)
            .map(|r| r.id);
        let mut bodies = self.prefetch_bodies(items, &names).await?;
        let mut ms = Multistatus::new();
        for (h, direct) in hrefs.into_iter().zip(direct) {
            if let Some(name) = direct {
                match found.get(&name) {
                    Some(item) if item.kind == ResourceKind::Object => {
                        let item_href = Self::child_href(href, item);
                        self.report_response(
                            &mut ms,
                            owner,
                            item,
                            item_href,
                            Wanted {
                                names: &names,
                                spec: &spec,
                            },
                            &mut bodies,
                        )
                        .await?;
                    }
                    _ => ms.status_response(h, 404, None),
                }
                continue;
            }
            let path = dav::href_path(h);
            let target = match self.resolve(path).await {
                Ok(t) => t,
                Err(e) => {
                    ms.status_response(h, e.status, None);
                    continue;
                }
            };
            match target {
                Target::Res {
                    res: item, segs, ..
                } if item.kind == ResourceKind::Object
                    && (item.parent == Some(res.id)
                        || item.id == res.id
                        || res.kind != ResourceKind::Object) =>
                {
                    let item_href = Self::res_href(&segs, &item);
                    self.report_response(
                        &mut ms,
                        owner,
                        &item,
                        item_href,
                        Wanted {
                            names: &names,
                            spec: &spec,
                        },
                        &mut Bodies::default(),
                    )
                    .await?;
                }
                _ => ms.status_response(h, 404, None),
            }
        }
        Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
    }
}

/// For each href, the member name it gives in the collection at `href`, when it names a direct
/// member (`None`: resolve it as a path).
fn member_names(
    href: &str,
    res: &Resource,
    hrefs: &[&str],
) -> Result<Vec<Option<String>>, DavError> {
    let own_segs = dav::decode_segments(href)?;
    let own_prefix = if href.ends_with('/') {
        href.to_string()
    } else {
        format!("{href}/")
    };
    let direct_name = |h: &str| -> Option<String> {
        let path = dav::href_path(h);
        // Clients spell members' hrefs as the collection's plus a name: decode only that.
        if let Some(rest) = path.strip_prefix(&own_prefix)
            && !rest.is_empty()
            && !rest.contains('/')
        {
            return res
                .kind
                .is_collection()
                .then(|| dav::decode_segment(rest).ok())
                .flatten();
        }
        let segs = dav::decode_segments(path).ok()?;
        (res.kind.is_collection()
            && segs.len() == own_segs.len() + 1
            && segs[..own_segs.len()] == own_segs[..])
            .then(|| segs[own_segs.len()].clone())
    };
    Ok(hrefs.iter().map(|h| direct_name(h)).collect())
}
