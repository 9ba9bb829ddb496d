//! A header and a payload of the fuzzer's choosing, signed with a real key, into
//! `Verifier::verify`: past the signature, so the strict header and claim parsing are
//! reached. Input: a selector byte, then the header bytes, `0xFF`, the payload bytes.
//!
//! Selector: the low two bits pick the key (EdDSA, ES256, RS256, HS256). Bit 2 signs with
//! another key of that algorithm under the same `kid`; bit 3 signs HS256 keyed with the
//! trusted key's public JWK (algorithm confusion). Either forgery must be refused; an
//! honest signature is accepted only if `jose::assert_acceptable` holds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::jose::{self, NOW};
use tessera_fuzz::seeds;

fuzz_target!(
    init: {
        seeds::write_if_asked(make_seeds);
        jose::keys();
    },
    |data: &[u8]| {
        let Some((&selector, rest)) = data.split_first() else { return };
        let (header, payload) = match rest.iter().position(|byte| *byte == 0xFF) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let keys = jose::keys();
        let index = usize::from(selector & 3);
        let algorithm = jose::ALGORITHMS[index];
        let impostor = selector & 4 != 0;
        let confused = !impostor && selector & 8 != 0 && algorithm != tessera_jose::Algorithm::HS256;
        let token = if impostor {
            jose::forge(header, payload, &jose::encoding_key(&keys.impostors[index]), jose::jsonwebtoken_algorithm(algorithm))
        } else if confused {
            let secret = jose::public_jwk_json(algorithm);
            jose::forge(header, payload, &jsonwebtoken::EncodingKey::from_secret(&secret), jsonwebtoken::Algorithm::HS256)
        } else {
            jose::forge(header, payload, &jose::encoding_key(&keys.trusted[index]), jose::jsonwebtoken_algorithm(algorithm))
        };
        match keys.verifier.verify(&token, NOW) {
            Ok(claims) => {
                assert!(!impostor, "accepted a token signed by a key the verifier does not hold");
                assert!(!confused, "accepted HS256 keyed with a public key");
                jose::assert_acceptable(&token, &claims);
            }
            Err(_) => {}
        }
    }
);

fn make_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (algorithm, header, payload) in jose::attack_shapes() {
        let index = jose::ALGORITHMS
            .iter()
            .position(|a| *a == algorithm)
            .unwrap_or(0) as u8;
        for selector in [index, index | 4, index | 8] {
            let mut seed = vec![selector];
            seed.extend_from_slice(header.as_bytes());
            seed.push(0xFF);
            seed.extend_from_slice(payload.as_bytes());
            seeds.push(seed);
        }
    }
    seeds
}
