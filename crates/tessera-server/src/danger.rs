//! Settings that weaken security, kept in one module so review can find them.
//! Each is off by default and logged loudly at start-up when on.

use crate::Config;
use crate::auth::CookieSettings;

/// The session cookie settings. With `danger.insecure_cookies` the cookie loses `Secure`,
/// and therefore its `__Host-` prefix too (browsers refuse a `__Host-` cookie that is not
/// `Secure`): only for plain-HTTP development on a host other than `localhost`.
pub fn cookie_settings(config: &Config) -> CookieSettings {
    let name = &config.session.cookie_name;
    if config.danger.insecure_cookies {
        CookieSettings {
            name: name.strip_prefix("__Host-").unwrap_or(name).to_owned(),
            secure: false,
        }
    } else {
        CookieSettings {
            name: name.clone(),
            secure: true,
        }
    }
}
