//! Sign and verify per algorithm through tessera-jose, against plain jsonwebtoken `decode`
//! (EdDSA) as the baseline for what the strict checks cost.
//!
//! Run: `cargo bench -p tessera-jose`

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that fails should panic.

use std::time::Duration;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use tessera_jose::{
    AccessClaims, Actor, Algorithm, Audience, Keyring, StoredKey, TransactionClaims,
    VerifierSettings,
};

const NOW: i64 = 1_700_000_000;

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://auth.example".to_owned(),
        sub: "user-7f3a9c".to_owned(),
        aud: Audience::One("api".to_owned()),
        exp: NOW + 600,
        iat: NOW,
        nbf: None,
        auth_time: None,
        jti: "kq3m8XvT2bLwYc9dHf4n1A".to_owned(),
        sid: "s8Jd2kLq9ZxWv3NcR7tYpA".to_owned(),
        scope: Some("read write".to_owned()),
        roles: vec!["user".to_owned()],
        client_id: Some("web".to_owned()),
        extra: Default::default(),
    }
}

/// A one-time operation token as token exchange issues it: one audience, one operation, an
/// actor, seconds long.
fn transaction_claims() -> TransactionClaims {
    TransactionClaims {
        iss: "https://auth.example".to_owned(),
        sub: "user-7f3a9c".to_owned(),
        aud: "api".to_owned(),
        exp: NOW + 30,
        iat: NOW,
        nbf: None,
        jti: "kq3m8XvT2bLwYc9dHf4n1A".to_owned(),
        txn: Some("kq3m8XvT2bLwYc9dHf4n1A".to_owned()),
        sid: "s8Jd2kLq9ZxWv3NcR7tYpA".to_owned(),
        scope: "refund".to_owned(),
        auth_time: Some(NOW - 60),
        roles: vec!["user".to_owned()],
        act: Some(Actor::new("cart")),
        rctx: None,
        extra: Default::default(),
    }
}

fn bench(criterion: &mut Criterion) {
    let settings = VerifierSettings::new("https://auth.example", vec!["api".to_owned()]);
    for algorithm in Algorithm::ALL {
        let key = StoredKey::generate(algorithm, NOW, NOW).unwrap();
        let keyring = Keyring::new(vec![key.clone()], Duration::from_secs(3600)).unwrap();
        let signer = keyring.signer(NOW).unwrap();
        let verifier = keyring.verifier(settings.clone());
        let claims = claims();
        let token = signer.sign(&claims).unwrap();
        println!("token size {algorithm}: {} bytes", token.len());

        let mut group = criterion.benchmark_group(algorithm.as_str());
        group
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        group.bench_function("sign", |bencher| {
            bencher.iter(|| signer.sign(black_box(&claims)).unwrap())
        });
        group.bench_function("verify", |bencher| {
            bencher.iter(|| verifier.verify(black_box(&token), NOW).unwrap())
        });
        let transaction = signer.sign_transaction(&transaction_claims()).unwrap();
        group.bench_function("verify_transaction", |bencher| {
            bencher.iter(|| {
                verifier
                    .verify_transaction(black_box(&transaction), NOW)
                    .unwrap()
            })
        });
        if algorithm == Algorithm::EdDSA {
            let jwks = keyring.jwks(NOW);
            let decoding_key =
                jsonwebtoken::DecodingKey::from_ed_components(jwks.keys[0].x.as_deref().unwrap())
                    .unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
            validation.set_issuer(&["https://auth.example"]);
            validation.set_audience(&["api"]);
            // jsonwebtoken reads the system clock; the token must be unexpired now.
            validation.validate_exp = false;
            group.bench_function("verify_jsonwebtoken_baseline", |bencher| {
                bencher.iter(|| {
                    jsonwebtoken::decode::<serde_json::Value>(
                        black_box(&token),
                        &decoding_key,
                        &validation,
                    )
                    .unwrap()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
