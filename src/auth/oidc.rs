//! OpenID Connect relying party (OIDC Core 1.0, authorization code flow): discovery, the
//! authorization request with PKCE S256, state and nonce, the code exchange, ID-token
//! verification (signature against the provider's JWKS, `iss`, `aud`, `exp`, `nonce`,
//! `at_hash`), userinfo, refresh, and RP-initiated logout. Built on the `openidconnect` crate.
//!
//! The redirect URI is the configured one, exactly; it is never derived from a request's Host.
//! The HTTP client never follows redirects (a provider that redirects its token endpoint is
//! refused, so a code or a client secret never travels to a third host). RFC 9207: an `iss`
//! in the authorization response must be this issuer, and it must be there when the provider
//! says it sends it.
//!
//! Must never: log a code, a token or the client secret; accept an ID token without checking
//! its signature, audience, issuer and nonce; let the browser choose the redirect URI.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
// Monotonic, and paused with tokio's test clock.
use tokio::time::Instant;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGenderClaim, CoreGrantType, CoreIdToken, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AuthorizationCode, ClientId,
    ClientSecret, CsrfToken, EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, RefreshToken, Scope as OidcScope,
    TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// `[oidc]` in the configuration file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL; discovery is at `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Absent for a public client (PKCE alone).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Registered at the provider, exactly: `https://HOST/auth/callback`.
    pub redirect_url: String,
    /// Where the provider sends the browser after logout (registered there too).
    #[serde(default)]
    pub post_logout_redirect_url: Option<String>,
    /// Scopes besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim that names the local account.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim listing the person's groups (a list of names).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The sign-in button's text.
    #[serde(default = "default_label")]
    pub label: String,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_scopes() -> Vec<String> {
    ["email", "profile", "groups", "offline_access"]
        .map(String::from)
        .to_vec()
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_label() -> String {
    "Sign in with single sign-on".into()
}
fn default_timeout() -> u64 {
    10
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("provider discovery failed: {0}")]
    Discovery(String),
    #[error("the sign-in response does not belong to this browser's sign-in (state)")]
    State,
    #[error("the sign-in response names another issuer")]
    Issuer,
    #[error("the provider refused the authorization code: {0}")]
    Code(String),
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    #[error("userinfo failed: {0}")]
    UserInfo(String),
    #[error("refresh failed: {0}")]
    Refresh(String),
    #[error("the provider did not send the `{0}` claim")]
    MissingClaim(String),
}

/// Discovery metadata we read besides the core: logout, and RFC 9207.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ExtraMetadata {
    #[serde(default)]
    end_session_endpoint: Option<EndSessionUrl>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Claims beyond the standard ones (groups, and whatever `username_claim` names).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

/// What a browser carries (sealed, in a cookie) between the redirect to the provider and the
/// callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub state: String,
    nonce: String,
    verifier: String,
    /// The local path to return to.
    pub next: String,
}

/// The person the provider vouched for.
#[derive(Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub id_token: String,
    pub refresh_token: Option<String>,
    /// Until the access token expires: when to ask the provider again.
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A refresh's outcome: new tokens (the provider may rotate the refresh token).
pub struct Refreshed {
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

struct Discovered {
    at: Instant,
    client: Arc<Rp>,
    iss_param: bool,
    end_session: Option<EndSessionUrl>,
}

/// How long discovery (and the JWKS in it) is reused before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(600);

pub struct OidcClient {
    cfg: OidcConfig,
    http: reqwest::Client,
    redirect: RedirectUrl,
    discovered: tokio::sync::RwLock<Option<Discovered>>,
}

impl OidcClient {
    pub fn new(cfg: OidcConfig) -> Result<OidcClient, OidcError> {
        let redirect = RedirectUrl::new(cfg.redirect_url.clone())
            .map_err(|e| OidcError::Config(format!("redirect_url: {e}")))?;
        IssuerUrl::new(cfg.issuer.clone())
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(cfg.timeout_seconds.max(1)))
            .build()
            .map_err(|e| OidcError::Config(e.to_string()))?;
        Ok(OidcClient {
            cfg,
            http,
            redirect,
            discovered: Default::default(),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    pub fn issuer(&self) -> &str {
        &self.cfg.issuer
    }

    async fn discovered(&self) -> Result<(Arc<Rp>, bool, Option<EndSessionUrl>), OidcError> {
        if let Some(d) = self.discovered.read().await.as_ref()
            && d.at.elapsed() < METADATA_TTL
        {
            return Ok((d.client.clone(), d.iss_param, d.end_session.clone()));
        }
        let mut slot = self.discovered.write().await;
        if let Some(d) = slot.as_ref()
            && d.at.elapsed() < METADATA_TTL
        {
            return Ok((d.client.clone(), d.iss_param, d.end_session.clone()));
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| OidcError::Config(e.to_string()))?;
        let meta = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let extra = meta.additional_metadata().clone();
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(self.cfg.client_id.clone()),
            self.cfg.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone());
        let d = Discovered {
            at: Instant::now(),
            client: Arc::new(client),
            iss_param: extra.authorization_response_iss_parameter_supported,
            end_session: extra.end_session_endpoint,
        };
        let out = (d.client.clone(), d.iss_param, d.end_session.clone());
        *slot = Some(d);
        Ok(out)
    }

    /// The provider's authorization URL for a new sign-in, and what the browser must bring
    /// back. `next` must already be a checked local path.
    pub async fn start(&self, next: &str) -> Result<(String, Pending), OidcError> {
        let (client, _, _) = self.discovered().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in &self.cfg.scopes {
            req = req.add_scope(OidcScope::new(s.clone()));
        }
        let (url, state, nonce) = req.set_pkce_challenge(challenge).url();
        Ok((
            url.to_string(),
            Pending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
                next: next.to_string(),
            },
        ))
    }

    /// Finish a sign-in from the callback's parameters.
    pub async fn finish(
        &self,
        pending: &Pending,
        code: &str,
        state: &str,
        iss: Option<&str>,
    ) -> Result<Identity, OidcError> {
        if !bool::from(pending.state.as_bytes().ct_eq(state.as_bytes())) {
            return Err(OidcError::State);
        }
        let (client, iss_param, _) = self.discovered().await?;
        match iss {
            Some(i) if i != self.cfg.issuer => return Err(OidcError::Issuer),
            None if iss_param => return Err(OidcError::Issuer),
            _ => {}
        }
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Code(error_chain(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::IdToken("the token response has no ID token".into()))?;
        let verifier = client.id_token_verifier();
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = id_token
            .claims(&verifier, &nonce)
            .map_err(|e| OidcError::IdToken(error_chain(&e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| OidcError::IdToken(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| OidcError::IdToken(e.to_string()))?;
            let actual = AccessTokenHash::from_token(token.access_token(), alg, key)
                .map_err(|e| OidcError::IdToken(e.to_string()))?;
            if actual != *expected {
                return Err(OidcError::IdToken("at_hash does not match".into()));
            }
        }
        let subject = claims.subject().clone();
        let mut fields = HashMap::new();
        let std_claims = [
            (
                "preferred_username",
                claims.preferred_username().map(|u| u.to_string()),
            ),
            ("email", claims.email().map(|e| e.to_string())),
            (
                "name",
                claims
                    .name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.to_string()),
            ),
        ];
        for (k, v) in std_claims {
            if let Some(v) = v {
                fields.insert(k.to_string(), serde_json::Value::String(v));
            }
        }
        // Userinfo has what the ID token may leave out (groups, with some providers email).
        if let Ok(req) = client.user_info(token.access_token().clone(), Some(subject.clone())) {
            let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = req
                .request_async(&self.http)
                .await
                .map_err(|e| OidcError::UserInfo(error_chain(&e)))?;
            let std_info = [
                (
                    "preferred_username",
                    info.preferred_username().map(|u| u.to_string()),
                ),
                ("email", info.email().map(|e| e.to_string())),
                (
                    "name",
                    info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
                ),
            ];
            for (k, v) in std_info {
                if let Some(v) = v {
                    fields.insert(k.to_string(), serde_json::Value::String(v));
                }
            }
            for (k, v) in info.additional_claims().rest.iter() {
                fields.insert(k.clone(), v.clone());
            }
        }
        let text = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let username = text(&self.cfg.username_claim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| OidcError::MissingClaim(self.cfg.username_claim.clone()))?;
        let groups = match fields.get(&self.cfg.groups_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str())
                .map(str::to_string)
                .collect(),
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            issuer: self.cfg.issuer.clone(),
            subject: subject.to_string(),
            username,
            email: text("email"),
            name: text("name"),
            groups,
            id_token: id_token.to_string(),
            refresh_token: token.refresh_token().map(|r| r.secret().clone()),
            expires_in: token.expires_in(),
        })
    }

    /// Ask the provider whether the person may still be signed in, with the refresh token.
    /// A new ID token, if sent, must be valid and for the same subject.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Refreshed, OidcError> {
        let (client, _, _) = self.discovered().await?;
        let rt = RefreshToken::new(refresh_token.to_string());
        let token = client
            .exchange_refresh_token(&rt)
            .map_err(|e| OidcError::Config(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Refresh(error_chain(&e)))?;
        let id_token = match token.id_token() {
            Some(t) => {
                let verifier = client.id_token_verifier();
                // A refreshed ID token carries no nonce (OIDC Core 12.2).
                let claims = t
                    .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                    .map_err(|e| OidcError::IdToken(error_chain(&e)))?;
                if claims.subject().as_str() != subject {
                    return Err(OidcError::IdToken("the subject changed".into()));
                }
                Some(t.to_string())
            }
            None => None,
        };
        Ok(Refreshed {
            id_token,
            refresh_token: token.refresh_token().map(|r| r.secret().clone()),
            expires_in: token.expires_in(),
        })
    }

    /// The subject of an ID token this client stored (no verification: it was verified
    /// when it arrived).
    pub fn subject_of(id_token: &str) -> Option<String> {
        use base64::Engine as _;
        let payload = id_token.split('.').nth(1)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        v.get("sub")?.as_str().map(str::to_string)
    }

    /// Where to send the browser to end the provider's session too (RP-initiated logout
    /// 1.0), when the provider offers it.
    pub async fn logout_url(&self, id_token: Option<&str>) -> Option<String> {
        let (_, _, end) = self.discovered().await.ok()?;
        let mut req =
            LogoutRequest::from(end?).set_client_id(ClientId::new(self.cfg.client_id.clone()));
        if let Some(t) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
            req = req.set_id_token_hint(&t);
        }
        if let Some(u) = self
            .cfg
            .post_logout_redirect_url
            .as_ref()
            .and_then(|u| PostLogoutRedirectUrl::new(u.clone()).ok())
        {
            req = req.set_post_logout_redirect_uri(u);
        }
        Some(req.http_get_url().to_string())
    }
}

/// An error and its sources, for logs (token-request errors hide the provider's answer in a
/// source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    let mut n = 0;
    while let Some(c) = cur {
        if n > 5 {
            break;
        }
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
        n += 1;
    }
    s
}
