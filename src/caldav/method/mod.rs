//! One file per WebDAV/CalDAV method: each adds its handler to `Dav`.

mod copy_move;
mod delete;
mod get;
mod mkcol;
mod post;
pub(super) mod propfind;
mod proppatch;
pub(super) mod put;

pub(super) use propfind::*;
