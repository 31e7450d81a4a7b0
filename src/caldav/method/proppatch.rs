//! PROPPATCH (RFC 4918 9.2): all of a request's property changes or none, with the size caps
//! on dead properties.

use crate::caldav::*;

impl<'a> Dav<'a> {
    /// Check one set/remove against the resource; `Err` carries the failure status and
    /// condition for that property.
    pub(in crate::caldav) fn check_op(
        &self,
        op: &PatchOp,
        kind: ResourceKind,
    ) -> Result<Option<StoredProp>, DavError> {
        let name = op.name();
        let prop = Prop::from_name(&name);
        if !prop.is_stored() {
            return Err(DavError::with(
                403,
                DavCondition::CannotModifyProtectedProperty,
                format!("{name} is protected"),
            ));
        }
        let PatchOp::Set(el, xml) = op else {
            return Ok(None);
        };
        if xml.len() > MAX_PROPERTY_BYTES {
            return Err(DavError::new(
                507,
                format!("a property value holds at most {MAX_PROPERTY_BYTES} bytes"),
            ));
        }
        let is_cal = kind == ResourceKind::Calendar;
        let calendar_only = matches!(
            prop,
            Prop::CalendarDescription
                | Prop::CalendarTimezone
                | Prop::CalendarTimezoneId
                | Prop::ScheduleCalendarTransp
        );
        if calendar_only && !is_cal {
            return Err(DavError::with(
                403,
                DavCondition::CannotModifyProtectedProperty,
                format!("{name} applies to calendar collections only"),
            ));
        }
        match prop {
            Prop::CalendarTimezone => {
                ical::validate_timezone(el.text.as_bytes()).map_err(|e| {
                    DavError::with(403, CalCondition::ValidCalendarData, e.to_string())
                })?;
            }
            Prop::CalendarOrder
                if !el.text.trim().is_empty() && el.text.trim().parse::<i64>().is_err() =>
            {
                return Err(DavError::new(409, "calendar-order must be an integer"));
            }
            Prop::ScheduleCalendarTransp => {
                let ok = el.children.len() == 1
                    && el.children[0].ns == NS_CALDAV
                    && matches!(el.children[0].local.as_str(), "opaque" | "transparent");
                if !ok {
                    return Err(DavError::new(
                        409,
                        "schedule-calendar-transp must hold opaque or transparent",
                    ));
                }
            }
            _ => {}
        }
        Ok(Some(StoredProp {
            ns: name.ns,
            local: name.local,
            xml: xml.clone(),
        }))
    }

    /// Validate all operations; on any failure, report every property (failed ones with their
    /// status, the rest 424) and change nothing (RFC 4918 9.2).
    /// RFC 4918 9.2: 507 for each property set when the resource's dead properties (for this
    /// viewer) would pass `MAX_PROPERTIES_BYTES` after the patch.
    pub(in crate::caldav) async fn check_property_room(
        &self,
        id: crate::store::ResourceId,
        viewer: crate::store::UserId,
        set: Vec<StoredProp>,
        remove: Vec<(String, String)>,
    ) -> Result<Result<PatchPlan, Vec<(PropertyName, DavError)>>, DavError> {
        if set.is_empty() {
            return Ok(Ok((set, remove)));
        }
        let current = self.store.props(id, viewer).await.map_err(internal)?;
        let replaced = |p: &StoredProp| {
            remove.iter().any(|(ns, l)| *ns == p.ns && *l == p.local)
                || set.iter().any(|s| s.ns == p.ns && s.local == p.local)
        };
        let kept: usize = current
            .iter()
            .filter(|p| !replaced(p))
            .map(|p| p.xml.len())
            .sum();
        let added: usize = set.iter().map(|p| p.xml.len()).sum();
        if kept.saturating_add(added) <= MAX_PROPERTIES_BYTES {
            return Ok(Ok((set, remove)));
        }
        Ok(Err(set
            .iter()
            .map(|p| {
                (
                    PropertyName::new(&p.ns, &p.local),
                    DavError::new(
                        507,
                        format!(
                            "a resource holds at most {MAX_PROPERTIES_BYTES} bytes of properties"
                        ),
                    ),
                )
            })
            .collect()))
    }

    pub(in crate::caldav) fn plan_patch(
        &self,
        ops: &[PatchOp],
        kind: ResourceKind,
    ) -> Result<PatchPlan, Vec<(PropertyName, DavError)>> {
        let mut set = vec![];
        let mut remove = vec![];
        let mut failures = vec![];
        for op in ops {
            match self.check_op(op, kind) {
                Ok(Some(p)) => {
                    remove.retain(|(ns, l): &(String, String)| !(*ns == p.ns && *l == p.local));
                    set.retain(|s: &StoredProp| !(s.ns == p.ns && s.local == p.local));
                    set.push(p);
                }
                Ok(None) => {
                    let n = op.name();
                    set.retain(|s: &StoredProp| !(s.ns == n.ns && s.local == n.local));
                    remove.push((n.ns, n.local));
                }
                Err(e) => failures.push((op.name(), e)),
            }
        }
        if failures.is_empty() {
            Ok((set, remove))
        } else {
            Err(failures)
        }
    }

    /// Per-status property lists for a failed PROPPATCH/MKCOL: failed properties carry their
    /// own status, the rest 424 Failed Dependency (RFC 4918 9.2.1). Also returns the messages.
    pub(in crate::caldav) fn failure_statuses(
        ops: &[PatchOp],
        failures: &[(PropertyName, DavError)],
    ) -> (Vec<(u16, Vec<String>)>, String) {
        let mut by_status: Vec<(u16, Vec<String>)> = vec![];
        let mut messages: Vec<&str> = vec![];
        for op in ops {
            let n = op.name();
            let status = match failures.iter().find(|(f, _)| *f == n) {
                Some((_, e)) => {
                    messages.push(&e.message);
                    e.status
                }
                None => 424,
            };
            match by_status.iter_mut().find(|(s, _)| *s == status) {
                Some((_, v)) => v.push(n.empty_element()),
                None => by_status.push((status, vec![n.empty_element()])),
            }
        }
        (by_status, messages.join("; "))
    }

    pub(in crate::caldav) fn patch_failure_body(
        href: &str,
        ops: &[PatchOp],
        failures: &[(PropertyName, DavError)],
    ) -> String {
        let (by_status, messages) = Self::failure_statuses(ops, failures);
        let mut ms = Multistatus::new();
        ms.propstat_response_described(href, &[], &by_status, Some(&messages));
        ms.finish(None)
    }

    pub(in crate::caldav) async fn proppatch(
        &self,
        req: &DavRequest,
    ) -> Result<DavResponse, DavError> {
        let ops = dav::parse_proppatch(&req.body, self.settings.xml)?;
        if ops.len() > self.settings.max_props_per_request {
            return Err(DavError::bad_request(
                "too many properties in one PROPPATCH",
            ));
        }
        let (res, segs) = match self.resolve(&req.path).await? {
            Target::Res { res, segs, .. } => (res, segs),
            Target::ProxyGroup { owner, write } => {
                let href = delegation::group_href(&owner.name, write);
                return self.patch_proxy_group(&owner, write, &ops, &href).await;
            }
            Target::Missing { .. } => return Err(DavError::not_found()),
            _ => return Err(need_privilege(&req.path, Privilege::WriteProperties)),
        };
        let href = Self::res_href(&segs, &res);
        let viewer = if res.kind == ResourceKind::Calendar && sharing::is_mount_segs(&segs) {
            self.user.id
        } else {
            res.owner
        };
        let plan = match self.plan_patch(&ops, res.kind) {
            Ok((set, remove)) => {
                self.check_property_room(res.id, viewer, set, remove)
                    .await?
            }
            Err(f) => Err(f),
        };
        match plan {
            Err(failures) => Ok(DavResponse::xml(
                StatusCode::MULTI_STATUS,
                Self::patch_failure_body(&href, &ops, &failures),
            )),
            Ok((set, remove)) => {
                self.store
                    .patch_props(res.id, viewer, set, remove)
                    .await
                    .map_err(internal)?;
                let mut ms = Multistatus::new();
                let names: Vec<String> = ops.iter().map(|o| o.name().empty_element()).collect();
                ms.propstat_response(&href, &names, &[]);
                Ok(DavResponse::xml(StatusCode::MULTI_STATUS, ms.finish(None)))
            }
        }
    }
}
