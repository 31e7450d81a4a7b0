//! WebDAV request bodies: the XML tree and every typed request parser built on it.
#![no_main]

use convene::dav::{self, XmlLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = XmlLimits::default();
    if let Ok(root) = dav::xml::parse(data, limits) {
        let _ = dav::parse_sync_collection(&root);
        let _ = root.standalone(data);
    }
    let _ = dav::parse_propfind(data, limits);
    let _ = dav::parse_proppatch(data, limits);
    let _ = dav::parse_mkcol_body(data, limits);
});
