//! A compact JWS as a client presents it, straight into `Verifier::verify` (and the
//! signature-only check of `tessera_jose::danger`), with the real keys of every algorithm.
//! An accepted token must pass `jose::assert_acceptable`.

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
        let Ok(token) = std::str::from_utf8(data) else { return };
        let keys = jose::keys();
        if let Ok(claims) = keys.verifier.verify(token, NOW) {
            jose::assert_acceptable(token, &claims);
        }
        let _ = tessera_jose::danger::verify_signature_only(&keys.verifier, token, NOW);
    }
);

/// The attack corpus signed with the trusted keys (HS256 is fixed, so those stay valid
/// across runs) and the encoding attacks of `crates/tessera-jose/tests/attacks.rs`.
fn make_seeds() -> Vec<Vec<u8>> {
    let keys = jose::keys();
    let mut tokens = Vec::new();
    for (algorithm, header, payload) in jose::attack_shapes() {
        let index = jose::ALGORITHMS
            .iter()
            .position(|a| *a == algorithm)
            .unwrap_or(0);
        let key = &keys.trusted[index];
        tokens.push(jose::forge(
            header.as_bytes(),
            payload.as_bytes(),
            &jose::encoding_key(key),
            jose::jsonwebtoken_algorithm(algorithm),
        ));
    }
    for algorithm in jose::ALGORITHMS {
        let honest = jose::forge(
            jose::header(algorithm, "").as_bytes(),
            jose::payload().as_bytes(),
            &jose::encoding_key(
                &keys.trusted[jose::ALGORITHMS
                    .iter()
                    .position(|a| *a == algorithm)
                    .unwrap_or(0)],
            ),
            jose::jsonwebtoken_algorithm(algorithm),
        );
        let parts: Vec<&str> = honest.split('.').collect();
        // Unsigned, empty signature, padded, standard alphabet, whitespace, extra segments.
        tokens.push(format!("{}.{}.", parts[0], parts[1]));
        tokens.push(format!("{}.{}", parts[0], parts[1]));
        tokens.push(format!("{honest}."));
        tokens.push(format!("{honest}.x.y"));
        tokens.push(format!("{}=.{}.{}", parts[0], parts[1], parts[2]));
        tokens.push(honest.replace('-', "+").replace('_', "/"));
        tokens.push(format!(" {honest}"));
        tokens.push(format!("{}.{} .{}", parts[0], parts[1], parts[2]));
        tokens.push(format!("{}.{}.{}", parts[0], parts[1], "A".repeat(1400)));
        // HS256 keyed with the public key (the algorithm-confusion attack).
        if algorithm != tessera_jose::Algorithm::HS256 {
            let header = format!(
                r#"{{"typ":"at+jwt","alg":"HS256","kid":"{}"}}"#,
                jose::kid(algorithm)
            );
            tokens.push(jose::forge(
                header.as_bytes(),
                jose::payload().as_bytes(),
                &jsonwebtoken::EncodingKey::from_secret(&jose::public_jwk_json(algorithm)),
                jsonwebtoken::Algorithm::HS256,
            ));
        }
        tokens.push(honest);
    }
    tokens.push("a".repeat(9000));
    tokens.push("..".to_owned());
    tokens.push(String::new());
    seeds::texts(tokens)
}
