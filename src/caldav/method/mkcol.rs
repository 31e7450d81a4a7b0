//! MKCOL, extended MKCOL (RFC 5689) and MKCALENDAR (RFC 4791 5.3.1).

use crate::caldav::*;

/// Something is at the URL already: MKCOL answers 405 (RFC 4918 9.3.1), MKCALENDAR its
/// precondition (RFC 4791 5.3.1.2, 403 `resource-must-be-null`).
fn already_exists(calendar: bool) -> DavError {
    if calendar {
        DavError::with(
            403,
            DavCondition::ResourceMustBeNull,
            "a resource already exists at this URL",
        )
    } else {
        DavError::new(405, "resource already exists")
    }
}

impl<'a> Dav<'a> {
    pub(in crate::caldav) async fn mkcol(
        &self,
        req: &DavRequest,
        calendar: bool,
    ) -> Result<DavResponse, DavError> {
        let (parent, segs) = match self.resolve(&req.path).await? {
            Target::Missing {
                parent: Some(p),
                segs,
                ..
            } => (p, segs),
            Target::Missing { parent: None, .. } => {
                return Err(DavError::new(409, "parent collection does not exist"));
            }
            _ => return Err(already_exists(calendar)),
        };
        if in_copies(&segs) || sharing::is_mount_segs(&segs) {
            return Err(need_privilege(&req.path, Privilege::Bind));
        }
        let name = segs.last().cloned().unwrap_or_default();
        let MkcolBody {
            kind,
            ops,
            mut components,
        } = self.mkcol_body(req, calendar)?;
        // RFC 4791 5.3.1: calendars may not nest, and nothing may be created in a calendar
        // except calendar object resources.
        if matches!(
            parent.kind,
            ResourceKind::Calendar
                | ResourceKind::Inbox
                | ResourceKind::Outbox
                | ResourceKind::Notification
        ) {
            return Err(DavError::with(
                403,
                CalCondition::CalendarCollectionLocationOk,
                "collections cannot be created inside a calendar or a scheduling mailbox",
            ));
        }
        if parent.kind == ResourceKind::Collection && kind == ResourceKind::Calendar {
            return Err(DavError::with(
                403,
                CalCondition::CalendarCollectionLocationOk,
                "calendars live directly in the calendar home",
            ));
        }
        let (set, _) = match self.plan_patch(&ops, kind) {
            Ok(p) => p,
            Err(failures) => return Ok(Self::mkcol_failed(&ops, &failures, calendar)),
        };
        if kind == ResourceKind::Calendar && components.is_none() {
            components = Some(DEFAULT_COMPONENTS.into());
        }
        let created = self
            .store
            .create_collection(
                parent.id,
                NewCollection {
                    name,
                    kind,
                    supported_components: if kind == ResourceKind::Calendar {
                        components
                    } else {
                        None
                    },
                    props: set,
                },
            )
            .await;
        match created {
            Ok(_) => Ok(DavResponse::new(StatusCode::CREATED).header(header::CONTENT_LENGTH, "0")),
            Err(StoreError::AlreadyExists) => Err(already_exists(calendar)),
            Err(e) => Err(internal(e)),
        }
    }

    /// The extended MKCOL / MKCALENDAR body (RFC 5689, RFC 4791 5.3.1): the resource type,
    /// the components, and the other properties to set.
    fn mkcol_body(&self, req: &DavRequest, calendar: bool) -> Result<MkcolBody, DavError> {
        let mut kind = if calendar {
            ResourceKind::Calendar
        } else {
            ResourceKind::Collection
        };
        let mut ops = vec![];
        let mut components: Option<String> = None;
        if req.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(MkcolBody {
                kind,
                ops,
                components,
            });
        }
        if !calendar {
            let ct = header_str(&req.headers, "content-type").unwrap_or("");
            if !(ct.is_empty() || ct.contains("xml")) {
                return Err(DavError::new(415, "MKCOL body must be XML (RFC 5689)"));
            }
        }
        let (root, body_ops) = dav::parse_mkcol_body(&req.body, self.settings.xml)?;
        let expected = if calendar {
            (NS_CALDAV, "mkcalendar")
        } else {
            (NS_DAV, "mkcol")
        };
        if root.ns != expected.0 || root.local != expected.1 {
            return Err(DavError::new(
                if calendar { 400 } else { 415 },
                format!("expected {{{}}}{} body", expected.0, expected.1),
            ));
        }
        for op in body_ops {
            let n = op.name();
            match (Prop::from_name(&n), &op) {
                (Prop::ResourceType, PatchOp::Set(el, _)) => {
                    let is_cal = el.child(NS_CALDAV, "calendar").is_some();
                    let unknown = el
                        .children
                        .iter()
                        .any(|c| !(c.is(NS_DAV, "collection") || c.is(NS_CALDAV, "calendar")));
                    if unknown {
                        return Err(DavError::with(
                            403,
                            DavCondition::ValidResourcetype,
                            "unsupported resource type",
                        ));
                    }
                    if is_cal {
                        kind = ResourceKind::Calendar;
                    }
                }
                (Prop::SupportedCalendarComponentSet, PatchOp::Set(el, _)) => {
                    let comps: Vec<String> = el
                        .children_named(NS_CALDAV, "comp")
                        .filter_map(|c| c.attr("name").map(|n| n.to_ascii_uppercase()))
                        .collect();
                    if comps.is_empty() {
                        return Err(DavError::bad_request(
                            "supported-calendar-component-set names no component",
                        ));
                    }
                    components = Some(comps.join(","));
                }
                _ => ops.push(op),
            }
        }
        Ok(MkcolBody {
            kind,
            ops,
            components,
        })
    }

    /// RFC 5689 5.2 / RFC 4791 5.3.1.2: a refused property set, as the propstats of a 403.
    fn mkcol_failed(
        ops: &[PatchOp],
        failures: &[(PropertyName, DavError)],
        calendar: bool,
    ) -> DavResponse {
        let (by_status, messages) = Self::failure_statuses(ops, failures);
        let root = if calendar {
            "C:mkcalendar-response"
        } else {
            "D:mkcol-response"
        };
        let mut body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<{root}{}>",
            dav::root_namespace_decls()
        );
        for (status, props) in &by_status {
            body.push_str(&dav::propstat_xml(*status, props));
        }
        body.push_str(&format!(
            "<D:responsedescription>{}</D:responsedescription></{}>",
            escape(&messages),
            root
        ));
        DavResponse::xml(StatusCode::FORBIDDEN, body)
    }
}

/// What an extended MKCOL body asks for.
struct MkcolBody {
    kind: ResourceKind,
    ops: Vec<PatchOp>,
    components: Option<String>,
}
