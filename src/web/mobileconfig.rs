//! The Apple configuration profile (`.mobileconfig`) that sets up macOS and iOS Calendar in
//! one step: a `com.apple.caldav.account` payload with the server, the user name and a fresh
//! app password made for the device, so the account password never goes into the profile.
//!
//! Must never: put the account password in a profile, or serve one to anyone but its owner.

use crate::dav::escape;

/// Where the server is, as a client reaches it.
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: bool,
}

fn string(key: &str, value: &str) -> String {
    format!(
        "<key>{}</key><string>{}</string>",
        escape(key),
        escape(value)
    )
}

/// The profile XML (an Apple property list).
pub fn profile(ep: &Endpoint<'_>, username: &str, password: &str, principal: &str) -> String {
    let profile_id = uuid::Uuid::new_v4();
    let payload_id = uuid::Uuid::new_v4();
    let mut p = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>",
    );
    p.push_str("<key>PayloadContent</key><array><dict>");
    p.push_str(&string(
        "CalDAVAccountDescription",
        &format!("Convene ({username})"),
    ));
    p.push_str(&string("CalDAVHostName", ep.host));
    p.push_str(&format!(
        "<key>CalDAVPort</key><integer>{}</integer>",
        ep.port
    ));
    p.push_str(&format!(
        "<key>CalDAVUseSSL</key><{}/>",
        if ep.tls { "true" } else { "false" }
    ));
    p.push_str(&string("CalDAVPrincipalURL", principal));
    p.push_str(&string("CalDAVUsername", username));
    p.push_str(&string("CalDAVPassword", password));
    p.push_str(&string("PayloadDescription", "Calendar account"));
    p.push_str(&string("PayloadDisplayName", "Convene calendar"));
    p.push_str(&string(
        "PayloadIdentifier",
        &format!("org.convene.caldav.{payload_id}"),
    ));
    p.push_str(&string("PayloadType", "com.apple.caldav.account"));
    p.push_str(&string("PayloadUUID", &payload_id.to_string()));
    p.push_str("<key>PayloadVersion</key><integer>1</integer>");
    p.push_str("</dict></array>");
    p.push_str(&string(
        "PayloadDisplayName",
        &format!("Convene calendar for {username}"),
    ));
    p.push_str(&string(
        "PayloadIdentifier",
        &format!("org.convene.profile.{profile_id}"),
    ));
    p.push_str("<key>PayloadRemovalDisallowed</key><false/>");
    p.push_str(&string("PayloadType", "Configuration"));
    p.push_str(&string("PayloadUUID", &profile_id.to_string()));
    p.push_str("<key>PayloadVersion</key><integer>1</integer>");
    p.push_str("</dict></plist>\n");
    p
}
