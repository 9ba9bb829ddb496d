//! A JWKS document, as `tessera-tower` fetches it from the issuer: `Jwks::from_json`, then
//! `Verifier::from_jwks`, then an honest token of each trusted key against that verifier.
//! A token may only verify when the document holds that key's public key under its `kid`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::jose::{self, NOW};
use tessera_fuzz::seeds;
use tessera_jose::{Jwks, Verifier};

fuzz_target!(
    init: {
        seeds::write_if_asked(make_seeds);
        honest_tokens();
    },
    |data: &[u8]| {
        let Ok(jwks) = Jwks::from_json(data) else { return };
        let Ok(verifier) = Verifier::from_jwks(&jwks, jose::settings()) else { return };
        let published = jose::keys().keyring.jwks(NOW);
        for (algorithm, token) in honest_tokens() {
            if verifier.verify(token, NOW).is_ok() {
                let kid = jose::kid(*algorithm);
                let ours = published.keys.iter().find(|jwk| jwk.kid.as_deref() == Some(kid.as_str()));
                let theirs = jwks.keys.iter().find(|jwk| jwk.kid.as_deref() == Some(kid.as_str()));
                let same_key = match (ours, theirs) {
                    (Some(ours), Some(theirs)) => {
                        number(&ours.x) == number(&theirs.x)
                            && number(&ours.y) == number(&theirs.y)
                            && number(&ours.n) == number(&theirs.n)
                            && number(&ours.e) == number(&theirs.e)
                    }
                    _ => false,
                };
                assert!(same_key, "a JWKS without the signer's public key verified its token");
            }
        }
    }
);

/// A JWK member's bytes without leading zeros: one key may be spelled more than one way.
fn number(member: &Option<String>) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = member.as_deref()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|_| text.as_bytes().to_vec());
    let first = bytes
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(bytes.len());
    Some(bytes[first..].to_vec())
}

fn honest_tokens() -> &'static [(tessera_jose::Algorithm, String)] {
    static TOKENS: std::sync::OnceLock<Vec<(tessera_jose::Algorithm, String)>> =
        std::sync::OnceLock::new();
    TOKENS.get_or_init(|| {
        let keys = jose::keys();
        jose::ALGORITHMS
            .iter()
            .zip(&keys.trusted)
            .map(|(algorithm, key)| {
                let token = jose::forge(
                    jose::header(*algorithm, "").as_bytes(),
                    jose::payload().as_bytes(),
                    &jose::encoding_key(key),
                    jose::jsonwebtoken_algorithm(*algorithm),
                );
                (*algorithm, token)
            })
            .collect()
    })
}

fn make_seeds() -> Vec<Vec<u8>> {
    let published = jose::keys().keyring.jwks(NOW);
    let whole = serde_json::to_string(&published).unwrap_or_default();
    let mut documents = vec![whole.clone()];
    for jwk in &published.keys {
        let one = serde_json::to_string(jwk).unwrap_or_default();
        documents.push(format!(r#"{{"keys":[{one}]}}"#));
        documents.push(format!(r#"{{"keys":[{one},{one}]}}"#));
        let object = one.trim_end_matches('}');
        for extra in [
            r#","d":"AAAA""#,
            r#","use":"enc""#,
            r#","p":"AAAA""#,
            r#","kid":"again""#,
            r#","key_ops":["sign"]"#,
        ] {
            documents.push(format!(r#"{{"keys":[{object}{extra}}}]}}"#));
        }
        documents.push(format!(
            r#"{{"keys":[{}]}}"#,
            one.replace(r#""alg":"#, r#""alg":"none","x-alg":"#)
        ));
    }
    documents.extend([
        r#"{"keys":[]}"#.to_owned(),
        r#"{"keys":[{"kty":"oct","kid":"k","alg":"HS256","k":"c2VjcmV0"}]}"#.to_owned(),
        r#"{"keys":[{"kty":"RSA","kid":"small","alg":"RS256","n":"AQAB","e":"AQAB"}]}"#.to_owned(),
        r#"{"keys":[{"kty":"EC","kid":"p","alg":"ES256","crv":"P-256","x":"AAAA","y":"AAAA"}]}"#
            .to_owned(),
        r#"{"keys":[{"kty":"OKP","kid":"o","alg":"EdDSA","crv":"Ed448","x":"AAAA"}]}"#.to_owned(),
        r#"{"keys":{}}"#.to_owned(),
        r#"{"keys":[],"keys":[]}"#.to_owned(),
        "[]".to_owned(),
    ]);
    seeds::texts(documents)
}
