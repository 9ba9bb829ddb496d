//! [`LoginThrottle`](tessera_core::LoginThrottle): fixed windows opening at the first
//! failure.

use std::time::Duration;

use tessera_core::{ThrottleKey, ThrottleRule};

use super::{Fixture, MINUTE, SECOND, at, minutes};

const RULE: ThrottleRule = ThrottleRule {
    max_failures: 3,
    window: Duration::from_secs(15 * 60),
};

fn account(name: &str) -> ThrottleKey {
    ThrottleKey::Account(name.to_owned())
}

/// Failures below the limit do not block; reaching it blocks until the window that opened
/// at the first failure closes, and further failures do not push that point back.
pub async fn throttle_counts_up_to_the_limit(fixture: Fixture) {
    let throttle = &fixture.throttle;
    let key = account("alice");
    assert_eq!(throttle.blocked_for(&key, RULE, at(0)).await.unwrap(), None);

    throttle.record_failure(&key, RULE, at(0)).await.unwrap();
    throttle
        .record_failure(&key, RULE, at(SECOND))
        .await
        .unwrap();
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(2 * SECOND))
            .await
            .unwrap(),
        None
    );

    throttle
        .record_failure(&key, RULE, at(2 * SECOND))
        .await
        .unwrap();
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(2 * SECOND))
            .await
            .unwrap(),
        Some(minutes(15) - Duration::from_secs(2))
    );
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(10 * MINUTE))
            .await
            .unwrap(),
        Some(minutes(5))
    );

    throttle
        .record_failure(&key, RULE, at(10 * MINUTE))
        .await
        .unwrap();
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(10 * MINUTE))
            .await
            .unwrap(),
        Some(minutes(5)),
        "a failure while blocked extended the window"
    );
    // The same counters under a looser rule: three failures are within a limit of four.
    let loose = ThrottleRule {
        max_failures: 5,
        ..RULE
    };
    assert_eq!(
        throttle
            .blocked_for(&key, loose, at(10 * MINUTE))
            .await
            .unwrap(),
        None
    );
}

/// Once the window closes the key may try again, and the next failure opens a new window
/// that counts from one.
pub async fn throttle_window_expiry_unblocks(fixture: Fixture) {
    let throttle = &fixture.throttle;
    let key = account("alice");
    for n in 0..3 {
        throttle
            .record_failure(&key, RULE, at(n * SECOND))
            .await
            .unwrap();
    }
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(15 * MINUTE - 1))
            .await
            .unwrap(),
        Some(Duration::from_millis(1))
    );
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(15 * MINUTE))
            .await
            .unwrap(),
        None
    );

    let reopened = 20 * MINUTE;
    throttle
        .record_failure(&key, RULE, at(reopened))
        .await
        .unwrap();
    throttle
        .record_failure(&key, RULE, at(reopened + SECOND))
        .await
        .unwrap();
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(reopened + SECOND))
            .await
            .unwrap(),
        None,
        "failures from the closed window still counted"
    );
    throttle
        .record_failure(&key, RULE, at(reopened + 2 * SECOND))
        .await
        .unwrap();
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(reopened + 5 * MINUTE))
            .await
            .unwrap(),
        Some(minutes(10)),
        "the new window opens at its first failure"
    );
}

/// A reset forgets the key's failures entirely; resetting an unknown key is fine.
pub async fn throttle_reset_clears(fixture: Fixture) {
    let throttle = &fixture.throttle;
    let key = account("alice");
    for n in 0..3 {
        throttle
            .record_failure(&key, RULE, at(n * SECOND))
            .await
            .unwrap();
    }
    assert!(
        throttle
            .blocked_for(&key, RULE, at(MINUTE))
            .await
            .unwrap()
            .is_some()
    );

    throttle.reset(&key).await.unwrap();
    assert_eq!(
        throttle.blocked_for(&key, RULE, at(MINUTE)).await.unwrap(),
        None
    );
    for n in 0..2 {
        throttle
            .record_failure(&key, RULE, at(MINUTE + n * SECOND))
            .await
            .unwrap();
    }
    assert_eq!(
        throttle
            .blocked_for(&key, RULE, at(2 * MINUTE))
            .await
            .unwrap(),
        None,
        "failures from before the reset still counted"
    );
    throttle.reset(&account("nobody")).await.unwrap();
}

/// Counters are per key: accounts, addresses and an address that spells an account name are
/// all counted apart.
pub async fn throttle_keys_are_independent(fixture: Fixture) {
    let throttle = &fixture.throttle;
    let alice = account("alice");
    let bob = account("bob");
    let address = ThrottleKey::for_address("192.0.2.7".parse().unwrap());
    let lookalike = ThrottleKey::Address("alice".to_owned());
    for n in 0..3 {
        throttle
            .record_failure(&alice, RULE, at(n * SECOND))
            .await
            .unwrap();
    }
    throttle.record_failure(&bob, RULE, at(0)).await.unwrap();
    throttle.record_failure(&bob, RULE, at(0)).await.unwrap();
    throttle
        .record_failure(&address, RULE, at(0))
        .await
        .unwrap();
    throttle
        .record_failure(&address, RULE, at(0))
        .await
        .unwrap();

    let now = at(MINUTE);
    assert!(
        throttle
            .blocked_for(&alice, RULE, now)
            .await
            .unwrap()
            .is_some()
    );
    for other in [&bob, &address, &lookalike] {
        assert_eq!(
            throttle.blocked_for(other, RULE, now).await.unwrap(),
            None,
            "{other:?}"
        );
    }
    throttle.reset(&bob).await.unwrap();
    assert!(
        throttle
            .blocked_for(&alice, RULE, now)
            .await
            .unwrap()
            .is_some()
    );
    throttle.record_failure(&address, RULE, now).await.unwrap();
    assert!(
        throttle
            .blocked_for(&address, RULE, now)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(throttle.blocked_for(&bob, RULE, now).await.unwrap(), None);
}
