//! JSON Web Keys (RFC 7517): what a keyring publishes and what other services import.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};

use crate::algorithm::Algorithm;
use crate::key::{JwkProblem, KeyError};
use crate::strict_json;

/// A JWK Set: `{"keys": [...]}`, serialized exactly as RFC 7517 §5 describes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, public parts only.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document strictly: one JSON object, no duplicate member names at any
    /// depth (RFC 7517 §4/§5). Keys are validated later, by [`Verifier::from_jwks`].
    ///
    /// [`Verifier::from_jwks`]: crate::Verifier::from_jwks
    pub fn from_json(json: &[u8]) -> Result<Jwks, KeyError> {
        strict_json::check_object_with_unique_members(json).map_err(KeyError::JwksJson)?;
        serde_json::from_slice(json).map_err(KeyError::JwksJson)
    }
}

/// One public key (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `"OKP"`, `"EC"` or `"RSA"`.
    pub kty: String,
    /// Key id: the `kid` a token's header names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; Tessera publishes `"sig"`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub public_key_use: Option<String>,
    /// Curve: `"Ed25519"` (OKP) or `"P-256"` (EC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// OKP public key, or EC x coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Any other member (`key_ops`, `x5c`, …), kept so an import can refuse what it must.
    #[serde(flatten)]
    pub other_members: BTreeMap<String, serde_json::Value>,
}

/// Members that only private (or symmetric) keys have: a JWKS carrying one is refused.
const PRIVATE_MEMBERS: [&str; 9] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "r"];

impl Jwk {
    pub(crate) fn okp(kid: &str, public_key: &[u8]) -> Jwk {
        let mut jwk = Jwk::public(kid, "OKP", Algorithm::EdDSA);
        jwk.crv = Some("Ed25519".to_owned());
        jwk.x = Some(URL_SAFE_NO_PAD.encode(public_key));
        jwk
    }

    /// `uncompressed_point` is the SEC1 `04 || x || y` encoding.
    pub(crate) fn ec(kid: &str, uncompressed_point: &[u8]) -> Option<Jwk> {
        let coordinates = uncompressed_point.strip_prefix(&[4])?;
        if coordinates.len() != 64 {
            return None;
        }
        let (x, y) = coordinates.split_at(32);
        let mut jwk = Jwk::public(kid, "EC", Algorithm::ES256);
        jwk.crv = Some("P-256".to_owned());
        jwk.x = Some(URL_SAFE_NO_PAD.encode(x));
        jwk.y = Some(URL_SAFE_NO_PAD.encode(y));
        Some(jwk)
    }

    pub(crate) fn rsa(kid: &str, modulus: &[u8], exponent: &[u8]) -> Jwk {
        let mut jwk = Jwk::public(kid, "RSA", Algorithm::RS256);
        jwk.n = Some(URL_SAFE_NO_PAD.encode(modulus));
        jwk.e = Some(URL_SAFE_NO_PAD.encode(exponent));
        jwk
    }

    fn public(kid: &str, kty: &str, algorithm: Algorithm) -> Jwk {
        Jwk {
            kty: kty.to_owned(),
            kid: Some(kid.to_owned()),
            alg: Some(algorithm.as_str().to_owned()),
            public_key_use: Some("sig".to_owned()),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            other_members: BTreeMap::new(),
        }
    }

    /// Validates an imported public key and turns it into a verification key bound to one
    /// algorithm: `alg` is required and must fit `kty`/`crv` (RFC 8725 §3.1), EC points must
    /// be on the curve (RFC 8725 §3.4), RSA moduli 2048–8192 bits with an odd exponent ≥ 3.
    pub(crate) fn to_decoding_key(&self) -> Result<(Algorithm, DecodingKey), JwkProblem> {
        if let Some(member) = PRIVATE_MEMBERS
            .into_iter()
            .find(|member| self.other_members.contains_key(*member))
        {
            return Err(JwkProblem::PrivateMember { member });
        }
        if self
            .public_key_use
            .as_deref()
            .is_some_and(|public_key_use| public_key_use != "sig")
        {
            return Err(JwkProblem::NotForSignatures);
        }
        if let Some(operations) = self.other_members.get("key_ops") {
            let verifies = operations
                .as_array()
                .is_some_and(|operations| operations.iter().any(|operation| operation == "verify"));
            if !verifies {
                return Err(JwkProblem::NotForSignatures);
            }
        }
        let algorithm: Algorithm = self
            .alg
            .as_deref()
            .ok_or(JwkProblem::MissingAlgorithm)?
            .parse()
            .map_err(|_| JwkProblem::UnsupportedAlgorithm)?;
        match (algorithm, self.kty.as_str(), self.crv.as_deref()) {
            (Algorithm::EdDSA, "OKP", Some("Ed25519")) => {
                let x = decode_member(self.x.as_deref(), "x")?;
                if x.len() != 32 {
                    return Err(JwkProblem::InvalidPublicKey);
                }
                Ok((algorithm, DecodingKey::from_ed_der(&x)))
            }
            (Algorithm::ES256, "EC", Some("P-256")) => {
                let x = decode_member(self.x.as_deref(), "x")?;
                let y = decode_member(self.y.as_deref(), "y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(JwkProblem::InvalidPublicKey);
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                // Parsing validates the point (on the curve, not the identity).
                aws_lc_rs::signature::ParsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                    &point,
                )
                .map_err(|_| JwkProblem::InvalidPublicKey)?;
                Ok((algorithm, DecodingKey::from_ec_der(&point)))
            }
            (Algorithm::RS256, "RSA", None) => {
                let modulus = decode_member(self.n.as_deref(), "n")?;
                let exponent = decode_member(self.e.as_deref(), "e")?;
                let modulus_bits = significant_bits(&modulus);
                if !(2048..=8192).contains(&modulus_bits) {
                    return Err(JwkProblem::RsaModulusSize { bits: modulus_bits });
                }
                let exponent_is_odd = exponent.last().is_some_and(|low| low & 1 == 1);
                if !exponent_is_odd || significant_bits(&exponent) < 2 || exponent.len() > 8 {
                    return Err(JwkProblem::InvalidPublicKey);
                }
                Ok((
                    algorithm,
                    DecodingKey::from_rsa_raw_components(&modulus, &exponent),
                ))
            }
            _ => Err(JwkProblem::AlgorithmDoesNotFitKey),
        }
    }
}

fn decode_member(value: Option<&str>, member: &'static str) -> Result<Vec<u8>, JwkProblem> {
    let value = value.ok_or(JwkProblem::MissingMember { member })?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|source| JwkProblem::Encoding { member, source })
}

fn significant_bits(big_endian: &[u8]) -> usize {
    let mut digits = big_endian.iter().skip_while(|byte| **byte == 0);
    match digits.next() {
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * digits.count(),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_bits_ignores_leading_zero_bytes() {
        assert_eq!(significant_bits(&[0, 0, 1, 0]), 9);
        assert_eq!(significant_bits(&[0x80; 256]), 2048);
        assert_eq!(significant_bits(&[0, 0]), 0);
        assert_eq!(significant_bits(&[1, 0, 1]), 17);
    }

    #[test]
    fn jwks_json_with_duplicate_members_is_refused() {
        let json = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","crv":"X25519","x":"AA"}]}"#;
        assert!(matches!(Jwks::from_json(json), Err(KeyError::JwksJson(_))));
    }
}
